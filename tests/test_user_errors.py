"""Mistakes a new user makes, run through the real command line and pipeline."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import grindwatch
from grindwatch import Recording, RecordingSet
from grindwatch.cli import app
from grindwatch.cli_report import register
from grindwatch.config import Config, load_config
from grindwatch.exceptions import ConfigError, InputError
from grindwatch.report import create_report


def test_python_m_grindwatch_runs_cli():
    result = subprocess.run(
        [sys.executable, "-m", "grindwatch", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("grindwatch ")


def _vibration_with_temperature(name: str, temperature, seed: int) -> Recording:
    rng = np.random.default_rng(seed)
    time = np.arange(2048) / 1000.0
    vibration = np.sin(2 * np.pi * 50 * time) + 0.1 * rng.standard_normal(time.size)
    temperature = np.broadcast_to(np.asarray(temperature, float), time.shape)
    data = np.vstack([vibration, temperature]).astype(np.float32)
    return Recording(name, data, ["vib_x", "temp"], 1000.0)


def test_iforest_constant_channel_change_warns(caplog):
    training = RecordingSet(
        [_vibration_with_temperature(f"cycle_{i}", 20.0, i) for i in range(5)]
    )
    settings = {
        "windows.length": 256,
        "detector.family": "iforest",
        "tracking.enabled": False,
    }
    with pytest.warns(UserWarning, match="an isolation forest ignores any change"):
        model = grindwatch.train(training, settings).model
    scored = RecordingSet(
        [
            _vibration_with_temperature("hot", 80.0, 10),
            _vibration_with_temperature("same", 20.0, 11),
        ]
    )

    with caplog.at_level(logging.WARNING, logger="grindwatch.pipeline"):
        result = grindwatch.score(model, scored)

    verdicts = dict(
        zip(result.recordings["recording"], result.recordings["flag"], strict=True)
    )
    # The isolation forest cannot see the temperature step: the warning is the
    # only sign of it.
    assert not verdicts["hot"]
    warnings = [
        record.getMessage()
        for record in caplog.records
        if "constant in every training window" in record.getMessage()
    ]
    assert len(warnings) == 1
    assert "'temp' at 20" in warnings[0]
    assert "hot (temp = 80)" in warnings[0]
    assert "same" not in warnings[0]


def test_missing_channel_names_case_lookalike():
    training = RecordingSet(
        [_vibration_with_temperature(f"cycle_{i}", 20.0 + i, i) for i in range(3)]
    )
    settings = {
        "windows.length": 256,
        "detector.family": "pca",
        "tracking.enabled": False,
    }
    model = grindwatch.train(training, settings).model
    renamed = _vibration_with_temperature("export", 21.0, 7)
    renamed = Recording("export", renamed.data, ["Vib_X", "temp"], 1000.0)

    with pytest.raises(InputError) as raised:
        grindwatch.score(model, RecordingSet([renamed]), strict=True)

    message = str(raised.value)
    assert "missing channels ['vib_x']" in message
    assert "differ only in letter case: 'vib_x' expected, 'Vib_X' found" in message


def _small_model(folder):  # noqa: ANN001, ANN202
    training = RecordingSet(
        [_vibration_with_temperature(f"cycle_{i}", 20.0 + i, i) for i in range(3)]
    )
    settings = {
        "windows.length": 256,
        "detector.family": "pca",
        "tracking.enabled": False,
    }
    return grindwatch.train(training, settings, output=folder).model


def test_report_rejects_pdf_output(tmp_path):
    model = _small_model(tmp_path / "model")
    recording = _vibration_with_temperature("cycle_9", 21.0, 9)

    with pytest.raises(ConfigError) as raised:
        create_report(model, RecordingSet([recording]), tmp_path / "report.pdf")

    assert "report.pdf: output must end in .html or .htm" in str(raised.value)
    assert not (tmp_path / "report.pdf").exists()


def test_report_missing_reference_fails_first(tmp_path):
    _small_model(tmp_path / "model")
    data = tmp_path / "data"
    data.mkdir()
    (data / "empty.csv").write_text("")
    missing = tmp_path / "no_such_folder"

    # The report command is registered on the app when grindwatch.cli.main runs.
    report_app = typer.Typer()
    report_app.callback()(lambda: None)
    register(report_app)

    result = CliRunner().invoke(
        report_app,
        ["report", str(data), "--model", str(tmp_path / "model")]
        + ["--output", str(tmp_path / "r.html"), "--reference", str(missing)],
    )

    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"error: {missing}: reference recordings: no such file" in output
    # The data was not read: its empty file would have been listed as skipped.
    assert "empty.csv" not in output


def _feature_table(path, n_rows):  # noqa: ANN001, ANN202
    rng = np.random.default_rng(3)
    columns = {f"ae_feature_{i}": rng.standard_normal(n_rows) for i in range(20)}
    pd.DataFrame(columns).to_parquet(path)
    return path


def test_short_table_without_table_flag_hinted(tmp_path):
    table = _feature_table(tmp_path / "features.parquet", 15)
    settings = {"detector.family": "iforest", "tracking.enabled": False}

    with pytest.raises(InputError) as raised:
        grindwatch.train(table, settings)

    message = str(raised.value)
    assert "fewer than one window of 1024 samples" in message
    assert "train with --table (data.kind: table)" in message
    assert "may be transposed" not in message


def test_long_table_without_table_flag_hinted(tmp_path, caplog):
    table = _feature_table(tmp_path / "features.parquet", 2100)
    settings = {"detector.family": "iforest", "tracking.enabled": False}

    with caplog.at_level(logging.WARNING, logger="grindwatch.pipeline"):
        grindwatch.train(table, settings)

    few = [
        r.getMessage() for r in caplog.records if "training windows" in r.getMessage()
    ]
    assert len(few) == 1
    assert "only 3 training windows of 1024 samples" in few[0]
    assert "train with --table (data.kind: table)" in few[0]


def test_labels_matching_nothing_name_file(tmp_path):
    model = _small_model(tmp_path / "model")
    data = RecordingSet([_vibration_with_temperature("cycle_9", 21.0, 9)])
    labels = tmp_path / "labels.csv"
    labels.write_text("recording,label\nCYCLE_9,1\n")

    with pytest.raises(InputError) as raised:
        grindwatch.evaluate(model, data, labels=labels)

    message = str(raised.value)
    assert message.startswith(f"{labels}: name none of the scored recordings")
    assert "labels such as 'CYCLE_9', recordings such as 'cycle_9'" in message


def test_labels_match_names_in_other_normal_form(tmp_path):
    model = _small_model(tmp_path / "model")
    # File names from macOS are often in NFD, a labels file typed by hand in NFC.
    decomposed = unicodedata.normalize("NFD", "Prüfung_1")
    composed = unicodedata.normalize("NFC", "Prüfung_2")
    data = RecordingSet(
        [
            _vibration_with_temperature(decomposed, 21.0, 8),
            _vibration_with_temperature(composed, 21.0, 9),
        ]
    )
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "recording,label\n"
        f"{unicodedata.normalize('NFC', decomposed)},1\n"
        f"{unicodedata.normalize('NFD', composed)},0\n",
        encoding="utf-8",
    )

    result = grindwatch.evaluate(model, data, labels=labels)

    table = result.scored.recordings.set_index("recording")
    assert table.loc[decomposed, "label"] == 1
    assert table.loc[composed, "label"] == 0


def test_score_checks_window_table_path_first(tmp_path):
    _small_model(tmp_path / "model")
    data = tmp_path / "data"
    data.mkdir()
    recording = _vibration_with_temperature("cycle_9", 21.0, 9)
    frame = pd.DataFrame(recording.data.T, columns=recording.channels)
    frame.insert(0, "time", np.arange(recording.n_samples) / 1000.0)
    frame.to_csv(data / "cycle_9.csv", index=False)
    output = tmp_path / "scores.csv"
    output.write_text("earlier results\n")
    (tmp_path / "scores.windows.csv").mkdir()

    result = CliRunner().invoke(
        app,
        ["score", str(data), "--model", str(tmp_path / "model")]
        + ["--output", str(output)],
    )

    assert result.exit_code == 2, result.output
    assert "scores.windows.csv: output is a folder" in " ".join(result.output.split())
    assert output.read_text() == "earlier results\n"


def test_folder_walk_leaves_out_mlflow_artifacts(tmp_path):
    recording = _vibration_with_temperature("cycle_1", 21.0, 1)
    frame = pd.DataFrame(recording.data.T, columns=recording.channels)
    frame.insert(0, "time", np.arange(recording.n_samples) / 1000.0)
    frame.to_csv(tmp_path / "cycle_1.csv", index=False)
    # What two earlier 'grindwatch train .' runs leave in the working folder.
    scores = pd.DataFrame({"n_windows": [16, 16], "score": [0.4, 0.5]})
    for store, run in (("mlartifacts", "run_a"), ("mlruns", "run_b")):
        artifacts = tmp_path / store / run / "artifacts"
        artifacts.mkdir(parents=True)
        scores.to_csv(artifacts / "training_recordings.csv", index=False)

    recordings = grindwatch.load_recordings(tmp_path, {"data.strict": True})

    assert [r.name for r in recordings.recordings] == ["cycle_1"]
    assert recordings.skipped == []


def test_section_override_keeps_other_settings(tmp_path):
    settings = tmp_path / "grindwatch.yaml"
    settings.write_text("windows:\n  length: 256\n")

    config = load_config(settings).with_overrides({"windows": {"hop": 128}})

    assert config.windows.length == 256
    assert config.windows.hop == 128


def test_set_conflicting_with_option_rejected(tmp_path):
    cases = [
        (["--detector", "pca", "--set", "detector.family=knn"], "--detector"),
        (["--window", "256", "--set", "windows={length: 128}"], "--window"),
        (["--no-track", "--set", "tracking.enabled=true"], "--no-track"),
    ]
    for arguments, flag in cases:
        result = CliRunner().invoke(app, ["train", str(tmp_path), *arguments])

        output = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert f"and {flag} give" in output
        assert "different values" in output


def test_set_null_beside_option_rejected(tmp_path):
    # A null inside a --set section replaced the option's value and was then
    # skipped as unset, so the option was dropped without a message.
    arguments = ["--sample-rate", "1000", "--set", "data={sample_rate: null}"]

    result = CliRunner().invoke(app, ["train", str(tmp_path), *arguments])

    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "and --sample-rate give" in output
    assert "different values" in output


def test_set_section_beside_option_keeps_both(tmp_path):
    data = RecordingSet(
        [_vibration_with_temperature(f"cycle_{i}", 20.0 + i, i) for i in range(3)]
    )
    folder = tmp_path / "data"
    folder.mkdir()
    for recording in data.recordings:
        frame = pd.DataFrame(recording.data.T, columns=recording.channels)
        frame.insert(0, "time", np.arange(recording.n_samples) / 1000.0)
        frame.to_csv(folder / f"{recording.name}.csv", index=False)

    result = CliRunner().invoke(
        app,
        ["train", str(folder), "--no-track", "--detector", "pca"]
        + ["--window", "256", "--set", "windows={hop: 128}"],
    )

    assert result.exit_code == 0, result.output
    # 2048 samples in windows of 256, 128 apart: 15 windows per recording.
    assert "Trained pca on 3 recordings (45 windows" in " ".join(result.output.split())


def test_union_setting_error_shown_once():
    with pytest.raises(ConfigError) as raised:
        Config().with_overrides({"detector.pca.n_components": "abc"})

    message = str(raised.value)
    assert "detector.pca.n_components: expected a number" in message
    assert message.count("expected a number") == 1
    assert ".float" not in message
    assert ".int" not in message


@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
def test_spark_score_without_venv_on_path(tmp_path):
    pytest.importorskip("pyspark", reason="pyspark is not installed (extra 'spark')")
    java = shutil.which("java")
    if java is None:
        pytest.skip("Spark needs a Java runtime; none is on PATH")
    _small_model(tmp_path / "model")
    data = tmp_path / "data"
    data.mkdir()
    recording = _vibration_with_temperature("cycle_9", 21.0, 9)
    frame = pd.DataFrame(recording.data.T, columns=recording.channels)
    frame.insert(0, "time", np.arange(recording.n_samples) / 1000.0)
    frame.to_csv(data / "cycle_9.csv", index=False)
    # As from a service that runs .venv/bin/grindwatch without activating the
    # venv: the python3 on PATH is another interpreter, here one that fails.
    other_bin = tmp_path / "bin"
    other_bin.mkdir()
    other_python = other_bin / "python3"
    other_python.write_text("#!/bin/sh\necho 'not the venv python' >&2\nexit 1\n")
    other_python.chmod(0o755)
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")
    }
    environment["PATH"] = f"{other_bin}{os.pathsep}{Path(java).parent}"
    command = [sys.executable, "-m", "grindwatch", "spark-score", str(data)]
    command += ["--model", str(tmp_path / "model"), "--output", str(tmp_path / "out")]

    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out").is_dir()


def test_unwritable_output_fails_before_training():
    # sysfs takes no new regular files, for root too, unlike a folder whose
    # permission bits root would ignore.
    if not Path("/sys/kernel").is_dir():
        pytest.skip("needs a Linux /sys")
    training = RecordingSet(
        [_vibration_with_temperature(f"cycle_{i}", 20.0 + i, i) for i in range(3)]
    )
    settings = {
        "windows.length": 256,
        "detector.family": "pca",
        "tracking.enabled": False,
    }

    with pytest.raises(ConfigError) as raised:
        grindwatch.train(training, settings, output="/sys/grindwatch-model")

    message = str(raised.value)
    assert message.startswith("/sys/grindwatch-model: cannot write there")
    assert "/sys does not take new files" in message
