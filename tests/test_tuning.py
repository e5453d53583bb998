"""Tuning: search space, label-free objective, and studies in Optuna and MLflow.

Studies here are tiny (a few trials of fast detectors on generated cycles), with
real Optuna storages and real MLflow stores in the test's folder.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import types
from contextlib import closing
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient

from grindwatch._locks import sqlite_setup_lock
from grindwatch.config import Config, validate_config
from grindwatch.exceptions import ConfigError, InputError, TrackingError
from grindwatch.io import Recording, RecordingSet
from grindwatch.objective import Objective, split_holdout
from grindwatch.search_space import (
    baseline_params,
    check_space,
    limit_window_lengths,
    suggest_overrides,
)
from grindwatch.tune_config import SearchSpace
from grindwatch.tuning import tune
from tests.conftest import write_cycles

# A search space that runs in about a second per trial on the generated cycles.
SMALL_SPACE = {
    "tune.space.window_length": [128, 256],
    "tune.space.n_bands": [8, 16],
    "tune.space.family": ["pca", "knn"],
    "tune.max_holdout_windows": 60,
}


def _config(**overrides) -> Config:  # noqa: ANN003
    settings = {**SMALL_SPACE, "tune.n_trials": 3, "tracking.enabled": False}
    settings.update(overrides)
    return Config().with_overrides(settings)


@pytest.fixture
def cycles(tmp_path: Path) -> Path:
    """good/ with 8 normal cycles, bad/ with 3 faulty ones (CSV, 1 kHz, 3 channels)."""
    root = tmp_path / "cycles"
    write_cycles(root / "good", 8, start_seed=0)
    for seed, anomaly in ((100, "spike"), (101, "tone"), (102, "level")):
        write_cycles(root / "bad", 1, start_seed=seed, anomaly=anomaly)
    return root


def _recordings(count: int, n_samples: int = 1000) -> RecordingSet:
    rng = np.random.default_rng(0)
    return RecordingSet(
        [
            Recording(
                f"r{i}", rng.normal(size=(2, n_samples)).astype(np.float32), ["a", "b"]
            )
            for i in range(count)
        ]
    )


def _trial_runs(client: MlflowClient) -> tuple[list, list]:
    runs = [
        run
        for experiment in client.search_experiments()
        for run in client.search_runs([experiment.experiment_id], max_results=1000)
    ]
    parents = [r for r in runs if r.data.tags.get("grindwatch.kind") == "study"]
    trials = [r for r in runs if r.data.tags.get("grindwatch.kind") == "trial"]
    return parents, trials


# Search space -----------------------------------------------------------------------


def test_suggested_overrides_make_valid_configs():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    space = check_space(SearchSpace(), "signals")

    for _ in range(30):
        trial = study.ask()
        overrides = suggest_overrides(trial, space, "signals")
        config = Config().with_overrides(overrides)
        study.tell(trial, 0.0)

        assert config.hop <= config.windows.length
        if config.frontend.kind == "spectrum":
            assert config.frontend.n_bands <= config.windows.length // 2
        if config.detector.family == "autoencoder":
            depth = len(config.detector.autoencoder.filters)
            assert len(config.detector.autoencoder.strides) == depth
            assert trial.params["autoencoder.n_layers"] == depth


def test_baseline_params_reproduce_the_configured_pipeline():
    signals = Config()
    table = Config().with_overrides(
        {"detector.family": "iforest", "detector.iforest.n_estimators": 120}
    )

    for kind, config in (("signals", signals), ("table", table)):
        space = check_space(SearchSpace(), kind)
        params, _ = baseline_params(config, space, kind)
        trial = optuna.trial.FixedTrial(params)
        rebuilt = config.with_overrides(suggest_overrides(trial, space, kind))

        assert rebuilt.detector == config.detector
        if kind == "signals":
            assert rebuilt.windows.length == config.windows.length
            assert rebuilt.hop == config.hop
            assert rebuilt.frontend == config.frontend


def test_baseline_outside_the_space_names_the_setting():
    space = check_space(SearchSpace(), "signals")
    odd_window = Config().with_overrides({"windows.length": 300})
    mixed_strides = Config().with_overrides({"detector.autoencoder.strides": [1, 2]})

    assert baseline_params(odd_window, space, "signals") == (
        None,
        "window_length=300 is not one of [256, 512, 1024, 2048]",
    )
    params, reason = baseline_params(mixed_strides, space, "signals")
    assert params is None
    assert "strides [1, 2] differ" in reason
    # Every setting outside the space is named at once, not one per run.
    both = Config().with_overrides({"windows.length": 300, "frontend.n_bands": 7})
    params, reason = baseline_params(both, space, "signals")
    assert params is None
    assert "window_length=300" in reason
    assert "n_bands=7" in reason


def test_table_space_searches_only_table_families():
    space = check_space(SearchSpace(), "table")

    assert space.family == ["iforest", "pca", "knn"]
    assert space.frontend == "raw"


def test_table_space_without_table_family_is_rejected():
    space = SearchSpace(family=["autoencoder"])

    with pytest.raises(ConfigError, match="feature tables need a detector family"):
        check_space(space, "table")


def test_unknown_family_is_rejected():
    with pytest.raises(ConfigError, match="unknown families"):
        check_space(SearchSpace(family=["pca", "svm"]), "signals")


@pytest.mark.parametrize(
    "setting, value",
    [
        ("window_length", ["auto", 256]),
        ("hop_fraction", ["half"]),
        ("n_bands", [True, 16]),
        ("autoencoder.learning_rate", ["fast"]),
        ("iforest.max_samples", [None]),
    ],
)
def test_text_in_numeric_space_setting_is_rejected(setting, value):
    section, _, name = setting.rpartition(".")
    space = SearchSpace.model_validate(
        {section: {name: value}} if section else {name: value}
    )

    with pytest.raises(ConfigError, match=f"tune.space.{setting} has") as caught:
        check_space(space, "signals")

    assert "not a number" in str(caught.value)


@pytest.mark.parametrize(
    "setting, value",
    [
        ("hop_fraction", [0.0, 0.5]),
        ("hop_fraction", {"low": -0.5, "high": 1.0}),
        ("n_bands", [0, 16]),
    ],
)
def test_space_setting_at_or_below_zero_is_rejected(setting, value):
    space = SearchSpace.model_validate({setting: value})

    with pytest.raises(ConfigError, match=f"tune.space.{setting} has"):
        check_space(space, "signals")


def test_accepted_text_in_numeric_space_setting_passes():
    space = SearchSpace.model_validate(
        {
            "autoencoder": {"latent_size": [None, 8]},
            "iforest": {"max_samples": ["auto", 256]},
        }
    )

    assert check_space(space, "signals") is space


@pytest.mark.parametrize(
    "update, named",
    [
        ({"knn": {"n_neighbors": [0, 5]}}, "tune.space.knn.n_neighbors has 0"),
        ({"pca": {"n_components": {"low": 0.5, "high": 1.5}}}, "n_components has 1.5"),
        ({"iforest": {"max_samples": ["auto", 0]}}, "max_samples has 0"),
        ({"autoencoder": {"filters": [8, 0]}}, "autoencoder.filters has 0"),
        ({"autoencoder": {"kernel_size": [-3]}}, "autoencoder.kernel_size has -3"),
        ({"autoencoder": {"stride": [0, 1]}}, "autoencoder.stride has 0"),
        ({"autoencoder": {"n_layers": [0, 2]}}, "autoencoder.n_layers has 0"),
        ({"autoencoder": {"loss": ["mse", "l1"]}}, "autoencoder.loss has 'l1'"),
        ({"autoencoder": {"epochs": [0]}}, "autoencoder.epochs has 0"),
    ],
)
def test_invalid_detector_value_is_rejected(update, named):
    space = SearchSpace.model_validate(update)

    with pytest.raises(ConfigError, match=re.escape(named)):
        check_space(space, "signals")


def test_unsearched_family_is_not_checked():
    space = SearchSpace.model_validate(
        {"family": ["iforest"], "knn": {"n_neighbors": [0]}}
    )

    assert check_space(space, "signals").family == ["iforest"]


def test_tune_invalid_space_runs_no_trial(cycles, isolated_tracking):
    from typer.testing import CliRunner

    command = _small_tune_arguments(
        cycles / "good",
        "--set",
        "tune.space.family=[knn]",
        "--set",
        "tune.space.knn.n_neighbors=[0]",
    )

    outcome = CliRunner().invoke(_cli("tune"), command)

    assert outcome.exit_code != 0
    output = " ".join(outcome.output.split())
    assert "tune.space.knn.n_neighbors has 0" in output
    assert "Traceback" not in output
    storage = Path.cwd() / "optuna.db"
    assert not storage.exists() or _stored_states(storage)[0] == []


def test_layer_values_below_one_rejected():
    for key in ("filters", "kernel_sizes", "strides"):
        tree = {"detector": {"autoencoder": {key: [4, 0]}}}
        with pytest.raises(ConfigError, match=rf"detector.autoencoder.{key}.1"):
            validate_config(tree, "test")


def test_window_lengths_longer_than_the_data_are_dropped():
    space = SearchSpace(window_length=[128, 256, 512])

    assert limit_window_lengths(space, 300).window_length == [128, 256]
    with pytest.raises(ConfigError, match="longer than the longest piece"):
        limit_window_lengths(space, 100)


# Holdout and objective ----------------------------------------------------------------


def test_too_long_windows_name_the_longest_piece():
    # Segments held out of 2000 and 60 samples: 400 samples is the longest
    # held-out piece, and the 12-sample ones are shorter still.
    rng = np.random.default_rng(0)
    recordings = RecordingSet(
        [
            Recording(f"r{i}", rng.normal(size=(2, n)).astype(np.float32), ["a", "b"])
            for i, n in enumerate([2000, 60, 60])
        ]
    )
    config = _config(**{"tune.space.window_length": [1000]})

    with pytest.raises(ConfigError) as caught:
        Objective(recordings, config)

    assert "longest piece (400 samples)" in str(caught.value)
    assert "shortest" not in str(caught.value)


def test_holdout_takes_segments_of_few_recordings():
    recordings = _recordings(4)

    holdout = split_holdout(recordings, 0.25, "auto", seed=0)

    assert holdout.mode == "segments"
    assert [r.n_samples for r in holdout.fit] == [750] * 4
    assert [r.n_samples for r in holdout.held_out] == [250] * 4
    np.testing.assert_array_equal(
        holdout.held_out[0].data, recordings.recordings[0].data[:, 750:]
    )


@pytest.mark.parametrize("n_recordings", [4, 12])
def test_holdout_shares_no_fit_sample(n_recordings):
    # Every sample value is unique: 1000 * recording + position, so a window's
    # values show which recording samples it covers.
    recordings = RecordingSet(
        [
            Recording(
                f"r{i}",
                np.tile(1000.0 * i + np.arange(1000), (2, 1)).astype(np.float32),
                ["a", "b"],
            )
            for i in range(n_recordings)
        ]
    )
    config = _config(
        **{"tune.recurring_share": 0, "tune.objective": "injected_auc"}
    ).with_overrides(
        {
            "windows.length": 64,
            "windows.hop": 16,
            "frontend.kind": "raw",
            "scaling.method": "none",
        }
    )

    prepared = Objective(recordings, config).prepare(config)

    fit_samples = set(prepared.fit_features[:, 0].ravel().tolist())
    held_out_samples = set(prepared.clean_features[:, 0].ravel().tolist())
    assert held_out_samples
    assert not fit_samples & held_out_samples


def test_holdout_of_two_table_rows_is_rejected(tmp_path):
    from grindwatch.pipeline import read_data

    path = tmp_path / "features.csv"
    path.write_text("f0,f1\n0.1,0.2\n0.3,0.1\n")
    config = _config(**{"data.kind": "table", "detector.family": "pca"})

    with pytest.raises(ConfigError, match="of 2 table rows") as caught:
        Objective(read_data(path, config), config)

    # Rows cannot be cut in segments, so that fix must not be offered.
    assert "segments" not in str(caught.value)


def test_holdout_takes_whole_recordings_of_many():
    recordings = _recordings(20, n_samples=300)

    holdout = split_holdout(recordings, 0.2, "auto", seed=0)

    assert holdout.mode == "recordings"
    assert len(holdout.held_out) == 4
    assert {r.name for r in holdout.fit}.isdisjoint(r.name for r in holdout.held_out)


def test_prepared_data_shared_across_detectors(cycles):
    from grindwatch.pipeline import read_data

    config = _config()
    objective = Objective(read_data(cycles / "good", config), config)
    base = {"frontend.kind": "spectrum", "windows.length": 128, "frontend.n_bands": 8}

    first = objective.prepare(config.with_overrides({**base, "detector.family": "pca"}))
    second = objective.prepare(
        config.with_overrides({**base, "detector.family": "knn"})
    )
    other = objective.prepare(config.with_overrides({**base, "windows.length": 256}))

    assert first is second
    assert other is not first
    assert first.clean_features.shape == first.injected_features.shape


def test_prepared_data_does_not_depend_on_order(cycles):
    # Workers prepare settings in the order their trials draw them, so each
    # setting's windows and injections must come out the same in any order.
    from grindwatch.pipeline import read_data

    config = _config(**{"tune.recurring_share": 0.05})
    raw = config.with_overrides({"frontend.kind": "raw", "windows.length": 128})
    spectrum = config.with_overrides(
        {"frontend.kind": "spectrum", "windows.length": 256, "frontend.n_bands": 8}
    )
    recordings = read_data(cycles / "good", config)
    forward = Objective(recordings, config)
    backward = Objective(recordings, config)

    prepared = [forward.prepare(raw), forward.prepare(spectrum)]
    prepared_backward = [backward.prepare(spectrum), backward.prepare(raw)][::-1]

    for first, second in zip(prepared, prepared_backward, strict=True):
        for name in (
            "fit_features",
            "clean_features",
            "injected_features",
            "recurring_features",
        ):
            np.testing.assert_array_equal(
                getattr(first, name), getattr(second, name), err_msg=name
            )
        assert first.recurring == second.recurring


def test_objective_scores_injected_windows_above_clean(cycles):
    from grindwatch.pipeline import read_data

    config = _config()
    recordings = read_data(cycles / "good", config)
    labeled = read_data(cycles, config).recordings
    objective = Objective(recordings, config, labeled=labeled)
    variant = config.with_overrides(
        {
            "frontend.kind": "spectrum",
            "windows.length": 128,
            "frontend.n_bands": 16,
            "detector.family": "knn",
        }
    )

    result = objective.evaluate(variant)
    metrics = result.metrics

    assert result.value == pytest.approx(
        metrics["injected_auc"] * metrics["recurring_auc"] * metrics["recurring_f1"]
    )
    assert metrics["injected_auc"] > 0.8
    assert 0.0 < result.value <= metrics["injected_auc"]
    assert 0.0 <= metrics["injected_recall"] <= 1.0
    patterns = {p["type"] for p in objective.prepare(variant).recurring}
    assert patterns
    assert {f"recurring_auc.{name}" for name in patterns} <= set(metrics)
    assert {f"injected_auc.{name}" for name in ("spike", "dropout", "harmonic")} <= set(
        result.metrics
    )
    assert result.metrics["labeled_window_auc_roc"] > 0.5
    assert result.metrics["labeled_recording_n_anomalous"] == 3


def test_objective_ignores_training_labels(cycles):
    from grindwatch.pipeline import read_data

    config = _config().with_overrides(
        {"windows.length": 128, "windows.hop": 64, "detector.family": "knn"}
    )
    # The class folders good/ and bad/ label every cycle.
    values = {}
    for variant in ("folders", "flipped", "none"):
        recordings = read_data(cycles, config)
        for recording in recordings.recordings:
            if variant == "flipped":
                recording.label = 1 - recording.label
            elif variant == "none":
                recording.label = None
        result = Objective(recordings, config).evaluate(config)
        # Labels of both classes reach the labeled metrics, and only them.
        has_labeled = "labeled_window_auc_roc" in result.metrics
        assert has_labeled is (variant != "none")
        values[variant] = {
            name: value
            for name, value in result.metrics.items()
            if not name.startswith("labeled_") and not name.endswith("_seconds")
        }
        values[variant]["objective"] = result.value

    assert values["folders"] == values["none"]
    assert values["flipped"] == values["none"]


def test_specificity_counts_clean_windows_over_threshold(cycles):
    from grindwatch.pipeline import read_data

    config = _config(**{"tune.objective": "injected_auc"})
    objective = Objective(read_data(cycles / "good", config), config)
    variant = config.with_overrides(
        {"windows.length": 128, "frontend.n_bands": 16, "detector.family": "pca"}
    )
    result = objective.evaluate(variant)
    prepared = objective.prepare(variant)
    clean = result.model.detector_.anomaly_score(prepared.clean_features)
    threshold = result.model.threshold_.value

    assert result.value == result.metrics["injected_auc"]
    assert result.metrics["held_out_specificity"] == pytest.approx(
        (clean <= threshold).mean()
    )


def test_recurring_share_replaces_fit_windows(cycles):
    from grindwatch.pipeline import read_data

    base = {"windows.length": 128, "frontend.n_bands": 16, "detector.family": "pca"}
    clean_config = _config(
        **{"tune.objective": "injected_auc", "tune.recurring_share": 0.0}
    )
    clean = Objective(read_data(cycles / "good", clean_config), clean_config).prepare(
        clean_config.with_overrides(base)
    )
    config = _config(**{"tune.recurring_share": 0.2})
    prepared = Objective(read_data(cycles / "good", config), config).prepare(
        config.with_overrides(base)
    )

    assert clean.recurring_features is None
    assert prepared.fit_features.shape == clean.fit_features.shape
    changed = (prepared.fit_features != clean.fit_features).any(axis=(1, 2))
    expected = sum(p["fit_count"] for p in prepared.recurring)
    assert changed.sum() == expected == round(0.2 * len(changed))
    assert prepared.recurring_features.shape == prepared.clean_features.shape
    assert sum(p["held_out_count"] for p in prepared.recurring) == len(
        prepared.clean_features
    )


def test_few_recurring_windows_warn_once(cycles, caplog):
    from grindwatch.pipeline import read_data

    config = _config(**{"tune.recurring_share": 0.01})
    objective = Objective(read_data(cycles / "good", config), config)
    variant = {"frontend.n_bands": 16, "detector.family": "pca"}

    with caplog.at_level(logging.DEBUG, logger="grindwatch"):
        for length in (128, 256):
            objective.prepare(
                config.with_overrides({**variant, "windows.length": length})
            )

    noisy = [r for r in caplog.records if "fewer than two per type" in r.message]
    assert [r.levelno for r in noisy] == [logging.WARNING, logging.DEBUG]


@pytest.mark.parametrize(
    ("recall", "specificity", "rate", "expected"),
    [
        (1.0, 1.0, 0.01, 1.0),
        # 1 % faulty, all flagged; 2 % of normal windows flagged: precision 1/2.98.
        (1.0, 0.98, 0.01, 2 * (1 / 2.98) / (1 + 1 / 2.98)),
        (0.5, 1.0, 0.01, 2 / 3),
        (0.0, 0.9, 0.01, 0.0),
    ],
)
def test_recurring_f1_at_fault_rate(recall, specificity, rate, expected):
    from grindwatch.objective import _f1_at_rate

    assert _f1_at_rate(recall, specificity, rate) == pytest.approx(expected)


def test_recurring_objective_needs_a_share(cycles):
    from grindwatch.pipeline import read_data

    config = _config(**{"tune.recurring_share": 0.0})

    with pytest.raises(ConfigError, match="recurring_share"):
        Objective(read_data(cycles / "good", config), config)


@pytest.mark.parametrize("setting", ["tune.injections", "tune.recurring"])
def test_empty_injection_list_is_a_config_error(cycles, setting):
    from grindwatch.pipeline import read_data

    config = _config(**{setting: []})

    with pytest.raises(ConfigError, match=f"{setting} is an empty list"):
        Objective(read_data(cycles / "good", config), config)


@pytest.mark.parametrize("setting", ["tune.injections", "tune.recurring"])
def test_unknown_injection_type_is_a_config_error(cycles, setting):
    from grindwatch.pipeline import read_data

    config = _config(**{setting: ["spike", "glitch"]})

    with pytest.raises(ConfigError, match=f"{setting} names unknown.*glitch"):
        Objective(read_data(cycles / "good", config), config)


def test_objective_drops_copied_columns(feature_table, tmp_path):
    import pandas as pd

    from grindwatch.pipeline import read_data

    frame = pd.read_parquet(feature_table)
    frame["f1_copy"] = frame["f1"]
    path = tmp_path / "copied.parquet"
    frame.to_parquet(path)
    config = _config(**{"data.kind": "table"})
    objective = Objective(read_data(path, config), config)

    result = objective.evaluate(config.with_overrides({"detector.family": "knn"}))

    assert "f1_copy" not in objective.channels
    assert len(objective.channels) == 6
    assert result.model.channels_ == objective.channels
    assert result.metrics["labeled_recording_n_anomalous"] == 4
    assert result.metrics["labeled_window_auc_roc"] > 0.9


def test_tune_warns_once_about_copied_columns(feature_table, tmp_path, caplog):
    import pandas as pd

    frame = pd.read_parquet(feature_table)
    frame["f1_copy"] = frame["f1"]
    path = tmp_path / "copied.parquet"
    frame.to_parquet(path)
    config = _config(**{"data.kind": "table", "tune.n_trials": 2})

    with caplog.at_level(logging.INFO, logger="grindwatch"):
        result = tune(path, config.with_overrides({"detector.family": "knn"}))

    announced = [
        record
        for record in caplog.records
        if "repeat an earlier one" in record.getMessage()
    ]
    assert [record.levelno for record in announced].count(logging.WARNING) == 1
    assert "f1_copy = f1" in announced[0].getMessage()
    assert "f1_copy" not in result.model.channels_


@pytest.mark.parametrize(("specificity", "warned"), [(1.0, True), (0.5, False)])
def test_refitted_threshold_flagging_more_warns(
    feature_table, caplog, specificity, warned
):
    import pandas as pd

    import grindwatch
    from grindwatch.tuning_results import TuneResult, _check_refitted_threshold

    # A threshold at the median flags half of the training rows.
    config = _config(
        **{
            "data.kind": "table",
            "detector.family": "knn",
            "threshold.method": "percentile",
            "threshold.percentile": 50.0,
        }
    )
    model = grindwatch.train(feature_table, config).model
    result = TuneResult("s", "sqlite://", 1, "done", pd.DataFrame(), True)
    result.model, result.best_trial = model, 4

    with caplog.at_level("WARNING", logger="grindwatch.tuning_results"):
        _check_refitted_threshold(result, {"held_out_specificity": specificity})

    assert ("trial 4 flagged" in caplog.text) is warned


def test_labeled_objective_needs_both_classes(cycles):
    from grindwatch.pipeline import read_data

    config = _config(**{"tune.objective": "labeled_auc"})

    with pytest.raises(ConfigError, match="labeled recordings of both classes"):
        Objective(read_data(cycles / "good", config), config)


@pytest.mark.parametrize("normal_samples", [100, 1000])
def test_labeled_objective_needs_long_labeled_windows(normal_samples):
    # The anomalous labeled recordings are shorter than the trial's windows, so the
    # trial has labeled windows of one class (or none) to rank.
    rng = np.random.default_rng(1)
    labeled = [
        Recording(f"{kind}{i}", rng.normal(size=(2, n)).astype(np.float32), ["a", "b"])
        for kind, n in (("normal", normal_samples), ("faulty", 100))
        for i in range(2)
    ]
    for recording in labeled:
        recording.label = int(recording.name.startswith("faulty"))
    config = _config(**{"tune.objective": "labeled_auc"}).with_overrides(
        {"windows.length": 256, "windows.hop": 256, "detector.family": "pca"}
    )
    objective = Objective(_recordings(4, n_samples=2000), config, labeled=labeled)

    with pytest.raises(ConfigError, match="windows of 256 samples") as caught:
        objective.evaluate(config)

    assert "labeled_auc" in str(caught.value)
    assert "shorter windows" in str(caught.value)


def test_autoencoder_on_few_bands_names_the_band_count(cycles):
    from grindwatch.pipeline import read_data

    config = _config()
    objective = Objective(read_data(cycles / "good", config), config)
    # Two spectrum bands are fewer than the total stride 4 of two stride-2 layers.
    variant = config.with_overrides(
        {
            "frontend.kind": "spectrum",
            "windows.length": 128,
            "frontend.n_bands": 2,
            "detector.family": "autoencoder",
            "detector.autoencoder.filters": [4, 4],
            "detector.autoencoder.kernel_sizes": [3, 3],
            "detector.autoencoder.strides": [2, 2],
        }
    )

    with pytest.raises(ConfigError, match="total stride 4") as caught:
        objective.evaluate(variant)

    assert "frontend.n_bands" in str(caught.value)


def test_autoencoder_trial_reports_each_epoch(cycles):
    from grindwatch.pipeline import read_data

    config = _config()
    objective = Objective(read_data(cycles / "good", config), config)
    variant = config.with_overrides(
        {
            "frontend.kind": "spectrum",
            "windows.length": 128,
            "frontend.n_bands": 8,
            "detector.family": "autoencoder",
            "detector.autoencoder.epochs": 3,
            "detector.autoencoder.filters": [4],
            "detector.autoencoder.kernel_sizes": [3],
            "detector.autoencoder.strides": [1],
        }
    )
    reports = []

    result = objective.evaluate(variant, report=lambda *values: reports.append(values))

    assert [epoch for epoch, *_ in reports] == [0, 1, 2]
    assert all(0.0 <= value <= 1.0 for _, value, _, _ in reports)
    assert result.metrics["epochs_run"] == 3


# Studies ------------------------------------------------------------------------------


def test_tiny_study_runs_the_requested_trials(cycles):
    events = []

    result = tune(
        cycles / "good", _config(), labeled_data=cycles, on_trial=events.append
    )

    finished = result.trials[result.trials["state"].isin(["COMPLETE", "PRUNED"])]
    complete = result.trials[result.trials["state"] == "COMPLETE"]
    assert result.complete and result.finalized
    assert len(finished) == 3
    assert result.best_value == complete["value"].max()
    assert result.best_config.detector.family == result.best_params["family"]
    assert [event.n_finished for event in events] == [1, 2, 3]
    assert result.model is not None
    assert 0.0 <= result.final_metrics["window_auc_roc"] <= 1.0
    assert "labeled_window_auc_roc" in result.trials


def test_trials_show_bands_capped_by_window(cycles):
    from grindwatch.cli_tune import _settings

    config = _config(
        **{
            "tune.space.frontend": ["spectrum"],
            "tune.space.window_length": [16],
            "tune.space.n_bands": [32, 64],
            "tune.space.family": ["pca"],
            "tune.n_trials": 2,
            "tune.baseline": False,
        }
    )

    result = tune(cycles / "good", config)

    # 16-sample windows have at most 8 bands, whatever the trial drew.
    assert set(result.trials["param.n_bands"]) <= {32, 64}
    assert set(result.trials["n_bands"]) == {8}
    for row in result.trials.to_dict("records"):
        assert "bands 8" in _settings(row)


def test_repeated_variant_run_keeps_epoch_curve(cycles, isolated_tracking):
    # One autoencoder variant, so the second trial repeats the first.
    fixed = {
        "tune.space.frontend": ["raw"],
        "tune.space.window_length": [128],
        "tune.space.hop_fraction": [1.0],
        "tune.space.family": ["autoencoder"],
        "tune.space.autoencoder.n_layers": {"low": 1, "high": 1},
        "tune.space.autoencoder.filters": [4],
        "tune.space.autoencoder.kernel_size": [3],
        "tune.space.autoencoder.stride": [2],
        "tune.space.autoencoder.latent_size": [4],
        "tune.space.autoencoder.loss": ["mse"],
        "tune.space.autoencoder.learning_rate": {"low": 0.001, "high": 0.001},
        "tune.space.autoencoder.batch_size": [64],
        "tune.space.autoencoder.epochs": {"low": 2, "high": 2},
    }
    config = _config(
        **fixed,
        **{"tune.n_trials": 2, "tune.baseline": False, "tracking.enabled": True},
    )

    result = tune(cycles / "good", config)

    client = MlflowClient(isolated_tracking)
    first, second = result.trials.sort_values("number").to_dict("records")
    study = optuna.load_study(study_name="grindwatch", storage="sqlite:///optuna.db")
    assert study.trials[1].user_attrs["grindwatch.duplicate_of"] == 0
    curves = [
        [
            (m.step, m.value)
            for m in client.get_metric_history(
                row["mlflow_run_id"], "epoch_injected_auc"
            )
        ]
        for row in (first, second)
    ]
    assert len(curves[0]) == 2
    assert sorted(curves[1]) == sorted(curves[0])
    assert second["value"] == first["value"]


def test_existing_study_needs_resume(cycles):
    tune(cycles / "good", _config(**{"tune.n_trials": 1}))

    with pytest.raises(ConfigError, match="pass --resume"):
        tune(cycles / "good", _config(**{"tune.n_trials": 1}))


def test_resume_rejects_changed_search_settings(cycles):
    tune(cycles / "good", _config(**{"tune.n_trials": 1}))

    with pytest.raises(ConfigError, match="cannot change"):
        tune(resume=True, overrides={"tune.pruner": "none"})


def test_resume_with_more_trials_continues_the_study(cycles):
    first = tune(cycles / "good", _config(**{"tune.n_trials": 2}))

    second = tune(resume=True, overrides={"tune.n_trials": 3})

    assert len(first.trials) == 2
    assert len(second.trials) == 3
    assert second.trials["state"].eq("COMPLETE").all()


def test_running_worker_takes_up_joiners_trials(cycles):
    events = []

    def join_with_more_trials(event) -> None:  # noqa: ANN001
        events.append(event)
        if event.n_finished == 1 and len(events) == 1:
            # A second worker raises the target and leaves at once, so the first
            # worker, started with 2 trials, must run the third.
            tune(resume=True, overrides={"tune.n_trials": 3, "tune.timeout": 1e-6})

    result = tune(
        cycles / "good",
        _config(**{"tune.n_trials": 2}),
        on_trial=join_with_more_trials,
    )

    assert result.complete and result.finalized
    assert result.n_trials == 3
    assert len(result.trials) == 3
    assert result.trials["state"].eq("COMPLETE").all()
    assert [event.n_trials for event in events] == [2, 3, 3]


def test_resume_warns_of_other_tracking_uri(cycles, isolated_tracking, caplog):
    settings = {"tune.n_trials": 1, "tracking.enabled": True}
    settings["tracking.log_model"] = False
    tune(cycles / "good", _config(**settings))
    other = f"sqlite:///{cycles.parent / 'other.db'}"

    with caplog.at_level(logging.WARNING, logger="grindwatch.tuning"):
        result = tune(resume=True, overrides={"tracking.uri": other})

    assert result.tracking_uri == isolated_tracking
    # The study's own store is used, so none is created at the requested URI.
    assert not (cycles.parent / "other.db").exists()
    warnings = [r.getMessage() for r in caplog.records if other in r.getMessage()]
    assert len(warnings) == 1
    assert f"tracking URI {isolated_tracking} that its first worker" in warnings[0]


def test_resume_of_complete_study_ends_its_run(cycles, isolated_tracking):
    config = _config(
        **{"tune.n_trials": 2, "tracking.enabled": True, "tracking.log_model": False}
    )
    first = tune(cycles / "good", config)

    second = tune(resume=True)

    assert second.complete
    assert not second.finalized
    assert second.parent_run_id == first.parent_run_id
    parent = MlflowClient(isolated_tracking).get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["grindwatch.study_state"] == "complete"


def test_resume_rejects_changed_recordings(cycles, isolated_tracking):
    config = _config(
        **{"tune.n_trials": 1, "tracking.enabled": True, "tracking.log_model": False}
    )
    first = tune(cycles / "good", config)
    # One more cycle lands in the study's folder.
    write_cycles(cycles / "good", 1, start_seed=50)

    with pytest.raises(ConfigError, match="changed since the study started"):
        tune(resume=True, overrides={"tune.n_trials": 2})

    study = optuna.load_study(study_name="grindwatch", storage="sqlite:///optuna.db")
    assert len(study.trials) == 1
    parent = MlflowClient(isolated_tracking).get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED"


def test_resume_rejects_other_in_memory_recordings(isolated_tracking):
    config = _config(**{"tune.n_trials": 1, "tracking.enabled": True})
    first = _recordings(6)
    other = RecordingSet(
        [Recording(r.name, r.data * 2, r.channels) for r in first.recordings]
    )
    tune(first, config)

    with pytest.raises(ConfigError, match="in-memory recordings .* changed since"):
        tune(other, config, resume=True, overrides={"tune.n_trials": 2})
    resumed = tune(first, config, resume=True, overrides={"tune.n_trials": 2})

    assert len(resumed.trials) == 2
    study_run = MlflowClient(isolated_tracking).get_run(resumed.parent_run_id)
    stored = study_run.data.tags["grindwatch.data_sha256"]
    assert stored != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_resume_of_done_study_registers_model(cycles, isolated_tracking):
    config = _config(**{"tune.n_trials": 1, "tracking.enabled": True})
    first = tune(cycles / "good", config)

    resumed = tune(
        resume=True,
        overrides={"tune.registered_model": "line4", "tune.alias": "prod"},
    )

    client = MlflowClient(isolated_tracking)
    version = client.get_model_version_by_alias("line4", "prod")
    tags = client.get_run(first.parent_run_id).data.tags
    assert first.registered_model is None
    assert not resumed.finalized
    assert version.run_id == first.model_run_id
    assert resumed.registered_model == "line4"
    assert resumed.registered_version == str(version.version)
    assert tags["grindwatch.registered_model"] == "line4"
    assert tags["grindwatch.alias"] == "prod"


def _worst_and_best_params(data: Path) -> tuple[dict, dict]:
    """Run a throwaway untracked study and return its worst and best params."""
    config = _config(
        **{
            "tune.space.family": ["pca"],
            "tune.baseline": False,
            "tune.study_name": "probe",
            "tune.n_trials": 4,
        }
    )
    study = optuna.load_study(study_name="probe", storage=tune(data, config).storage)
    ranked = sorted(
        study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)),
        key=lambda trial: trial.value,
    )
    # Distinct values, so that the study's best trial is not chosen among ties.
    assert ranked[0].value < ranked[-1].value
    return ranked[0].params, ranked[-1].params


def _empty_study(data: Path, *queued: dict) -> optuna.Study:
    """Create the tracked study "grindwatch" with no trial, then queue ``queued``."""
    settings = {
        "tune.space.family": ["pca"],
        "tune.baseline": False,
        "tune.n_trials": 1,
        "tracking.enabled": True,
        # Passed before the first trial, so the study starts none.
        "tune.timeout": 1e-6,
    }
    created = tune(data, _config(**settings))
    assert created.trials.empty
    study = optuna.load_study(study_name="grindwatch", storage=created.storage)
    for params in queued:
        study.enqueue_trial(params)
    return study


def _runs_of_kind(client: MlflowClient, kind: str) -> list:
    experiment = client.get_experiment_by_name("grindwatch").experiment_id
    return client.search_runs(
        [experiment], filter_string=f"tags.`grindwatch.kind` = '{kind}'"
    )


def test_tracked_study_stopped_before_trials(cycles, isolated_tracking):
    config = _config(**{"tracking.enabled": True, "tune.timeout": 1e-6})

    result = tune(cycles / "good", config)

    assert result.stop_reason == "timeout"
    assert result.trials.empty
    assert "state" in result.trials
    study_run = MlflowClient(isolated_tracking).get_run(result.parent_run_id)
    assert study_run.info.status == "FINISHED"
    assert study_run.data.metrics["n_complete"] == 0


def test_resume_without_new_best_keeps_champion(cycles, isolated_tracking):
    import json

    from typer.testing import CliRunner

    worst, best = _worst_and_best_params(cycles / "good")
    _empty_study(cycles / "good", best, worst, worst)
    # The study keeps its creator's timeout unless a resume replaces it.
    command = ["tune", "--resume", "--register", "line4", "--timeout", "600"]

    first = CliRunner().invoke(_cli("tune"), [*command, "--trials", "1", "--json"])
    second = CliRunner().invoke(_cli("tune"), [*command, "--trials", "2"])
    third = CliRunner().invoke(_cli("tune"), [*command, "--trials", "3", "--json"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert third.exit_code == 0, third.output
    before, after = json.loads(first.stdout), json.loads(third.stdout)
    assert before["best_trial"] == 0
    assert not before["reused_model"]
    assert after["best_trial"] == 0
    assert after["reused_model"]
    assert after["finalized"]
    assert after["model_run_id"] == before["model_run_id"]
    assert after["model_uri"] == before["model_uri"]
    assert after["registered_version"] == before["registered_version"] == "1"
    printed = " ".join(second.output.split())
    assert (
        f"Best trial 0 is unchanged since the last summary, so its model from run "
        f"{before['model_run_id']} was kept and not retrained; "
        "models:/line4@champion is version 1." in printed
    )
    client = MlflowClient(isolated_tracking)
    assert len(client.search_model_versions("name = 'line4'")) == 1
    assert (
        client.get_model_version_by_alias("line4", "champion").run_id
        == (before["model_run_id"])
    )
    assert len(_runs_of_kind(client, "train")) == 1
    study_tags = client.get_run(after["parent_run_id"]).data.tags
    assert study_tags["grindwatch.model_run_id"] == before["model_run_id"]
    assert study_tags["grindwatch.finalized_trials"] == "3"


def test_resume_with_new_best_retrains_champion(cycles, isolated_tracking):
    worst, best = _worst_and_best_params(cycles / "good")
    _empty_study(cycles / "good", worst, best)
    registration = {"tune.registered_model": "line4", "tune.timeout": 600}

    first = tune(resume=True, overrides={**registration, "tune.n_trials": 1})
    second = tune(resume=True, overrides={**registration, "tune.n_trials": 2})

    assert second.best_trial == 1
    assert first.best_value < second.best_value
    assert not second.reused_model
    assert second.model_run_id != first.model_run_id
    assert (first.registered_version, second.registered_version) == ("1", "2")
    client = MlflowClient(isolated_tracking)
    champion = client.get_model_version_by_alias("line4", "champion")
    assert champion.run_id == second.model_run_id
    assert len(_runs_of_kind(client, "train")) == 2


def test_retrained_config_trains_without_registering(cycles, isolated_tracking):
    from grindwatch.config import load_config
    from grindwatch.pipeline import train

    settings = {"tune.n_trials": 1, "tracking.enabled": True}
    config = _config(**settings, **{"tune.registered_model": "line4"})
    result = tune(cycles / "good", config)
    client = MlflowClient(isolated_tracking)
    path = client.download_artifacts(result.model_run_id, "config.yaml", ".")
    saved = load_config(path)

    again = train(cycles / "good", saved)

    champion = client.get_model_version_by_alias("line4", "champion")
    versions = client.search_model_versions("name = 'line4'")
    retrained = client.get_run(result.model_run_id)
    assert champion.run_id == result.model_run_id
    assert len(versions) == 1
    assert retrained.info.run_name == f"grindwatch trial {result.best_trial} retrained"
    assert client.get_run(again.run_id).info.run_name != retrained.info.run_name
    assert saved.tracking.registered_model is None


def test_tracking_registration_registers_once(cycles, isolated_tracking):
    """A tune whose model name comes from the tracking section registers the
    retrained model once, under tune.alias, not also through train."""
    settings = {"tune.n_trials": 1, "tracking.enabled": True}
    registration = {"tracking.registered_model": "line5", "tracking.alias": "staging"}

    result = tune(cycles / "good", _config(**settings, **registration))

    client = MlflowClient(isolated_tracking)
    versions = client.search_model_versions("name = 'line5'")
    assert len(versions) == 1
    champion = client.get_model_version_by_alias("line5", "champion")
    assert champion.run_id == result.model_run_id
    aliases = client.get_registered_model("line5").aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {
        "champion": "1"
    }


def test_unusable_tracking_store_frees_study_name(cycles):
    config = _config(**{"tracking.enabled": True, "tracking.uri": "htp://127.0.0.1:1"})

    with pytest.raises(TrackingError, match="htp://127.0.0.1:1"):
        tune(cycles / "good", config)

    assert optuna.get_all_study_names("sqlite:///optuna.db") == []


def test_resume_from_another_folder(cycles, tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = _config(**{"tune.n_trials": 2, "tune.storage": storage})
    # A relative pattern, typed in the folder that contains the data.
    tune("cycles/good/*.csv", config)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    resumed = tune(resume=True, overrides={"tune.n_trials": 3, "tune.storage": storage})

    assert len(resumed.trials) == 3
    assert resumed.trials["state"].eq("COMPLETE").all()


def test_resume_elsewhere_keeps_relative_tracking_store(cycles, tmp_path):
    storage = tmp_path / "optuna.db"
    settings = {"tune.n_trials": 2, "tune.storage": str(storage)}
    # A file in the folder where the study starts.
    tracking = {"tracking.enabled": True, "tracking.uri": "sqlite:///runs.db"}
    first = tune(cycles / "good", _config(**settings, **tracking))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # A new process: MLflow keeps one store per URI within a process.
    resumed = subprocess.run(
        [sys.executable, "-m", "grindwatch.cli", "tune", "--resume"]
        + ["--storage", str(storage), "--trials", "3"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert resumed.returncode == 0, resumed.stderr
    assert not (elsewhere / "runs.db").exists()
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs.db'}")
    parents, trials = _trial_runs(client)
    assert [run.info.run_id for run in parents] == [first.parent_run_id]
    assert len(trials) == 3


def test_resume_deleted_study_run_names_fix(cycles, isolated_tracking):
    config = _config(**{"tune.n_trials": 1, "tracking.enabled": True})
    first = tune(cycles / "good", config)
    client = MlflowClient(isolated_tracking)
    client.delete_run(first.parent_run_id)

    with pytest.raises(
        TrackingError, match="of study 'grindwatch' .* is deleted"
    ) as deleted:
        tune(resume=True, overrides={"tune.n_trials": 2})
    status = client.get_run(first.parent_run_id).info.status
    purge = [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri"]
    purge += [isolated_tracking, "--run-ids", first.parent_run_id]
    subprocess.run(purge, check=True, capture_output=True, timeout=120)
    with pytest.raises(TrackingError, match="is not in") as purged:
        tune(resume=True, overrides={"tune.n_trials": 2})

    restore = f"mlflow runs restore --run-id {first.parent_run_id}"
    assert restore in str(deleted.value)
    assert "another --study-name" in str(purged.value)
    # The rejected resume left the deleted run as it was.
    assert status == "FINISHED"


def test_trial_run_model_uri_names_fix(cycles, isolated_tracking):
    from grindwatch.pipeline import load_model

    config = _config(**{"tune.n_trials": 1, "tracking.enabled": True})
    result = tune(cycles / "good", config)
    trial_run = result.trials["mlflow_run_id"].iloc[0]

    with pytest.raises(InputError, match="is a tuning trial") as raised:
        load_model(f"runs:/{trial_run}/model")

    assert "grindwatch train DATA -c config.yaml" in str(raised.value)


def test_timeout_stops_the_study_until_resumed(cycles):
    config = _config(**{"tune.timeout": 0.001})

    stopped = tune(cycles / "good", config)
    resumed = tune(resume=True, overrides={"tune.timeout": 600})

    assert stopped.stop_reason == "timeout"
    assert not stopped.complete
    assert len(stopped.trials) <= 1
    assert not stopped.finalized
    assert resumed.complete
    assert resumed.trials["state"].eq("COMPLETE").sum() == 3


def test_parallel_trials_log_into_their_own_runs(cycles, isolated_tracking):
    config = _config(**{"tune.n_trials": 4, "tune.jobs": 2, "tracking.enabled": True})

    result = tune(cycles / "good", config)

    client = MlflowClient(isolated_tracking)
    for row in result.trials.itertuples():
        run = client.get_run(row.mlflow_run_id)
        assert run.data.tags["grindwatch.trial_number"] == str(row.number)
        assert run.data.params["detector.family"] == row.family
        assert run.data.metrics["objective"] == pytest.approx(row.value)


def test_feature_table_study_tunes_table_detectors(feature_table):
    config = _config(**{"data.kind": "table", "tune.n_trials": 3})
    config = config.with_overrides({"detector.family": "pca"})

    result = tune(feature_table, config)

    # The configured pipeline (PCA keeping 0.9 of the variance) runs first.
    first = result.trials.sort_values("number").iloc[0]
    assert first["baseline"]
    assert first["param.family"] == "pca"
    assert first["param.pca.n_components"] == pytest.approx(0.9)
    assert set(result.trials["param.family"]) <= {"pca", "knn"}
    assert result.complete
    assert result.final_metrics["recording_auc_roc"] > 0.9
    # The labels came with the training rows, so the figure is in-sample.
    assert result.labels_in_training
    assert result.final_metrics["n_eval_trained_on"] == 304


def test_study_runs_nest_and_register_alias(cycles, isolated_tracking):
    import typer
    from typer.testing import CliRunner

    from grindwatch.cli_tune import register
    from grindwatch.pipeline import load_model

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    arguments = ["tune", str(cycles / "good"), "--trials", "3", "--register", "tiny"]
    for key, value in SMALL_SPACE.items():
        arguments += ["--set", f"{key}={value}"]

    outcome = CliRunner().invoke(app, arguments)

    assert outcome.exit_code == 0, outcome.output
    assert "models:/tiny@champion" in outcome.output
    client = MlflowClient(isolated_tracking)
    parents, trials = _trial_runs(client)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert len(trials) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert {r.info.status for r in trials} == {"FINISHED"}
    assert {r.data.tags["grindwatch.trial_state"] for r in trials} == {"COMPLETE"}
    assert "best_value" in parent.data.metrics
    assert parent.data.params["seed"] == "0"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "trials.csv",
        "optimization_history.png",
        "param_importances.png",
    } <= artifacts
    version = client.get_model_version_by_alias("tiny", "champion")
    assert version.run_id == parent.data.tags["grindwatch.model_run_id"]
    model = load_model("models:/tiny@champion")
    assert model.config.detector.family == parent.data.params["best.family"]


# Autoencoder trials of two or three epochs on 128-sample spectra. Early stopping's
# patience is longer than that, so each trial runs every epoch it drew.
AUTOENCODER_SPACE = {
    "tune.space.frontend": ["spectrum"],
    "tune.space.window_length": [128],
    "tune.space.n_bands": [8],
    "tune.space.family": ["autoencoder"],
    "tune.space.autoencoder.n_layers": 1,
    "tune.space.autoencoder.filters": [4],
    "tune.space.autoencoder.epochs": {"low": 2, "high": 3},
    "detector.autoencoder.patience": 10,
    "tune.pruner": "none",
    "tracking.enabled": True,
    "tracking.log_model": False,
}


def test_autoencoder_trials_log_objective_once(cycles, isolated_tracking):
    from grindwatch.report.study import summarize_study
    from grindwatch.tracking import read_study

    config = _config(**AUTOENCODER_SPACE)

    result = tune(cycles / "good", config)

    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    client = MlflowClient(isolated_tracking)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for trial in trials:
        run_id = trial.user_attrs["grindwatch.mlflow_run_id"]
        objective = client.get_metric_history(run_id, "objective")
        assert len(objective) == 1
        assert objective[0].value == pytest.approx(trial.value)
        per_epoch = client.get_metric_history(run_id, "epoch_injected_auc")
        epochs = trial.params["autoencoder.epochs"]
        assert epochs in (2, 3)
        assert sorted(m.step for m in per_epoch) == list(range(epochs))
        assert all(0.0 <= m.value <= 1.0 for m in per_epoch)
        assert client.get_run(run_id).data.metrics["objective"] == pytest.approx(
            trial.value
        )

    parent = client.get_run(result.parent_run_id).data.metrics
    best = study.best_trial.user_attrs["grindwatch.metrics"]
    factors = ("injected_auc", "recurring_auc", "recurring_f1")
    for factor in factors:
        assert parent[f"best.{factor}"] == pytest.approx(best[factor])
    logged = [parent[f"best.{factor}"] for factor in factors]
    assert np.prod(logged) == pytest.approx(result.best_value)

    summary = summarize_study(
        read_study(result.model_run_id, result.best_config), result.model_run_id
    )
    report_values = summary.trials.set_index("number")["value"]
    for trial in trials:
        assert report_values[trial.number] == pytest.approx(trial.value)


def test_postgres_scheme_gets_dialect_hint(cycles):
    config = _config(**{"tune.storage": "postgres://user:pw@127.0.0.1:1/optuna"})

    with pytest.raises(ConfigError) as raised:
        tune(cycles / "good", config)

    message = str(raised.value)
    assert "Start the URL with postgresql+psycopg://" in message
    assert "user:***@" in message
    assert ":pw@" not in message


def test_storage_write_failure_names_cause(cycles, tmp_path):
    import sqlite3

    from grindwatch.study_storage import rdb_storage

    storage = tmp_path / "optuna.db"
    rdb_storage(f"sqlite:///{storage}")
    # Every per-epoch report then fails in the database, as writes do when the
    # database server stops during a trial.
    with sqlite3.connect(storage) as connection:
        connection.execute(
            "CREATE TRIGGER broken BEFORE INSERT ON trial_intermediate_values "
            "BEGIN INSERT INTO no_such_table VALUES (1); END"
        )
    space = {**AUTOENCODER_SPACE, "tracking.enabled": False, "tune.baseline": False}
    config = _config(**space, **{"tune.storage": str(storage)})
    events = []

    result = tune(cycles / "good", config, on_trial=events.append)

    # Every trial fails, so the runner stops after too many failures in a row.
    assert result.stop_reason == "failures"
    assert events
    error = events[0].error
    assert events[0].state == "FAIL"
    assert "writing to the Optuna storage failed" in error
    assert "no such table: main.no_such_table" in error
    assert "exceeding max length" not in error


def test_storage_failure_at_trial_end_is_named(cycles, tmp_path):
    import sqlite3

    from grindwatch.exceptions import StorageError
    from grindwatch.study_storage import rdb_storage

    storage = tmp_path / "optuna.db"
    rdb_storage(f"sqlite:///{storage}")
    # Optuna then cannot store a finished trial, as when the database server
    # stops while the trial runs.
    with sqlite3.connect(storage) as connection:
        connection.execute(
            "CREATE TRIGGER broken BEFORE UPDATE OF state ON trials "
            "WHEN NEW.state = 'COMPLETE' BEGIN INSERT INTO no_such_table VALUES (1); "
            "END"
        )
    config = _config(**{"tune.storage": str(storage), "tune.baseline": False})

    with pytest.raises(StorageError) as raised:
        tune(cycles / "good", config)

    message = str(raised.value)
    assert str(storage) in message
    assert "no such table: main.no_such_table" in message
    assert "grindwatch tune --resume --study-name grindwatch" in message
    study = optuna.load_study(study_name="grindwatch", storage=f"sqlite:///{storage}")
    assert [t.state.name for t in study.get_trials()] == ["RUNNING"]


def test_tracking_failure_stops_study_once(cycles, isolated_tracking):
    database = isolated_tracking.removeprefix("sqlite:///")
    # The store takes the study's run and trial 0's run, then rejects every new
    # run, as a tracking server does once it stops.
    with closing(sqlite3.connect(database)) as connection:
        connection.execute(
            "CREATE TRIGGER offline BEFORE INSERT ON runs "
            "WHEN (SELECT count(*) FROM runs) >= 2 "
            "BEGIN SELECT RAISE(ABORT, 'tracking store offline'); END"
        )
        connection.commit()
    settings = {"tune.n_trials": 3, "tune.baseline": False, "tracking.enabled": True}
    config = _config(**settings)

    with pytest.raises(TrackingError) as raised:
        tune(cycles / "good", config)

    message = str(raised.value)
    assert "tracking store offline" in message
    assert "grindwatch tune --resume --study-name grindwatch" in message
    study = optuna.load_study(study_name="grindwatch", storage="sqlite:///optuna.db")
    trials = study.get_trials()
    # One failed trial, not one per trial until too many failed in a row.
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "WAITING"]
    assert trials[2].system_attrs["fixed_params"] == trials[1].params
    assert trials[2].user_attrs["grindwatch.copy_of"] == 1


def test_resume_of_missing_storage_file(tmp_path):
    storage = tmp_path / "typo.db"

    with pytest.raises(ConfigError) as raised:
        tune(resume=True, overrides={"tune.storage": str(storage)})

    message = str(raised.value)
    assert f"the Optuna storage file {storage} does not exist" in message
    assert not storage.exists()
    assert not Path(f"{storage}.lock").exists()


def test_read_only_storage_names_the_cause(cycles, tmp_path):
    storage = tmp_path / "optuna.db"
    tune(cycles / "good", _config(**{"tune.n_trials": 1, "tune.storage": str(storage)}))
    read_only = f"sqlite:///file:{storage}?mode=ro&uri=true"

    with pytest.raises(ConfigError) as raised:
        tune(resume=True, overrides={"tune.storage": read_only, "tune.n_trials": 2})

    message = str(raised.value)
    assert f"opening the Optuna storage {read_only} failed" in message
    assert "attempt to write a readonly database" in message


def test_trial_runs_log_numeric_settings(cycles, isolated_tracking):
    space = {
        **AUTOENCODER_SPACE,
        "tune.space.autoencoder.filters": [4, 16],
        "tune.space.autoencoder.epochs": 2,
    }
    config = _config(**space)

    result = tune(cycles / "good", config)

    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    client = MlflowClient(isolated_tracking)
    for trial in study.get_trials():
        run = client.get_run(trial.user_attrs["grindwatch.mlflow_run_id"])
        metrics, params = run.data.metrics, run.data.params
        assert metrics["window_length"] == float(params["windows.length"])
        assert metrics["window_hop"] == float(params["windows.hop"])
        filters = trial.params["autoencoder.filters_0"]
        assert metrics["optuna.autoencoder.filters_0"] == filters
        assert metrics["optuna.autoencoder.learning_rate"] == pytest.approx(
            trial.params["autoencoder.learning_rate"]
        )
        # Text choices stay parameters only.
        assert "optuna.autoencoder.loss" not in metrics
        assert "optuna.autoencoder.loss" in params
        assert metrics["n_parameters"] > filters
        assert metrics["threshold"] > 0


def test_study_summary_skips_other_objectives_factors():
    import pandas as pd

    from grindwatch.tuning_results import TuneResult, _summary_metrics

    trials = pd.DataFrame(
        [
            {
                "number": 0,
                "state": "COMPLETE",
                "value": 0.9,
                "injected_auc": 0.9,
                "recurring_auc": 0.7,
                "recurring_f1": 0.5,
                "held_out_specificity": 0.99,
            }
        ]
    )
    result = TuneResult("s", "sqlite://", 1, "complete", trials, True)
    result.best_trial, result.best_value = 0, 0.9

    metrics = _summary_metrics(result, ("injected_auc",))

    assert metrics["best.injected_auc"] == 0.9
    assert metrics["best.held_out_specificity"] == 0.99
    assert "best.recurring_auc" not in metrics
    assert "best.recurring_f1" not in metrics


def _finished_study(workers: list[str]) -> optuna.Study:
    """An in-memory study whose trials finished in order, one per worker token."""
    study = optuna.create_study()
    for number, worker in enumerate(workers):
        study.add_trial(
            optuna.trial.create_trial(
                value=float(number), user_attrs={"grindwatch.worker": worker}
            )
        )
    return study


@pytest.mark.parametrize(
    ("token", "enabled", "finalized_tag", "expected"),
    [
        # The worker of the last finished trial retrains.
        ("b", True, None, True),
        ("b", False, None, True),
        # An earlier trial's worker leaves it to that worker, even while the
        # summary tag is still missing because the retraining has not ended.
        ("a", True, None, False),
        ("a", False, None, False),
        # A process that ran no trial (a resume, or the finalizer died) retrains
        # only when no summary exists for this trial count.
        ("c", True, None, True),
        ("c", True, "3", False),
        ("c", False, None, True),
    ],
)
def test_only_last_trials_worker_finalizes(token, enabled, finalized_tag, expected):
    from grindwatch.tuning_results import _is_finalizer

    runner = types.SimpleNamespace(study=_finished_study(["a", "a", "b"]), token=token)
    tags = (
        {} if finalized_tag is None else {"grindwatch.finalized_trials": finalized_tag}
    )
    tracker = types.SimpleNamespace(
        enabled=enabled, parent_run_id="parent", run_tags=lambda run_id: tags
    )

    assert _is_finalizer(runner, tracker) is expected


def test_pruned_and_failed_trials_keep_state_and_step(cycles, isolated_tracking):
    from grindwatch.mlflow_tuning import StudyTracker
    from grindwatch.pipeline import read_data
    from grindwatch.trial_runner import TrialRunner
    from grindwatch.tuning import _storage
    from grindwatch.tuning_results import trials_frame

    # Windows of 64 raw samples: one layer of stride 2 fits, three of stride 8 do not.
    config = _config(
        **{
            "tune.n_trials": 2,
            "tune.space.frontend": ["raw"],
            "tune.space.window_length": [64],
            "tune.space.family": ["autoencoder"],
            "tune.space.autoencoder.n_layers": 1,
            "tune.space.autoencoder.stride": [2],
            "tune.space.autoencoder.filters": [4],
            "tune.space.autoencoder.epochs": 5,
            "tracking.enabled": True,
        }
    )
    backend = _storage(f"sqlite:///{Path.cwd() / 'optuna.db'}")
    study = optuna.create_study(
        storage=backend,
        direction="maximize",
        # Every reported value is below 2, so every trial stops at its first report.
        pruner=optuna.pruners.ThresholdPruner(lower=2.0),
    )
    objective = Objective(read_data(cycles / "good", config), config)
    tracker = StudyTracker(config)
    tracker.open_parent(None, study.study_name, "injected_auc", {}, {})

    pruned = TrialRunner(study, backend, objective, tracker, config).run()
    objective.space = objective.space.model_copy(
        update={
            "autoencoder": objective.space.autoencoder.model_copy(
                update={"n_layers": 3, "stride": [8]}
            )
        }
    )
    more = config.with_overrides({"tune.n_trials": 3})
    failing = TrialRunner(study, backend, objective, tracker, more).run()

    states = [t.state.name for t in study.get_trials()]
    assert pruned == "complete"
    assert failing == "failures"
    assert states[:2] == ["PRUNED", "PRUNED"]
    assert set(states[2:]) == {"FAIL"}
    assert all(t.user_attrs["grindwatch.stopped_step"] == 0 for t in study.trials[:2])
    table = trials_frame(study)
    assert table["value"].iloc[:2].isna().all()
    assert table["pruned_injected_auc"].iloc[:2].notna().all()
    _, runs = _trial_runs(MlflowClient(isolated_tracking))
    by_state = {}
    for run in runs:
        by_state.setdefault(run.data.tags["grindwatch.trial_state"], []).append(run)
    assert len(by_state["PRUNED"]) == 2
    assert all(
        r.data.tags["grindwatch.stopped_step"] == "0" for r in by_state["PRUNED"]
    )
    # A pruned run has its step value, at the epoch where it stopped, but no
    # objective.
    client = MlflowClient(isolated_tracking)
    pruned_auc = table.set_index("mlflow_run_id")["pruned_injected_auc"]
    for run in by_state["PRUNED"]:
        assert "objective" not in run.data.metrics
        history = client.get_metric_history(run.info.run_id, "epoch_injected_auc")
        assert [m.step for m in history] == [0]
        assert history[0].value == pytest.approx(pruned_auc[run.info.run_id])
    # No trial completed, so none has an objective among its metrics.
    assert "objective" not in table.columns
    assert {r.info.status for r in by_state["FAIL"]} == {"FAILED"}
    assert "stride" in by_state["FAIL"][0].data.tags["grindwatch.error"]
    assert not [r for r in runs if r.info.status == "RUNNING"]


# Processes ----------------------------------------------------------------------------

# Autoencoder trials slow enough (seconds each) to kill one mid-way.
SLOW_SPACE = [
    "--set",
    "tune.space.frontend=[spectrum]",
    "--set",
    "tune.space.window_length=[128]",
    "--set",
    "tune.space.n_bands=[16]",
    "--set",
    "tune.space.family=[autoencoder]",
    "--set",
    "tune.space.autoencoder.n_layers=1",
    "--set",
    "tune.space.autoencoder.epochs=40",
    "--set",
    "tune.space.autoencoder.learning_rate=1.0e-4",
    "--set",
    "detector.autoencoder.patience=40",
    "--set",
    "tune.pruner=none",
    "--set",
    "tracking.log_model=false",
    "--set",
    "tune.torch_threads=1",
]


def _tune_command(data: Path, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "grindwatch.cli", "tune", str(data), *arguments]


def _start(command: list[str], log: Path) -> subprocess.Popen:
    """Start ``command`` with its output in ``log``; the caller stops it by pid."""
    with open(log, "wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)


def _trials(storage: Path) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, or none while the process still creates the storage."""
    from sqlalchemy.exc import OperationalError

    if not storage.exists():
        return []
    url = f"sqlite:///{storage}"
    try:
        # Opening the storage may create its tables, so take the lock that tune
        # holds for that; two processes creating them at once collide.
        with sqlite_setup_lock(url):
            study = optuna.load_study(study_name="grindwatch", storage=url)
        return study.get_trials(deepcopy=False)
    except (KeyError, OperationalError):
        return []


