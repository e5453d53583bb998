"""File locks that serialise the creation of SQLite stores shared by processes.

Two processes that open a new SQLite file at the same moment both run the schema
migrations of Optuna or MLflow, and one of them fails. A lock file beside the
database makes the second wait until the first has finished. Other databases
(PostgreSQL, MySQL) take no lock. For Optuna, ``grindwatch.study_storage`` retries
instead; MLflow stores there belong behind one tracking server, which creates its
tables when it starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["sqlite_path", "sqlite_setup_lock"]

# Migrating a new store takes a few seconds; waiting far longer means a stuck lock.
LOCK_TIMEOUT_S = 300


def sqlite_path(url: str) -> Path | None:
    """Return the database file of an ``sqlite:///`` URL, or None for other URLs."""
    if not url.startswith("sqlite:///"):
        return None
    # NOTE: an SQLite URI filename (sqlite:///file:/data/x.db?mode=ro&uri=true)
    # is taken as the relative path file:/data/x.db, so its lock file lands in a
    # folder named "file:" under the working folder. MLflow 3.17 creates that
    # folder for such a tracking URI too.
    location = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not location or location == ":memory:":
        return None
    return Path(location)


@contextlib.contextmanager
def sqlite_setup_lock(url: str) -> Iterator[None]:
    """Hold ``<database>.lock`` while the block runs, for SQLite URLs only."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
        yield
