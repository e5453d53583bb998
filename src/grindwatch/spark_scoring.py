"""Score a large archive of recordings on Apache Spark, with the tables of ``score``.

``spark_score`` lists the files on the driver, as ``grindwatch score`` does, and
cuts the list into batches of ``BATCH_FILES`` consecutive files. Each Spark task
reads its batches with grindwatch's own readers and scores them with the model,
which the driver loads once (from a bundle folder or an MLflow URI) and broadcasts,
so executors need grindwatch installed but no access to the tracking server.

Spark's entry point is ``DataFrame.mapInArrow``, not MLflow's ``spark_udf``: a UDF
returns one value per input row, but one recording yields many windows, and the
result must hold both of ``score``'s tables. The job runs in two stages:

1. Each batch of files becomes one row holding its recording and window tables as
   Arrow IPC bytes, with their schemas, the recording names and the skipped files.
   These rows are cached.
2. The driver merges the schemas (a ``label`` or ``meta.*`` column may exist for
   some recordings only) and the names that occur in more than one folder, then
   two more ``mapInArrow`` passes decode the bytes into the recordings and windows
   tables, which Spark writes as Parquet folders.

The result equals ``Model.score`` on the same files, value for value, when every
file reads: both then score the same batches of recordings with the same code
(``tests/test_spark.py`` checks this). Two cases differ, because each batch is
read apart from the others:

- When files fail to read, later batches hold other recordings than ``score``'s
  batches of 64 recordings, so a window's ``label`` can be missing where ``score``
  writes -1 (unknown), in data sets where only some recordings have labels.
- Feature tables with many rows per file are batched by file, not by 64 rows.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import pickle
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from grindwatch.exceptions import ConfigError, InputError
from grindwatch.io.dataset import folder_prefixes, source_path
from grindwatch.results import window_table_path

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from grindwatch.pipeline import Model

logger = logging.getLogger(__name__)

__all__ = [
    "BATCH_FILES",
    "SparkScoreResult",
    "require_pyspark",
    "spark_score",
    "spark_session",
]

# Files per batch; equal to Model.score's default batch of 64 recordings, so that
# both score the same windows together when each file contains one recording.
BATCH_FILES = 64
# Columns added for the job and dropped before writing.
_SOURCE = "_source"

# The model unpickled in this Python worker, by a key drawn per job: Spark reuses
# workers across tasks, so each worker unpickles a model once. Only the latest
# job's model is kept, because workers outlive jobs in a long Spark session.
_WORKER_MODELS: dict[str, Model] = {}


@dataclass
class SparkScoreResult:
    """Output folders and counts of one ``spark_score`` job.

    ``recordings_path`` and ``windows_path`` are Parquet folders with the same
    columns as ``ScoreResult.recordings`` and ``ScoreResult.windows``.
    """

    recordings_path: Path
    windows_path: Path
    n_files: int
    n_recordings: int
    n_flagged_recordings: int
    n_windows: int
    n_flagged_windows: int
    threshold: float
    skipped: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "recordings_path": str(self.recordings_path),
            "windows_path": str(self.windows_path),
            "n_files": self.n_files,
            "n_recordings": self.n_recordings,
            "n_flagged_recordings": self.n_flagged_recordings,
            "n_windows": self.n_windows,
            "n_flagged_windows": self.n_flagged_windows,
            "threshold": self.threshold,
            "skipped": self.skipped,
        }


def require_pyspark() -> None:
    """Raise ConfigError, naming the install command, when pyspark is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(
            "pyspark is not installed; install it with pip install pyspark (or the "
            "grindwatch extra 'spark')"
        ) from None


