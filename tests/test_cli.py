"""The grindwatch command: exit codes and key phrases, MLflow writing to tmp_path."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from grindwatch.cli import app
from tests.conftest import make_cycle, write_cycles
from tests.servers import sqlite_tracking_server  # noqa: F401 - fixture

runner = CliRunner()
FAST = ["--window", "256", "--epochs", "3", "--set", "frontend.n_bands=16"]


def _train(folder, tmp_path, *extra: str):  # noqa: ANN001, ANN202
    model = tmp_path / "model"
    result = runner.invoke(app, ["train", str(folder), "-o", str(model), *FAST, *extra])
    assert result.exit_code == 0, result.output
    return model, result


@pytest.mark.new_tracking_store
def test_train_prints_threshold_and_run(cycle_folders, tmp_path):
    _, result = _train(cycle_folders["good"], tmp_path)

    assert "Trained autoencoder on 8 recordings" in result.output
    assert re.search(
        r"Scored with this model, \d of the 8 training recordings (is|are) flagged",
        " ".join(result.output.split()),
    )
    assert "MLflow run" in result.output
    assert (tmp_path / "mlflow.db").is_file()


def test_train_hint_names_other_store(cycle_folders, tmp_path):
    store = f"sqlite:///{tmp_path / 'other.db'}"
    _, trained = _train(cycle_folders["good"], tmp_path, "--tracking-uri", store)
    # The console wraps long lines, so search the output with its lines joined.
    output = " ".join(trained.output.split())
    hint = re.search(r"Score new data: grindwatch (score .*?) DATA", output)

    assert hint is not None, trained.output
    assert f"--tracking-uri {store}" in hint.group(1)

    # The printed command must find the model in other.db, not in the default store.
    command = hint.group(1).split()
    scored = runner.invoke(app, [*command, str(cycle_folders["bad"])])
    assert scored.exit_code == 0, scored.output


def test_train_json_output(cycle_folders, tmp_path):
    _, result = _train(cycle_folders["good"], tmp_path, "--json")

    payload = json.loads(result.stdout)
    assert payload["model_uri"].startswith("runs:/")
    assert payload["threshold"]["method"] in {"gmm", "mad"}


def test_train_json_stays_json_with_tracking_server(
    cycle_folders,
    tmp_path,
    sqlite_mlflow_server,
):
    arguments = ["--detector", "pca", "--tracking-uri", sqlite_mlflow_server, "--json"]

    _, result = _train(cycle_folders["good"], tmp_path, *arguments)

    # MLflow writes a "View run" line to stdout when a run on a server ends.
    assert "View run" not in result.stdout
    payload = json.loads(result.stdout)
    assert payload["tracking_uri"] == sqlite_mlflow_server


def test_score_writes_recording_and_window_tables(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path)

    result = runner.invoke(
        app,
        [
            "score",
            str(cycle_folders["root"]),
            "--model",
            str(model),
            "--output",
            str(tmp_path / "out.parquet"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "recordings and" in result.output
    recordings = pd.read_parquet(tmp_path / "out.parquet")
    windows = pd.read_parquet(tmp_path / "out.windows.parquet")
    assert len(recordings) == 11
    assert windows["recording"].nunique() == 11


def test_score_json_flags_bad_cycles(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--aggregate", "max")

    result = runner.invoke(
        app, ["score", str(cycle_folders["bad"]), "-m", str(model), "--json"]
    )

    payload = json.loads(result.stdout)
    assert payload["summary"]["n_recordings"] == 3
    assert payload["summary"]["n_flagged_recordings"] == 3


def _strict_json(text: str):  # noqa: ANN202
    """Parse ``text`` as strict JSON, which has no NaN or Infinity."""

    def reject(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=reject)


def test_score_json_has_null_for_missing_label(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--detector", "pca")
    # A folder that names no class beside class-named ones: its recording has no
    # label, while the others have one.
    other = cycle_folders["root"] / "line2"
    other.mkdir()
    first = sorted(cycle_folders["good"].glob("*.csv"))[0]
    (other / "cycle_900.csv").write_bytes(first.read_bytes())

    result = runner.invoke(
        app, ["score", str(cycle_folders["root"]), "-m", str(model), "--json"]
    )

    assert result.exit_code == 0, result.output
    rows = _strict_json(result.stdout)["recordings"]
    unlabeled = [row for row in rows if row["recording"] == "cycle_900"]
    assert unlabeled[0]["label"] is None
    assert {row["label"] for row in rows} == {0, 1, None}


def test_evaluate_json_one_class_gives_null_auc(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--detector", "pca")

    result = runner.invoke(
        app,
        ["evaluate", str(cycle_folders["root"] / "good"), "-m", str(model), "--json"],
    )

    assert result.exit_code == 0, result.output
    payload = _strict_json(result.stdout)
    assert payload["recordings"]["auc_roc"] is None
    assert payload["recordings"]["n_anomalous"] == 0


def test_json_names_what_the_human_output_names(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--detector", "pca")
    output = tmp_path / "today.csv"
    bad = str(cycle_folders["bad"])

    scored = runner.invoke(app, ["score", bad, "-m", str(model), "-o", str(output)])
    scored_json = runner.invoke(
        app, ["score", bad, "-m", str(model), "-o", str(output), "--json"]
    )
    evaluated = runner.invoke(app, ["evaluate", bad, "-m", str(model), "--json"])

    assert f"Wrote {output}" in " ".join(scored.output.split())
    payload = _strict_json(scored_json.stdout)
    assert payload["output"] == str(output)
    assert payload["windows_output"] == str(tmp_path / "today.windows.csv")
    metrics = _strict_json(evaluated.stdout)
    assert metrics["run_id"]
    assert metrics["tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_score_with_runs_uri(cycle_folders, tmp_path):
    _, trained = _train(cycle_folders["good"], tmp_path, "--json")
    uri = json.loads(trained.stdout)["model_uri"]

    result = runner.invoke(
        app, ["score", str(cycle_folders["bad"]), "-m", uri, "--json"]
    )

    assert result.exit_code == 0, result.output


def test_score_table_names_top_channel(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--no-track")
    output = tmp_path / "scores.csv"

    result = runner.invoke(
        app, ["score", str(cycle_folders["root"]), "-m", str(model), "-o", str(output)]
    )

    assert result.exit_code == 0, result.output
    assert "top channel" in result.output
    scores = pd.read_csv(output)
    flagged = scores[scores["flag"]]
    assert len(flagged) > 0
    for row in flagged.itertuples():
        shown = f"{row.top_channel} ({row.top_channel_share:.0%})"
        assert re.search(rf"{row.recording} .*{re.escape(shown)}", result.output)
    # Normal recordings get no top channel, as nothing in them needs explaining.
    for row in scores[~scores["flag"]].itertuples():
        line = next(x for x in result.output.splitlines() if f" {row.recording} " in x)
        assert "%" not in line


def test_evaluate_reports_metrics_from_folder_names(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--aggregate", "max")

    result = runner.invoke(
        app, ["evaluate", str(cycle_folders["root"]), "-m", str(model), "--json"]
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["recordings"]["auc_roc"] == pytest.approx(1.0)
    assert payload["recordings"]["f1"] == pytest.approx(1.0)
    assert payload["run_id"]
    scores = pd.DataFrame(payload["scores"])
    flagged = scores["score"] > payload["threshold"]
    assert len(scores) == 11
    assert (scores["flag"] == flagged).all()
    assert set(scores.loc[scores["flag"], "label"]) == {1}


def test_evaluate_notes_inherited_window_labels(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--no-track")

    table = runner.invoke(
        app, ["evaluate", str(cycle_folders["root"]), "-m", str(model), "--no-track"]
    )
    payload = runner.invoke(
        app,
        ["evaluate", str(cycle_folders["root"]), "-m", str(model), "--no-track"]
        + ["--json"],
    )

    assert table.exit_code == 0, table.output
    output = " ".join(table.output.split())
    assert "Window labels are their recordings' labels" in output
    assert json.loads(payload.stdout)["window_labels"] == "recordings"


def test_evaluate_sample_labels_get_no_note(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--no-track")
    (path,) = write_cycles(tmp_path / "marked", 1, start_seed=100, anomaly="spike")
    frame = pd.read_csv(path)
    # make_cycle puts the spike in the third quarter of the cycle.
    frame["anomaly"] = 0
    frame.loc[1024 : 1024 + 511, "anomaly"] = 1
    frame.to_csv(path, index=False)
    command = ["evaluate", str(path), "-m", str(model), "--no-track"]

    table = runner.invoke(app, command)
    payload = runner.invoke(app, [*command, "--json"])

    assert table.exit_code == 0, table.output
    assert "Window labels are" not in " ".join(table.output.split())
    assert json.loads(payload.stdout)["window_labels"] == "samples"


def test_evaluate_table_gets_no_window_note(feature_table, tmp_path):
    model = tmp_path / "table-model"
    trained = runner.invoke(
        app,
        ["train", str(feature_table), "--table", "--detector", "iforest"]
        + ["-o", str(model), "--no-track"],
    )
    assert trained.exit_code == 0, trained.output

    # Each row is a recording with one window, so windows carry their own label.
    result = runner.invoke(
        app, ["evaluate", str(feature_table), "-m", str(model), "--no-track"]
    )

    assert result.exit_code == 0, result.output
    assert "Window labels are" not in " ".join(result.output.split())


def test_evaluate_table_metrics_one_level(feature_table, tmp_path):
    model = tmp_path / "table-model"
    trained = runner.invoke(
        app,
        ["train", str(feature_table), "--table", "--detector", "iforest"]
        + ["-o", str(model), "--no-track"],
    )
    assert trained.exit_code == 0, trained.output

    result = runner.invoke(
        app, ["evaluate", str(feature_table), "-m", str(model), "--no-track"]
    )

    assert result.exit_code == 0, result.output
    levels = [
        line.split("│")[1].strip()
        for line in result.output.splitlines()
        if line.startswith("│")
        and line.split("│")[1].strip() in {"windows", "recordings", "rows"}
    ]
    # A row is one window, so a windows level would repeat the rows level.
    assert levels == ["rows"]


def test_table_output_counts_rows(feature_table, tmp_path):
    model = tmp_path / "table-model"
    trained = runner.invoke(
        app,
        ["train", str(feature_table), "--table", "--detector", "iforest"]
        + ["-o", str(model), "--no-track"],
    )
    assert trained.exit_code == 0, trained.output
    assert "Trained iforest on 304 rows (6 features)." in trained.output
    # Five cycles far from the training rows, as from another operating point.
    shifted = pd.read_parquet(feature_table).head(5).drop(columns="anomaly") + 8.0
    batch = tmp_path / "batch.parquet"
    shifted.to_parquet(batch)

    result = runner.invoke(app, ["score", str(batch), "-m", str(model)])

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "5 of 5 rows flagged." in output
    assert "5 of the 5 scored rows are flagged" in output
    # A row is one window, so window counts would only repeat the row counts.
    assert "flagged windows" not in output
    assert "windows flagged" not in output
    assert "of all scored windows" not in output


def test_table_one_row_and_trained_rows(feature_table, tmp_path):
    """One scored row reads "1 row", and rows seen in training are called rows."""
    model = tmp_path / "table-model"
    trained = runner.invoke(
        app,
        ["train", str(feature_table), "--table", "--detector", "iforest"]
        + ["-o", str(model), "--no-track"],
    )
    one = tmp_path / "one.parquet"
    pd.read_parquet(feature_table).head(1).drop(columns="anomaly").to_parquet(one)

    scored = runner.invoke(app, ["score", str(one), "-m", str(model)])
    evaluated = runner.invoke(
        app, ["evaluate", str(feature_table), "-m", str(model), "--no-track"]
    )

    assert trained.exit_code == 0, trained.output
    assert scored.exit_code == 0, scored.output
    output = " ".join(scored.output.split())
    assert "of 1 row flagged." in output
    assert "rows" not in output
    assert evaluated.exit_code == 0, evaluated.output
    output = " ".join(evaluated.output.split())
    assert "304 of the labeled rows are rows the model was trained on" in output
    assert "evaluate on rows left out of training" in output
    assert "recording" not in output.lower()


def test_table_score_listing_says_rows(feature_table, tmp_path):
    model = tmp_path / "table-model"
    frame = pd.read_parquet(feature_table)
    # A copied column, so that training warns about repeated feature columns.
    frame["f0_copy"] = frame["f0"]
    data = tmp_path / "features.parquet"
    frame.to_parquet(data)
    trained = runner.invoke(
        app,
        ["train", str(data), "--table", "--detector", "iforest"]
        + ["-o", str(model), "--no-track"],
    )
    unlabeled = tmp_path / "unlabeled.parquet"
    frame.drop(columns="anomaly").tail(6).to_parquet(unlabeled)

    scored = runner.invoke(app, ["score", str(unlabeled), "-m", str(model)])
    listed = runner.invoke(
        app, ["score", str(unlabeled), "-m", str(model)] + ["--show", "2"]
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("recording,label\nunlabeled#0,0\nunlabeled#1,1\n")
    evaluated = runner.invoke(
        app,
        ["evaluate", str(unlabeled), "-m", str(model), "--no-track"]
        + ["--labels", str(labels)],
    )

    assert trained.exit_code == 0, trained.output
    assert "exactly in every training row" in " ".join(trained.output.split())
    assert scored.exit_code == 0, scored.output
    output = " ".join(scored.output.split())
    assert "Rows by score" in output
    assert "recording" not in output.lower()
    assert listed.exit_code == 0, listed.output
    assert "... 4 more rows;" in " ".join(listed.output.split())
    assert evaluated.exit_code == 0, evaluated.output
    output = " ".join(evaluated.output.split())
    assert "4 rows carry no label and are left out of the metrics" in output
    assert "recording" not in output.lower()


def test_table_training_warning_counts_rows(feature_table):
    command = ["train", str(feature_table), "--table", "--detector", "pca"]
    command += ["--threshold", "percentile", "--set", "threshold.percentile=50"]

    result = runner.invoke(app, [*command, "--no-track"])

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert re.search(r"the threshold flags 1\d\d of the 304 training rows", output)
    assert "window scores" not in output
    assert "longer windows" not in output


def test_evaluate_with_labels_csv(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("recording,label\ncycle_000,OK\ncycle_100,NOK\n")

    result = runner.invoke(
        app,
        [
            "evaluate",
            str(cycle_folders["good"] / "cycle_000.csv"),
            str(cycle_folders["bad"] / "cycle_100.csv"),
            "-m",
            str(model),
            "--labels",
            str(labels),
            "--no-track",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "AUC-ROC" in result.output


def test_labels_file_leaves_some_unlabeled(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path)
    labels = tmp_path / "labels.csv"
    # "NA" is a recording name here, not a missing value.
    labels.write_text("recording,label\ncycle_000,OK\ncycle_100,NOK\nNA,OK\n")
    files = [
        cycle_folders["good"] / "cycle_000.csv",
        cycle_folders["good"] / "cycle_001.csv",
        cycle_folders["bad"] / "cycle_100.csv",
    ]

    result = runner.invoke(
        app,
        ["evaluate", *map(str, files), "-m", str(model), "--labels", str(labels)]
        + ["--no-track", "--json"],
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["unlabeled"] == ["cycle_001"]
    assert payload["recordings"]["n"] == 2
    assert "1 of the 3 labels name no scored recording, e.g. ['NA']" in result.output


def test_unlabeled_hint_names_labels_file(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--no-track")
    labels = tmp_path / "labels.csv"
    labels.write_text("recording,label\ncycle_000,OK\ncycle_100,NOK\n")
    # cycle_001 lies in good/, but the labels file replaces folder labels.
    files = [
        cycle_folders["good"] / "cycle_000.csv",
        cycle_folders["good"] / "cycle_001.csv",
        cycle_folders["bad"] / "cycle_100.csv",
    ]

    result = runner.invoke(
        app,
        ["evaluate", *map(str, files), "-m", str(model), "--labels", str(labels)]
        + ["--no-track"],
    )

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "1 recording carries no label and is left out" in output
    assert f"Add them to {labels}." in output
    assert "class-named folders" not in output


# The test settings turn warnings into errors; here the CLI must log this one.
@pytest.mark.filterwarnings("default:channels .* are constant:UserWarning")
def test_library_warning_prints_as_message(tmp_path):
    paths = write_cycles(tmp_path / "cycles", 4)
    for path in paths:
        frame = pd.read_csv(path)
        frame["current"] = 2.5  # a dead sensor: the scaler warns about it
        frame.to_csv(path, index=False)
    command = ["train", str(tmp_path / "cycles"), "--window", "256"]

    result = runner.invoke(app, [*command, "--detector", "pca", "--no-track"])

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "channels ['current'] are constant in the training data" in output
    # The warning is a message to the user, not a pointer into the source.
    assert "UserWarning" not in output
    assert "scaling.py" not in output
    assert "pipeline.py" not in output


def test_untracked_model_logs_to_named_store(cycle_folders, tmp_path):
    from mlflow import MlflowClient

    model, _ = _train(cycle_folders["good"], tmp_path, "--no-track")
    command = ["evaluate", str(cycle_folders["root"]), "-m", str(model)]
    store = f"sqlite:///{tmp_path / 'evaluations.db'}"

    untracked = runner.invoke(app, command)
    tracked = runner.invoke(app, [*command, "--tracking-uri", store])

    assert untracked.exit_code == 0, untracked.output
    assert "Not logged to MLflow: the model was trained with tracking off" in (
        " ".join(untracked.output.split())
    )
    assert tracked.exit_code == 0, tracked.output
    logged = re.search(r"Logged to MLflow run (\w+) in (\S+)", tracked.output)
    assert logged is not None, tracked.output
    assert logged.group(2) == store
    run = MlflowClient(store).get_run(logged.group(1))
    assert run.data.tags["grindwatch.kind"] == "evaluate"
    assert "recording_f1" in run.data.metrics


def _write_short_cycles(folder, count: int, start_seed: int):  # noqa: ANN001, ANN202
    """Write ``count`` cycles of 100 samples, shorter than a 256-sample window."""
    for path in write_cycles(folder, count, start_seed=start_seed):
        pd.read_csv(path).head(100).to_csv(path, index=False)


def test_train_counts_only_trained_recordings(tmp_path):
    write_cycles(tmp_path / "cycles", 4)
    _write_short_cycles(tmp_path / "cycles", 4, start_seed=10)
    command = ["train", str(tmp_path / "cycles"), "--window", "256"]
    command += ["--detector", "pca", "--no-track"]

    result = runner.invoke(app, command)

    assert result.exit_code == 0, result.output
    assert "Trained pca on 4 recordings (32 windows" in result.output
    assert "skipped 4, listed below" in result.output
    assert result.output.count("fewer than one window of 256") >= 4


def test_train_json_counts_only_trained_recordings(tmp_path):
    write_cycles(tmp_path / "cycles", 4)
    _write_short_cycles(tmp_path / "cycles", 4, start_seed=10)
    command = ["train", str(tmp_path / "cycles"), "--window", "256"]
    command += ["--detector", "pca", "--no-track", "--json"]

    result = runner.invoke(app, command)

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_recordings"] == 4
    assert payload["n_skipped"] == 4
    assert len(payload["skipped"]) == 4
    assert payload["training"]["n_recordings"] == 4


def _evaluation_folder(root):  # noqa: ANN001, ANN202
    """good/ with 2 normal cycles, bad/ with 2 faulty and 5 short faulty cycles."""
    write_cycles(root / "good", 2, start_seed=200)
    write_cycles(root / "bad", 1, start_seed=100, anomaly="spike")
    write_cycles(root / "bad", 1, start_seed=101, anomaly="level")
    for path in write_cycles(root / "bad", 5, start_seed=110, anomaly="tone"):
        pd.read_csv(path).head(100).to_csv(path, index=False)
    return root


def test_evaluate_json_lists_skipped_labels(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--no-track")
    data = _evaluation_folder(tmp_path / "labeled")

    result = runner.invoke(
        app, ["evaluate", str(data), "-m", str(model), "--json", "--no-track"]
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["recordings"]["n"] == 4
    assert payload["recordings"]["n_anomalous"] == 2
    assert payload["not_evaluated"] == {"normal": 0, "anomalous": 5, "unlabeled": 0}
    assert len(payload["skipped"]) == 5
    for item in payload["skipped"]:
        assert item["label"] == 1
        assert "fewer than one window of 256" in item["reason"]
        assert "/bad/" in item["path"]


def test_evaluate_table_names_skipped_recordings(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--no-track")
    data = _evaluation_folder(tmp_path / "labeled")

    result = runner.invoke(app, ["evaluate", str(data), "-m", str(model), "--no-track"])

    assert result.exit_code == 0, result.output
    expected = "Not evaluated: 5 recordings or files (0 normal, 5 anomalous, 0"
    assert expected in result.output
    assert result.output.count("(anomalous): has 100 samples") == 5


def test_evaluate_skipped_labels_from_labels_file(cycle_folders, tmp_path):
    from grindwatch.evaluate import evaluate

    model, _ = _train(cycle_folders["good"], tmp_path, "--no-track")
    data = _evaluation_folder(tmp_path / "labeled")
    labels = {"cycle_200": 0, "cycle_100": 1, "cycle_110": 0, "cycle_111": 1}

    result = evaluate(str(model), [data], labels=labels, track=False)

    by_name = {item["path"].rsplit("/", 1)[1]: item for item in result.skipped}
    assert by_name["cycle_110.csv"]["label"] == 0
    assert by_name["cycle_111.csv"]["label"] == 1
    assert by_name["cycle_112.csv"]["label"] is None
    assert result.skipped_counts() == {"normal": 1, "anomalous": 1, "unlabeled": 3}


def test_bad_input_gives_one_line_error(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path / "missing")])

    assert result.exit_code == 2
    assert "no such file or folder" in result.output
    assert "Traceback" not in result.output


def test_unusable_tracking_uri_gives_one_line_error(cycle_folders):
    arguments = ["--detector", "pca", "--tracking-uri", "htp://127.0.0.1:1"]

    result = runner.invoke(app, ["train", str(cycle_folders["good"]), *arguments])

    assert result.exit_code == 2
    assert "cannot use the MLflow tracking store htp://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output


def test_invalid_setting_gives_one_line_error(cycle_folders):
    result = runner.invoke(
        app, ["train", str(cycle_folders["good"]), "--set", "windows.length=-3"]
    )

    assert result.exit_code == 2
    assert "windows.length" in result.output


@pytest.mark.parametrize("setting", ["windows.length=", "windows.lenght=null"])
def test_set_without_value_is_rejected(cycle_folders, setting):
    result = runner.invoke(app, ["train", str(cycle_folders["good"]), "--set", setting])

    assert result.exit_code == 2
    assert f"--set {setting!r} has no value" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("setting", "detector"),
    [
        ("detector.iforest.max_samples=0", "iforest"),
        ("detector.pca.n_components=0", "pca"),
        ("detector.pca.n_components=1.0", "pca"),
        ("detector.pca.n_components=-2", "pca"),
    ],
)
def test_invalid_detector_setting_rejected(cycle_folders, setting, detector):
    arguments = ["--detector", detector, "--window", "256", "--set", setting]

    result = runner.invoke(app, ["train", str(cycle_folders["good"]), *arguments])

    assert result.exit_code == 2, result.output
    assert setting.split("=")[0] in result.output
    assert "Traceback" not in result.output


def test_repeated_channel_rejected(cycle_folders):
    channels = "vib_x,current,vib_x"
    arguments = ["--detector", "iforest", "--window", "256", "--channels", channels]

    result = runner.invoke(app, ["train", str(cycle_folders["good"]), *arguments])

    assert result.exit_code == 2, result.output
    assert "data.channels: lists ['vib_x'] more than once" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ("", "--channels '' names no channel"),
        (" , ,", "--channels ' , ,' names no channel"),
        ("vib_x,,current", "contains an empty name"),
        ("vib_x,", "contains an empty name"),
    ],
)
def test_empty_channels_option_rejected(cycle_folders, channels, message):
    arguments = ["--detector", "iforest", "--window", "256", "--channels", channels]

    result = runner.invoke(
        app, ["train", str(cycle_folders["good"]), *arguments, "--no-track"]
    )

    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_empty_channel_list_in_set_rejected(cycle_folders):
    arguments = ["--detector", "iforest", "--set", "data.channels=[]", "--no-track"]

    result = runner.invoke(app, ["train", str(cycle_folders["good"]), *arguments])

    assert result.exit_code == 2, result.output
    assert "data.channels: lists no channels" in " ".join(result.output.split())


@pytest.mark.parametrize("rate", ["inf", "nan"])
def test_non_finite_sample_rate_rejected(tmp_path, rate):
    for seed in range(3):
        np.save(tmp_path / f"cycle_{seed}.npy", make_cycle(seed, 1024))
    arguments = ["--detector", "iforest", "--window", "256", "--sample-rate", rate]

    result = runner.invoke(app, ["train", str(tmp_path), "--no-track", *arguments])

    assert result.exit_code == 2, result.output
    assert "data.sample_rate: Input should be a finite number" in result.output


def test_config_file_and_override(cycle_folders, tmp_path):
    config = tmp_path / "gw.yaml"
    config.write_text("windows:\n  length: 128\ndetector:\n  family: pca\n")

    result = runner.invoke(
        app,
        [
            "train",
            str(cycle_folders["good"]),
            "-c",
            str(config),
            "--window",
            "256",
            "--json",
            "--no-track",
        ],
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["training"]["n_windows"] == 8 * 8


def test_config_command_prints_defaults():
    result = runner.invoke(app, ["config"])

    assert result.exit_code == 0
    assert "detector:" in result.stdout
    assert "family: autoencoder" in result.stdout


def test_demo_runs_on_bundled_recordings(tmp_path):
    # A space in the folder: the printed mlflow command must still run as pasted.
    workdir = tmp_path / "demo runs"

    result = runner.invoke(app, ["demo", "--workdir", str(workdir)])

    assert result.exit_code == 0, result.output
    assert "experiment_07" in result.output
    assert "Evaluation at the model's own threshold" in result.output
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    assert f"mlflow ui --backend-store-uri '{store}'" in result.output
    assert "Cycle check off: 12 training recordings" in result.output
    assert (workdir / "mlflow.db").is_file()
    assert (workdir / "model" / "model.pkl").is_file()


def test_partly_labeled_data_scores_and_evaluates(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--aggregate", "max")
    mixed = tmp_path / "mixed"
    (mixed / "good").mkdir(parents=True)
    (mixed / "line2").mkdir()
    for source in sorted(cycle_folders["good"].glob("*.csv"))[:2]:
        (mixed / "good" / source.name).write_bytes(source.read_bytes())
    for source in sorted(cycle_folders["bad"].glob("*.csv")):
        (mixed / "line2" / source.name).write_bytes(source.read_bytes())

    scored = runner.invoke(app, ["score", str(mixed), "-m", str(model)])
    evaluated = runner.invoke(
        app, ["evaluate", str(mixed), "-m", str(model), "--no-track"]
    )

    assert scored.exit_code == 0, scored.output
    assert "Traceback" not in scored.output
    assert "normal" in scored.output
    assert evaluated.exit_code == 0, evaluated.output
    assert "3 recordings carry no label" in evaluated.output
    assert "all normal" in evaluated.output
    as_json = runner.invoke(
        app, ["evaluate", str(mixed), "-m", str(model), "--no-track", "--json"]
    )
    payload = json.loads(as_json.stdout)
    assert sorted(payload["unlabeled"]) == ["cycle_100", "cycle_101", "cycle_102"]
    assert payload["recordings"]["n"] == 2


def test_score_rejects_output_name_before_scoring(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path)

    result = runner.invoke(
        app,
        [
            "score",
            str(tmp_path / "nothing-here"),
            "-m",
            str(model),
            "-o",
            str(tmp_path / "out.xlsx"),
        ],
    )

    # The data path does not exist: only the early check can explain the exit.
    assert result.exit_code == 2
    assert "must end in .csv or .parquet" in result.output


def test_score_reading_option_from_set(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path)
    gappy = tmp_path / "gappy.csv"
    frame = pd.read_csv(sorted(cycle_folders["good"].glob("*.csv"))[0])
    frame.iloc[100, 1] = float("nan")
    frame.to_csv(gappy, index=False)

    rejected = runner.invoke(
        app, ["score", str(gappy), "-m", str(model), "--strict", "--json"]
    )
    repaired = runner.invoke(
        app,
        ["score", str(gappy), "-m", str(model), "--json"]
        + ["--set", "data.nan_policy=interpolate"],
    )
    fixed = runner.invoke(
        app, ["score", str(gappy), "-m", str(model), "--set", "windows.length=64"]
    )

    assert rejected.exit_code == 2
    assert "--set data.nan_policy=interpolate" in rejected.output
    assert repaired.exit_code == 0, repaired.output
    assert json.loads(repaired.stdout)["summary"]["n_recordings"] == 1
    assert fixed.exit_code == 2
    assert "windows.length cannot change when scoring" in fixed.output
    unknown = runner.invoke(
        app, ["score", str(gappy), "-m", str(model), "--set", "data.bogus=1"]
    )
    assert unknown.exit_code == 2
    assert "data.bogus: unknown setting" in unknown.output
    comma = runner.invoke(
        app,
        ["score", str(gappy), "-m", str(model), "--set", "data.delimiter=,"]
        + ["--set", "data.nan_policy=interpolate"],
    )
    assert "Traceback" not in comma.output
    assert comma.exit_code == 0, comma.output


def test_rate_errors_name_the_scoring_fix(cycle_folders, tmp_path):
    trained_with_rate = tmp_path / "no_time"
    for path in sorted(cycle_folders["good"].glob("*.csv")):
        trained_with_rate.mkdir(exist_ok=True)
        frame = pd.read_csv(path).drop(columns="time")
        frame.to_csv(trained_with_rate / path.name, index=False)
    model, _ = _train(
        trained_with_rate, tmp_path, "--sample-rate", "1000", "--detector", "pca"
    )
    frame = pd.read_csv(sorted(cycle_folders["good"].glob("*.csv"))[0])
    frame["time"] = frame["time"] / 2  # 2 kHz
    fast = tmp_path / "fast.csv"
    frame.to_csv(fast, index=False)
    command = ["score", str(fast), "-m", str(model)]

    stated = runner.invoke(app, command)
    unset = runner.invoke(app, command + ["--set", "data.sample_rate=null"])
    resampled = runner.invoke(
        app,
        command + ["--set", "data.sample_rate=null", "--set", "data.resample=true"],
    )

    assert stated.exit_code == 2
    assert "pass --set data.sample_rate=null" in " ".join(stated.output.split())
    assert unset.exit_code == 2
    assert "differs from the model's 1000" in " ".join(unset.output.split())
    assert "--set data.resample=true" in " ".join(unset.output.split())
    assert resampled.exit_code == 0, resampled.output


def test_time_unit_and_encoding_from_cli(tmp_path):
    import grindwatch

    folder = tmp_path / "units"
    for path in write_cycles(folder, 6):
        frame = pd.read_csv(path).rename(columns={"time": "Time [s]"})
        frame.to_csv(path, index=False)
    model, _ = _train(folder, tmp_path, "--set", "detector.family=pca")
    frame = pd.read_csv(folder / "cycle_000.csv")
    latin = tmp_path / "latin.csv"
    text = "# Messung 1, 21 °C\n" + frame.to_csv(index=False)
    latin.write_bytes(text.encode("latin-1"))

    rejected = runner.invoke(app, ["score", str(latin), "-m", str(model), "--strict"])
    scored = runner.invoke(
        app,
        ["score", str(latin), "-m", str(model), "--json"]
        + ["--set", "data.encoding=latin-1"],
    )

    loaded = grindwatch.load_model(model)
    assert loaded.channels_ == ["vib_x", "vib_y", "current"]
    assert loaded.sample_rate_ == pytest.approx(1000.0)
    assert rejected.exit_code == 2
    assert "is not valid utf-8 text (byte 0xb0 on line 1)" in rejected.output
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["summary"]["n_recordings"] == 1


def test_negative_window_names_the_option(cycle_folders):
    result = runner.invoke(app, ["train", str(cycle_folders["good"]), "--window", "-5"])

    assert result.exit_code == 2
    assert "--window" in result.output


def test_error_keeps_brackets_in_names(tmp_path):
    path = tmp_path / "back.csv"
    path.write_text("Time [ms],vib\n0,0.1\n2,0.3\n1,0.2\n")

    result = runner.invoke(
        app, ["train", str(path), "--window", "2", "--detector", "knn", "--no-track"]
    )

    assert result.exit_code != 0
    assert "time column 'Time [ms]' goes backwards" in result.output


def test_score_show_hint_names_written_table(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path)
    data, out = str(cycle_folders["root"]), tmp_path / "out.csv"

    saved = runner.invoke(
        app, ["score", data, "--model", str(model), "--show", "3", "-o", str(out)]
    )
    unsaved = runner.invoke(app, ["score", data, "--model", str(model), "--show", "3"])

    assert saved.exit_code == 0, saved.output
    assert "8 more recordings; all are in" in saved.output
    assert "use --output" not in saved.output
    assert "8 more recordings; use --output to save all" in unsaved.output


def test_score_sets_timezone_for_local_times(tmp_path):
    # Local times of Berlin across the switch back to winter time at 03:00.
    utc = pd.date_range("2026-10-25 00:30:00", periods=7200, freq="1s", tz="UTC")
    local = utc.tz_convert("Europe/Berlin").tz_localize(None)
    noise = np.random.default_rng(0).standard_normal(7200)
    signal = np.sin(np.arange(7200) / 5.0) + 0.1 * noise
    frame = pd.DataFrame(
        {"timestamp": local.strftime("%Y-%m-%d %H:%M:%S"), "vib": signal}
    )
    frame.iloc[:1500].to_csv(tmp_path / "before.csv", index=False)
    frame.to_csv(tmp_path / "night.csv", index=False)
    model, _ = _train(tmp_path / "before.csv", tmp_path, "--detector", "pca")

    plain = runner.invoke(app, ["score", str(tmp_path / "night.csv"), "-m", str(model)])
    zoned = runner.invoke(
        app,
        ["score", str(tmp_path / "night.csv"), "-m", str(model), "--json"]
        + ["--set", "data.timezone=Europe/Berlin"],
    )

    assert plain.exit_code == 2
    assert "data.timezone" in plain.output
    assert zoned.exit_code == 0, zoned.output
    assert json.loads(zoned.stdout)["summary"]["n_recordings"] == 1


def test_score_refuses_to_overwrite_its_input(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path)
    recording = tmp_path / "x.csv"
    recording.write_bytes((cycle_folders["bad"] / "cycle_100.csv").read_bytes())
    before = recording.read_bytes()

    result = runner.invoke(
        app, ["score", str(recording), "-m", str(model), "-o", str(recording)]
    )

    assert result.exit_code == 2
    assert "would be lost" in " ".join(result.output.split())
    assert recording.read_bytes() == before


def test_output_under_a_file_fails_before_the_work(cycle_folders, tmp_path):
    blocker = tmp_path / "notes.csv"
    blocker.write_text("a file, not a folder\n")

    trained = runner.invoke(
        app, ["train", str(cycle_folders["good"]), "-o", str(blocker / "model"), *FAST]
    )

    assert trained.exit_code == 2
    assert "because" in trained.output
    assert "is a file" in trained.output
    # Failing before training: no MLflow run was started.
    assert "MLflow run" not in trained.output


def test_score_table_digits_near_threshold(capsys):
    from grindwatch.cli import _print_recordings

    frame = pd.DataFrame(
        {
            "recording": ["above", "below", "far"],
            "score": [0.703214, 0.703206, 0.2],
            "flag": [True, False, False],
            "flagged_windows": [3, 0, 0],
            "n_windows": [10, 10, 10],
        }
    )

    _print_recordings(frame, threshold=0.70321, limit=10)

    output = capsys.readouterr().err
    assert "threshold 0.70321)" in output
    assert "0.70321 " not in output.replace("threshold 0.70321)", "")
    assert "0.703214" in output
    assert "0.703206" in output
    assert " 0.2 " in output


def test_cycle_score_digits_near_threshold(capsys):
    from grindwatch.cli import _print_recordings

    frame = pd.DataFrame(
        {
            "recording": ["above", "below"],
            "score": [0.5, 0.4],
            "flag": [True, False],
            "flagged_windows": [0, 0],
            "n_windows": [10, 10],
            "cycle_score": [1.84412, 1.84371],
            "cycle_flag": [True, False],
            "cycle_reason": ["current: length", ""],
        }
    )

    _print_recordings(frame, threshold=1.0, limit=10, cycle_threshold=1.8439)

    output = capsys.readouterr().err
    # train and the report print this threshold with at least 4 digits.
    assert "cycle threshold 1.8439)" in output
    assert "1.8441 *" in output
    assert "1.8437 " in output
    assert "1.84 " not in output


def test_train_without_logged_model_gives_no_uri(cycle_folders, tmp_path):
    model = tmp_path / "model"
    arguments = ["train", str(cycle_folders["good"]), "-o", str(model), *FAST]
    arguments += ["--set", "tracking.log_model=false"]

    printed = runner.invoke(app, arguments)
    summary = json.loads(runner.invoke(app, [*arguments, "--json"]).stdout)

    assert printed.exit_code == 0, printed.output
    assert "MLflow run" in printed.output
    assert "runs:/" not in printed.output
    assert summary["run_id"]
    assert summary["model_uri"] is None


def test_score_flags_fault_in_last_samples(cycle_folders, tmp_path):
    # 2048 samples in windows of 300 leave a tail of 248 samples off the hop grid.
    model, _ = _train(
        cycle_folders["good"],
        tmp_path,
        "--detector",
        "knn",
        "--window",
        "300",
        "--aggregate",
        "max",
        "--no-track",
    )
    data = make_cycle(200)
    data[2, -200:] += 5.0
    frame = pd.DataFrame(data.T, columns=["vib_x", "vib_y", "current"])
    frame.insert(0, "time", np.arange(data.shape[1]) / 1000.0)
    path = tmp_path / "tail_fault.csv"
    frame.to_csv(path, index=False)

    result = runner.invoke(app, ["score", str(path), "-m", str(model), "--json"])

    assert result.exit_code == 0, result.output
    (recording,) = json.loads(result.stdout)["recordings"]
    assert recording["flag"]
    assert recording["top_channel"] == "current"
    assert recording["worst_end_s"] == pytest.approx(2.048)


def test_window_seconds_match_samples(cycle_folders, tmp_path):
    from mlflow import MlflowClient

    from grindwatch.pipeline import load_model, score

    base = ["train", str(cycle_folders["good"]), "--detector", "pca"]
    seconds = runner.invoke(
        app,
        [*base, "-o", str(tmp_path / "s"), "--window-seconds", "0.256"]
        + ["--hop-seconds", "0.128"],
    )
    samples = runner.invoke(
        app,
        [*base, "-o", str(tmp_path / "n"), "--window", "256", "--hop", "128"],
    )

    assert seconds.exit_code == 0, seconds.output
    assert samples.exit_code == 0, samples.output
    in_seconds = load_model(tmp_path / "s")
    assert (in_seconds.window_length_, in_seconds.hop_) == (256, 128)
    bad = cycle_folders["bad"]
    np.testing.assert_array_equal(
        score(in_seconds, bad).recordings["score"],
        score(load_model(tmp_path / "n"), bad).recordings["score"],
    )
    # The MLflow run shows the window in samples that the model uses.
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(
        in_seconds.run_id_
    )
    assert run.data.params["windows.length"] == "256"
    assert run.data.params["windows.seconds"] == "None"
    assert run.data.metrics["window_hop"] == 128


def test_window_in_both_units_rejected(cycle_folders):
    command = ["train", str(cycle_folders["good"]), "--window", "256"]

    result = runner.invoke(app, [*command, "--window-seconds", "0.5"])

    assert result.exit_code == 2
    assert "--window and --window-seconds are both given" in result.output


def test_unwritable_output_gives_one_line_error(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--detector", "pca")
    # Longer than the 255-byte name limit of ext4, XFS and tmpfs, so the write
    # fails with a real OSError for any user, as a full disk or a read-only
    # folder makes it fail.
    output = tmp_path / ("x" * 300 + ".csv")

    result = runner.invoke(
        app, ["score", str(cycle_folders["bad"]), "-m", str(model), "-o", str(output)]
    )

    assert result.exit_code == 2, result.output
    assert f"error: {output}: File name too long" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def _grindwatch(*arguments: str, **options) -> subprocess.Popen:  # noqa: ANN003
    """Start the grindwatch command as a user's shell would, with SIGINT enabled."""
    return subprocess.Popen(
        [sys.executable, "-m", "grindwatch.cli", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        # A non-interactive shell starts background jobs with SIGINT ignored, and
        # Python then ignores Ctrl-C; restore the default as in a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **options,
    )


def test_watch_csv_write_error_gives_one_line_error(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--detector", "pca")
    csv = tmp_path / ("x" * 300 + ".csv")
    arguments = ["--results", str(tmp_path / "results.sqlite"), "--csv", str(csv)]

    process = _grindwatch(
        "watch", str(cycle_folders["bad"]), "-m", str(model), "--once", *arguments
    )
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 2, stderr
    assert "File name too long" in stderr
    assert "Traceback" not in stderr


def test_interrupted_train_says_so(cycle_folders, tmp_path):
    arguments = ["--epochs", "100000", "--no-track", "-vv"]
    process = _grindwatch("train", str(cycle_folders["good"]), *arguments)
    # Interrupt once training runs, after the imports and the reading.
    for line in process.stderr:
        if "epoch 0:" in line:
            break

    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    assert "error: interrupted" in stderr
    assert "Traceback" not in stderr


def test_stopped_watcher_prints_no_error(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--detector", "pca")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    results = str(tmp_path / "results.sqlite")
    process = _grindwatch(
        "watch", str(incoming), "-m", str(model), "--results", results
    )
    for line in process.stderr:
        if line.startswith("Watching"):
            break

    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "Stopped watching" in stderr
    assert "error:" not in stderr


def test_evaluate_without_labels_names_the_files(cycle_folders, tmp_path):
    model, _ = _train(cycle_folders["good"], tmp_path, "--detector", "pca")
    unlabeled = tmp_path / "line2"
    unlabeled.mkdir()
    for path in sorted(cycle_folders["good"].glob("*.csv"))[:2]:
        (unlabeled / path.name).write_bytes(path.read_bytes())

    result = runner.invoke(app, ["evaluate", str(unlabeled), "-m", str(model)])

    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert f"error: {unlabeled / 'cycle_000.csv'} and 1 more: carries no labels" in (
        output
    )


def test_module_runs_the_cli():
    from grindwatch import __version__

    done = subprocess.run(
        [sys.executable, "-m", "grindwatch", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert __version__ in done.stdout
