"""Spark scoring: the tables of ``grindwatch score``, computed on Spark in local mode.

The Spark tests need pyspark (extra ``spark``) and a Java runtime; they skip without
them. One Spark session (``local[2]``, no UI) serves the whole module.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from grindwatch import cli
from grindwatch.cli_spark import register
from grindwatch.config import Config
from grindwatch.exceptions import ConfigError, InputError
from grindwatch.pipeline import load_model, score, train
from grindwatch.spark_scoring import (
    _clash_prefixes,
    _conform,
    _merged_type,
    _output_paths,
    _rename_clashes,
    _score_files,
)
from tests.conftest import make_cycle
from tests.servetools import restored_logging  # noqa: F401 - a fixture

N_GOOD = 990
N_BAD = 12
RATE = 1000.0
# PySpark 4.3 warns that it does not fully support pandas 3; grindwatch passes Arrow
# batches (mapInArrow), not pandas frames, between Python and the JVM.
pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning"
)


def _needs_spark() -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed (extra 'spark')")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime; none is on PATH")


def _save(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, data=data, channels=["vib_x", "vib_y", "current"], sample_rate=RATE)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1006 scorable recordings in good/ and bad/, plus a short and an empty file.

    good/clash.npz and bad/clash.npz share a name, so both tables must prefix it
    with the folder. good/line1/day/deep.npz and good/line2/day/deep.npz share
    their parent folder's name too, so they need two folders. The empty file
    sorts last: a file that fails to read shifts the batches of ``grindwatch
    score`` after it (see ``grindwatch.spark_scoring``).
    """
    root = tmp_path_factory.mktemp("archive")
    for i in range(N_GOOD):
        _save(root / "good" / f"cycle_{i:04d}.npz", make_cycle(i, n_samples=1024))
    for i in range(N_BAD):
        data = make_cycle(5000 + i, n_samples=1024, anomaly="spike")
        _save(root / "bad" / f"cycle_{5000 + i:04d}.npz", data)
    _save(root / "good" / "clash.npz", make_cycle(7000, n_samples=1024))
    _save(root / "bad" / "clash.npz", make_cycle(7001, n_samples=1024, anomaly="level"))
    for line, seed in (("line1", 7003), ("line2", 7004)):
        _save(
            root / "good" / line / "day" / "deep.npz", make_cycle(seed, n_samples=1024)
        )
    _save(root / "good" / "short.npz", make_cycle(7002, n_samples=100))
    (root / "good" / "zz_empty.npz").touch()
    return root


@pytest.fixture(scope="module")
def model_folder(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    config = Config().with_overrides(
        {
            "detector.family": "pca",
            "windows.length": 256,
            "frontend.n_bands": 16,
            "tracking.enabled": False,
        }
    )
    training = sorted((archive / "good").glob("cycle_0[01]*.npz"))
    train(training, config, output=folder / "model")
    return folder / "model"


@pytest.fixture(scope="module")
def spark() -> Iterator:
    _needs_spark()
    from grindwatch.spark_scoring import spark_session

    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
    }
    with spark_session("local[2]", settings, app_name="grindwatch-tests") as session:
        yield session


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("score")(cli.score)
    register(app)
    return app


# Spark in local mode ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("restored_logging")
def test_spark_score_equals_score_command(spark, archive, model_folder):
    app = _cli()
    common = [str(archive), "--model", str(model_folder), "--json"]

    local = CliRunner().invoke(app, ["score", *common, "--output", "local.parquet"])
    on_spark = CliRunner().invoke(
        app, ["spark-score", *common, "--output", "spark.parquet"]
    )

    assert local.exit_code == 0, local.output
    assert on_spark.exit_code == 0, on_spark.output
    summary = json.loads(on_spark.stdout)
    assert summary["n_files"] == N_GOOD + N_BAD + 6
    assert summary["n_recordings"] == N_GOOD + N_BAD + 4
    local_summary = json.loads(local.stdout)["summary"]
    assert summary["n_flagged_recordings"] == local_summary["n_flagged_recordings"]
    assert summary["n_windows"] == local_summary["n_windows"]
    skipped = {Path(item["path"]).name for item in summary["skipped"]}
    assert skipped == {"short.npz", "zz_empty.npz"}
    assert skipped == {Path(item["path"]).name for item in local_summary["skipped"]}
    # Exact equality, float scores included: the same batches go through the same
    # code, so not even the last bit may differ.
    for name in ("{}.parquet", "{}.windows.parquet"):
        expected = pd.read_parquet(name.format("local"))
        found = pd.read_parquet(name.format("spark"))
        pd.testing.assert_frame_equal(found, expected, check_exact=True)
    recordings = pd.read_parquet("spark.parquet")
    assert {"good/clash", "bad/clash"} <= set(recordings["recording"])
    assert {"line1/day/deep", "line2/day/deep"} <= set(recordings["recording"])
    assert recordings.loc[recordings["label"] == 1, "flag"].all()
    assert recordings.loc[recordings["label"] == 0, "flag"].mean() < 0.1


