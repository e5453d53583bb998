"""Evaluation labels: class-named folders, their limits, and a labels file."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from grindwatch.cli import app
from grindwatch.exceptions import InputError
from grindwatch.io import load_recordings
from grindwatch.io.labels import folder_class
from tests.conftest import write_cycles

runner = CliRunner()
FAST = ["--window", "256", "--epochs", "3", "--set", "frontend.n_bands=16"]


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("bad", 1),
        ("NOK", 1),
        ("broken_tooth", 1),
        ("good", 0),
        ("healthy-30hz", 0),
        ("anomaly-free", 0),
        ("fault_free", 0),
        ("faultless", 0),
        ("no-fault", 0),
        ("non_anomalous", 0),
        ("not_ok", 1),
        ("not good", 1),
        ("run_ok_3", 0),
        ("fault_detection_project", 1),
        ("valve1", None),
        ("", None),
    ],
)
def test_folder_class_reads_negations(name, label):
    assert folder_class(name) == label


def test_folders_above_the_given_folder_do_not_label(tmp_path):
    write_cycles(tmp_path / "fault_study" / "line1", 2)

    below = load_recordings(tmp_path / "fault_study" / "line1")
    given = load_recordings(tmp_path / "fault_study")

    # The project folder above the data does not label the recordings...
    assert [r.label for r in below] == [None, None]
    # ...but a folder the user names is read, as `evaluate good/ bad/` needs.
    assert [r.label for r in given] == [1, 1]
    assert given.recordings[0].metadata["label_source"] == "folder fault_study"


def test_glob_and_file_label_roots(tmp_path):
    write_cycles(tmp_path / "bad" / "runs", 2)

    by_glob = load_recordings(str(tmp_path / "bad" / "runs" / "*.csv"))
    by_name = load_recordings(tmp_path / "bad" / "runs" / "cycle_000.csv")
    wider = load_recordings(str(tmp_path / "bad" / "*" / "*.csv"))

    assert [r.label for r in by_glob] == [None, None]
    assert [r.label for r in by_name] == [None]
    assert [r.label for r in wider] == [1, 1]


def _train(folder, tmp_path):  # noqa: ANN001, ANN202
    model = tmp_path / "model"
    result = runner.invoke(app, ["train", str(folder), "-o", str(model), *FAST])
    assert result.exit_code == 0, result.output
    return model


def _evaluate_with_labels(data, model, labels, *extra: str):  # noqa: ANN001, ANN202
    arguments = ["evaluate", str(data), "-m", str(model), "--labels", str(labels)]
    return runner.invoke(app, [*arguments, "--no-track", *extra])


def test_evaluate_names_the_folders_that_gave_labels(cycle_folders, tmp_path):
    model = _train(cycle_folders["good"], tmp_path)
    data = tmp_path / "eval"
    shutil.copytree(cycle_folders["good"], data / "anomaly-free")
    shutil.copytree(cycle_folders["bad"], data / "broken")

    result = runner.invoke(
        app, ["evaluate", str(data), "-m", str(model), "--no-track", "--json"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["label_sources"] == {
        "folder anomaly-free": {"normal": 8, "anomalous": 0},
        "folder broken": {"normal": 0, "anomalous": 3},
    }
    assert report["recordings"]["n_anomalous"] == 3
    # Copies of the training files: the metrics on them are optimistic.
    assert len(report["trained_on"]) == 8
    assert "cycle_100" not in report["trained_on"]
    table = runner.invoke(app, ["evaluate", str(data), "-m", str(model), "--no-track"])
    text = " ".join(table.output.split())
    assert "Labels: folder anomaly-free: 8 normal; folder broken: 3 anomalous." in text
    assert "8 of the labeled recordings are files the model was trained on" in text


def test_one_training_file_named_singular(cycle_folders, tmp_path):
    model = _train(cycle_folders["good"], tmp_path)
    data = tmp_path / "eval"
    (data / "normal").mkdir(parents=True)
    first = sorted(cycle_folders["good"].glob("*.csv"))[0]
    shutil.copy(first, data / "normal" / first.name)
    shutil.copytree(cycle_folders["bad"], data / "broken")

    result = runner.invoke(app, ["evaluate", str(data), "-m", str(model), "--no-track"])

    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "1 of the 4 labeled recordings is a file the model was trained on" in text
    assert "1 of the labeled recordings is a file the model was trained on" in text
    assert "are files" not in text


def test_labels_file_overrides_folder_labels_of_windows(cycle_folders, tmp_path):
    model = _train(cycle_folders["good"], tmp_path)
    labels = tmp_path / "labels.csv"
    # Flipped against the folders: two good cycles anomalous, one bad one normal;
    # the other eight recordings get no label.
    labels.write_text(
        "recording,label\ncycle_000,1\ncycle_001,1\ncycle_100,0\n", encoding="utf-8"
    )

    result = _evaluate_with_labels(cycle_folders["root"], model, labels, "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["recordings"]["n"] == 3
    assert report["recordings"]["n_anomalous"] == 2
    # The window row counts the windows of the same three recordings, labelled
    # by the file, not by their folders.
    per_recording = report["windows"]["n"] // 3
    assert report["windows"]["n"] == 3 * per_recording
    assert report["windows"]["n_anomalous"] == 2 * per_recording
    assert report["label_sources"] == {"labels file": {"normal": 1, "anomalous": 2}}


def test_labels_file_tells_folders_apart(cycle_folders, tmp_path):
    model = _train(cycle_folders["good"], tmp_path)
    data = tmp_path / "eval"
    for line in ("line1", "line2"):
        write_cycles(data / line, 1, start_seed=300)
    labels = tmp_path / "labels.csv"
    labels.write_text("recording,label\ncycle_300,1\n", encoding="utf-8")
    exact = tmp_path / "exact.csv"
    exact.write_text("recording,label\nline1/cycle_300,1\n", encoding="utf-8")

    exact_run = _evaluate_with_labels(data, model, exact, "--json")
    shared = _evaluate_with_labels(data, model, labels, "--json")

    assert shared.exit_code == 0, shared.output
    text = " ".join(shared.output.split())
    assert "the label for 'cycle_300' applies to 2 recordings" in text
    assert "(line1/cycle_300, line2/cycle_300)" in text
    assert json.loads(shared.stdout)["recordings"]["n"] == 2
    assert exact_run.exit_code == 0, exact_run.output
    assert "applies to" not in exact_run.output
    labeled = json.loads(exact_run.stdout)
    assert labeled["recordings"]["n"] == 1
    assert labeled["unlabeled"] == ["line2/cycle_300"]


def test_labels_file_from_european_excel(cycle_folders, tmp_path):
    model = _train(cycle_folders["good"], tmp_path)
    data = tmp_path / "eval"
    write_cycles(data, 2, start_seed=300)
    labels = tmp_path / "labels.csv"
    # Excel in many European locales saves ';' with a byte order mark and CRLF.
    text = "recording ; label\r\n cycle_300 ;1\r\ncycle_301;0\r\n"
    labels.write_bytes(text.encode("utf-8-sig"))

    result = _evaluate_with_labels(data, model, labels, "--json")

    # Before, the file was rejected as missing both columns.
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recordings"]["n"] == 2
    assert json.loads(result.stdout)["unlabeled"] == []


def test_labels_file_with_two_labels_for_one_recording(tmp_path):
    from grindwatch.exceptions import InputError
    from grindwatch.io import read_labels_csv

    path = tmp_path / "labels.csv"
    path.write_text("recording,label\ncycle_000,0\ncycle_001,1\ncycle_000,1\n")

    with pytest.raises(
        InputError,
        match="gives 'cycle_000' the label 0 and, at data row 2, the label 1",
    ):
        read_labels_csv(path)


def test_labels_file_not_in_utf8_fails_before_scoring(cycle_folders, tmp_path):
    model = _train(cycle_folders["good"], tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_bytes("recording,label\ncycle_000,gut\u00e4\n".encode("latin-1"))

    result = _evaluate_with_labels(cycle_folders["root"], model, labels)

    assert result.exit_code == 2
    assert "labels.csv: is not UTF-8 text (byte 0xe4" in " ".join(result.output.split())


def test_labels_file_keys_keep_last_folder(tmp_path):
    from grindwatch.io import read_labels_csv

    path = tmp_path / "labels.csv"
    rows = ["cycle_1.csv,1", "data/line2/cycle_2.csv,0", "line3/cycle_3,1", "t#4,1"]
    path.write_text("recording,label\n" + "\n".join(rows) + "\n", encoding="utf-8")

    labels = read_labels_csv(path)

    assert labels == {"cycle_1": 1, "line2/cycle_2": 0, "line3/cycle_3": 1, "t#4": 1}


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("line1/cycle_1", "line1/cycle_1"),  # exact name
        ("line9/cycle_2", "cycle_2"),  # a bare-stem label covers every folder
        ("cycle_3", "line3/cycle_3"),  # the only folder label for this stem
        ("cycle_4", None),  # two folder labels: which one is unknown
        ("line1/cycle_3", None),  # another folder than the label names
    ],
)
def test_label_key_matches_names(name, key):
    from grindwatch.io.labels import label_key_for

    labels = {
        "line1/cycle_1": 1,
        "cycle_2": 0,
        "line3/cycle_3": 1,
        "line1/cycle_4": 1,
        "line2/cycle_4": 0,
    }

    assert label_key_for(name, labels) == key


def test_labels_file_keeps_every_folder_of_names(cycle_folders, tmp_path):
    # Names with two folders lost the first, so m1/day/... and m2/day/...
    # became one key with two labels, and the file was rejected.
    model = _train(cycle_folders["good"], tmp_path)
    data = tmp_path / "eval"
    write_cycles(data / "m1" / "day", 1, start_seed=400)
    write_cycles(data / "m2" / "day", 1, start_seed=400)
    labels = tmp_path / "labels.csv"
    rows = "m1/day/cycle_400,1\nm2/day/cycle_400,0\n"
    labels.write_text("recording,label\n" + rows, encoding="utf-8")

    result = _evaluate_with_labels(data, model, labels, "--json")

    assert result.exit_code == 0, result.output
    sources = json.loads(result.stdout)["label_sources"]
    assert sources == {"labels file": {"normal": 1, "anomalous": 1}}


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("m1/day/r", "m1/day/r"),
        ("m3/day/r", "day/r"),  # the last folder and the stem
        ("m3/night/r", "r"),
        ("day/q", "m1/day/q"),  # the only longer name that ends in it
    ],
)
def test_label_key_matches_longer_names(name, key):
    from grindwatch.io.labels import label_key_for

    labels = {"m1/day/r": 1, "m2/day/r": 0, "day/r": 1, "r": 0, "m1/day/q": 1}

    assert label_key_for(name, labels) == key


def test_labels_file_over_label_column_named(cycle_folders, tmp_path):
    model = _train(cycle_folders["good"], tmp_path)
    data = tmp_path / "eval"
    paths = write_cycles(data, 2, start_seed=400)
    for path in paths:
        frame = pd.read_csv(path)
        frame["anomaly"] = [0] * (len(frame) - 100) + [1] * 100
        frame.to_csv(path, index=False)
    labels = tmp_path / "labels.csv"
    labels.write_text("recording,label\ncycle_400,0\n", encoding="utf-8")

    result = _evaluate_with_labels(data, model, labels, "--json")

    assert result.exit_code == 0, result.output
    sources = json.loads(result.stdout)["label_sources"]
    # The file gave the recording its label, and the column labels its windows.
    assert sources == {
        "labels file (windows: label column)": {"normal": 1, "anomalous": 0}
    }


@pytest.mark.parametrize(
    ("column", "values", "shown"),
    [
        ("target", [500.0, 510.0], "500.0"),
        ("anomaly", [-1, 1], "-1"),
        ("label", ["maybe", "normal"], "'maybe'"),
    ],
)
def test_label_column_other_values_raise(tmp_path, column, values, shown):
    path = write_cycles(tmp_path, 1)[0]
    frame = pd.read_csv(path)
    half = len(frame) // 2
    frame[column] = [values[0]] * half + [values[1]] * (len(frame) - half)
    frame.to_csv(path, index=False)

    with pytest.raises(InputError) as raised:
        load_recordings(tmp_path, strict=True)

    message = str(raised.value)
    assert f"label column '{column}' holds {shown} at data row 0" in message
    # The message lists every accepted value, label words and empty cells too.
    assert "1 or an anomalous word (anomalous, NOK ...)" in message
    assert "or empty (normal)" in message
    assert "leave its name out of data.label_columns" in message


def test_label_column_words_read(tmp_path):
    path = write_cycles(tmp_path, 1)[0]
    frame = pd.read_csv(path)
    frame["label"] = ["OK"] * 100 + ["NOK"] * (len(frame) - 100)
    frame.to_csv(path, index=False)

    recording = load_recordings(tmp_path).recordings[0]

    assert recording.sample_labels[:100].sum() == 0
    assert recording.sample_labels[100:].min() == 1


def test_labels_file_with_extra_fields_raises(tmp_path):
    from grindwatch.io.labels import read_labels_csv

    path = tmp_path / "labels.csv"
    path.write_text("recording,label\ncycle_000,1,checked\ncycle_001,0,\n")

    with pytest.raises(InputError, match="rows have more fields than its header"):
        read_labels_csv(path)


def test_labels_file_header_in_any_case(tmp_path):
    from grindwatch.io.labels import read_labels_csv

    path = tmp_path / "labels.csv"
    path.write_text("Recording,LABEL\ncycle_000,1\ncycle_001,OK\n")

    assert read_labels_csv(path) == {"cycle_000": 1, "cycle_001": 0}


def test_labels_file_with_two_spellings_raises(tmp_path):
    from grindwatch.io.labels import read_labels_csv

    path = tmp_path / "labels.csv"
    path.write_text("Recording,RECORDING,label\ncycle_000,cycle_001,1\n")

    with pytest.raises(InputError, match="is missing columns \\['recording'\\]"):
        read_labels_csv(path)


@pytest.mark.parametrize(
    "text",
    [
        "Recording;Label\ncycle_000;1\n",
        "RECORDING\tlabel\ncycle_000\t1\n",
        "label|recording\n1|cycle_000\n",
    ],
)
def test_labels_file_delimiter_with_any_header(tmp_path, text):
    from grindwatch.io.labels import read_labels_csv

    path = tmp_path / "labels.csv"
    path.write_text(text)

    assert read_labels_csv(path) == {"cycle_000": 1}