@contextlib.contextmanager
def spark_session(
    master: str | None = None,
    conf: dict[str, str] | None = None,
    app_name: str = "grindwatch",
) -> Iterator[SparkSession]:
    """Yield the active Spark session, or start one and stop it afterwards.

    ``master`` is a Spark master URL such as ``local[2]`` or
    ``spark://host:7077``; None keeps what ``spark-submit`` set, or else Spark's
    default, ``local[*]``. With a local master and no ``spark.pyspark.python``
    setting, Python workers run this interpreter, so they import the same
    grindwatch, and Spark listens on 127.0.0.1 only. An active
    session (a notebook's, or one that ``spark-submit`` started) is used as it is:
    ``master`` and ``conf`` do not apply to it, and it is left running.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        logger.info("using the active Spark session; --master and --conf do not apply")
        yield active
        return
    session = _new_session(master, conf or {}, app_name)
    try:
        yield session
    finally:
        session.stop()


# The local masters that Spark takes: local, local[N], local[*], local[N,F] (F
# task failures) and local-cluster[...]. Matched whole, so that a host name such
# as localhost:7077 is not taken for a local master.
_LOCAL_MASTER = re.compile(r"local(\[[^\]]*\])?|local-cluster\[[^\]]*\]")


def check_master(master: str) -> None:
    """Raise ConfigError unless ``master`` has the form of a Spark master URL.

    These are the forms that Spark's launcher takes. It rejects any other master
    only after its JVM started, with a Java stack trace.
    """
    if master == "yarn" or master.startswith(("spark://", "k8s://")):
        return
    if _LOCAL_MASTER.fullmatch(master):
        return
    raise ConfigError(
        f"Spark master {master!r} (--master or spark.master) is not a master URL; "
        "use local[N] for N cores on this host, spark://HOST:7077 for a standalone "
        "cluster, yarn or k8s://URL"
    )


# Seconds to wait for a standalone master to accept a connection. Spark's own
# client tries for about 90 s before it gives up.
_MASTER_CONNECT_TIMEOUT_S = 5.0


def _check_standalone_master(master: str) -> None:
    """Raise ConfigError when no master of a ``spark://`` URL accepts a connection.

    The URL may list several masters (``spark://HOST1:PORT1,HOST2:PORT2``); one
    that accepts is enough. Masters of other kinds (local, yarn, k8s) pass.
    """
    import socket

    if not master.startswith("spark://"):
        return
    failures = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"Spark master {master!r} (--master or spark.master) names "
                f"{address!r} without a numeric port; use spark://HOST:PORT, such as "
                "spark://HOST:7077"
            )
        try:
            with socket.create_connection(
                (host.strip("[]"), int(port)), timeout=_MASTER_CONNECT_TIMEOUT_S
            ):
                return
        except OSError as error:
            failures.append(f"{address}: {error.strerror or error}")
    raise ConfigError(
        f"no Spark master of {master} accepts a connection "
        f"({'; '.join(failures)}); start the master, or correct --master "
        "(or spark.master)"
    )


def _new_session(
    master: str | None, conf: dict[str, str], app_name: str
) -> SparkSession:
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkRuntimeError
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = dict(conf)
    # Without a master, Spark runs locally, unless spark-submit started this process
    # (it sets PYSPARK_GATEWAY_PORT) with a master of its own.
    effective = master or settings.get("spark.master")
    if effective is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
        effective = "local[*]"
    if effective is not None:
        check_master(effective)
        _check_standalone_master(effective)
    if effective is not None and effective.startswith("local"):
        settings.setdefault("spark.pyspark.python", sys.executable)
        settings.setdefault("spark.pyspark.driver.python", sys.executable)
        # PySpark 4.3's SparkContext starts Python workers with PYSPARK_PYTHON, or
        # with python3 from PATH, and does not read spark.pyspark.python. Run
        # as .venv/bin/grindwatch without the venv on PATH, the workers would
        # lack pandas and fail with a Java stack trace.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # In local mode everything runs on this machine: keep Spark's sockets on
        # loopback rather than on the address the host name resolves to. The JVM
        # reads SPARK_LOCAL_IP when it starts, which the settings come too late for.
        settings.setdefault("spark.driver.host", "127.0.0.1")
        settings.setdefault("spark.driver.bindAddress", "127.0.0.1")
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except (PySparkRuntimeError, Py4JJavaError) as error:
        # The JVM logged its reason (a rejected setting, a missing Java runtime, a
        # standalone master that never responded) before Python sees this error.
        raise ConfigError(
            f"Spark did not start with master {effective or 'from spark-submit'} "
            f"({_first_line(error)}); check that the master runs and accepts this "
            "host, the --conf settings, and that a Java runtime is installed (java "
            "on PATH or JAVA_HOME). Spark's reason is in the log lines above"
        ) from None


def _first_line(error: Exception) -> str:
    """Return the first line of a PySpark or Java error message, without the period."""
    java_error = getattr(error, "java_exception", None)
    text = str(java_error if java_error is not None else error).strip()
    if not text:
        return type(error).__name__
    return text.splitlines()[0].rstrip(". ")


# Driver --------------------------------------------------------------------------


def spark_score(
    spark: SparkSession,
    model: Model | str | Path,
    data: Any,
    output: str | Path,
    *,
    partitions: int | None = None,
    attribution: bool = True,
    batch_files: int = BATCH_FILES,
) -> SparkScoreResult:
    """Score recordings on Spark and write ``score``'s two tables as Parquet.

    Parameters
    ----------
    spark : SparkSession
    model : Model, bundle folder or MLflow model URI
        Loaded once on the driver and broadcast to the executors.
    data : files, folders, glob patterns, or a Spark DataFrame with a ``path`` column
        Read with the model's reading options. Folders and patterns are listed on
        the driver, so executors must see the files under the same paths (a shared
        or mounted file system; use absolute paths on a cluster). The paths of a
        DataFrame are collected to the driver in its order.
    output : path
        Parquet folder for the recordings table; the windows table goes beside it
        as ``NAME.windows.parquet`` (``NAME.windows`` without a suffix). An
        existing Spark output folder is replaced.
    partitions : int, optional
        Spark partitions to split the batches into. The default is four times
        Spark's default parallelism (the cores, in local mode), but at most one
        partition per batch.
    attribution : bool
        Add the top channel and band, feature or time step, as ``score`` does.
    batch_files : int
        Files read and scored together in one batch.

    Raises
    ------
    InputError
        If no file is found, or no recording could be scored.
    ConfigError
        If an output path exists and is not a Spark output folder or contains a
        file to score, or if column types disagree between recordings.
    OSError
        If Spark fails to write an output folder.
    """
    from pyspark import StorageLevel

    from grindwatch.pipeline import Model, load_model

    if batch_files < 1:
        raise ConfigError(f"batch_files={batch_files} must be at least 1")
    if not isinstance(model, Model):
        model = load_model(model)
    recordings_path, windows_path = _output_paths(output)
    listed = _list_paths(data, model)
    if not listed:
        raise InputError("data", "lists no file to score", "pass files or folders")
    paths = list(listed)
    _reject_inputs_in_outputs(paths, (recordings_path, windows_path))
    batches = [
        (paths[i : i + batch_files], [listed[p] for p in paths[i : i + batch_files]])
        for i in range(0, len(paths), batch_files)
    ]
    slices = partitions or min(len(batches), 4 * spark.sparkContext.defaultParallelism)
    logger.info(
        "scoring %d files in %d batches on %d partitions",
        len(paths),
        len(batches),
        slices,
    )

    payload = spark.sparkContext.broadcast(pickle.dumps(model, protocol=5))
    try:
        scored = _score_stage(spark, batches, slices, payload, attribution)
        scored.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            return _write_tables(
                scored, model, len(paths), recordings_path, windows_path
            )
        finally:
            scored.unpersist()
    finally:
        payload.destroy()


def _output_paths(output: str | Path) -> tuple[Path, Path]:
    # Absolute, because the JVM writes the files and its working folder can differ
    # from this process's.
    recordings = Path(output).resolve()
    if recordings.suffix.lower() == ".csv":
        # score writes CSV files by this suffix; Spark writes Parquet folders only.
        raise ConfigError(
            f"{output}: spark-score writes Parquet folders, not CSV; name the output "
            f"{recordings.with_suffix('.parquet').name} or without a suffix"
        )
    windows = window_table_path(recordings)
    for path in (recordings, windows):
        if path.exists() and not (path / "_SUCCESS").is_file():
            raise ConfigError(
                f"{path} exists and is not a Spark output folder; remove it or "
                "choose another --output"
            )
    return recordings, windows


def _reject_inputs_in_outputs(paths: list[str], outputs: tuple[Path, ...]) -> None:
    """Raise ConfigError when a file to score lies in an existing output folder.

    Spark replaces an existing output folder, which would delete such a file.
    """
    existing = [output for output in outputs if output.exists()]
    if not existing:
        return
    for path in paths:
        real = Path(path).resolve()
        for output in existing:
            if real.is_relative_to(output):
                raise ConfigError(
                    f"{output} contains {path}, one of the files to score, and "
                    "writing the output replaces that folder; choose an --output "
                    "outside the data"
                )


def _list_paths(data: Any, model: Model) -> dict[str, str]:
    """List the files to score, in the order ``grindwatch score`` reads them.

    Each file maps to its label root (``grindwatch.io.dataset.label_roots``), or
    to "" for paths from a DataFrame, whose labels come from any parent folder.
    """
    from grindwatch.io.dataset import label_roots

    if hasattr(data, "select") and hasattr(data, "toLocalIterator"):
        if "path" not in data.columns:
            raise ConfigError(
                f"the DataFrame of recordings has columns {data.columns}; it needs "
                "a 'path' column"
            )
        paths = [row["path"] for row in data.select("path").toLocalIterator()]
        missing = sum(path is None for path in paths)
        if missing:
            raise ConfigError(
                f"the DataFrame of recordings has {missing} null values in its "
                "'path' column; drop those rows, e.g. with dropna(subset=['path'])"
            )
        return {str(path): "" for path in paths}
    if data is None or (isinstance(data, (list, tuple)) and not data):
        data = model.config.data.paths
    if not data:
        raise ConfigError("no data given; pass files or folders to score")
    roots = label_roots(data, model.config.data.kind)
    return {str(path): str(root) for path, root in roots.items()}


def _score_stage(
    spark: SparkSession,
    batches: list[tuple[list[str], list[str]]],
    slices: int,
    payload: Any,
    attribution: bool,
) -> DataFrame:
    from pyspark.sql.types import (
        ArrayType,
        BinaryType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    source_schema = StructType(
        [
            StructField("batch", LongType(), False),
            StructField("paths", ArrayType(StringType(), False), False),
            StructField("roots", ArrayType(StringType(), False), False),
        ]
    )
    fields = [
        StructField("batch", LongType(), False),
        StructField("names", ArrayType(StringType(), False), False),
        StructField("sources", ArrayType(StringType(), False), False),
        StructField("skipped", StringType(), False),
        StructField("counts", ArrayType(LongType(), False), False),
    ]
    for table in ("recordings", "windows"):
        fields.append(StructField(table, BinaryType(), True))
        fields.append(StructField(f"{table}_schema", BinaryType(), True))
    score = functools.partial(
        _score_batches,
        payload=payload,
        key=uuid.uuid4().hex,
        attribution=attribution,
        folder=os.getcwd(),
    )
    # Local rows, not an RDD, so no Python worker has to convert them. Range
    # partitioning keeps consecutive batches together, so the tables come out in the
    # order of the files.
    rows = [(index, paths, roots) for index, (paths, roots) in enumerate(batches)]
    source = spark.createDataFrame(rows, source_schema)
    source = source.repartitionByRange(slices, "batch")
    return source.mapInArrow(score, StructType(fields))


def _write_tables(
    scored: DataFrame,
    model: Model,
    n_files: int,
    recordings_path: Path,
    windows_path: Path,
) -> SparkScoreResult:
    from pyspark.sql import functions as F

    summary = scored.select(
        F.collect_list(F.struct("batch", "skipped")).alias("skipped"),
        *(F.sum(F.col("counts")[i]).alias(f"count_{i}") for i in range(4)),
    ).first()
    skipped = [
        item
        for row in sorted(summary["skipped"], key=lambda row: row["batch"])
        for item in json.loads(row["skipped"])
    ]
    counts = [int(summary[f"count_{i}"] or 0) for i in range(4)]
    if counts[0] == 0:
        raise InputError("data", *_no_recording_reason(skipped, model))

    named = scored.select(F.explode(F.arrays_zip("names", "sources")).alias("pair"))
    clashes = {
        row["name"]: _clash_prefixes(row["sources"])
        for row in named.groupBy(F.col("pair.names").alias("name"))
        .agg(
            F.count("*").alias("count"), F.collect_set("pair.sources").alias("sources")
        )
        .where(F.col("count") > 1)
        .collect()
    }
    for table, path in (("recordings", recordings_path), ("windows", windows_path)):
        schema = _merged_schema(scored, table)
        decode = functools.partial(
            _decode_tables,
            column=table,
            schema_bytes=schema.serialize().to_pybytes(),
            clashes=clashes,
        )
        from pyspark.sql.pandas.types import from_arrow_schema

        frame = scored.select(table).where(F.col(table).isNotNull())
        _write_parquet(frame.mapInArrow(decode, from_arrow_schema(schema)), path)
    logger.info("wrote %s and %s", recordings_path, windows_path)
    return SparkScoreResult(
        recordings_path=recordings_path,
        windows_path=windows_path,
        n_files=n_files,
        n_recordings=counts[0],
        n_flagged_recordings=counts[1],
        n_windows=counts[2],
        n_flagged_windows=counts[3],
        threshold=float(model.threshold_.value),
        skipped=skipped,
    )


def _write_parquet(frame: DataFrame, path: Path) -> None:
    """Write ``frame`` as a Parquet folder, raising OSError when writing fails.

    Hadoop's file system reports a refused write, such as a parent path that is a
    file, as a ``java.io.IOException`` inside the Py4JJavaError that Python
    receives. Other Spark errors are re-raised as they are.
    """
    from py4j.java_gateway import is_instance_of
    from py4j.protocol import Py4JJavaError

    try:
        frame.write.mode("overwrite").parquet(str(path))
    except Py4JJavaError as error:
        gateway = frame.sparkSession.sparkContext._gateway
        cause = error.java_exception
        while cause is not None and not is_instance_of(
            gateway, cause, "java.io.IOException"
        ):
            cause = cause.getCause()
        if cause is None:
            raise
        raise OSError(
            None, f"Spark failed to write the table ({cause.toString()})", str(path)
        ) from None


def _no_recording_reason(
    skipped: list[dict[str, str]], model: Model
) -> tuple[str, str]:
    """Return the problem and fix when no recording was scored."""
    if skipped:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5])
        return f"no recording could be scored ({reasons})", "fix or remove these files"
    # Without skipped files, data.match left out every recording that was read.
    match = dict(model.config.data.match)
    if not match:
        return "no recording could be scored (the files hold none)", "check the files"
    return (
        f"no recording could be scored (none has the metadata {match} that the "
        "model's data.match requires)",
        "score recordings with that metadata, or use a model trained without "
        "data.match",
    )


def _merged_schema(scored: DataFrame, table: str) -> pa.Schema:
    """Merge the batches' schemas into one, with columns in order of appearance."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    column = f"{table}_schema"
    distinct = (
        scored.where(F.col(column).isNotNull())
        .groupBy(column)
        .agg(F.min("batch").alias("first"))
        .orderBy("first")
        .collect()
    )
    merged: dict[str, pa.DataType] = {}
    for row in distinct:
        schema = pa.ipc.read_schema(pa.py_buffer(row[column]))
        for item in schema:
            if item.name == _SOURCE:
                continue
            known = merged.get(item.name)
            merged[item.name] = (
                item.type
                if known is None
                else _merged_type(item.name, known, item.type)
            )
    # Spark cannot write a column of nulls alone; such a column is written as text.
    return pa.schema(
        [
            (name, pa.string() if pa.types.is_null(kind) else kind)
            for name, kind in merged.items()
        ]
    )


def _merged_type(name: str, first: pa.DataType, second: pa.DataType) -> pa.DataType:
    import pyarrow as pa

    if first == second or pa.types.is_null(second):
        return first
    if pa.types.is_null(first):
        return second
    if _is_number(first) and _is_number(second):
        # pandas turns a numeric column that some rows lack into float64 as well.
        return pa.float64()
    if pa.types.is_string(first) or pa.types.is_large_string(first):
        if pa.types.is_string(second) or pa.types.is_large_string(second):
            return pa.large_string()
    raise ConfigError(
        f"column {name!r} is {first} in some recordings and {second} in others; "
        "make the files agree (a meta.json value, or a label column) or score them "
        "apart"
    )


def _is_number(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


# Executors -----------------------------------------------------------------------


def _worker_model(payload: Any, key: str) -> Model:
    model = _WORKER_MODELS.get(key)
    if model is None:
        model = pickle.loads(payload.value)
        _WORKER_MODELS.clear()
        _WORKER_MODELS[key] = model
    return model


def _limit_threads() -> None:
    """Give torch as many threads as Spark gives this task cores."""
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is None:
        return
    import torch

    torch.set_num_threads(max(1, int(context.cpus())))


def _score_batches(
    batches: Iterable[pa.RecordBatch],
    payload: Any,
    key: str,
    attribution: bool,
    folder: str,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function of stage 1: score each batch of files into one row.

    Files are read from ``folder``, the driver's working folder, so relative paths
    mean what they mean to the driver; a worker that lacks the folder reads from its
    own working folder.
    """
    import pyarrow as pa

    _limit_threads()
    model = _worker_model(payload, key)
    schema = pa.schema(
        [
            ("batch", pa.int64()),
            ("names", pa.list_(pa.string())),
            ("sources", pa.list_(pa.string())),
            ("skipped", pa.string()),
            ("counts", pa.list_(pa.int64())),
            ("recordings", pa.binary()),
            ("recordings_schema", pa.binary()),
            ("windows", pa.binary()),
            ("windows_schema", pa.binary()),
        ]
    )
    where = Path(folder)
    for record_batch in batches:
        for row in record_batch.to_pylist():
            with (
                contextlib.chdir(where) if where.is_dir() else contextlib.nullcontext()
            ):
                result = _score_files(model, row, attribution)
            yield pa.RecordBatch.from_pylist([result], schema=schema)


def _score_files(
    model: Model, row: dict[str, Any], attribution: bool
) -> dict[str, Any]:
    recordings, skipped = _read_files(model, row["paths"], row["roots"])
    result = {
        "batch": row["batch"],
        "names": [recording.name for recording in recordings],
        "sources": [source_path(recording.source) for recording in recordings],
        "skipped": "",
        "counts": [0, 0, 0, 0],
        "recordings": None,
        "recordings_schema": None,
        "windows": None,
        "windows_schema": None,
    }
    if recordings:
        scored, score_skipped = _score_recordings(model, recordings, attribution)
        skipped.extend(score_skipped)
        if scored is not None:
            frames = {"recordings": scored.recordings, "windows": scored.windows}
            # Windows follow their recordings in order, n_windows of each, so each
            # window's file is known even where two files share a recording name.
            frames["windows"][_SOURCE] = np.repeat(
                scored.recordings["source"].to_numpy(),
                scored.recordings["n_windows"].to_numpy(),
            )
            for table, frame in frames.items():
                result[table], result[f"{table}_schema"] = _to_ipc(frame)
            result["counts"] = [
                len(scored.recordings),
                int(scored.recordings["flag"].sum()),
                len(scored.windows),
                int(scored.windows["flag"].sum()),
            ]
    result["skipped"] = json.dumps(skipped)
    return result


def _read_files(
    model: Model, paths: list[str], roots: list[str]
) -> tuple[list[Any], list[dict[str, str]]]:
    """Read files as ``load_recordings`` does, without matching them to each other.

    ``roots`` contains each file's label root, "" for none.
    """
    from grindwatch.io.dataset import _reason, matches_metadata, read_file
    from grindwatch.pipeline import scoring_options

    options = scoring_options(model)
    recordings, skipped = [], []
    for path, root in zip(paths, roots, strict=True):
        try:
            read = read_file(path, options, label_root=Path(root) if root else None)
        except (InputError, OSError) as error:
            skipped.append({"path": path, "reason": _reason(error, Path(path))})
            logger.warning("skipped %s", error)
            continue
        recordings.extend(r for r in read if matches_metadata(r, options.match))
    return recordings, skipped


def _score_recordings(
    model: Model, recordings: list[Any], attribution: bool
) -> tuple[Any, list[dict[str, str]]]:
    """Score with ``Model.score``; None when no recording fits the model."""
    from grindwatch.io import RecordingSet

    try:
        scored = model.score(
            RecordingSet(recordings, kind=model.kind_), attribution=attribution
        )
        return scored, scored.skipped
    except InputError:
        # Model.score raises when it skipped every recording; list why for each.
        skipped = []
        for recording in recordings:
            try:
                model.prepare([recording])
            except InputError as error:
                skipped.append({"path": str(error.path), "reason": error.problem})
        if len(skipped) < len(recordings):
            raise
        return None, skipped


def _to_ipc(frame: pd.DataFrame) -> tuple[bytes, bytes]:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    # pandas metadata differs between batches and would split equal schemas.
    table = table.replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes(), table.schema.serialize().to_pybytes()


def _decode_tables(
    batches: Iterable[pa.RecordBatch],
    column: str,
    schema_bytes: bytes,
    clashes: dict[str, dict[tuple[str, ...], str]],
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function of stage 2: one table's rows from the stored bytes."""
    import pyarrow as pa

    schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
    for record_batch in batches:
        for blob in record_batch.column(column).to_pylist():
            table = pa.ipc.open_stream(blob).read_all()
            table = _conform(_rename_clashes(table, clashes), schema)
            yield from table.to_batches()


def _clash_prefixes(sources: list[str]) -> dict[tuple[str, ...], str]:
    """Folder prefixes of one clashing name, as ``load_recordings`` gives them."""
    return folder_prefixes(
        PurePath(source).parent.parts for source in sources if source
    )


def _rename_clashes(
    table: pa.Table, clashes: dict[str, dict[tuple[str, ...], str]]
) -> pa.Table:
    """Prefix names found in several files with their folders, as loading does.

    ``clashes`` maps each such name to its folders' prefixes (see
    ``_clash_prefixes``).
    """
    import pyarrow as pa

    if not clashes:
        return table
    source = "source" if "source" in table.column_names else _SOURCE
    names = table.column("recording").to_pylist()
    sources = table.column(source).to_pylist()
    renamed = []
    for name, path in zip(names, sources, strict=True):
        prefix = (
            clashes.get(name, {}).get(PurePath(path).parent.parts) if path else None
        )
        renamed.append(f"{prefix}/{name}" if prefix else name)
    index = table.column_names.index("recording")
    return table.set_column(
        index, "recording", pa.array(renamed, type=table.schema.field(index).type)
    )


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Columns of ``schema`` in its order and types; missing ones are null."""
    import pyarrow as pa

    arrays = []
    for item in schema:
        if item.name in table.column_names:
            arrays.append(table.column(item.name).cast(item.type))
        else:
            arrays.append(pa.nulls(table.num_rows, type=item.type))
    return pa.Table.from_arrays(arrays, schema=schema)