@pytest.mark.slow
def test_spark_score_command_output_in_logs(archive, model_folder, tmp_path):
    _needs_spark()
    if int(pd.__version__.split(".")[0]) < 3:
        pytest.skip("PySpark warns only with pandas 3 or newer")
    # A process of its own, because PySpark warns once per process, and this one
    # may have warned already.
    command = [
        sys.executable,
        "-c",
        "from grindwatch.cli import main; main()",
        "spark-score",
        str(archive / "bad"),
        "--model",
        str(model_folder),
        "--output",
        str(tmp_path / "scores.parquet"),
        "--master",
        "local[1]",
        "--conf",
        "spark.ui.enabled=false",
    ]

    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert finished.returncode == 0, finished.stderr
    # bad/ contains the faulty cycles and clash.npz.
    assert f"of {N_BAD + 1} recordings" in " ".join(finished.stderr.split())
    assert "does not yet fully support pandas" not in finished.stderr
    # stderr is a pipe here, so Spark's stage bar stays off.
    assert "[Stage " not in finished.stderr


@pytest.mark.slow
def test_spark_score_unwritable_output_fails_clearly(spark, archive, model_folder):
    Path("not_a_folder").write_text("a file")
    data = str(archive / "bad")
    output = "not_a_folder/scores.parquet"

    outcome = CliRunner().invoke(
        _cli(), ["spark-score", data, "-m", str(model_folder), "-o", output]
    )

    assert outcome.exit_code == 2, outcome.output
    message = " ".join(outcome.output.split())
    assert "not_a_folder/scores.parquet: Spark failed to write the table" in message
    assert "Parent path is not a directory" in message


@pytest.mark.slow
def test_spark_score_rejects_csv_output(spark, archive, model_folder):
    data = str(archive / "bad")

    outcome = CliRunner().invoke(
        _cli(), ["spark-score", data, "-m", str(model_folder), "-o", "scores.csv"]
    )

    assert outcome.exit_code == 2, outcome.output
    message = " ".join(outcome.output.split())
    assert "scores.csv: spark-score writes Parquet folders, not CSV" in message
    assert not Path("scores.csv").exists()


@pytest.mark.slow
def test_spark_score_keeps_inputs_in_output(spark, archive, model_folder, tmp_path):
    from grindwatch.spark_scoring import spark_score

    # A folder that Spark wrote before, and that now also contains recordings.
    folder = tmp_path / "scores.parquet"
    folder.mkdir()
    (folder / "_SUCCESS").touch()
    for path in sorted((archive / "bad").glob("cycle_*.npz"))[:2]:
        shutil.copy(path, folder)

    with pytest.raises(ConfigError, match="one of the files to score"):
        spark_score(spark, model_folder, [str(folder)], folder)

    assert len(list(folder.glob("cycle_*.npz"))) == 2


@pytest.mark.slow
def test_spark_score_all_filtered_by_match(spark, archive, model_folder, tmp_path):
    from grindwatch.spark_scoring import spark_score

    model = load_model(model_folder)
    model.config = model.config.with_overrides({"data.match": {"tool": "A"}})

    with pytest.raises(InputError) as raised:
        spark_score(spark, model, [str(archive / "bad")], tmp_path / "scores")

    message = str(raised.value)
    assert "none has the metadata {'tool': 'A'}" in message
    assert "use a model trained without data.match" in message