def _states(storage: Path) -> list[str]:
    return [t.state.name for t in _trials(storage)]


def _stored_states(storage: Path) -> tuple[list[str], bool]:
    """Return the trial states in SQLite, and whether an owned trial is running.

    A read-only connection takes no setup lock, so it cannot wait on a stopped
    tune process. A locked database reads as no trials yet.
    """
    if not storage.exists():
        return [], False
    try:
        with closing(
            sqlite3.connect(f"file:{storage}?mode=ro", uri=True, timeout=0.1)
        ) as connection:
            states = [row[0] for row in connection.execute("SELECT state FROM trials")]
            owned = connection.execute(
                "SELECT COUNT(*) FROM trials JOIN trial_user_attributes"
                " USING (trial_id) WHERE state = 'RUNNING'"
                " AND key = 'grindwatch.worker'"
            ).fetchone()[0]
    except sqlite3.OperationalError:
        return [], False
    return states, owned > 0


def _pause_when(condition, process: subprocess.Popen, timeout: float) -> None:  # noqa: ANN001
    """Run ``process`` in short slices until ``condition`` is true, then stop it.

    ``condition`` runs while the process is stopped, so its result still holds
    when the caller signals the process. Polling a running process raced with
    fast trials on a loaded machine.
    """
    deadline = time.monotonic() + timeout
    while True:
        os.kill(process.pid, signal.SIGSTOP)
        if condition():
            return
        os.kill(process.pid, signal.SIGCONT)
        if process.poll() is not None:
            raise AssertionError(f"tune exited early with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for trials")
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


