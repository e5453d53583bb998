"""The ``grindwatch spark-score`` command: score a large archive on Apache Spark.

pyspark is imported inside the command, so ``--help`` stays fast and grindwatch runs
without it.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from grindwatch.cli import (
    DataArg,
    JsonOpt,
    ReadSetOpt,
    TrackingUriOpt,
    VerboseOpt,
    _echo_json,
    _fail,
    _load_model,
    _run,
    _with_reading_options,
)

__all__ = ["register"]


def _parse_conf(items: list[str]) -> dict[str, str]:
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--conf {item!r} needs the form key=value, e.g. spark.cores.max=8")
        settings[key.strip()] = value.strip()
    return settings


def spark_score(
    data: DataArg = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Model folder or MLflow model URI (runs:/ID/model, "
            "models:/NAME@alias).",
        ),
    ] = ...,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Parquet folder for the recording scores; window scores go beside "
            "it as NAME.windows.parquet.",
        ),
    ] = ...,
    master: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Spark master URL, e.g. local[4] or spark://HOST:7077 (default: "
            "spark-submit's or Spark's own, local[*])."
        ),
    ] = None,
    partitions: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            min=1,
            help="Spark partitions for the batches of 64 files (default: 4 per "
            "core, at most one per batch).",
        ),
    ] = None,
    conf: Annotated[
        list[str],
        typer.Option(
            "--conf", help="Spark setting as key=value, e.g. spark.executor.memory=4g."
        ),
    ] = [],  # noqa: B006
    attribution: Annotated[
        bool,
        typer.Option(help="Add the top channel and band or feature to the tables."),
    ] = True,
    set_: ReadSetOpt = [],  # noqa: B006
    tracking_uri: TrackingUriOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Score recordings in parallel on Spark; write score's two tables as Parquet."""
    from grindwatch._console import console, setup_logging
    from grindwatch.spark_scoring import check_master, require_pyspark, spark_session
    from grindwatch.spark_scoring import spark_score as score_on_spark

    setup_logging(verbose)
    # PySpark 4.3 warns that it does not fully support pandas 3. The command passes
    # Arrow batches (mapInArrow), not pandas frames, between Python and the JVM, and
    # its tables equal those of `score` under pandas 3.1 (tests/test_spark.py).
    warnings.filterwarnings(
        "ignore",
        message="PySpark does not yet fully support pandas",
        category=FutureWarning,
    )
    if not data:
        _fail("no data given; pass the files or folders to score")
    if any(item.partition("=")[0].strip() == "data.strict" for item in set_):
        _fail(
            "--set data.strict: spark-score always skips files that cannot be "
            "scored; use grindwatch score --strict to stop at the first one"
        )
    settings = _parse_conf(conf)
    if not sys.stderr.isatty():
        # Spark redraws its stage bar with carriage returns, which a log file keeps
        # as one long line per stage. --conf spark.ui.showConsoleProgress=true
        # still shows it.
        settings.setdefault("spark.ui.showConsoleProgress", "false")
    _run(require_pyspark)
    if master:
        _run(check_master, master)
    # The executors read with the broadcast model's config, so --set reaches them.
    loaded = _with_reading_options(_load_model(model, tracking_uri), set_)
    with contextlib.ExitStack() as stack:
        # The session starts when the context is entered, so _run must wrap the
        # entry to turn a Spark that fails to start into one error line.
        spark = _run(stack.enter_context, spark_session(master, settings))
        # NOTE: an error inside a Spark task (a Python worker that cannot start,
        # an executor without grindwatch) is not caught here: it ends the command
        # with status 1 and Spark's Java stack trace, not one error line.
        result = _run(
            score_on_spark,
            spark,
            loaded,
            data,
            output,
            partitions=partitions,
            attribution=attribution,
        )

    if json_output:
        _echo_json(result.summary())
        return
    out = console()
    cycle = ""
    if loaded.cycle_check is not None:
        cycle = (
            f"; the cycle check, at threshold {loaded.cycle_check.threshold_.value:.3g}"
            ", flags recordings too, and the table's cycle_flag says which"
        )
    out.print(_flagged_sentence(result, loaded.kind_, cycle), highlight=False)
    for skipped in result.skipped:
        out.print(f"  skipped {skipped['path']}: {skipped['reason']}", highlight=False)
    out.print(
        f"Wrote {result.recordings_path} and {result.windows_path}", highlight=False
    )


def register(app: typer.Typer) -> None:
    """Add the ``spark-score`` command to the grindwatch CLI."""
    app.command("spark-score")(spark_score)


def _flagged_sentence(result, kind: str, cycle: str = "") -> str:  # noqa: ANN001
    """Return the summary line: flagged recordings and windows, or flagged rows.

    A feature table's row is one recording and its only window, so its window
    count would repeat the row count.
    """
    from grindwatch._nouns import item_noun

    threshold = f"(threshold {result.threshold:.4g}{cycle})"
    # "1 of 1 row", and "0 of 2 rows": the noun agrees with the total.
    items = item_noun(kind, result.n_recordings)
    if kind == "table":
        return (
            f"{result.n_flagged_recordings} of {result.n_recordings} {items} "
            f"flagged {threshold}."
        )
    return (
        f"{result.n_flagged_recordings} of {result.n_recordings} {items} and "
        f"{result.n_flagged_windows} of {result.n_windows} windows flagged "
        f"{threshold}."
    )
