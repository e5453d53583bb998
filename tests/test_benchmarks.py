"""Smoke tests of the benchmark harness on small generated data (no shared data)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from benchmarks.datasets import Task, base_config
from benchmarks.page import END, START, replace_part
from benchmarks.skab import Counts, row_flags

from grindwatch.io import Recording, RecordingSet
from tests.conftest import make_cycle


def _recording(seed: int, anomaly: str | None = None, label: int = 0) -> Recording:
    data = make_cycle(seed, n_samples=1024, anomaly=anomaly)
    return Recording(
        name=f"cycle_{seed}",
        data=data,
        channels=["a", "b", "c"],
        sample_rate=1000.0,
        label=label,
    )


def test_replace_part_keeps_hand_written_text():
    page = "# Benchmarks\n\nHand-written results.\n"

    once = replace_part(page, "speed", "speed figures v1\n")
    twice = replace_part(once, "reading", "reading figures\n")
    again = replace_part(twice, "speed", "speed figures v2\n")

    assert again.startswith(page)
    assert again.count(START) == 1
    assert again.count(END) == 1
    assert "speed figures v2" in again
    assert "speed figures v1" not in again
    assert "reading figures" in again
    assert again.index("speed figures") < again.index("reading figures")


def test_skab_counts_follow_published_formulas():
    counts = Counts()
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    flags = np.array([0, 1, 0, 0, 1, 1, 1, 0], dtype=bool)

    counts.add(labels, flags)
    metrics = counts.metrics()

    assert (counts.tp, counts.fp, counts.tn, counts.fn) == (3, 1, 3, 1)
    assert metrics["f1"] == pytest.approx(3 / (3 + (1 + 1) / 2))
    assert metrics["far"] == pytest.approx(25.0)
    assert metrics["mar"] == pytest.approx(25.0)


def test_row_flags_at_window_ends():
    run = _recording(0)
    scores = np.zeros(run.n_samples - 31)
    scores[10] = 5.0

    flags = row_flags(run, scores, threshold=1.0, length=32)

    assert flags.sum() == 1
    assert flags[10 + 31]


def test_quality_task_scores_every_tool(monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("pyod")
    from benchmarks import quality

    monkeypatch.setattr(
        quality, "PYOD_MODELS", {"PyOD PCA": quality.PYOD_MODELS["PyOD PCA"]}
    )
    config = base_config(
        {"windows.length": 128, "frontend.n_bands": 16, "detector.family": "pca"}
    )
    task = Task(
        name="generated",
        protocol="generated sines",
        config=config,
        changes={},
        train=RecordingSet([_recording(seed) for seed in range(6)]),
        test=[_recording(10), _recording(11, anomaly="spike", label=1)],
    )

    results = quality.run_task(task, seed=0, tune=False)

    assert set(results) == {quality.GRINDWATCH, "PyOD PCA"}
    for entry in results.values():
        assert 0.0 <= entry["windows"]["auc_roc"] <= 1.0
        assert entry["windows"]["n"] == 16
        assert entry["recordings"]["n"] == 2


def test_front_ends_compare_variants_and_trials():
    from benchmarks import front_ends

    config = base_config({"windows.length": 128, "frontend.n_bands": 16})
    task = Task(
        name="generated",
        protocol="generated sines",
        config=config,
        changes={},
        train=RecordingSet([_recording(seed) for seed in range(6)]),
        test=[_recording(10), _recording(11, anomaly="spike", label=1)],
        tune_overrides={"tune.space.window_length": [128]},
    )

    raw = front_ends._variant(task, "raw", "pca")
    trials = front_ends._tune_by_front_end(task, seed=0, trials=3)
    table = front_ends._markdown([raw])

    assert raw["front end"] == "raw"
    assert 0.0 <= raw["window AUC-ROC"] <= 1.0
    assert raw["anomalous"] == pytest.approx(0.5)
    assert sum(row["trials"] for row in trials) == 3
    assert sum(row["chosen"] for row in trials) == 1
    assert table.splitlines()[0].startswith("| front end | detector |")
    assert "50.0%" in table


def test_datasets_option_names_every_loader():
    from benchmarks.datasets import LOADERS
    from benchmarks.run import DATASETS

    assert set(DATASETS) == set(LOADERS)


def test_unknown_dataset_leaves_page_alone(tmp_path):
    from benchmarks.run import main

    page = tmp_path / "BENCHMARKS.md"
    page.write_text("# Benchmarks\n\nPublished figures.\n")

    with pytest.raises(SystemExit) as raised:
        main(["quality", "--datasets", "gear", "--page", str(page)])

    assert raised.value.code == 2
    assert page.read_text() == "# Benchmarks\n\nPublished figures.\n"
    assert not (tmp_path / "results").exists()


def test_batch_sweep_step_time_within_epoch():
    from benchmarks.speed import SWEEP_BATCHES, measure_batch_sweep
    from benchmarks.workload import make_recordings

    # 8 windows of 1024 samples, 1 of them held out for validation: every swept
    # batch size exceeds the 7 training windows, so each epoch is one step.
    recordings = make_recordings(2, 4096)

    entries = measure_batch_sweep(recordings, seed=0)

    assert len(entries) == 2 * len(SWEEP_BATCHES)
    for entry in entries:
        epoch_ms = 1e3 * 7 / entry["train_windows_per_s"]
        assert entry["ms_per_step"] == pytest.approx(epoch_ms)
        assert entry["steps_per_epoch"] == 1


def test_skab_verdict_follows_results():
    from benchmarks.render import skab
    from benchmarks.skab import PUBLISHED, SKAB_CONFIGS

    counts = {"rows": 2000.0, "anomalous_rows": 900.0}
    results = {
        "runs": ["valve1/0.csv", "valve1/1.csv"],
        "configs": SKAB_CONFIGS,
        "repeats": 3,
        "results": {
            "grindwatch defaults": {"f1": 0.70, "far": 10.0, "mar": 40.0, **counts},
            "PyOD PCA": {"f1": 0.60, "far": 50.0, "mar": 10.0, **counts},
        },
        "tuned": [],
        "tuned_missing": "not asked for (--no-tune)",
        "pseudo_run_rows": 1150,
        "far_on_anomaly_free": {"grindwatch defaults": 5.0, "PyOD PCA": 30.0},
        "published": PUBLISHED,
    }

    text = skab(results)

    assert "Best measured F1: 0.70 (grindwatch defaults" in text
    assert "does **not** reach the published best of 0.78 (Conv-AE" in text
    assert "with fewer false alarms and more missed ones" in text
    assert "over the 2 runs available" in text
    assert "23 runs" not in text
    assert "chosen in-sample" not in text

    results["tuned"] = ["family=pca, pca.n_components=0.9"]
    tuned_text = skab(results)

    assert "Tuned variants (per repeat, hop set to 1): family=pca" in tuned_text
    assert "so on these runs its settings are chosen in-sample" in tuned_text


def test_load_body_windows_use_model_rate():
    import json

    from benchmarks.serve_load import body_windows, recording_body

    info = {
        "sample_rate": 10_000.0,
        "window_length": 1024,
        "hop": 512,
        "channels": ["a", "b"],
    }

    body = json.loads(recording_body(info, 1.0))
    one_window = json.loads(recording_body(info, 1024 / 10_000.0))

    assert len(body["channels"]["a"]) == 10_000
    assert body_windows(info, 1.0) == (10_000 - 1024) // 512 + 1
    assert len(one_window["channels"]["a"]) == 1024
    assert body_windows(info, 1024 / 10_000.0) == 1


def test_missing_skab_folder_logged(
    tmp_path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    import logging

    import torch
    from benchmarks.run import main

    page = tmp_path / "BENCHMARKS.md"
    # main() sets the thread count and quiets grindwatch's logger for the whole
    # process; put both back so that later tests see the usual settings.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    package_logger = logging.getLogger("grindwatch")
    level = package_logger.level
    try:
        main(["skab", "--data", str(tmp_path / "absent"), "--page", str(page)])
    finally:
        torch.set_num_threads(threads)
        package_logger.setLevel(level)

    assert "skipped skab" in caplog.text
    assert "pass --data" in caplog.text
    assert "Skipped: " in page.read_text()


def test_skab_row_from_one_repeat():
    from benchmarks.skab import median_repeat

    labels = np.array([0] * 10 + [1] * 10)
    # F1, FAR and MAR of the three repeats: (0.80, 50, 0), (0.75, 0, 40) and
    # (0.70, 30, 30). Medians per figure would give (0.75, 30, 30), which no
    # repeat measured.
    flag_sets = [
        np.r_[np.ones(5), np.zeros(5), np.ones(10)],
        np.r_[np.zeros(10), np.ones(6), np.zeros(4)],
        np.r_[np.ones(3), np.zeros(7), np.ones(7), np.zeros(3)],
    ]
    repeated = []
    for flags in flag_sets:
        counts = Counts()
        counts.add(labels, flags.astype(bool))
        repeated.append({"tool": counts.metrics()})

    summary = median_repeat(repeated)

    assert summary["tool"]["f1"] == pytest.approx(0.75)
    assert summary["tool"]["far"] == pytest.approx(0.0)
    assert summary["tool"]["mar"] == pytest.approx(40.0)


def test_profile_names_epoch_limit():
    from benchmarks.render import profile

    stage = {"total": 1.0, "stages": {"windowing": 0.1}, "top": "ncalls\n"}
    results = {
        "epochs": 7,
        "max_epochs": 12,
        "stages": {"Model.fit": stage},
    }

    text = profile(results)

    assert "training ran 7 of at most 12 epochs" in text
    assert "limit of 30" not in text


def test_generalise_fold_counts():
    from benchmarks import generalise

    fold = generalise.Fold(
        case="generated",
        name="cycle 10 unseen",
        train=RecordingSet([_recording(seed) for seed in range(6)]),
        test=[_recording(10), _recording(11, anomaly="spike", label=1)],
        labels={"cycle_10": 0, "cycle_11": 1},
    )
    config = base_config({"windows.length": 128, "detector.family": "pca"})

    row = generalise.run_fold(fold, generalise.Variant("pca", config), seed=0)
    table = generalise.summarise([row], ["fold", "variant"])

    assert "error" not in row
    assert row["normal_recordings"] == 1
    assert row["anomalous_recordings"] == 1
    assert row["windows_scored"] == 16
    assert row["skipped_training"] == []
    assert 0.0 <= row["window_auc_roc"] <= 1.0
    assert table[0]["normal flagged"] == f"{row['normal_flagged']}/1"
    assert table[0]["threshold"].endswith("1/1")
    assert table[0]["too short, skipped"] == "0"


def test_generalise_failed_fit_row():
    from benchmarks import generalise

    fold = generalise.Fold(
        case="generated",
        name="windows too long",
        train=RecordingSet([_recording(seed) for seed in range(3)]),
        test=[_recording(10)],
        labels={"cycle_10": 0},
    )
    config = base_config({"windows.length": 4096})

    row = generalise.run_fold(fold, generalise.Variant("defaults", config), seed=0)
    table = generalise.summarise([row], ["fold", "variant"])

    assert row["error"].startswith("InputError")
    assert table[0]["normal flagged"] == "fit failed"


def test_nab_default_window_count(tmp_path):
    from benchmarks.datasets import nab_machine_temperature

    # 3,000 rows at one per 5 min: two full default windows and one more that
    # ends at the last row, so the protocol text must give 3, not a fixed count.
    times = pd.date_range("2014-01-01", periods=3000, freq="5min")
    values = 70 + np.sin(np.arange(3000) / 50)
    frame = pd.DataFrame({"timestamp": times.strftime("%Y-%m-%d %H:%M:%S")})
    frame["value"] = values
    frame.to_csv(tmp_path / "machine_temperature_system_failure.csv", index=False)
    window = [str(times[100]), str(times[400])]
    (tmp_path / "labels.json").write_text(json.dumps({"anomaly_windows": [window]}))

    task = nab_machine_temperature(tmp_path)

    assert "into only 3 windows" in task.changes["windows.length"]
    assert task.train.recordings[0].sample_labels.sum() == 301


def test_training_flops_match_hand_count():
    torch = pytest.importorskip("torch")
    from benchmarks.speed import training_flops

    from grindwatch.nets import ConvAutoencoder

    # The default network on 4 x 32 spectra, counted by hand as 2 FLOPs per
    # multiply-add: conv 4->16 (k 7, 16 outputs), conv 16->32 (k 5, 8 outputs),
    # dense 256->16->256, transposed conv 32->16 (k 5, 8 inputs) and 16->4
    # (k 7, 16 inputs).
    layers = [16 * 16 * 4 * 7, 32 * 8 * 16 * 5, 2 * 256 * 16, 8 * 32 * 16 * 5]
    layers.append(16 * 16 * 4 * 7)
    forward = 2 * sum(layers)
    # The backward pass computes the gradients of the weights and of each
    # layer's input, except the first layer's input, which needs none.
    training = 3 * forward - 2 * layers[0]
    torch.manual_seed(0)
    net = ConvAutoencoder(4, 32, [16, 32], [7, 5], [2, 2], 16)

    flops = training_flops(net, (4, 32))

    assert flops["forward"] == forward == 126_976
    assert flops["training"] == training == 366_592


def _speed_entry(flops: float, rate: float, **extra) -> dict:
    return {
        "input_shape": [4, 32],
        "train_windows_per_s": 1000.0,
        "train_gflops": 1.0,
        "flops_forward": flops,
        "score_windows_per_s": rate,
        "detector_windows_per_s": rate,
        "latency_ms": 0.5,
        "pipeline_windows_per_s": rate,
        "pipeline_windows_per_s_attribution": rate,
        **extra,
    }


def test_speed_page_reads_pyod_settings():
    from benchmarks.render import speed

    pyod = {"batch_size": 16.0, "epochs": 4.0, "hidden_units": [128, 8]}
    results = {
        "workload": {
            "recordings": 2,
            "samples": 2048,
            "window": 1024,
            "channels": 4,
            "epochs": 5,
        },
        "threads": 2,
        "matmul_gflops": 100.0,
        "frontends": {
            "spectrum": {
                "grindwatch": _speed_entry(300.0, 5000.0),
                "pyod": _speed_entry(100.0, 1000.0, **pyod),
            },
            "raw": {
                "grindwatch": _speed_entry(4000.0, 500.0),
                "pyod": _speed_entry(1000.0, 1000.0, **pyod),
            },
        },
        "memory": {"baseline": 300.0, "train": 600.0, "score": 500.0},
    }

    text = speed(results)

    assert "AutoEncoder (batch 16, layers 128 and 8) its default 4." in text
    assert "On spectra the default network needs 3.0 times" in text
    assert "hidden layers of 128 and 8 units) and scores faster (5.00 x)" in text
    assert "On raw windows the default network needs 4.0 times" in text
    assert "and scores slower (0.50 x)" in text


def test_quality_page_names_tune_objective(tmp_path, monkeypatch: pytest.MonkeyPatch):
    import logging

    import torch
    from benchmarks.run import main

    page = tmp_path / "BENCHMARKS.md"
    page.write_text("# Benchmarks\n")
    # main() sets the thread count and quiets grindwatch's logger for the whole
    # process; put both back so that later tests see the usual settings.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    package_logger = logging.getLogger("grindwatch")
    level = package_logger.level
    try:
        # No data set under --data, so every task is skipped and nothing trains.
        main(["quality", "--data", str(tmp_path / "none"), "--page", str(page)])
    finally:
        torch.set_num_threads(threads)
        package_logger.setLevel(level)

    saved = json.loads((tmp_path / "results" / "quality.json").read_text())
    assert saved["results"]["tuning_objectives"] == ["recurring_f1"]
    assert "with the objective `recurring_f1`" in page.read_text()


def test_tuned_variant_names_bands_used():
    from benchmarks.tuned import find_tuner

    from grindwatch.config import Config

    recordings = RecordingSet([_recording(seed) for seed in range(8)])
    config = Config().with_overrides(
        {
            "tune.space.frontend": ["spectrum"],
            "tune.space.window_length": [16],
            "tune.space.n_bands": [16, 32],
            "tune.space.family": ["pca"],
            "tune.baseline": False,
            "tune.max_holdout_windows": 60,
        }
    )
    run_tune, reason = find_tuner()

    best, chosen = run_tune(recordings, config, 0)

    # The tune caps the drawn 16 or 32 bands at half of the 16-sample window.
    assert reason == ""
    assert best.frontend.n_bands == 8
    assert "n_bands=8" in chosen
    assert "n_bands=16" not in chosen
    assert "n_bands=32" not in chosen