@pytest.mark.slow
def test_killed_study_resumes_to_exact_count(cycles, isolated_tracking):
    storage = Path.cwd() / "optuna.db"
    command = _tune_command(cycles / "good", "--trials", "5", *SLOW_SPACE)
    process = _start(command, Path.cwd() / "first.log")

    def finished_one_running_another() -> bool:
        states, owned_running = _stored_states(storage)
        return states.count("COMPLETE") >= 1 and owned_running

    try:
        # Kill while a trial runs after at least one has finished.
        _pause_when(finished_one_running_another, process, timeout=120)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        _stop(process)
    assert "RUNNING" in _states(storage)

    resumed = subprocess.run(
        [sys.executable, "-m", "grindwatch.cli", "tune", "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert resumed.returncode == 0, resumed.stderr
    states = _states(storage)
    assert states.count("COMPLETE") + states.count("PRUNED") == 5
    assert "RUNNING" not in states
    assert states.count("FAIL") >= 1
    parents, trials = _trial_runs(MlflowClient(isolated_tracking))
    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    assert len(trials) == len(states)
    assert not [r for r in trials if r.info.status == "RUNNING"]
    assert sum(r.info.status == "FAILED" for r in trials) == states.count("FAIL")


@pytest.mark.slow
def test_sigterm_leaves_no_run_running(cycles, isolated_tracking):
    storage = Path.cwd() / "optuna.db"
    command = _tune_command(cycles / "good", "--trials", "4", *SLOW_SPACE)
    process = _start(command, Path.cwd() / "tune.log")
    try:
        _pause_when(lambda: _stored_states(storage)[1], process, timeout=120)
        process.send_signal(signal.SIGTERM)
        os.kill(process.pid, signal.SIGCONT)
        returncode = process.wait(timeout=60)
    finally:
        _stop(process)

    assert returncode == 130
    assert "RUNNING" not in _states(storage)
    # The log handler wraps long lines; compare with the whitespace collapsed.
    log = " ".join((Path.cwd() / "tune.log").read_text().split())
    assert "grindwatch tune --resume --study-name grindwatch" in log
    parents, trials = _trial_runs(MlflowClient(isolated_tracking))
    assert parents[0].info.status == "KILLED"
    assert trials
    assert not [r for r in trials if r.info.status == "RUNNING"]
    # The interrupted variant waits in the queue, so a resume evaluates it.
    study = _trials(storage)
    interrupted = [
        t
        for t in study
        if t.user_attrs.get("grindwatch.error") == "interrupted by the user"
    ]
    copies = [t for t in study if t.state.name == "WAITING"]
    assert interrupted
    assert [c.user_attrs["grindwatch.copy_of"] for c in copies] == [
        t.number for t in interrupted
    ]
    assert [c.system_attrs["fixed_params"] for c in copies] == [
        t.params for t in interrupted
    ]


@pytest.mark.slow
def test_two_processes_share_one_study(cycles, isolated_tracking):
    storage = Path.cwd() / "optuna.db"
    arguments = ["--resume", "--trials", "6"]
    for key, value in SMALL_SPACE.items():
        arguments += ["--set", f"{key}={value}"]
    arguments += ["--set", "tracking.log_model=false"]
    logs = [Path.cwd() / f"worker{i}.log" for i in range(2)]
    processes = [
        _start(_tune_command(cycles / "good", *arguments), log) for log in logs
    ]
    try:
        for process in processes:
            process.wait(timeout=300)
    finally:
        for process in processes:
            _stop(process)
    errors = [log.read_text() for log in logs]

    assert [process.returncode for process in processes] == [0, 0], errors
    assert not any("database is locked" in error for error in errors)
    states = _states(storage)
    assert states.count("COMPLETE") == 6
    # Two workers that ask at the same moment for the last trial: one puts its
    # trial back in the queue, where it waits for a later resume.
    assert set(states) <= {"COMPLETE", "WAITING"}
    parents, trials = _trial_runs(MlflowClient(isolated_tracking))
    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    numbers = [int(r.data.tags["grindwatch.trial_number"]) for r in trials]
    assert len(numbers) == 6
    assert len(set(numbers)) == 6


def test_tune_summary_names_in_sample_labels(feature_table, capsys):
    from grindwatch.cli_tune import _report

    config = _config(**{"data.kind": "table", "tune.n_trials": 2})
    result = tune(feature_table, config.with_overrides({"detector.family": "pca"}))

    _report(result, show=5)

    shown = capsys.readouterr().err
    assert "* measured on labels of the training rows" in shown
    assert "measured on its own training rows" in shown
    assert "measure on other rows" in shown
    assert "recording" not in shown
    assert "front end" not in shown
    assert "labeled row AUC" in shown
    assert "Retrained model: row AUC-ROC" in shown
    assert "window" not in shown


def test_trial_table_leaves_pruned_values_out(capsys):
    import pandas as pd

    from grindwatch.cli_tune import _top_trials

    trials = pd.DataFrame(
        [
            {"number": 0, "state": "COMPLETE", "value": 0.2536, "baseline": True},
            {"number": 7, "state": "PRUNED", "value": 0.7832, "baseline": False},
        ]
    )
    result = types.SimpleNamespace(trials=trials, study_name="s", best_trial=0)

    _top_trials(result, limit=10)

    shown = capsys.readouterr().err
    assert "0.2536" in shown
    assert "0.7832" not in shown
    assert "they have no objective value" in shown


def test_report_tells_small_objectives_apart(capsys):
    import pandas as pd

    from grindwatch.cli_tune import _report, _trial_line
    from grindwatch.tuning_results import TuneResult

    # Objectives of a recurring_f1 study on the bundled CNC mill recordings.
    trials = pd.DataFrame(
        [
            {"number": 1, "state": "COMPLETE", "value": 0.0049749, "baseline": True},
            {"number": 2, "state": "COMPLETE", "value": 0.0049770, "baseline": False},
        ]
    )
    result = TuneResult(
        study_name="s",
        storage="sqlite:///optuna.db",
        n_trials=2,
        stop_reason="complete",
        trials=trials,
        complete=True,
        best_trial=2,
        best_value=0.0049770,
    )
    event = types.SimpleNamespace(
        number=2, state="COMPLETE", value=0.0049770, n_finished=2, n_trials=2
    )

    _report(result, show=10)
    line = _trial_line(event, "0.004977")

    printed = " ".join(capsys.readouterr().err.split())
    assert "0.004975" in printed
    assert "Best trial 2: objective 0.004977." in printed
    assert "ran the configured pipeline: complete, objective 0.004975." in printed
    assert "0.0050" not in printed
    assert line.startswith("trial 2 complete, objective 0.004977;")


def test_report_names_model_another_worker_registers(capsys):
    import pandas as pd

    from grindwatch.cli_tune import _report
    from grindwatch.tuning_results import TuneResult

    trials = pd.DataFrame(
        [{"number": 0, "state": "COMPLETE", "value": 0.5, "baseline": False}]
    )
    # What a worker returns while the worker that finished the last trial still
    # retrains. The study is complete, and its run has no summary yet.
    result = TuneResult(
        study_name="line4",
        storage="postgresql+psycopg://grindwatch@db/optuna",
        n_trials=1,
        stop_reason="complete",
        trials=trials,
        complete=True,
        best_trial=0,
        best_value=0.5,
        best_config=Config().with_overrides({"tune.registered_model": "line4"}),
        parent_run_id="0123456789abcdef",
        tracking_uri="http://mlflow.plant.lan:5000",
    )

    _report(result, show=10)

    shown = " ".join(capsys.readouterr().err.split())
    assert "Another process on this study finished the last trial" in shown
    assert "had already been retrained" not in shown
    assert "--model models:/line4@champion" in shown


def test_tune_json_keeps_integer_parameters():
    import pandas as pd

    from grindwatch.cli_tune import _trial_records

    trials = pd.DataFrame(
        {
            "number": [0, 1],
            "value": [1.0, None],
            "param.knn.n_neighbors": [5, None],
            "param.pca.n_components": [None, 0.9],
        }
    )

    first, second = _trial_records(trials)

    assert first["param.knn.n_neighbors"] == 5
    assert isinstance(first["param.knn.n_neighbors"], int)
    assert first["param.pca.n_components"] is None
    assert second["param.pca.n_components"] == 0.9
    assert isinstance(first["value"], float)
    assert second["value"] is None


def _baseline_notices(caplog) -> list:  # noqa: ANN001
    """Log records saying that the configured pipeline is not tried first."""
    notice = "not trying the configured pipeline first"
    return [record for record in caplog.records if notice in record.getMessage()]


def test_table_tune_with_default_family_does_not_warn(feature_table, caplog):
    config = _config(**{"data.kind": "table", "tune.n_trials": 2})

    with caplog.at_level(logging.INFO, logger="grindwatch"):
        tune(feature_table, config)

    baseline = _baseline_notices(caplog)
    assert len(baseline) == 1
    assert baseline[0].levelno == logging.INFO


def test_trial_config_trains_again(cycles, isolated_tracking, tmp_path):
    from importlib.metadata import version

    import grindwatch
    from grindwatch.config import load_config

    config = Config().with_overrides({**SMALL_SPACE, "tune.n_trials": 3})
    tune(cycles / "good", config)

    client = MlflowClient(isolated_tracking)
    _, trials = _trial_runs(client)
    assert len(trials) == 3
    for run in trials:
        folder = tmp_path / run.info.run_id
        path = client.download_artifacts(run.info.run_id, "config.yaml", str(folder))
        saved = load_config(path)
        assert saved.detector.family == run.data.params["detector.family"]
        assert str(saved.windows.length) == run.data.params["windows.length"]
        # Scores also depend on the library versions, which the config omits.
        assert run.data.tags["grindwatch.torch_version"] == version("torch")
        assert run.data.tags["grindwatch.scikit-learn_version"] == version(
            "scikit-learn"
        )
        # Only the trial's own family has detector settings among the params.
        families = {
            key.split(".")[1]
            for key in run.data.params
            if key.startswith("detector.") and key != "detector.family"
        }
        assert families == {saved.detector.family}

    retrained = grindwatch.train(
        cycles / "good", saved.with_overrides({"tracking.enabled": False})
    )
    assert retrained.model.config.detector == saved.detector


def test_study_run_names_held_out_pieces(cycles, isolated_tracking, tmp_path):
    import json

    config = Config().with_overrides({**SMALL_SPACE, "tune.n_trials": 1})
    tune(cycles / "good", config)

    client = MlflowClient(isolated_tracking)
    parents, _ = _trial_runs(client)
    run_id = parents[0].info.run_id
    path = client.download_artifacts(run_id, "holdout.json", str(tmp_path))
    holdout = json.loads(Path(path).read_text())
    # 8 recordings are fewer than 10, so each one's last fifth is held out.
    assert holdout["mode"] == "segments"
    names = sorted(p.stem for p in (cycles / "good").glob("*.csv"))
    assert [piece["name"] for piece in holdout["held_out"]] == [
        f"{name}[held out]" for name in names
    ]
    assert [piece["name"] for piece in holdout["fit"]] == [
        f"{name}[fit]" for name in names
    ]
    for fit, held_out in zip(holdout["fit"], holdout["held_out"], strict=True):
        assert fit["source"] == held_out["source"]
        assert held_out["n_samples"] < fit["n_samples"]


def test_trial_runs_log_threshold_reason(cycles, isolated_tracking, tmp_path):
    import json

    config = Config().with_overrides({**SMALL_SPACE, "tune.n_trials": 2})
    tune(cycles / "good", config)

    client = MlflowClient(isolated_tracking)
    _, trials = _trial_runs(client)
    assert len(trials) == 2
    for run in trials:
        folder = tmp_path / run.info.run_id
        path = client.download_artifacts(run.info.run_id, "threshold.json", str(folder))
        threshold = json.loads(Path(path).read_text())
        assert threshold["value"] == pytest.approx(run.data.metrics["threshold"])
        assert threshold["method"] == run.data.params["threshold.method"]
        assert f"{threshold['value']:.4g}" in threshold["description"]


def test_best_trial_config_repeats_retrained_run(cycles, isolated_tracking, tmp_path):
    import grindwatch
    from grindwatch.config import load_config

    config = Config().with_overrides({**SMALL_SPACE, "tune.n_trials": 2})
    result = tune(cycles / "good", config)

    client = MlflowClient(isolated_tracking)
    _, trials = _trial_runs(client)
    best = next(
        run
        for run in trials
        if run.data.tags["grindwatch.trial_number"] == str(result.best_trial)
    )
    path = client.download_artifacts(best.info.run_id, "config.yaml", str(tmp_path))
    saved = load_config(path).with_overrides({"tracking.enabled": False})
    retrained = grindwatch.train(cycles / "good", saved)

    # train fits on all the recordings, as the retrain of the best trial does.
    model_run = client.get_run(result.model_run_id)
    assert retrained.model.threshold_.value == pytest.approx(
        model_run.data.metrics["threshold"], rel=1e-9
    )
    # The trial fitted only the first four fifths of each recording, so its
    # threshold differs.
    assert retrained.model.threshold_.value != pytest.approx(
        best.data.metrics["threshold"], rel=1e-9
    )


def test_trial_settings_summarise_each_family():
    from grindwatch.cli_tune import _settings

    autoencoder = {
        "family": "autoencoder",
        "frontend": "spectrum",
        "param.hop_fraction": 0.5,
        "param.n_bands": 32,
        "param.autoencoder.n_layers": 2,
        "param.autoencoder.filters_0": 16,
        "param.autoencoder.filters_1": 32,
        "param.autoencoder.filters_2": float("nan"),  # drawn by no trial here
        "param.autoencoder.kernel_size_0": 7,
        "param.autoencoder.kernel_size_1": 5,
        "param.autoencoder.loss": "huber",
        "param.autoencoder.learning_rate": 0.00076,
        "param.pca.n_components": float("nan"),
    }
    table_forest = {
        "family": "iforest",
        "param.iforest.n_estimators": 104,
        "param.iforest.max_samples": 512,
    }

    assert _settings(autoencoder) == (
        "hop 0.5 x window, bands 32, layers 2, filters 16-32, kernels 7-5, loss huber, "
        "lr 0.00076"
    )
    assert _settings(table_forest) == "n_estimators 104, max_samples 512"
    assert _settings({"family": "knn", "frontend": "raw", "param.n_bands": 16}) == ""


def test_alias_move_to_another_version_warns(cycles, caplog):
    from grindwatch.mlflow_tuning import StudyTracker
    from grindwatch.pipeline import train

    config = _config(
        **{
            "tracking.enabled": True,
            "tracking.registered_model": "line4",
            "detector.family": "pca",
            "windows.length": 256,
        }
    )
    first = train(cycles / "good", config)
    second = train(cycles / "good", config)
    tracker = StudyTracker(config)

    with caplog.at_level(logging.INFO, logger="grindwatch.mlflow_tuning"):
        tracker.alias_version(first.run_id, "line4", "champion")
        tracker.alias_version(first.run_id, "line4", "champion")
        tracker.alias_version(second.run_id, "line4", "champion")

    moves = [r for r in caplog.records if "moved from" in r.getMessage()]
    assert len(moves) == 1
    assert moves[0].levelno == logging.WARNING
    assert "models:/line4@champion moved from version 1 to version 2" in (
        moves[0].getMessage()
    )


def test_tied_objectives_warn_that_nothing_was_chosen(caplog):
    import optuna

    from grindwatch.tuning_results import _warn_undecided

    study = optuna.create_study(direction="maximize")
    for value in (0.4, 0.4, 0.4):
        study.add_trial(optuna.trial.create_trial(value=value))

    with caplog.at_level(logging.WARNING, logger="grindwatch.tuning_results"):
        _warn_undecided(study, study.best_trial)

    messages = [
        r.getMessage() for r in caplog.records if r.name == "grindwatch.tuning_results"
    ]
    assert len(messages) == 1
    assert "all 3 complete trials have the objective 0.4" in messages[0]

    zero = optuna.create_study(direction="maximize")
    for value in (0.0, 0.0):
        zero.add_trial(optuna.trial.create_trial(value=value))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="grindwatch.tuning_results"):
        _warn_undecided(zero, zero.best_trial)
    assert "the best objective is 0" in caplog.text


def test_tie_at_top_warns_unless_repeat(caplog):
    import optuna

    from grindwatch.tuning_results import _warn_undecided

    study = optuna.create_study(direction="maximize")
    for value in (0.2, 0.5, 0.5):
        study.add_trial(optuna.trial.create_trial(value=value))
    repeat = optuna.create_study(direction="maximize")
    repeat.add_trial(optuna.trial.create_trial(value=0.2))
    repeat.add_trial(optuna.trial.create_trial(value=0.5))
    repeat.add_trial(
        optuna.trial.create_trial(value=0.5, user_attrs={"grindwatch.duplicate_of": 1})
    )

    with caplog.at_level(logging.WARNING, logger="grindwatch.tuning_results"):
        tied = _warn_undecided(study, study.best_trial)
        repeated = _warn_undecided(repeat, repeat.best_trial)

    assert tied is not None
    assert "trials 1, 2 have the best objective 0.5" in tied
    assert f"trial {study.best_trial.number} is kept" in tied
    assert repeated is None


@pytest.mark.parametrize(
    ("f1", "factors", "warned"),
    [
        (0.02, ("injected_auc", "recurring_auc", "recurring_f1"), True),
        (0.30, ("injected_auc", "recurring_auc", "recurring_f1"), False),
        (0.02, ("injected_auc",), False),
    ],
)
def test_weak_best_threshold_warns(f1, factors, warned, caplog):
    import optuna

    from grindwatch.tuning_results import _warn_weak_threshold

    metrics = {"recurring_f1": f1, "recurring_recall": 0.1, "held_out_specificity": 0.9}
    trial = optuna.trial.create_trial(
        value=0.5 * f1, user_attrs={"grindwatch.metrics": metrics}
    )

    with caplog.at_level(logging.WARNING, logger="grindwatch.tuning_results"):
        message = _warn_weak_threshold(trial, factors)

    assert ("hardly separated the variants" in caplog.text) is warned
    assert (message is not None) is warned
    if warned:
        assert f"F1 {f1:.3f}" in caplog.text
        assert "--eval" in caplog.text
        assert "--objective labeled_auc" in caplog.text


def test_weak_threshold_with_eval_names_objective(caplog):
    import optuna

    from grindwatch.tuning_results import _warn_weak_threshold

    metrics = {
        "recurring_f1": 0.02,
        "recurring_recall": 0.7,
        "held_out_specificity": 0.6,
        "labeled_window_auc_roc": 0.6,
    }
    trial = optuna.trial.create_trial(
        value=0.01, user_attrs={"grindwatch.metrics": metrics}
    )
    factors = ("injected_auc", "recurring_auc", "recurring_f1")

    # Labeled metrics mean --eval was given, but they rank nothing under the
    # default objective.
    message = _warn_weak_threshold(trial, factors)

    assert message is not None
    assert "on the --eval recordings with --objective labeled_auc" in message
    assert "give labelled recordings" not in message


def test_weak_threshold_table_names_rows():
    import optuna

    from grindwatch.tuning_results import _warn_weak_threshold

    metrics = {
        "recurring_f1": 0.02,
        "recurring_recall": 0.1,
        "held_out_specificity": 0.9,
    }
    trial = optuna.trial.create_trial(
        value=0.01, user_attrs={"grindwatch.metrics": metrics}
    )
    factors = ("injected_auc", "recurring_auc", "recurring_f1")

    message = _warn_weak_threshold(trial, factors, "table")

    assert message is not None
    assert "Held-out rows that are not normal" in message
    assert "give labelled rows with --eval" in message
    assert "window" not in message
    assert "recording" not in message


def test_undecided_choice_noted_on_study_run(cycles, isolated_tracking):
    # Every trial draws the same single variant, so all objectives tie.
    config = _config(
        **{
            "tracking.enabled": True,
            "tune.space.window_length": [256],
            "tune.space.frontend": ["spectrum"],
            "tune.space.n_bands": [16],
            "tune.space.hop_fraction": [1.0],
            "tune.space.family": ["knn"],
            "tune.space.knn.n_neighbors": {"low": 3, "high": 3},
        }
    )

    result = tune(cycles / "good", config)

    undecided = [note for note in result.notes if "is kept" in note]
    assert len(undecided) == 1
    assert f"trial {result.best_trial} is kept" in undecided[0]
    parent = MlflowClient(isolated_tracking).get_run(result.parent_run_id)
    assert parent.data.tags["grindwatch.notes"] == "\n".join(result.notes)


def test_one_class_eval_data_warns(feature_table, tmp_path, caplog):
    import pandas as pd

    normal = pd.read_parquet(feature_table)
    normal = normal[~normal["anomaly"]]
    normal.to_parquet(tmp_path / "ok.parquet")
    config = _config(**{"data.kind": "table", "tune.n_trials": 1})

    with caplog.at_level(logging.WARNING, logger="grindwatch.objective"):
        result = tune(feature_table, config, labeled_data=tmp_path / "ok.parquet")

    assert result.final_metrics == {}
    assert "are all normal (300 labeled)" in caplog.text
    assert "--eval ok/ --eval nok/" in caplog.text


def test_table_family_outside_the_space_warns(feature_table, caplog):
    config = _config(
        **{
            "data.kind": "table",
            "tune.n_trials": 1,
            "detector.family": "iforest",
            "tune.space.family": ["pca"],
        }
    )

    with caplog.at_level(logging.INFO, logger="grindwatch"):
        tune(feature_table, config)

    baseline = _baseline_notices(caplog)
    assert len(baseline) == 1
    assert baseline[0].levelno == logging.WARNING


def test_store_retry_covers_a_tag_inserted_meanwhile():
    from grindwatch.mlflow_tuning import _retry

    calls = []

    def set_tag() -> str:
        calls.append(1)
        if len(calls) == 1:
            # What SQLite reports when another worker inserted the tag first.
            raise RuntimeError(
                "(sqlite3.IntegrityError) UNIQUE constraint failed: tags.key, "
                "tags.run_uuid"
            )
        return "set"

    def other_error() -> None:
        raise ValueError("other error")

    assert _retry(set_tag) == "set"
    assert len(calls) == 2
    with pytest.raises(ValueError, match="other error"):
        _retry(other_error)


def test_tune_accepts_recordings_in_memory(tmp_path):
    # Generated recordings have no source file, so data.paths stays empty.
    rng = np.random.default_rng(1)
    recordings = RecordingSet(
        [
            Recording(
                f"r{i}",
                rng.normal(size=(2, 2048)).astype(np.float32),
                ["a", "b"],
                sample_rate=1000.0,
            )
            for i in range(8)
        ]
    )
    config = _config(**{"tune.storage": str(tmp_path / "optuna.db")})

    result = tune(recordings, config)

    assert result.complete
    assert len(result.trials) == 3
    assert result.best_config is not None


def _cli(command: str):  # noqa: ANN202
    """Return the grindwatch app for ``train``, or an app with ``tune`` alone."""
    import typer

    from grindwatch.cli import app
    from grindwatch.cli_tune import register

    if command == "train":
        return app
    tune_app = typer.Typer()
    tune_app.callback()(lambda: None)
    register(tune_app)
    return tune_app


def _small_tune_arguments(data: Path, *extra: str) -> list[str]:
    arguments = ["tune", str(data), "--trials", "2", *extra]
    for key, value in SMALL_SPACE.items():
        arguments += ["--set", f"{key}={value}"]
    return arguments


@pytest.mark.new_tracking_store
def test_tune_output_saves_untracked_model(cycles, tmp_path):
    from typer.testing import CliRunner

    from grindwatch.pipeline import load_model, score

    folder = tmp_path / "tuned"
    command = _small_tune_arguments(
        cycles / "good", "--no-track", "--output", str(folder)
    )

    outcome = CliRunner().invoke(_cli("tune"), command)

    assert outcome.exit_code == 0, outcome.output
    output = " ".join(outcome.output.split())
    assert f"Model bundle saved to {folder}" in output
    # The retrained model's threshold rule and cycle check are printed, as train
    # prints them.
    assert re.search(r"The threshold [\d.]+ ", output)
    assert "Cycle check off: 8 training recordings" in output
    scored = score(load_model(folder), cycles / "bad")
    assert len(scored.recordings) == 3
    assert not (tmp_path / "mlflow.db").exists()


def test_tune_without_terminal_prints_each_trial(cycles):
    from typer.testing import CliRunner

    command = _small_tune_arguments(cycles / "good", "--no-track")

    # CliRunner's stderr is no terminal, as in a log file, so no bar is drawn.
    outcome = CliRunner().invoke(_cli("tune"), command)

    assert outcome.exit_code == 0, outcome.output
    output = " ".join(outcome.output.split())
    assert re.search(r"trial 0 (complete, objective [\d.]+|pruned);", output)
    assert re.search(r"trial 1 (complete, objective [\d.]+|pruned);", output)
    assert "1 of 2 trials finished, best objective" in output
    assert "2 of 2 trials finished, best objective" in output


def test_tune_notes_model_not_kept(feature_table):
    from typer.testing import CliRunner

    command = [
        "tune",
        str(feature_table),
        "--table",
        "--trials",
        "1",
        "--no-track",
        "--set",
        "detector.family=pca",
    ]

    outcome = CliRunner().invoke(_cli("tune"), command)

    assert outcome.exit_code == 0, outcome.output
    output = " ".join(outcome.output.split())
    assert "The retrained model was not kept" in output
    assert "--output FOLDER" in output


def test_resumed_done_study_saves_logged_model(feature_table, tmp_path):
    from typer.testing import CliRunner

    from grindwatch.pipeline import load_model

    command = ["tune", str(feature_table), "--table", "--trials", "2"]
    command += ["--set", "detector.family=pca"]
    folder = tmp_path / "tuned"
    first = CliRunner().invoke(_cli("tune"), command)
    assert first.exit_code == 0, first.output

    resumed = CliRunner().invoke(
        _cli("tune"), [*command, "--resume", "--output", str(folder)]
    )

    assert resumed.exit_code == 0, resumed.output
    output = " ".join(resumed.output.split())
    # The first run retrained the model, so this one loads it from MLflow.
    assert "The best trial had already been retrained" in output
    assert f"Model bundle saved to {folder}" in output
    model = load_model(folder)
    assert model.config.detector.family == "pca"


def test_tune_json_matches_study_and_runs(cycles, isolated_tracking):
    import json

    from typer.testing import CliRunner

    command = _small_tune_arguments(cycles / "good", "--json")
    command += ["--set", "tune.space.family=[pca]", "--set", "tune.baseline=false"]

    outcome = CliRunner().invoke(_cli("tune"), command)

    assert outcome.exit_code == 0, outcome.output
    summary = json.loads(outcome.stdout)
    study = optuna.load_study(study_name="grindwatch", storage="sqlite:///optuna.db")
    client = MlflowClient(isolated_tracking)
    notes = client.get_run(summary["parent_run_id"]).data.tags["grindwatch.notes"]
    assert ("\n".join(summary["notes"]) or "none") == notes
    assert len(summary["trials"]) == 2
    for record in summary["trials"]:
        trial = study.trials[record["number"]]
        run = client.get_run(record["mlflow_run_id"])
        # Exact equality: a rounded copy would not retrain the same variant.
        assert record["value"] == trial.value
        assert record["value"] == run.data.metrics["objective"]
        drawn = trial.params["pca.n_components"]
        assert record["param.pca.n_components"] == drawn
        assert run.data.params["optuna.pca.n_components"] == str(drawn)


@pytest.mark.parametrize("command", ["train", "tune"])
def test_register_without_tracking_fails(feature_table, command):
    from typer.testing import CliRunner

    arguments = [command, str(feature_table), "--table", "--no-track"]
    arguments += ["--register", "line4", "--set", "detector.family=pca"]

    outcome = CliRunner().invoke(_cli(command), arguments)

    assert outcome.exit_code == 2, outcome.output
    output = " ".join(outcome.output.split())
    assert "--register line4 needs MLflow tracking" in output
    assert "Trained" not in output
    assert "Top trials" not in output


@pytest.mark.parametrize(
    ("command", "option", "reason"),
    [
        ("train", ["--register", "line/4"], "contains '/' or ':'"),
        ("tune", ["--register", ".."], "starts with '..'"),
        ("tune", ["--register", "line4", "--alias", "latest"], "reserved"),
        ("tune", ["--register", "line4", "--alias", "v2"], "reserved"),
        ("tune", ["--register", "line4", "--alias", "prod line"], "underscores"),
    ],
)
def test_bad_registry_name_fails_before_fitting(
    feature_table, isolated_tracking, command, option, reason
):
    from typer.testing import CliRunner

    arguments = [command, str(feature_table), "--table", *option]
    arguments += ["--set", "detector.family=pca"]
    if command == "tune":
        arguments += ["--trials", "1"]

    outcome = CliRunner().invoke(_cli(command), arguments)

    assert outcome.exit_code != 0
    output = " ".join(outcome.output.split())
    assert reason in output
    assert not Path("optuna.db").exists()
    client = MlflowClient(isolated_tracking)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments) == []


