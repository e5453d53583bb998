"""The cycle check on generated grinding cycles with phases."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmarks.cycle_check import CHANNELS, RATE, grinding_cycle
from typer.testing import CliRunner

from grindwatch.cli import app
from grindwatch.config import Config
from grindwatch.cycles import block_levels
from grindwatch.exceptions import InputError
from grindwatch.explain import explain_recording
from grindwatch.io import Recording, RecordingSet
from grindwatch.online import score_recording
from grindwatch.pipeline import Model
from grindwatch.report import read_scores
from grindwatch.signals import make_windows
from grindwatch.watch import ResultStore


def recording(seed: int, fault: str | None = None) -> Recording:
    name = f"cycle_{seed:03d}" + (f"_{fault}" if fault else "")
    return Recording(name, grinding_cycle(seed, fault), list(CHANNELS), RATE)


def config(**overrides) -> Config:  # noqa: ANN003
    values = {
        "windows.length": 256,
        "detector.family": "pca",
        "tracking.enabled": False,
    }
    values.update(overrides)
    return Config().with_overrides(values)


@pytest.fixture(scope="module")
def model() -> Model:
    training = RecordingSet([recording(seed) for seed in range(30)])
    return Model(config()).fit(training)


def test_cycle_check_flags_missing_part_and_load(model):
    normal = [recording(seed) for seed in range(500, 512)]
    faulty = [recording(600 + i, fault) for i, fault in enumerate(["missing", "load"])]
    table = model.score(normal + faulty).recordings.set_index("recording")

    missing, load = (table.loc[r.name] for r in faulty)
    # Each window of an idle cycle looks like the idle phase of a normal one.
    assert not missing["score"] > model.threshold_.value
    assert missing["cycle_flag"]
    assert missing["flag"]
    assert missing["cycle_reason"].startswith("acoustic_emission: RMS about the mean")
    assert missing["cycle_channel"] == "acoustic_emission"
    assert "90th percentile of 64-sample blocks" in missing["cycle_reason"]
    assert missing["cycle_score"] > 3 * model.cycle_check.threshold_.value

    passed = table.loc[[r.name for r in normal], "cycle_flag"]
    assert passed.sum() <= 1
    # The spectrum model's windows barely see 1.6 times the load; the level of
    # the current during grinding shows it.
    assert load["cycle_flag"]
    assert load["flag"]
    assert load["cycle_reason"].startswith("spindle_current: mean, 90th percentile")


def test_pyfunc_rows_carry_the_cycle_check(model):
    from grindwatch.tracking import predict_frame

    missing = recording(610, "missing")
    frame = pd.DataFrame(missing.data.T, columns=missing.channels)

    # The logged MLflow model's predict runs predict_frame.
    predicted = predict_frame(model, frame)

    expected = model.score([missing]).recordings.iloc[0]
    assert not predicted["flag"].any()
    assert predicted["recording_flag"].all()
    assert predicted["recording_score"].iloc[0] == pytest.approx(expected["score"])
    assert set(predicted["cycle_check"]) == {expected["cycle_reason"]}
    normal = recording(620)
    frame = pd.DataFrame(normal.data.T, columns=normal.channels)
    assert set(predict_frame(model, frame)["cycle_check"]) == {""}


def test_cycle_check_flags_short_cycle(model):
    verdict = model.cycle_verdicts(model.prepare([recording(700, "short")]))[0]
    assert verdict.flag
    assert verdict.channel is None
    assert verdict.reason.startswith("length 1.024 s (training recordings 2.048 s)")


def test_training_scores_leave_recording_out():
    # One training recording lacks its part; scored against itself among the
    # others it would pull the median and MAD towards itself.
    training = [recording(seed) for seed in range(24)] + [recording(99, "missing")]
    model = Model(config()).fit(RecordingSet(training))
    scores = model.cycle_check.training_scores_
    assert int(np.argmax(scores)) == len(training) - 1
    assert scores[-1] > model.cycle_check.threshold_.value
    assert model.cycle_check.threshold_.unit == "recordings"
    assert "training recordings" in model.cycle_check.describe()


def test_cycle_check_names_channel_coming_alive():
    def with_rest(seed: int, alive: bool = False) -> Recording:
        data = np.vstack([grinding_cycle(seed), np.zeros((1, 4096), np.float32)])
        if alive:
            data[3] = np.random.default_rng(seed).standard_normal(4096)
        return Recording(f"r{seed}", data, [*CHANNELS, "coolant_valve"], RATE)

    with pytest.warns(UserWarning, match="constant in the training data"):
        model = Model(config()).fit(RecordingSet([with_rest(s) for s in range(20)]))
    check = model.cycle_check
    assert np.isfinite(check.center_).all()
    assert (check.scale_ > 0).all()
    windows = model.prepare([with_rest(300), with_rest(301, alive=True)])
    quiet, alive = model.cycle_verdicts(windows)
    assert not quiet.flag
    assert alive.flag
    assert alive.channel == "coolant_valve"
    # The valve never moved in training: its usual activity is 0, not a trace
    # of rounding such as -7e-18.
    assert "(training recordings 0)" in alive.reason


def test_channel_moving_in_some_cycles_passes():
    # A valve that opens in every third cycle: its activity is 0 in most
    # training cycles, so a MAD alone would call every opening a departure.
    def with_valve(seed: int) -> Recording:
        valve = np.zeros((1, 4096), np.float32)
        if seed % 3 == 0:
            valve[0] = np.random.default_rng(seed).standard_normal(4096)
        data = np.vstack([grinding_cycle(seed), valve])
        return Recording(f"r{seed}", data, [*CHANNELS, "valve"], RATE)

    model = Model(config()).fit(RecordingSet([with_valve(s) for s in range(30)]))
    verdicts = model.cycle_verdicts(
        model.prepare([with_valve(s) for s in range(300, 312)])
    )
    assert sum(v.flag for v in verdicts) <= 1
    assert all(v.score < 3 * model.cycle_check.threshold_.value for v in verdicts)


def test_offset_channel_keeps_its_activity_scale():
    # Acoustic emission with a large constant offset, as some amplifiers give.
    def offset(seed: int, fault: str | None = None) -> Recording:
        data = grinding_cycle(seed, fault)
        data[0] += 1e4
        return Recording(f"r{seed}", data, list(CHANNELS), RATE)

    model = Model(config()).fit(RecordingSet([offset(s) for s in range(20)]))
    (verdict,) = model.cycle_verdicts(model.prepare([offset(500, "missing")]))
    assert verdict.flag
    assert verdict.channel == "acoustic_emission"
    assert verdict.score > 20


def test_uneven_training_lengths_warn(caplog):
    training = [recording(seed) for seed in range(14)]
    training += [
        Recording(f"short_{seed}", grinding_cycle(seed, n=1500), CHANNELS, RATE)
        for seed in range(100, 106)
    ]
    with caplog.at_level(logging.WARNING, logger="grindwatch.cycles"):
        Model(config()).fit(RecordingSet(training))
    assert "lengths range from 1500 samples (10th percentile) to 4096" in caplog.text


def test_cycle_threshold_mixture_fits_few_components(model):
    # 30 training recordings allow at most 3 mixture components.
    assert len(model.cycle_check.threshold_.components) <= 3


def test_cycle_check_off_for_few_recordings(caplog):
    few = RecordingSet([recording(seed) for seed in range(8)])
    with caplog.at_level(logging.INFO, logger="grindwatch.pipeline"):
        model = Model(config()).fit(few)
    assert model.cycle_check is None
    assert "cycle.min_recordings=20" in caplog.text
    table = model.score([recording(50, "missing")]).recordings
    assert "cycle_score" not in table
    assert model.describe()["cycle_check"] is None

    off = Model(config(**{"cycle.enabled": False})).fit(
        RecordingSet([recording(seed) for seed in range(20)])
    )
    assert off.cycle_check is None


def test_profiles_cut_short_cycles_into_blocks(model):
    # 16 windows of 256 samples per training recording: blocks of 64 give 64.
    check = model.cycle_check
    assert check.block_length_ == 64
    windows = make_windows([recording(1), recording(2, "short")], 256, 256)
    raw = check.raw_profiles(windows)
    assert raw.shape == (2, len(CHANNELS) * 6 + 1)
    assert list(raw[:, -1]) == [4096, 2048]
    # The 90th percentile of AE activity falls in grinding, the 10th in idle.
    assert raw[0, 2] > 10 * raw[0, 0]

    X = np.arange(2 * 1 * 20, dtype=np.float32).reshape(2, 1, 20)
    means, rms = block_levels(X, 8)
    # Two blocks per window; the last 4 samples of each window are left out.
    assert means[:, 0].tolist() == [3.5, 11.5, 23.5, 31.5]
    assert rms[:, 0] == pytest.approx([np.std(np.arange(8))] * 4)


def test_online_scoring_shares_the_verdict(model, tmp_path: Path):
    missing = recording(800, "missing")
    table = model.score([missing]).recordings.iloc[0]
    scored = score_recording(model, missing)
    assert scored.flag
    assert scored.cycle.flag
    assert scored.cycle.score == pytest.approx(table["cycle_score"])
    assert scored.cycle.reason == table["cycle_reason"]

    explanation = explain_recording(model, missing)
    assert explanation.flag
    assert "The cycle check flags the whole recording: acoustic_emission" in (
        explanation.describe()
    )

    # A results table written before the cycle columns existed gets them.
    old = tmp_path / "results.db"
    connection = sqlite3.connect(old)
    connection.execute(
        "CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT "
        "NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, status TEXT NOT "
        "NULL, recording TEXT, score REAL, flag INTEGER, threshold REAL, n_windows "
        "INTEGER, flagged_windows INTEGER, max_window_score REAL, top_channel TEXT, "
        "channel_shares TEXT, reason TEXT, scored_at TEXT NOT NULL, UNIQUE (path, "
        "size, mtime_ns))"
    )
    connection.commit()
    connection.close()
    store = ResultStore(old)
    from grindwatch.watch import FileKey

    store.add(FileKey("a.csv", 1, 1), scored, None)
    row = store.latest()[0]
    assert row["cycle_flag"] is True
    assert row["cycle_threshold"] == pytest.approx(model.cycle_check.threshold_.value)
    assert row["cycle_channel"] == "acoustic_emission"
    assert row["cycle_reason"] == scored.cycle.reason
    assert store.frame()["cycle_flag"].tolist() == [True]


def test_older_bundles_score_without_check(model, tmp_path: Path):
    older = Model(model.config)
    older.__dict__.update(model.__dict__)
    del older.cycle_check_
    older.save(tmp_path / "bundle")
    loaded = Model.load(tmp_path / "bundle")
    table = loaded.score([recording(900, "missing")]).recordings
    assert "cycle_flag" not in table
    assert (
        json.loads((tmp_path / "bundle" / "model.json").read_text())["cycle_check"]
        is None
    )


def test_report_rejects_other_cycle_check(model, tmp_path: Path):
    result = model.score([recording(901), recording(902, "missing")])
    path = tmp_path / "scores.csv"
    result.recordings.to_csv(path, index=False)
    result.windows.to_csv(tmp_path / "scores.windows.csv", index=False)
    cycle_threshold = model.cycle_check.threshold_.value

    read = read_scores(path, model.threshold_.value, cycle_threshold)
    assert read.recordings["flag"].tolist() == [False, True]
    with pytest.raises(InputError, match="with a cycle check, and this model has"):
        read_scores(path, model.threshold_.value, None)
    with pytest.raises(InputError, match="another cycle threshold"):
        read_scores(path, model.threshold_.value, 1e9)


def _write_cycles(folder: Path, seeds, fault: str | None = None) -> None:  # noqa: ANN001
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        data = grinding_cycle(seed, fault)
        frame = pd.DataFrame(data.T, columns=CHANNELS)
        frame.insert(0, "time", np.arange(data.shape[1]) / RATE)
        frame.to_csv(folder / f"cycle_{seed:03d}.csv", index=False)


def test_cli_prints_cycle_check(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_cycles(tmp_path / "train", range(22))
    _write_cycles(tmp_path / "new", [400, 401])
    _write_cycles(tmp_path / "new", [402], fault="missing")
    runner = CliRunner()
    common = ["--set", "tracking.enabled=false"]
    trained = runner.invoke(
        app,
        ["train", "train", "--output", "model", "--detector", "pca", *common]
        + ["--set", "windows.length=256"],
    )
    assert trained.exit_code == 0, trained.output
    assert "Cycle check: Each recording's profile (per channel, percentiles" in (
        " ".join(trained.output.split())
    )

    scored = runner.invoke(
        app, ["score", "new", "--model", "model", "--output", "today.csv"]
    )
    assert scored.exit_code == 0, scored.output
    assert "3 recordings (1 by the cycle check)" in " ".join(scored.output.split())
    assert "cycle_402: acoustic_emission: RMS about the mean" in scored.output
    # Only the cycle check flags the missing part, so the table names its channel
    # rather than the top channel of windows below the threshold.
    row = next(line for line in scored.output.splitlines() if "cycle_402" in line)
    assert "acoustic_emission (cycle check)" in row
    table = pd.read_csv(tmp_path / "today.csv").set_index("recording")
    assert table["cycle_flag"].to_dict() == {
        "cycle_400": False,
        "cycle_401": False,
        "cycle_402": True,
    }

    few = runner.invoke(
        app,
        ["train", "new", "--output", "small", "--detector", "pca", *common]
        + ["--set", "windows.length=256"],
    )
    assert few.exit_code == 0, few.output
    assert "Cycle check off: 3 training recordings" in few.output


def test_service_returns_cycle_check(model):
    from fastapi.testclient import TestClient

    from grindwatch.serve import create_app

    client = TestClient(create_app(model))
    info = client.get("/model").json()
    assert info["cycle_threshold"] == pytest.approx(model.cycle_check.threshold_.value)
    assert info["cycle_check_description"].startswith("Each recording's profile")

    data = grinding_cycle(810, "missing")
    body = {"channels": {c: data[i].tolist() for i, c in enumerate(CHANNELS)}}
    answer = client.post("/score", json=body).json()["recording"]
    assert answer["flag"] is True
    assert answer["cycle_flag"] is True
    assert answer["score"] < model.threshold_.value
    assert answer["cycle_reason"].startswith("acoustic_emission: RMS about the mean")
    assert answer["cycle_channel"] == "acoustic_emission"


def test_cycle_threshold_ignores_changes_under_five_percent():
    # Nearly identical training cycles give leave-one-out scores far below 1, and
    # a cut fitted to them would flag a 2 % change that the scale floor ignores.
    base = grinding_cycle(1)
    rng = np.random.default_rng(0)
    training = [
        Recording(
            f"r{i}",
            base + np.float32(1e-4) * rng.standard_normal(base.shape, np.float32),
            list(CHANNELS),
            RATE,
        )
        for i in range(20)
    ]
    model = Model(config()).fit(RecordingSet(training))
    check = model.cycle_check
    assert check.fitted_threshold_.value < 1
    assert check.threshold_.value == 1.0
    assert "raised to 1, the score of a 5 % change" in check.describe()

    def current(factor: float) -> Recording:
        data = base.copy()
        data[2] *= factor
        return Recording(f"x{factor}", data, list(CHANNELS), RATE)

    slight, large = model.cycle_verdicts(model.prepare([current(1.02), current(1.2)]))
    assert not slight.flag
    assert large.flag


def test_report_ranks_follow_the_table(model, tmp_path: Path):
    from grindwatch.report import build_report

    # The missing part has the lowest window score but is flagged, so the table
    # lists it before the normal cycles, and its link and detail section carry
    # the rank of its row.
    recordings = [recording(910), recording(911), recording(912, "missing")]
    text = build_report(model, recordings)
    row = re.search(
        r'<td>(\d+)</td><td class="text"><a href="#rec-(\d+)"><span '
        r'class="name">cycle_912_missing<',
        text,
    )
    assert row is not None
    rank, anchor = row.groups()
    assert rank == anchor
    assert int(rank) < 3
    assert f'id="rec-{rank}"><h3>#{rank} cycle_912_missing - ANOMALOUS' in text
    # Only the cycle check flags it, so its row names the cycle check's channel
    # and no band of the windows below the threshold.
    table_row = text[row.start() : text.index("</tr>", row.start())]
    assert "acoustic_emission</span> (cycle check)" in table_row
    assert " Hz" not in table_row
    assert "; 1 flagged by the cycle check." in text


def test_chunked_scoring_says_the_check_is_left_out(model, tmp_path: Path, caplog):
    from grindwatch.streaming import score_chunked

    data = grinding_cycle(913, "missing")
    path = tmp_path / "stream.parquet"
    pd.DataFrame(data.T, columns=CHANNELS).assign(
        time=np.arange(data.shape[1]) / RATE
    ).to_parquet(path)
    with caplog.at_level(logging.WARNING, logger="grindwatch.streaming"):
        result = score_chunked(model, path, chunk_samples=1024)
    assert "the model's cycle check does not judge it" in caplog.text
    assert "cycle_flag" not in result.recordings

    table = tmp_path / "chunks.csv"
    result.recordings.to_csv(table, index=False)
    result.windows.to_csv(tmp_path / "chunks.windows.csv", index=False)
    with pytest.raises(InputError, match="scored in chunks"):
        read_scores(table, model.threshold_.value, model.cycle_check.threshold_.value)


def test_cycle_only_detail_leads_with_cycle_check(model):
    from grindwatch.report import build_report

    missing = recording(913, "missing")
    explanation = explain_recording(model, missing)
    assert explanation.cycle_only()
    # The window sentences describe windows below the threshold, so the reason
    # for the flag comes first.
    assert explanation.describe().startswith(
        "The cycle check flags the whole recording: acoustic_emission:"
    )

    text = build_report(model, [recording(914), recording(915), missing])
    section = text[text.index("cycle_913_missing - ANOMALOUS") :]
    section = section[: section.index("</article>")]
    assert "<p>The cycle check flags the whole recording" in section
    # The spectrogram shows the cycle check's channel, not the top channel of
    # windows below the threshold.
    assert 'alt="Spectrogram of channel acoustic_emission"' in section
    assert "Spectrogram of the channel that the cycle check names." in section


def test_window_flag_keeps_cycle_reason_last():
    # A 1.6-fold load trips the cycle check, and a noise burst on the acoustic
    # emission lifts windows above the threshold. Band energies, which the
    # shared model uses, barely show the burst, so this model uses window
    # features.
    training = RecordingSet([recording(seed) for seed in range(30)])
    model = Model(config(**{"frontend.kind": "features"})).fit(training)
    data = grinding_cycle(916, "load")
    noise = np.random.default_rng(0).normal(0, 20 * data[0].std(), 512)
    data[0, 1024:1536] += noise.astype(data.dtype)
    burst = Recording("cycle_916_load_burst", data, list(CHANNELS), RATE)
    explanation = explain_recording(model, burst)
    assert explanation.score > explanation.threshold
    assert explanation.cycle is not None
    assert explanation.cycle.flag
    assert not explanation.cycle_only()

    text = explanation.describe()

    assert text.startswith("Score ")
    assert text.endswith(
        f"The cycle check flags the whole recording: {explanation.cycle.reason}."
    )


def test_infinite_sample_gives_finite_cycle_score(model):
    odd = recording(700)
    odd.data[0, 100] = np.inf
    training = [recording(seed) for seed in range(30)] + [odd]

    row = model.score([odd]).recordings.iloc[0]
    refitted = Model(config()).fit(RecordingSet(training))

    assert np.isfinite(row["cycle_score"])
    assert "nan" not in row["cycle_reason"]
    assert np.isfinite(refitted.cycle_check.threshold_.value)


def _numpy_profile(rec: Recording, block: int) -> np.ndarray:
    """Profile as the docs define it, computed without grindwatch.cycles."""
    X = make_windows([rec], 256, 256).X.astype(np.float64)
    n_blocks = X.shape[2] // block
    blocks = X[:, :, : n_blocks * block].reshape(len(X), len(CHANNELS), n_blocks, block)
    means = blocks.mean(axis=3).transpose(0, 2, 1).reshape(-1, len(CHANNELS))
    rms = blocks.std(axis=3).transpose(0, 2, 1).reshape(-1, len(CHANNELS))
    activity = np.quantile(rms, [0.1, 0.5, 0.9], axis=0).T
    level = np.quantile(means, [0.1, 0.5, 0.9], axis=0).T
    per_channel = np.concatenate([activity, level], axis=1).ravel()
    return np.append(per_channel, rec.n_samples)


def test_cycle_score_matches_documented_formula(model):
    check = model.cycle_check
    raw = np.array([_numpy_profile(recording(seed), 64) for seed in range(30)])
    per_channel = raw[:, :-1].reshape(30, len(CHANNELS), 6)
    typical = np.abs(np.median(per_channel[:, :, 4], axis=0)) + np.median(
        per_channel[:, :, 1], axis=0
    )
    floor = 1e-3 * np.median(per_channel[:, :, 2], axis=0)

    def features(row: np.ndarray) -> np.ndarray:
        values = row[:-1].reshape(len(CHANNELS), 6).copy()
        values[:, :3] = np.log(values[:, :3] + floor[:, None])
        return np.append(values.ravel(), np.log(row[-1]))

    training = np.array([features(row) for row in raw])
    center = np.median(training, axis=0)
    deviations = np.abs(training - center)
    min_scale = np.append(
        np.concatenate(
            [
                np.full((len(CHANNELS), 3), np.log(1.05)),
                np.repeat(0.05 * typical[:, None], 3, 1),
            ],
            axis=1,
        ).ravel(),
        np.log(1.05),
    )
    scale = np.maximum.reduce(
        [
            1.4826 * np.median(deviations, axis=0),
            1.2533 * deviations.mean(axis=0),
            min_scale,
        ]
    )
    faulty = recording(801, "missing")
    z = (features(_numpy_profile(faulty, 64)) - center) / scale
    leading = int(np.argmax(np.abs(z)))

    verdict = score_recording(model, faulty).cycle

    np.testing.assert_allclose(check.center_, center, rtol=1e-9)
    np.testing.assert_allclose(check.scale_, scale, rtol=1e-9)
    assert verdict.score == pytest.approx(abs(z[leading]), rel=1e-9)
    assert verdict.channel == CHANNELS[leading // 6]
    slot = leading % 6
    statistic = "RMS about the mean" if slot < 3 else "mean"
    percentile = ("10th", "50th", "90th")[slot % 3]
    assert f": {statistic}, {percentile} percentile of 64-sample" in verdict.reason
    assert verdict.flag


def _gated_cycle(seed: int, level: float) -> Recording:
    """Two channels; ``gate`` is exactly 0 outside the middle 40 % of the cycle."""
    rng = np.random.default_rng(seed)
    t = np.arange(4000) / 1000.0
    active = (t > 1.5) & (t < 3.1)
    drive = np.sin(2 * np.pi * 20 * t) * (1 + active) + 0.05 * rng.standard_normal(4000)
    gate = np.where(active, level + 1e-4 * rng.standard_normal(4000), 0.0)
    data = np.stack([drive, gate]).astype(np.float32)
    return Recording(f"gated_{seed}_{level:g}", data, ["drive", "gate"], 1000.0)


def test_gated_channel_level_change_flagged():
    training = RecordingSet([_gated_cycle(seed, 1e-3) for seed in range(22)])
    gated = Model(config(**{"windows.length": 250})).fit(training)

    normal = score_recording(gated, _gated_cycle(99, 1e-3)).cycle
    doubled = score_recording(gated, _gated_cycle(99, 2e-3)).cycle

    # The gate is 0 in most blocks, so its size comes from its busy blocks.
    assert gated.cycle_check.typical_[1] == pytest.approx(1.1e-3, rel=0.1)
    assert not normal.flag
    assert doubled.flag
    assert doubled.channel == "gate"


def test_online_nan_names_first_sample(model):
    gap = recording(802)
    gap.data[2, 300:310] = np.nan
    gap.data[1, 500] = np.nan

    with pytest.raises(InputError, match="cycle_802") as info:
        score_recording(model, gap)

    assert f"'{CHANNELS[2]}' at sample 300" in info.value.problem
    assert info.value.fix == "fill or cut out the gaps before scoring"