@pytest.mark.slow
def test_spark_score_set_reading_option(spark, archive, model_folder, tmp_path):
    data = tmp_path / "data"
    with_gap = make_cycle(7100, n_samples=1024)
    with_gap[1, 100:110] = np.nan
    _save(data / "gap.npz", with_gap)
    _save(data / "whole.npz", make_cycle(7101, n_samples=1024))
    common = [str(data), "-m", str(model_folder), "--json"]

    plain = CliRunner().invoke(_cli(), ["spark-score", *common, "-o", "a.parquet"])
    interpolated = CliRunner().invoke(
        _cli(),
        [
            "spark-score",
            *common,
            "-o",
            "b.parquet",
            "--set",
            "data.nan_policy=interpolate",
        ],
    )

    assert plain.exit_code == 0, plain.output
    assert interpolated.exit_code == 0, interpolated.output
    assert json.loads(plain.stdout)["n_recordings"] == 1
    assert json.loads(interpolated.stdout)["n_recordings"] == 2
    assert set(pd.read_parquet("b.parquet")["recording"]) == {"gap", "whole"}


def test_spark_score_rejects_set_strict(archive, model_folder):
    outcome = CliRunner().invoke(
        _cli(),
        ["spark-score", str(archive), "-m", str(model_folder), "-o", "x"]
        + ["--set", "data.strict=true"],
    )

    assert outcome.exit_code == 2
    assert "always skips files" in " ".join(outcome.output.split())


@pytest.mark.slow
def test_spark_score_takes_dataframe_of_paths(spark, archive, model_folder, tmp_path):
    from grindwatch.spark_scoring import spark_score

    paths = [str(path) for path in sorted((archive / "good").glob("cycle_01*.npz"))]
    paths = paths[::-1] + [str(archive / "bad" / "clash.npz")]
    frame = spark.createDataFrame([(path,) for path in paths], "path string")
    model = load_model(model_folder)

    result = spark_score(
        spark, model, frame, tmp_path / "scores", batch_files=7, attribution=False
    )

    expected = score(model, paths, attribution=False)
    found = pd.read_parquet(result.recordings_path)
    windows = pd.read_parquet(result.windows_path)
    assert result.windows_path == (tmp_path / "scores.windows").resolve()
    assert result.n_recordings == len(paths)
    assert list(found["recording"]) == list(expected.recordings["recording"])
    assert list(windows.columns) == list(expected.windows.columns)
    # Batches of 7 files are not score's batches of 64 recordings, and the float32
    # matrix products round differently with another batch: equal to float32
    # rounding (a few units in the last place), not bit for bit.
    np.testing.assert_allclose(found["score"], expected.recordings["score"], rtol=1e-6)
    np.testing.assert_allclose(windows["score"], expected.windows["score"], rtol=1e-6)


@pytest.mark.slow
def test_spark_score_rejects_empty_dataframe(spark, model_folder, tmp_path):
    from grindwatch.spark_scoring import spark_score

    empty = spark.createDataFrame([], "path string")

    with pytest.raises(InputError, match="lists no file to score"):
        spark_score(spark, model_folder, empty, tmp_path / "scores")


@pytest.mark.slow
def test_spark_score_rejects_null_paths(spark, archive, model_folder, tmp_path):
    from grindwatch.spark_scoring import spark_score

    path = str(archive / "bad" / "clash.npz")
    frame = spark.createDataFrame([(path,), (None,)], "path string")

    with pytest.raises(ConfigError, match="1 null values in its 'path' column"):
        spark_score(spark, model_folder, frame, tmp_path / "scores")


def test_batch_of_unscorable_files_lists_each(archive, model_folder):
    row = {
        "batch": 3,
        "paths": [str(archive / "good" / "short.npz"), "missing.npz"],
        "roots": [str(archive), ""],
    }

    result = _score_files(load_model(model_folder), row, attribution=True)

    assert result["counts"] == [0, 0, 0, 0]
    assert result["recordings"] is None
    skipped = json.loads(result["skipped"])
    assert [Path(item["path"]).name for item in skipped] == ["missing.npz", "short.npz"]
    assert "file not found" in skipped[0]["reason"]
    assert "fewer than one window" in skipped[1]["reason"]


def test_damaged_cycle_folder_names_inner_file(archive, model_folder, tmp_path):
    cycle = tmp_path / "2024.02.14_22.01.41_Grinding"
    (cycle / "raw").mkdir(parents=True)
    (cycle / "meta.json").write_text("{not json")
    row = {"batch": 0, "paths": [str(cycle)], "roots": [str(tmp_path)]}

    result = _score_files(load_model(model_folder), row, attribution=True)

    skipped = json.loads(result["skipped"])
    assert [item["path"] for item in skipped] == [str(cycle)]
    # As in load_recordings: the reason names the damaged file inside the folder.
    assert skipped[0]["reason"].startswith("meta.json: ")