def test_resume_replaces_stored_reserved_alias(feature_table, isolated_tracking):
    config = _config(
        **{"data.kind": "table", "tune.n_trials": 1, "tracking.enabled": True}
    )
    tune(feature_table, config.with_overrides({"detector.family": "pca"}))
    # As stored by a grindwatch version that did not check the alias.
    study = optuna.load_study(study_name="grindwatch", storage="sqlite:///optuna.db")
    stored = study.user_attrs["grindwatch.config"]
    stored["tune"]["alias"] = "latest"
    study.set_user_attr("grindwatch.config", stored)

    with pytest.raises(ConfigError, match="stored settings of study 'grindwatch'"):
        tune(resume=True, overrides={"tune.n_trials": 2})
    resumed = tune(
        resume=True,
        overrides={
            "tune.n_trials": 2,
            "tune.registered_model": "line4",
            "tune.alias": "champion",
        },
    )

    assert resumed.registered_model == "line4"
    version = MlflowClient(isolated_tracking).get_model_version_by_alias(
        "line4", "champion"
    )
    assert version.run_id == resumed.model_run_id


def test_tune_without_logged_model_gives_no_uri(feature_table):
    from typer.testing import CliRunner

    command = ["tune", str(feature_table), "--table", "--trials", "1"]
    command += ["--set", "detector.family=pca", "--set", "tracking.log_model=false"]

    outcome = CliRunner().invoke(_cli("tune"), command)

    assert outcome.exit_code == 0, outcome.output
    output = " ".join(outcome.output.split())
    assert "runs:/" not in output
    assert "tracking.log_model is false" in output


