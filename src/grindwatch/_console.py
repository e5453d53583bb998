"""Terminal output for the CLI: one Rich console, logging through it, progress bars.

Only the CLI imports this module; the library itself never prints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["console", "progress_bar", "setup_logging"]

_console = None


def console():  # noqa: ANN201
    global _console
    if _console is None:
        from rich.console import Console

        # Without markup, text such as a unit in "Time [ms]" prints as written;
        # styled parts use rich.text.Text.
        _console = Console(stderr=True, soft_wrap=True, markup=False)
        if not _console.is_terminal and "COLUMNS" not in os.environ:
            # Rich assumes 80 columns for a pipe or a log file, so table headers
            # came out cut ("objecti...") in CI logs. A file has no width limit.
            _console.width = 160
    return _console


def setup_logging(verbose: int, timestamps: bool = False) -> None:
    """Send log records to stderr, through a RichHandler on the progress console.

    With ``timestamps`` (long-running commands such as ``watch``), each record
    carries its time. When stderr is then not a terminal (a log file or a service
    journal), a plain handler replaces Rich. It writes each record as one
    unwrapped line that starts with its UTC time and level, so that
    ``grep ALARM`` finds whole alarms. Line breaks inside a message, such as one
    in a request's recording name, are written as ``\\n``, and a traceback
    follows its record on lines of its own.
    """
    from rich.logging import RichHandler

    # MLflow configures its own logger when imported; these keep it to warnings
    # and stop its per-download progress bars (MLflow 3 environment variables).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow 3.17 writes "View run ... at: URL" to stdout each time a run on a
    # tracking server ends, which breaks --json output. The CLI names its runs.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

    level = (
        logging.WARNING
        if verbose == 0
        else logging.INFO
        if verbose == 1
        else logging.DEBUG
    )
    handler: logging.Handler
    if timestamps and not console().is_terminal:
        handler = logging.StreamHandler(sys.stderr)
        formatter = _OneLineFormatter(
            "%(asctime)s %(levelname)-8s %(message)s", "%Y-%m-%dT%H:%M:%SZ"
        )
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    else:
        handler = RichHandler(console=console(), show_path=False, show_time=timestamps)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("grindwatch").setLevel(level)
    # MLflow and Alembic announce database migrations at INFO on every new store.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.formatwarning = _format_warning
    logging.captureWarnings(True)


class _OneLineFormatter(logging.Formatter):
    """A formatter that keeps each message on the line of its time and level.

    Without it, a line break in text that a client or a file name supplies
    would start a line that looks like a record of its own, such as a forged
    alarm.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        line = super().formatMessage(record)
        return line.replace("\r", "\\r").replace("\n", "\\n")


_PACKAGE = Path(__file__).resolve().parent


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Format a Python warning for the log.

    grindwatch's own warnings are messages to the user, so they print as their
    text alone, without the default's source file, line and code.
    """
    if Path(filename).resolve().is_relative_to(_PACKAGE):
        return str(message)
    return f"{category.__name__}: {message} ({filename}:{lineno})"


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator:
    """Yield a callback(stage, done, total) that draws one bar per stage."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    show = enabled and sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(),
        disable=not show,
        transient=True,
    ) as progress:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update