class _Broadcast:
    """The ``value`` attribute of a Spark broadcast variable, without Spark."""

    def __init__(self, value: bytes) -> None:
        self.value = value


def test_worker_keeps_latest_model_only(model_folder):
    from grindwatch.spark_scoring import _WORKER_MODELS, _worker_model

    payload = _Broadcast(pickle.dumps(load_model(model_folder)))
    first = _worker_model(payload, "job-1")
    again = _worker_model(payload, "job-1")
    second = _worker_model(payload, "job-2")

    assert again is first
    assert second is not first
    assert list(_WORKER_MODELS) == ["job-2"]


def test_spark_score_without_pyspark_names_extra(monkeypatch, archive, model_folder):
    import sys

    monkeypatch.setitem(sys.modules, "pyspark", None)

    outcome = CliRunner().invoke(
        _cli(), ["spark-score", str(archive), "-m", str(model_folder), "-o", "x"]
    )

    assert outcome.exit_code == 2
    assert "pip install pyspark" in outcome.output


# Table merging, without Spark ---------------------------------------------------------


def test_merged_type_widens_int_and_float():
    assert _merged_type("label", pa.int64(), pa.float64()) == pa.float64()
    assert _merged_type("label", pa.int8(), pa.null()) == pa.int8()
    assert _merged_type("meta.a", pa.string(), pa.large_string()) == pa.large_string()


def test_merged_type_rejects_text_and_number():
    with pytest.raises(ConfigError, match="'meta.operator' is int64 in some"):
        _merged_type("meta.operator", pa.int64(), pa.large_string())


def test_conform_fills_missing_columns_with_nulls():
    table = pa.table({"recording": ["a", "b"], "score": [1.0, 2.0]})
    schema = pa.schema(
        [("recording", pa.string()), ("label", pa.int64()), ("score", pa.float64())]
    )

    conformed = _conform(table, schema)

    assert conformed.schema == schema
    assert conformed.column("label").null_count == 2
    assert conformed.column("score").to_pylist() == [1.0, 2.0]


def test_rename_clashes_prefixes_the_folder():
    windows = pa.table(
        {
            "recording": ["x", "x", "y"],
            "_source": ["data/good/x.npz", "data/good/x.npz", "data/bad/y.npz"],
        }
    )
    recordings = pa.table({"recording": ["x"], "source": ["data/bad/x.npz"]})
    clashes = {"x": _clash_prefixes(["data/good/x.npz", "data/bad/x.npz"])}

    renamed_windows = _rename_clashes(windows, clashes)
    renamed_recordings = _rename_clashes(recordings, clashes)

    assert renamed_windows.column("recording").to_pylist() == ["good/x", "good/x", "y"]
    assert renamed_recordings.column("recording").to_pylist() == ["bad/x"]


def test_rename_clashes_adds_folders_until_unique():
    sources = ["m1/day/r.npz", "m2/day/r.npz", "m2/night/r.npz"]
    table = pa.table({"recording": ["r", "r", "r"], "source": sources})

    renamed = _rename_clashes(table, {"r": _clash_prefixes(sources)})

    assert renamed.column("recording").to_pylist() == [
        "m1/day/r",
        "m2/day/r",
        "m2/night/r",
    ]


def test_output_path_that_is_a_file_is_rejected(tmp_path):
    (tmp_path / "scores.parquet").write_text("not a Spark folder")

    with pytest.raises(ConfigError, match="is not a Spark output folder"):
        _output_paths(tmp_path / "scores.parquet")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("signals", "2 of 5 recordings and 3 of 40 windows flagged (threshold 0.5)."),
        ("table", "2 of 5 rows flagged (threshold 0.5)."),
    ],
)
def test_spark_summary_counts_rows_for_tables(kind, expected, tmp_path):
    from grindwatch.cli_spark import _flagged_sentence
    from grindwatch.spark_scoring import SparkScoreResult

    counts = {"n_recordings": 5, "n_flagged_recordings": 2, "n_windows": 40}
    result = SparkScoreResult(
        tmp_path, tmp_path, 1, **counts, n_flagged_windows=3, threshold=0.5
    )

    assert _flagged_sentence(result, kind) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("signals", "1 of 1 recording and 3 of 8 windows flagged (threshold 0.5)."),
        ("table", "1 of 1 row flagged (threshold 0.5)."),
    ],
)
def test_spark_summary_one_item_singular(kind, expected, tmp_path):
    from grindwatch.cli_spark import _flagged_sentence
    from grindwatch.spark_scoring import SparkScoreResult

    counts = {"n_recordings": 1, "n_flagged_recordings": 1, "n_windows": 8}
    result = SparkScoreResult(
        tmp_path, tmp_path, 1, **counts, n_flagged_windows=3, threshold=0.5
    )

    assert _flagged_sentence(result, kind) == expected