def test_objective_orders_channels_by_name():
    from tests.conftest import make_cycle

    names = ["a", "b", "c"]
    recordings = []
    for seed in range(8):
        data = make_cycle(seed)
        if seed % 2:
            # The same cycle, with its rows and names listed in reverse.
            recordings.append(Recording(f"r{seed}", data[::-1], names[::-1], 1000.0))
        else:
            recordings.append(Recording(f"r{seed}", data, names, 1000.0))
    config = _config()
    base = {"frontend.kind": "raw", "windows.length": 128}

    objective = Objective(RecordingSet(recordings), config)
    prepared = objective.prepare(config.with_overrides(base))
    reference = Objective(
        RecordingSet(
            [Recording(f"r{s}", make_cycle(s), names, 1000.0) for s in range(8)]
        ),
        config,
    ).prepare(config.with_overrides(base))

    assert objective.channels == names
    assert all(r.channels == names for r in objective.holdout.fit)
    np.testing.assert_array_equal(prepared.fit_features, reference.fit_features)


@pytest.mark.parametrize(
    ("seconds", "named"),
    [([4.0, 8.0], "[4.0, 8.0]"), ({"low": 4.0, "high": 8.0}, "4 to 8 s")],
)
def test_window_seconds_too_long_named(seconds, named):
    # The error named only tune.space.window_length, which was never set.
    from tests.conftest import make_cycle

    recordings = [
        Recording(f"r{s}", make_cycle(s), ["a", "b", "c"], 1000.0) for s in range(8)
    ]
    config = _config(**{"tune.space.window_seconds": seconds})

    with pytest.raises(ConfigError, match="window_length") as raised:
        Objective(RecordingSet(recordings), config)

    assert f"tune.space.window_seconds {named} at 1000 samples/s" in str(raised.value)