def test_spark_score_rejects_invalid_master(archive, model_folder):
    _needs_spark()
    outcome = CliRunner().invoke(
        _cli(),
        ["spark-score", str(archive / "bad"), "-m", str(model_folder), "-o", "x"]
        + ["--master", "bogus://host:7077"],
    )

    message = " ".join(outcome.output.split())
    assert outcome.exit_code == 2, outcome.output
    assert "Spark master 'bogus://host:7077'" in message
    assert "is not a master URL; use local[N]" in message
    assert not Path("x").exists()


def test_check_master_forms():
    from grindwatch.spark_scoring import check_master

    for master in ("local", "local[4]", "local[*]", "local[2,3]", "yarn"):
        check_master(master)
    check_master("local-cluster[2,1,1024]")
    check_master("spark://host:7077")
    # A host name that starts with 'local' is no local master.
    for master in ("localhost:7077", "localhost", "local4"):
        with pytest.raises(ConfigError, match="is not a master URL"):
            check_master(master)


def test_spark_score_without_java_fails_clearly(archive, model_folder, tmp_path):
    _needs_spark()
    # A process of its own, because a Spark session that this process started
    # would be reused and no JVM would start.
    command = [sys.executable, "-c", "from grindwatch.cli import main; main()"]
    command += ["spark-score", str(archive / "bad"), "-m", str(model_folder)]
    command += ["-o", str(tmp_path / "scores.parquet"), "--master", "local[1]"]
    environment = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java")}

    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=environment
    )

    assert finished.returncode == 2, finished.stderr
    assert "Traceback" not in finished.stderr
    message = " ".join(finished.stderr.split())
    assert "error: Spark did not start with master local[1]" in message
    assert "Java runtime is installed (java on PATH or JAVA_HOME)" in message
    assert not (tmp_path / "scores.parquet").exists()


def test_spark_score_unreachable_master_fails_clearly(archive, model_folder, tmp_path):
    _needs_spark()
    from tests.servers import free_port

    # Nothing listens on the port. Spark's standalone client would give up only
    # after its registration retries (about 90 s in total with PySpark 4.3.0).
    master = f"spark://127.0.0.1:{free_port()}"
    command = [sys.executable, "-c", "from grindwatch.cli import main; main()"]
    command += ["spark-score", str(archive / "bad"), "-m", str(model_folder)]
    command += ["-o", str(tmp_path / "scores.parquet"), "--master", master]
    for setting in ("driver.host=127.0.0.1", "driver.bindAddress=127.0.0.1"):
        command += ["--conf", f"spark.{setting}"]
    command += ["--conf", "spark.ui.enabled=false"]

    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert finished.returncode == 2, finished.stderr[-3000:]
    assert "Traceback" not in finished.stderr
    message = " ".join(finished.stderr.split())
    assert f"error: no Spark master of {master} accepts a connection" in message
    assert "Connection refused" in message
    assert "start the master, or correct --master" in message


def test_standalone_master_check_takes_any_listed_master():
    import socket

    from grindwatch.exceptions import ConfigError
    from grindwatch.spark_scoring import _check_standalone_master
    from tests.servers import free_port

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        closed = free_port()

        _check_standalone_master(f"spark://127.0.0.1:{closed},127.0.0.1:{port}")
        with pytest.raises(ConfigError, match="accepts a connection"):
            _check_standalone_master(f"spark://127.0.0.1:{closed}")
        with pytest.raises(ConfigError, match="without a numeric port"):
            _check_standalone_master("spark://127.0.0.1")
        with pytest.raises(ConfigError, match="'127.0.0.1:abc' without a numeric"):
            _check_standalone_master("spark://127.0.0.1:abc")