def test_objective_rejects_mixed_sample_rates():
    from grindwatch.exceptions import InputError
    from tests.conftest import make_cycle

    recordings = [
        Recording(f"r{s}", make_cycle(s), ["a", "b", "c"], 1000.0) for s in range(7)
    ]
    recordings.append(Recording("fast", make_cycle(7), ["a", "b", "c"], 2000.0))

    with pytest.raises(InputError, match="sample rate 2000 differs from 1000"):
        Objective(RecordingSet(recordings), _config())


def test_tune_with_windows_in_seconds(cycles, tmp_path, capsys):
    # At the cycles' 1 kHz, 0.256 s is 256 samples. The study's first trial
    # reproduces that window, and the trials then set windows in samples alone.
    config = _config(
        **{
            "tune.storage": str(tmp_path / "optuna.db"),
            "windows.seconds": 0.256,
            "windows.hop_seconds": 0.256,
            "tune.space.window_length": [64],
            "tune.space.window_seconds": [0.128, 0.256],
            "tune.space.hop_fraction": [1.0],
            "frontend.n_bands": 16,
            "detector.family": "pca",
        }
    )

    result = tune(cycles / "good", config)
    resumed = tune(cycles / "good", config, resume=True, overrides={"tune.n_trials": 4})

    first = result.trials.iloc[0]
    assert first["param.window_length"] == 256
    assert set(resumed.trials["param.window_length"]) <= {128, 256}
    chosen = result.best_config.windows
    assert (chosen.seconds, chosen.hop_seconds) == (None, None)
    assert chosen.length == result.best_params["window_length"]
    assert result.model.window_length_ == chosen.length
    assert len(resumed.trials) == 4
    # The trial table gives units, so a trial's duration in seconds does not
    # read as its window length.
    from grindwatch.cli_tune import _top_trials

    _top_trials(resumed, 4)
    table = " ".join(capsys.readouterr().err.split())
    assert "window (samples)" in table
    assert "duration (s)" in table


def test_window_seconds_space_becomes_samples():
    from grindwatch.search_space import window_seconds_in_samples
    from grindwatch.tune_config import Range

    choices = SearchSpace(window_seconds=[0.5, 1, 1.0004, 2])
    ranged = SearchSpace(window_seconds=Range(low=0.1, high=2.0, log=True))

    assert window_seconds_in_samples(choices, 1000.0).window_length == [
        500,
        1000,
        2000,
    ]
    assert window_seconds_in_samples(ranged, 100.0).window_length == Range(
        low=10, high=200, log=True
    )
    assert window_seconds_in_samples(SearchSpace(), None) == SearchSpace()
    with pytest.raises(ConfigError, match="needs the recordings' sample rate"):
        window_seconds_in_samples(choices, None)
    with pytest.raises(ConfigError, match="0.5 s, less than one sample at 0.9 samples"):
        window_seconds_in_samples(choices, 0.9)
    with pytest.raises(ConfigError, match="has '2s'; give window lengths as numbers"):
        window_seconds_in_samples(SearchSpace(window_seconds=["2s"]), 10.0)


def test_study_without_config_names_deletion(cycles, tmp_path, monkeypatch):
    import grindwatch.tuning

    monkeypatch.setattr(grindwatch.tuning, "JOIN_WAIT_S", 0.5)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # What a creator killed before it stored the configuration leaves behind.
    optuna.create_study(storage=storage, study_name="orphan")
    config = _config(**{"tune.storage": storage, "tune.study_name": "orphan"})

    with pytest.raises(ConfigError) as raised:
        tune(cycles / "good", config, resume=True)

    message = str(raised.value)
    assert "has no grindwatch configuration" in message
    assert "optuna delete-study --study-name orphan --storage URL" in message


def test_join_without_experiment_does_not_warn(cycles, isolated_tracking, caplog):
    settings = {"tune.n_trials": 1, "tracking.enabled": True}
    settings["tracking.log_model"] = False
    first = _config(**settings, **{"tracking.experiment": "first"})
    tune(cycles / "good", first)

    with caplog.at_level(logging.WARNING, logger="grindwatch.tuning"):
        tune(resume=True, overrides={"tune.n_trials": 2})

    assert "that its first worker stored" not in caplog.text
    client = MlflowClient(isolated_tracking)
    runs = client.search_runs([client.get_experiment_by_name("first").experiment_id])
    trials = [r for r in runs if r.data.tags.get("grindwatch.kind") == "trial"]
    assert len(trials) == 2


def test_resume_keeps_the_study_experiment(cycles, isolated_tracking, caplog):
    settings = {"tune.n_trials": 1, "tracking.enabled": True}
    settings["tracking.log_model"] = False
    first = _config(**settings, **{"tracking.experiment": "first"})
    tune(cycles / "good", first)
    renamed = first.with_overrides({"tracking.experiment": "second"})

    with caplog.at_level(logging.WARNING, logger="grindwatch.tuning"):
        tune(cycles / "good", renamed, resume=True, overrides={"tune.n_trials": 2})

    assert "experiment 'first' that its first worker stored" in caplog.text
    client = MlflowClient(isolated_tracking)
    assert client.get_experiment_by_name("second") is None
    runs = client.search_runs([client.get_experiment_by_name("first").experiment_id])
    trials = [r for r in runs if r.data.tags.get("grindwatch.kind") == "trial"]
    assert len(trials) == 2


def test_trial_line_tells_store_failure_from_interrupt():
    from grindwatch.cli_tune import _trial_line
    from grindwatch.trial_runner import USER_INTERRUPT, TrialEvent

    def line(error: str) -> str:
        event = TrialEvent(3, "INTERRUPTED", None, 0.5, 3, 10, error)
        return _trial_line(event, "0.5")

    stopped = line("OperationalError: no such table: runs")
    interrupted = line(USER_INTERRUPT)

    assert stopped.startswith("trial 3 stopped because the tracking store failed;")
    assert "interrupted" not in stopped
    assert interrupted.startswith("trial 3 interrupted;")
