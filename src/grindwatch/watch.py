"""Folder watcher: score each recording as it lands, and keep the results.

The watcher polls a folder and its subfolders for recordings grindwatch can read:
files of a supported type, and cycle folders (one folder per cycle) where the
readers support them. A recording is scored once it is complete: when its size and
modification time (for a folder: the total size and the latest modification time
of its files) have stayed the same for ``settle_seconds``, or as soon as a marker
exists (``NAME<marker_suffix>`` beside it, or a file named ``folder_marker`` in
its folder).

Every result goes to an SQLite table, keyed by the file's path relative to the
watched folder, its size, its modification time and its ctime in nanoseconds, and
stored with the SHA-256 of its content. The kernel sets the ctime on every write,
so a rewrite that restores the size and the modification time (``cp -p``,
``rsync -t``) gets a new key, while each poll still costs one ``stat`` per file.
A file whose key is in neither the results nor the ``moves`` table is new, so
after a restart the watcher neither scores a file twice nor skips one. A new file
is hashed before it is read. When a stored result has the same size and hash, the
file is not scored but stored in ``moves``:

- ``moved``: the result's file is gone from where it was last seen (moved or
  renamed inside the watched folder). The result's ``current_path`` follows it.
- ``copied``: that file is still there. Identical bytes give an identical score,
  so the copy points to the result instead of counting the cycle twice.
  Recordings of real sensor signals do not repeat byte for byte, so a warning
  reports that the copy was made by hand or a logger wrote one cycle twice. A move
  done as a copy and a delete stays a copy when a poll falls between the two.
- ``touched``: the same path with a new modification time or ctime and the same
  content (``touch``, ``chmod``, a rewrite of the same bytes).
  A failed file touched in place is scored again instead, because ``touch`` is
  how a user asks for a retry.

A file whose content changed is scored again as a new recording. A file that
cannot be read or scored is stored with status ``failed`` and the reason. This
holds for unexpected errors too (a bug in a reader): the watcher logs the
traceback, stores the file as failed and goes on with the next one.

A recording whose metadata differs from the model's ``data.match`` (a cycle
of another tool, for a model fitted on one) is left out, as ``grindwatch score``
leaves it out. It is not stored, and it is read again only when it changes or the
watcher restarts.

The CSV copy of the table is rebuilt from SQLite after each poll that added
results or moves, written to a temporary file and renamed over the old one. A
reader never sees a torn row, and SQLite stays the one source of truth: a crash
between the commit and the rename leaves the CSV one poll behind until the next
start, which rebuilds it first. A failed write of the CSV copy (disk full, folder
gone) is logged and tried again at each poll until it succeeds. A database deleted
while watching is created again at the next poll, and every file in the folder is
then new.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from grindwatch.exceptions import ConfigError, InputError
from grindwatch.explain import format_seconds, leading_channel
from grindwatch.fingerprint import content_fingerprint
from grindwatch.io import list_files, read_file
from grindwatch.io.cycle_folder import COLUMN_PATTERN
from grindwatch.io.dataset import _reason as skip_reason
from grindwatch.io.dataset import matches_metadata, source_path
from grindwatch.online import CycleScore, check_signal_model, score_recording
from grindwatch.pipeline import Model, scoring_options
from grindwatch.results import write_table

logger = logging.getLogger(__name__)

__all__ = ["FileKey", "ResultStore", "Watcher"]

# Columns of the results table, in CSV order.
RESULT_COLUMNS = (
    "id",
    "path",
    "size",
    "mtime_ns",
    "status",
    "recording",
    "score",
    "flag",
    "threshold",
    "n_windows",
    "flagged_windows",
    "max_window_score",
    "cycle_score",
    "cycle_threshold",
    "cycle_flag",
    "cycle_channel",
    "cycle_reason",
    "top_channel",
    "channel_shares",
    "reason",
    "scored_at",
    "sha256",
    "current_path",
    "source",
)

# The tables are templates for their name, because an upgrade of an older
# database copies a table into a new one built from the template.
_RESULTS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('scored', 'failed')),
    recording TEXT,
    score REAL,
    flag INTEGER,
    threshold REAL,
    n_windows INTEGER,
    flagged_windows INTEGER,
    max_window_score REAL,
    cycle_score REAL,
    cycle_threshold REAL,
    cycle_flag INTEGER,
    cycle_channel TEXT,
    cycle_reason TEXT,
    top_channel TEXT,
    channel_shares TEXT,
    reason TEXT,
    scored_at TEXT NOT NULL,
    sha256 TEXT,
    current_path TEXT,
    source TEXT,
    ctime_ns INTEGER NOT NULL DEFAULT 0,
    UNIQUE (path, size, mtime_ns, ctime_ns)
)
"""
_WINDOWS_TABLE = """
CREATE TABLE IF NOT EXISTS windows (
    result_id INTEGER NOT NULL REFERENCES results (id),
    window INTEGER NOT NULL,
    start_sample INTEGER NOT NULL,
    start_s REAL,
    end_s REAL,
    score REAL NOT NULL,
    flag INTEGER NOT NULL,
    channel_shares TEXT,
    PRIMARY KEY (result_id, window)
) WITHOUT ROWID
"""
_MOVES_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    result_id INTEGER NOT NULL REFERENCES results (id),
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    from_path TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('moved', 'copied', 'touched')),
    seen_at TEXT NOT NULL,
    ctime_ns INTEGER NOT NULL DEFAULT 0,
    UNIQUE (path, size, mtime_ns, ctime_ns)
)
"""


@dataclass(frozen=True)
class FileKey:
    """Identity of one version of a file: path relative to the watched folder,
    size in bytes, modification time and status change time in nanoseconds.

    The status change time (``st_ctime_ns``, for a cycle folder the latest of its
    files) distinguishes a rewrite that restores the size and the modification time,
    as ``cp -p`` and ``rsync -t`` do, because the kernel sets it on every write and
    no program can set it back. 0 marks a key stored by an older grindwatch.
    """

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int = 0


class ResultStore:
    """The SQLite results table shared by the watcher and the monitoring page.

    Each call opens its own connection, so one store can be used from several
    threads, and the page can read while a watcher process writes (WAL journal).
    Opening a path that is not an SQLite database, or cannot be opened as one,
    raises ``InputError``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(
                self.path.parent,
                f"cannot create the folder of the results database ({error.strerror})",
                "choose another --results path",
            ) from error
        try:
            self._create_tables()
        except sqlite3.OperationalError as error:
            raise InputError(
                self.path,
                f"cannot be opened as an SQLite database ({error})",
                "check that it is a file you can write, or choose another --results "
                "path",
            ) from error
        except sqlite3.DatabaseError as error:
            raise InputError(
                self.path,
                f"is not an SQLite database ({error})",
                "choose another --results path or move that file away",
            ) from error

    def _create_tables(self) -> None:
        connection = self._connect()
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_RESULTS_TABLE.format(name="results"))
            connection.execute(_WINDOWS_TABLE)
            connection.execute(_MOVES_TABLE.format(name="moves"))
            _add_missing_columns(connection)
            _key_by_ctime(connection)
            # The index needs the sha256 column, which older tables get just above.
            connection.execute(
                "CREATE INDEX IF NOT EXISTS results_content ON results (size, sha256)"
            )
        finally:
            connection.close()

    def has_tables(self) -> bool:
        """Return True when the database contains the results table.

        It does not after the file was deleted while a watcher ran: the next
        connection creates an empty file in its place.
        """
        connection = self._connect()
        try:
            row = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'results'"
            ).fetchone()
        finally:
            connection.close()
        return row is not None

    def create_tables(self) -> None:
        """Create the tables that do not exist yet."""
        self._create_tables()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30)
        connection.row_factory = sqlite3.Row
        return connection

    def keys(self) -> set[FileKey]:
        """Keys of every file already scored or failed, and of every file stored in
        the ``moves`` table as a move, copy or touch of one."""
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT path, size, mtime_ns, ctime_ns FROM results "
                "UNION SELECT path, size, mtime_ns, ctime_ns FROM moves"
            )
            return {FileKey(*row) for row in rows}
        finally:
            connection.close()

    def key_results(self) -> dict[FileKey, int]:
        """Map the key of each file scored or failed, moved, copied or touched to
        the id of its result."""
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT path, size, mtime_ns, ctime_ns, id FROM results "
                "UNION SELECT path, size, mtime_ns, ctime_ns, result_id FROM moves"
            )
            return {FileKey(*row[:4]): row[4] for row in rows}
        finally:
            connection.close()

    def current_paths(self) -> dict[int, str]:
        """Map each result id to the path its file was last seen at."""
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT id, COALESCE(current_path, path) FROM results"
            )
            return dict(rows.fetchall())
        finally:
            connection.close()

    def set_current_path(self, result_id: int, path: str) -> None:
        """Store ``path`` as the place where the file of result ``result_id`` is."""
        connection = self._connect()
        try:
            with connection:
                connection.execute(
                    "UPDATE results SET current_path = ? WHERE id = ?",
                    (path, result_id),
                )
        finally:
            connection.close()

    def add(
        self,
        key: FileKey,
        cycle: CycleScore | None,
        reason: str | None,
        sha256: str | None = None,
        source: str | None = None,
    ) -> int | None:
        """Insert one result (a score, or the reason it failed); return its id.

        ``sha256`` is the content hash that recognises the file after a move, and
        ``source`` its full path. The result row and its window rows are written in
        one transaction. Returns None, and writes nothing, when the key is already
        stored (another watcher on the same store got there first).
        """
        row = _result_row(key, cycle, reason)
        row.update(sha256=sha256, current_path=row["path"])
        if source is not None:
            row["source"] = _valid_utf8(source)
        connection = self._connect()
        try:
            with connection:
                cursor = connection.execute(
                    f"INSERT INTO results ({', '.join(row)}) "
                    f"VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()),
                )
                result_id = int(cursor.lastrowid)
                if cycle is not None:
                    connection.executemany(
                        "INSERT INTO windows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        _window_rows(result_id, cycle),
                    )
            return result_id
        except sqlite3.IntegrityError:
            logger.info("%s is already in %s; not stored again", key.path, self.path)
            return None
        finally:
            connection.close()

    def find_content(self, size: int, sha256: str) -> dict[str, Any] | None:
        """Return the latest result of a file with this size and SHA-256, or None."""
        connection = self._connect()
        try:
            row = connection.execute(
                "SELECT * FROM results WHERE size = ? AND sha256 = ? "
                "ORDER BY id DESC LIMIT 1",
                (size, sha256),
            ).fetchone()
        finally:
            connection.close()
        return None if row is None else _row_dict(row)

    def add_move(
        self, key: FileKey, result_id: int, from_path: str, kind: str
    ) -> int | None:
        """Store that the file ``key`` has the content of result ``result_id``,
        last seen at ``from_path``; return the id of the row in ``moves``.

        ``kind`` is ``moved`` (the file at ``from_path`` is gone or changed),
        ``copied`` (it is still there) or ``touched`` (the same path with a new
        modification time). A move or touch also sets the result's
        ``current_path`` to ``key.path``. Returns None, and writes nothing, when
        the key is already stored.
        """
        connection = self._connect()
        try:
            with connection:
                cursor = connection.execute(
                    "INSERT INTO moves (result_id, path, size, mtime_ns, ctime_ns, "
                    "from_path, kind, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        result_id,
                        key.path,
                        key.size,
                        key.mtime_ns,
                        key.ctime_ns,
                        from_path,
                        kind,
                        datetime.now(UTC).isoformat(timespec="milliseconds"),
                    ),
                )
                if kind != "copied":
                    connection.execute(
                        "UPDATE results SET current_path = ? WHERE id = ?",
                        (key.path, result_id),
                    )
            return int(cursor.lastrowid)
        except sqlite3.IntegrityError:
            logger.info("%s is already in %s; not stored again", key.path, self.path)
            return None
        finally:
            connection.close()

    def moves(self) -> pd.DataFrame:
        """Return the ``moves`` table, ordered by id."""
        connection = self._connect()
        try:
            return pd.read_sql_query("SELECT * FROM moves ORDER BY id", connection)
        finally:
            connection.close()

    def without_sha256(self) -> list[tuple[int, FileKey]]:
        """Return the id and key of each result stored without a content hash, as
        by grindwatch versions that did not store one."""
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT id, path, size, mtime_ns, ctime_ns FROM results "
                "WHERE sha256 IS NULL ORDER BY id"
            ).fetchall()
        finally:
            connection.close()
        return [(row[0], FileKey(*row[1:])) for row in rows]

    def set_ctimes(self, keys: list[FileKey]) -> None:
        """Store the ctime of each key in ``keys`` in the rows of results and moves
        that have its path, size and modification time but no ctime, as rows
        stored by an older grindwatch have."""
        rows = [(key.ctime_ns, key.path, key.size, key.mtime_ns) for key in keys]
        connection = self._connect()
        try:
            with connection:
                for table in ("results", "moves"):
                    connection.executemany(
                        f"UPDATE {table} SET ctime_ns = ? WHERE path = ? AND "
                        "size = ? AND mtime_ns = ? AND ctime_ns = 0",
                        rows,
                    )
        finally:
            connection.close()

    def set_sha256(self, hashes: dict[int, str]) -> None:
        """Store the content hash of each result id in ``hashes``."""
        connection = self._connect()
        try:
            with connection:
                connection.executemany(
                    "UPDATE results SET sha256 = ? WHERE id = ?",
                    [(sha256, result_id) for result_id, sha256 in hashes.items()],
                )
        finally:
            connection.close()

    def latest(self, limit: int = 200) -> list[dict[str, Any]]:
        """Return the ``limit`` most recent results, oldest first."""
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT * FROM (SELECT * FROM results ORDER BY id DESC LIMIT ?) "
                "ORDER BY id",
                (limit,),
            ).fetchall()
        finally:
            connection.close()
        return [_row_dict(row) for row in rows]

    def latest_scored(self, limit: int) -> list[dict[str, Any]]:
        """Return the ``limit`` most recent scored results, newest first.

        Failed files are left out, because they neither extend nor end a run of
        alarms.
        """
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT * FROM results WHERE status = 'scored' ORDER BY id DESC "
                "LIMIT ?",
                (limit,),
            ).fetchall()
        finally:
            connection.close()
        return [_row_dict(row) for row in rows]

    def get(self, result_id: int) -> dict[str, Any] | None:
        """Return one result with its windows, or None when there is no such id."""
        connection = self._connect()
        try:
            row = connection.execute(
                "SELECT * FROM results WHERE id = ?", (result_id,)
            ).fetchone()
            if row is None:
                return None
            windows = connection.execute(
                "SELECT window, start_sample, start_s, end_s, score, flag, "
                "channel_shares FROM windows WHERE result_id = ? ORDER BY window",
                (result_id,),
            ).fetchall()
        finally:
            connection.close()
        result = _row_dict(row)
        result["windows"] = [_row_dict(window) for window in windows]
        return result

    def frame(self) -> pd.DataFrame:
        """Return the whole results table, ordered by id."""
        connection = self._connect()
        try:
            frame = pd.read_sql_query(
                f"SELECT {', '.join(RESULT_COLUMNS)} FROM results ORDER BY id",
                connection,
            )
        finally:
            connection.close()
        for column in ("flag", "cycle_flag"):
            frame[column] = frame[column].astype("boolean")
        # Rows stored before current_path existed were not moved since.
        frame["current_path"] = frame["current_path"].fillna(frame["path"])
        # Failed rows have no counts, and pandas would turn the columns into floats.
        for column in ("n_windows", "flagged_windows"):
            frame[column] = frame[column].astype("Int64")
        return frame

    def export_csv(self, path: str | Path) -> Path:
        """Rewrite ``path`` from the table, atomically (temporary file and rename)."""
        return write_table(self.frame(), path)


# Columns added to the results table after its first release, with their types.
_ADDED_COLUMNS = {
    "cycle_score": "REAL",
    "cycle_threshold": "REAL",
    "cycle_flag": "INTEGER",
    "cycle_channel": "TEXT",
    "cycle_reason": "TEXT",
    "sha256": "TEXT",
    "current_path": "TEXT",
    "source": "TEXT",
}


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Give a results table written by an older grindwatch the newer columns."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(results)")}
    with connection:
        for name, kind in _ADDED_COLUMNS.items():
            if name not in present:
                connection.execute(f"ALTER TABLE results ADD COLUMN {name} {kind}")


def _key_by_ctime(connection: sqlite3.Connection) -> None:
    """Copy the results and moves tables of an older grindwatch into tables whose
    unique key includes ``ctime_ns``, so that a rewrite with the old size and
    modification time can be stored as a new result.

    SQLite cannot change the constraint of an existing table. The copy keeps every
    id, so the windows table still points at its results, and it runs in one
    transaction, so a reader sees the old tables or the new ones.
    """
    tables = (("results", _RESULTS_TABLE), ("moves", _MOVES_TABLE))
    # Checked first without a lock, so that opening a current database does not
    # wait for a writer.
    if all("ctime_ns" in _unique_columns(connection, name) for name, _ in tables):
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        for table, template in tables:
            if "ctime_ns" in _unique_columns(connection, table):
                continue  # another process upgraded it meanwhile
            connection.execute(template.format(name=f"{table}_new"))
            new = _column_names(connection, f"{table}_new")
            old = _column_names(connection, table)
            columns = ", ".join(name for name in old if name in new)
            connection.execute(
                f"INSERT INTO {table}_new ({columns}) SELECT {columns} FROM {table}"
            )
            connection.execute(f"DROP TABLE {table}")
            connection.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
            logger.info("upgraded the %s table to key files by ctime too", table)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _column_names(connection: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def _unique_columns(connection: sqlite3.Connection, table: str) -> set[str]:
    """Return the columns of the UNIQUE constraints of ``table``."""
    columns = set()
    for index in connection.execute(f"PRAGMA index_list({table})").fetchall():
        if index["unique"] and index["origin"] == "u":
            info = connection.execute(f"PRAGMA index_info({index['name']})")
            columns.update(row["name"] for row in info)
    return columns


def _check_not_other_file(path: Path) -> None:
    """Raise ConfigError when ``path`` is a file that is not a results copy.

    The CSV copy is rewritten at every poll, so a mistyped --csv that names a
    recording or another table would replace it.
    """
    if not path.is_file():
        return
    header: list[str] = []
    try:
        if path.suffix.lower() == ".csv":
            with path.open("rb") as handle:
                header = handle.readline(4096).decode("utf-8").strip().split(",")
        else:
            import pyarrow.parquet as pq

            header = list(pq.read_schema(path).names)
    except (OSError, UnicodeDecodeError, ValueError):
        header = []
    # Copies from older versions lack the columns added later, not these.
    if header[:5] != list(RESULT_COLUMNS[:5]):
        raise ConfigError(
            f"{path}: --csv names an existing file that is not a copy of a results "
            f"table (its first columns are not {', '.join(RESULT_COLUMNS[:5])}), "
            "and the watcher would overwrite it; pass a new path or delete the file"
        )


def _result_row(
    key: FileKey, cycle: CycleScore | None, reason: str | None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "path": key.path,
        "size": key.size,
        "mtime_ns": key.mtime_ns,
        "ctime_ns": key.ctime_ns,
        "status": "failed" if cycle is None else "scored",
        "reason": reason,
        "scored_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    if cycle is not None:
        row.update(
            recording=cycle.name,
            score=cycle.score,
            flag=int(cycle.flag),
            threshold=cycle.threshold,
            n_windows=cycle.n_windows,
            flagged_windows=cycle.flagged_windows,
            max_window_score=cycle.max_window_score,
            top_channel=cycle.top_channel(),
            channel_shares=json.dumps(cycle.channel_shares),
        )
        if cycle.cycle is not None:
            row.update(
                cycle_score=cycle.cycle.score,
                cycle_threshold=cycle.cycle.threshold,
                cycle_flag=int(cycle.cycle.flag),
                cycle_channel=cycle.cycle.channel,
                cycle_reason=cycle.cycle.reason,
            )
    # The recording name and a reader's error can repeat a file name that is not
    # UTF-8.
    return {
        name: _valid_utf8(value) if isinstance(value, str) else value
        for name, value in row.items()
    }


def _window_rows(result_id: int, cycle: CycleScore) -> list[tuple]:
    frame = cycle.windows
    rows = []
    for position in range(len(frame)):
        shares = None
        if cycle.window_shares is not None:
            shares = json.dumps(
                dict(
                    zip(
                        cycle.channels,
                        cycle.window_shares[position].tolist(),
                        strict=True,
                    )
                )
            )
        rows.append(
            (
                result_id,
                int(frame["window"].iloc[position]),
                int(frame["start_sample"].iloc[position]),
                _optional_float(frame, "start_s", position),
                _optional_float(frame, "end_s", position),
                float(frame["score"].iloc[position]),
                int(frame["flag"].iloc[position]),
                shares,
            )
        )
    return rows


def _optional_float(frame: pd.DataFrame, column: str, position: int) -> float | None:
    if column not in frame:
        return None
    return float(frame[column].iloc[position])


def _row_dict(row: sqlite3.Row) -> dict[str, Any]:
    result = dict(row)
    if "current_path" in result and result["current_path"] is None:
        result["current_path"] = result["path"]
    for name in ("flag", "cycle_flag"):
        if result.get(name) is not None:
            result[name] = bool(result[name])
    if result.get("channel_shares"):
        result["channel_shares"] = json.loads(result["channel_shares"])
    return result


class Watcher:
    """Score each new, complete recording in ``folder`` and store the result.

    Parameters
    ----------
    model : Model
        A model trained on signal recordings.
    folder : path
        The folder to watch, subfolders included. Hidden files and folders (names
        starting with a dot), which writers often use for files in progress, are
        ignored.
    store : ResultStore
    csv_path : path, optional
        Also keep a CSV copy of the results table here.
    settle_seconds : float
        A file counts as complete once its size and modification time have not
        changed for this long, as seen by the watcher's own polls; 0 scores a file
        as soon as it is seen.
    marker_suffix : str, optional
        When set, a file or cycle folder ``NAME`` counts as complete once ``NAME``
        plus this suffix exists beside it (for example ``.done``), without waiting.
    folder_marker : str, optional
        When set, every file in a folder that contains a file of this name (for
        example ``_COMPLETE``), and a cycle folder that contains it, counts as
        complete, without waiting.
    run_warning : int
        After this many recordings in a row are flagged along more than half of
        their windows, log one warning that the operating point or a sensor may
        have changed. The next normal recording ends the run. 0 turns it off.
    """

    def __init__(
        self,
        model: Model,
        folder: str | Path,
        store: ResultStore,
        csv_path: str | Path | None = None,
        settle_seconds: float = 2.0,
        marker_suffix: str | None = None,
        folder_marker: str | None = None,
        run_warning: int = 5,
    ) -> None:
        check_signal_model(model)
        self.model = model
        self.folder = Path(folder)
        self.store = store
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.settle_seconds = settle_seconds
        self.marker_suffix = marker_suffix
        self.folder_marker = folder_marker
        self.run_warning = run_warning
        self._warn_other_model()
        # Top channels of the current run of recordings flagged throughout. A run
        # that the store ends with carries over a restart.
        self._run: list[str | None] = self._stored_run()
        # The warning about the current run, for the live page; None without one.
        self.run_notice: str | None = None
        if 0 < self.run_warning <= len(self._run):
            self.run_notice = self._run_text()
        self._options = scoring_options(model)
        # Key of each stored file -> its result id, None for a file left out.
        self._known: dict[FileKey, int | None] = dict(store.key_results())
        # Result id -> the path its file was last seen at, as in current_path.
        self._current = store.current_paths()
        # Path -> (its key, monotonic time first seen with it).
        self._seen: dict[str, tuple[FileKey, float]] = {}
        # Keys stored without a ctime that this poll gave one, to be stored.
        self._adopted: list[FileKey] = []
        # Path of a logger stream -> its cycle folder, which lacks meta.json.
        self._streams: dict[str, str] = {}
        # Files of 0 bytes, which wait for content: a logger may create its file
        # when a cycle starts and write it when the cycle ends.
        self._empty: set[str] = set()
        # Files stored as failed by this watcher, in the order they were found.
        self.failed: list[str] = []
        # Files left out because their metadata is not data.match, in order.
        self.left_out: list[str] = []
        # Polls in a row whose result could not be stored.
        self._store_failures = 0
        # Paths already warned about as scored again after a change, so that a
        # logger that rewrites one file name every cycle warns once, not each cycle.
        self._rescored_warned: set[str] = set()
        # True while the watched folder is missing, so that it is warned about once.
        self._folder_missing = False
        # True while listing the watched folder fails, so that it is logged once.
        self._listing_failed = False
        # False until the first poll hashed the results stored without a hash.
        self._hashed_old_results = False
        # Rows the current poll added to the moves table, and current paths it
        # changed, so that the CSV copy is written again.
        self._moves_added = 0
        # Whether the CSV copy lacks rows that SQLite has, and how many polls in a
        # row failed to write it.
        self._csv_stale = False
        self._csv_failures = 0
        self._excluded = {store.path.resolve()}
        if self.csv_path is not None:
            if self.csv_path.resolve() == store.path.resolve():
                raise ConfigError(
                    f"{self.csv_path}: the CSV copy would overwrite the results "
                    "database of the same name; pass a --csv path other than "
                    "--results"
                )
            _check_not_other_file(self.csv_path)
            self._excluded.add(self.csv_path.resolve())
            store.export_csv(self.csv_path)

    def candidates(self) -> list[tuple[Path, FileKey]]:
        """Recordings in the folder not yet in the store, sorted by path.

        What counts as a recording is what ``grindwatch.io.list_files`` lists: files
        of a supported type, and cycle folders where the readers support them.
        """
        try:
            listed = list_files(self.folder)
        except InputError:
            self._note_folder_state()
            return []  # nothing readable in the folder yet
        except OSError as error:
            # A subfolder the watcher may not list (another user's, mode 700)
            # stops the whole listing, so no file is scored until it is fixed.
            if not self._listing_failed:
                logger.error(
                    "could not list the watched folder %s (%s); no file is scored "
                    "until the watcher may read every folder in it, or that folder "
                    "is moved out of it",
                    self.folder,
                    error,
                )
            self._listing_failed = True
            return []
        if self._listing_failed:
            logger.info("listed the watched folder %s again", self.folder)
            self._listing_failed = False
        self._note_folder_state()
        found = []
        for path in listed:
            if path.resolve() in self._excluded:
                continue
            key = _file_key(path, self.folder)
            if key is None:
                continue
            if key not in self._known and not self._adopt_old_key(key):
                found.append((path, key))
            else:
                self._follow_known(key)
        self._store_adopted_ctimes()
        return found

    def _adopt_old_key(self, key: FileKey) -> bool:
        """Return True when ``key`` matches a key stored without a ctime by an older
        grindwatch, and give that key the file's ctime.

        Such a file is trusted as the older version trusted it, so an upgrade
        neither hashes nor scores the files already stored. Its ctime is stored
        at the end of the poll, so that a later rewrite is seen.
        """
        old = FileKey(key.path, key.size, key.mtime_ns)
        if key.ctime_ns == 0 or old not in self._known:
            return False
        self._known[key] = self._known.pop(old)
        self._adopted.append(key)
        return True

    def _store_adopted_ctimes(self) -> None:
        """Store the ctimes that ``_adopt_old_key`` gave to old keys."""
        if not self._adopted:
            return
        try:
            self.store.set_ctimes(self._adopted)
        except sqlite3.OperationalError as error:
            # The keys stay adopted in memory, so this watcher still detects a rewrite.
            logger.error(
                "could not store the ctime of %d files scored by an older grindwatch "
                "in %s (%s); it is stored again after the next restart",
                len(self._adopted),
                self.store.path,
                error,
            )
        self._adopted = []

    def _follow_known(self, key: FileKey) -> None:
        """Set the current path of the result of the known file ``key`` to its path
        when the file at the stored current path is gone or has other content.

        That is a copy whose original was deleted, or a file moved back to a path
        where it was stored before on a file system where a rename keeps the
        ctime (Linux file systems set it). Its key is known, so it is no candidate
        and no row is added to the moves table.
        """
        result_id = self._known[key]
        current = self._current.get(result_id) if result_id is not None else None
        if current is None or current == key.path:
            return
        current_key = _file_key(self.folder / current, self.folder)
        if current_key is not None and self._known.get(current_key) == result_id:
            return  # a copy, and the file at the current path is still there
        try:
            self.store.set_current_path(result_id, key.path)
        except sqlite3.OperationalError as error:
            self._note_store_failure(
                key,
                error,
                failed=f"record result {result_id}'s new current path",
                retry="the next poll tries again",
            )
            return
        self._current[result_id] = key.path
        self._moves_added += 1
        logger.info(
            "%s has the content of result %d, whose file at %s is gone or changed, "
            "so it is now that result's file",
            key.path,
            result_id,
            current,
        )

    def _note_folder_state(self) -> None:
        """Warn once when the watched folder is gone (deleted, or a network share
        unmounted), and log when it is back, because no poll finds files meanwhile."""
        missing = not self.folder.is_dir()
        if missing and not self._folder_missing:
            logger.warning(
                "the watched folder %s was not found; new files are scored once it is "
                "back",
                self.folder,
            )
        elif self._folder_missing and not missing:
            logger.info("the watched folder %s is back", self.folder)
        self._folder_missing = missing

    def _is_complete(self, path: Path, key: FileKey, now: float) -> bool:
        if _is_logger_stream(path):
            # A stream of a cycle folder whose meta.json has not arrived. Once it
            # does, the folder is listed as one recording and its streams are not.
            if key.path not in self._streams:
                logger.info(
                    "%s is a stream of a grinding logger's cycle folder; waiting "
                    "for meta.json in %s",
                    key.path,
                    path.parent.parent,
                )
                self._streams[key.path] = Path(key.path).parent.parent.as_posix()
            return False
        if self.marker_suffix:
            if path.with_name(path.name + self.marker_suffix).exists():
                return True
        if self.folder_marker:
            holder = path if path.is_dir() else path.parent
            if (holder / self.folder_marker).exists():
                return True
        if key.size == 0 and path.is_file():
            if key.path not in self._empty:
                logger.info("%s is empty; it is scored once it has content", key.path)
                self._empty.add(key.path)
            self._seen.pop(key.path, None)
            return False
        self._empty.discard(key.path)
        seen = self._seen.get(key.path)
        if seen is None or seen[0] != key:
            self._seen[key.path] = (key, now)
            return self.settle_seconds <= 0
        return now - seen[1] >= self.settle_seconds

    def poll(self) -> list[int]:
        """Score every complete new file once; return the ids of the new results.

        A new file with the size and SHA-256 of a stored result is not scored: it
        is stored in the ``moves`` table as that result moved, copied or touched.
        A failed file touched in place is the exception, and is tried again.
        """
        now = time.monotonic()
        if not self._reopen_deleted_store():
            return []
        if not self._hashed_old_results:
            self._hash_old_results()
        added = []
        self._moves_added = 0
        candidates = self.candidates()
        listed = {key.path for _, key in candidates}
        # A file deleted or moved away before it settled is no longer pending.
        self._seen = {path: seen for path, seen in self._seen.items() if path in listed}
        self._streams = {
            stream: folder
            for stream, folder in self._streams.items()
            if stream in listed
        }
        self._empty &= listed
        for path, key in candidates:
            if not self._is_complete(path, key, now):
                continue
            sha256 = _content_sha256(path)
            try:
                known = self.store.find_content(key.size, sha256) if sha256 else None
                if known is not None and not _is_retry(key, known):
                    self._store_known(path, key, known)
                    continue
            except sqlite3.OperationalError as error:
                self._note_store_failure(key, error)
                break
            cycle, reason = self._score(path)
            if not _unchanged(path, key, self.folder):
                # The file changed while it was read: wait until it settles again.
                self._seen.pop(key.path, None)
                continue
            if cycle is None and reason is None:
                self._known[key] = None
                self._seen.pop(key.path, None)
                self.left_out.append(key.path)
                logger.info(
                    "left out %s: its metadata does not match data.match %s",
                    key.path,
                    dict(self._options.match),
                )
                continue
            try:
                result_id = self.store.add(
                    key, cycle, reason, sha256=sha256, source=source_path(path)
                )
            except sqlite3.OperationalError as error:
                # Another writer held the database past the timeout, or the disk is
                # full. The file stays new, so a later poll scores it again.
                self._note_store_failure(key, error)
                break
            self._note_store_success()
            self._known[key] = result_id
            self._seen.pop(key.path, None)
            if result_id is not None:
                self._note_rescored(key.path, result_id)
                self._current[result_id] = key.path
                added.append(result_id)
                if cycle is None:
                    self.failed.append(key.path)
                self._report(key, cycle, reason)
        if added or self._moves_added:
            self._csv_stale = True
        self._export_csv()
        return added

    def _reopen_deleted_store(self) -> bool:
        """Start an empty results table when the database was deleted (or emptied)
        while watching, as a user who wants a fresh table does. Returns False when
        the database cannot be checked or created, so that the poll stops.

        The files in the folder are then new, as after a restart on a new
        ``--results`` file, and are scored again.
        """
        try:
            if self.store.has_tables():
                return True
            self.store.create_tables()
        except sqlite3.Error as error:
            self._store_failures += 1
            logger.log(
                logging.ERROR if self._store_failures == 1 else logging.DEBUG,
                "could not open the results database %s (%s); the next poll tries "
                "again. If another program replaced the file, move it away or "
                "restart with another --results path",
                self.store.path,
                error,
            )
            return False
        logger.warning(
            "the results database %s was deleted while watching; started a new one, "
            "and the files in %s are scored again",
            self.store.path,
            self.folder,
        )
        self._known = {}
        self._current = {}
        self._run = []
        self.run_notice = None
        self._csv_stale = True
        return True

    def _export_csv(self) -> None:
        """Rewrite the CSV copy when results or moves were added since it was last
        written. A failed write (disk full, folder removed) is logged and tried
        again at the next poll, because SQLite keeps the results meanwhile."""
        if not self._csv_stale or self.csv_path is None:
            return
        try:
            self.store.export_csv(self.csv_path)
        except (OSError, ConfigError) as error:
            self._csv_failures += 1
            level = logging.ERROR if self._csv_failures == 1 else logging.DEBUG
            logger.log(
                level,
                "could not write the CSV copy %s (%s); %s keeps every result, and "
                "the copy is written again at the next poll. Check that the folder "
                "exists, that you may write there and that the disk has space.",
                self.csv_path,
                error,
                self.store.path,
            )
            return
        if self._csv_failures:
            logger.info(
                "wrote the CSV copy %s again, after %d failed attempts",
                self.csv_path,
                self._csv_failures,
            )
        self._csv_stale = False
        self._csv_failures = 0

    def _store_known(self, path: Path, key: FileKey, known: dict[str, Any]) -> None:
        """Store the file ``key``, whose content is that of the result ``known``, as
        that result moved, copied or touched, without scoring it."""
        if not _unchanged(path, key, self.folder):
            # The file changed while it was hashed: wait until it settles again.
            self._seen.pop(key.path, None)
            return
        stored = FileKey(
            known["path"], known["size"], known["mtime_ns"], known["ctime_ns"]
        )
        if stored == key:
            # Another watcher on the same store scored this very file since this
            # one started, so it is neither a move, a copy nor a touch.
            self._known[key] = known["id"]
            self._current[known["id"]] = known["current_path"]
            self._seen.pop(key.path, None)
            return

        # NOTE: a stored path with a byte that is not UTF-8 was escaped (see
        # _valid_utf8) and names no file, so a copy of such a file counts as moved.
        previous = known["current_path"]
        if previous == key.path:
            kind = "touched"
        elif _has_content(self.folder / previous, key.size, known["sha256"]):
            kind = "copied"
        else:
            kind = "moved"

        move_id = self.store.add_move(key, known["id"], previous, kind)
        self._note_store_success()
        self._known[key] = known["id"]
        self._seen.pop(key.path, None)
        if move_id is not None:
            if kind != "copied":
                self._current[known["id"]] = key.path
            self._moves_added += 1
            _log_known(key, known, kind)

    def _hash_old_results(self) -> None:
        """Hash the files of results stored without a SHA-256 (by an older
        grindwatch), so that moving them later does not score them again.

        Only a file still at its stored path with its stored size and modification
        time is hashed. The others keep no hash, and are scored again when they
        turn up elsewhere.
        """
        hashes = {}
        for result_id, key in self.store.without_sha256():
            path = self.folder / key.path
            current = _file_key(path, self.folder)
            if current is None or not _same_version(current, key):
                continue
            sha256 = _content_sha256(path)
            if sha256 is not None and _unchanged(path, current, self.folder):
                hashes[result_id] = sha256
        if hashes:
            try:
                self.store.set_sha256(hashes)
            except sqlite3.OperationalError as error:
                logger.error(
                    "could not store the SHA-256 of %d results in %s (%s); it is "
                    "tried again at the next poll",
                    len(hashes),
                    self.store.path,
                    error,
                )
                return
            logger.info(
                "stored the SHA-256 of %d files scored before results kept one, so "
                "that they are recognised when moved",
                len(hashes),
            )
        self._hashed_old_results = True

    def _note_store_success(self) -> None:
        """Log that storing works again after failed attempts."""
        if self._store_failures:
            logger.info(
                "stored results in %s again, after %d failed attempts",
                self.store.path,
                self._store_failures,
            )
            self._store_failures = 0

    def _note_store_failure(
        self,
        key: FileKey,
        error: sqlite3.Error,
        failed: str = "store the result of",
        retry: str = "it is scored again at the next poll",
    ) -> None:
        """Log the first of a series of failures to write to the results database
        at error level, and the repeats at debug level, one per poll.

        ``failed`` names the write (followed by the file's path) and ``retry``
        what happens next.
        """
        self._store_failures += 1
        level = logging.ERROR if self._store_failures == 1 else logging.DEBUG
        logger.log(
            level,
            "could not %s %s in %s (%s); %s",
            failed,
            key.path,
            self.store.path,
            error,
            retry,
        )

    def _note_rescored(self, path: str, result_id: int) -> None:
        """Log that ``path``, which has an earlier result, was scored again.

        Both results stay, so an alarm in the log is one scoring and not always one
        cycle. A file still being written when its size last settled is scored
        once in part and again when complete.
        """
        earlier = [
            other
            for other, current in self._current.items()
            if current == path and other != result_id
        ]
        if not earlier:
            return
        log = logger.info if path in self._rescored_warned else logger.warning
        self._rescored_warned.add(path)
        log(
            "%s changed after it was scored as result %d, so it is scored again as "
            "result %d and both results are kept; if the file was still being "
            "written then, raise --settle or have the writer add a marker file "
            "(--marker-suffix, --folder-marker)",
            path,
            max(earlier),
            result_id,
        )

    def _score(self, path: Path) -> tuple[CycleScore | None, str | None]:
        """Score the recording at ``path``.

        Returns the score and None, or None and the reason it failed, or
        (None, None) when its metadata is not ``data.match``.
        """
        try:
            recordings = read_file(path, self._options)
            if len(recordings) == 1 and not matches_metadata(
                recordings[0], self._options.match
            ):
                return None, None
            if len(recordings) != 1:
                raise InputError(
                    path,
                    f"contains {len(recordings)} recordings; the watcher expects one "
                    "recording per file",
                )
            return score_recording(self.model, recordings[0]), None
        except InputError as error:
            # For a cycle folder, the reason starts with the damaged file's path in
            # it (meta.json, raw/NAME.parquet), as in grindwatch score.
            return None, skip_reason(error, path)
        except (OSError, ValueError) as error:
            # A reader failed in a way it does not translate (a corrupt file deep
            # inside a format library): record it and go on with the next file.
            return None, f"could not be read ({type(error).__name__}: {error})"
        except Exception as error:
            # Any other error is a bug in grindwatch, not in the file. Storing the
            # file as failed keeps one file from stopping the watcher, and keeps a
            # restarted watcher from hitting the same error again.
            logger.exception("unexpected error while scoring %s", path)
            return None, (
                f"could not be scored because of an unexpected error "
                f"({type(error).__name__}: {error}); this is a bug in grindwatch, "
                "please report it with the file"
            )

    def _report(
        self, key: FileKey, cycle: CycleScore | None, reason: str | None
    ) -> None:
        cycle_flag = cycle is not None and cycle.cycle is not None and cycle.cycle.flag
        if cycle is None:
            logger.error("failed %s: %s", key.path, reason)
        elif cycle_flag and cycle.score <= cycle.threshold:
            logger.warning(
                "ALARM %s: the cycle check flags the whole recording (cycle score "
                "%.3g above its threshold %.3g): %s; its windows score %.4g, below "
                "the threshold %.4g",
                key.path,
                cycle.cycle.score,
                cycle.cycle.threshold,
                cycle.cycle.reason,
                cycle.score,
                cycle.threshold,
            )
        elif cycle.flag:
            logger.warning(
                "ALARM %s: score %.4g is above the threshold %.4g; %d of %d windows "
                "flagged; largest share from channel %s; %s",
                key.path,
                cycle.score,
                cycle.threshold,
                cycle.flagged_windows,
                cycle.n_windows,
                cycle.top_channel(),
                _describe_worst_window(cycle.windows),
            )
            if cycle_flag:
                logger.warning(
                    "ALARM %s: the cycle check flags it too: %s",
                    key.path,
                    cycle.cycle.reason,
                )
        else:
            logger.info("scored %s: %.4g (normal)", key.path, cycle.score)
        if cycle is not None:
            self._follow_run(cycle)

    def _warn_other_model(self) -> None:
        """Warn when the store's latest result came from a model with another
        threshold, as after retraining, because its files are not scored again."""
        latest = self.store.latest_scored(1)
        if not latest or latest[0]["threshold"] == self.model.threshold_.value:
            return
        logger.warning(
            "%s contains results of another model (latest threshold %.4g; this "
            "model's is %.4g). Files already stored keep those scores and flags "
            "and are not scored again, so the table mixes both models; the "
            "threshold column tells them apart. To keep this model's results "
            "apart, pass another --results file.",
            self.store.path,
            latest[0]["threshold"],
            self.model.threshold_.value,
        )

    def _stored_run(self) -> list[str | None]:
        """Return the top channels of the run of alarms that the store ends with.

        A run as long as ``run_warning`` was warned about before the restart, so
        the list is cut there and the warning is not repeated. Results stored with
        another threshold came from another model and end the run.
        """
        run: list[str | None] = []
        if self.run_warning <= 0:
            return run
        for row in self.store.latest_scored(self.run_warning):
            if row["threshold"] != self.model.threshold_.value:
                break
            if not (row["flag"] and row["flagged_windows"] > row["n_windows"] / 2):
                break
            run.append(row["top_channel"])
        run.reverse()
        return run

    def _follow_run(self, cycle: CycleScore) -> None:
        """Warn once when recordings flagged throughout keep coming in a row.

        A fault seldom hits every cycle in a row along its whole length, while a
        change of load, speed, part type or sensor does.
        """
        if not (cycle.flag and cycle.flagged_windows > cycle.n_windows / 2):
            self._run.clear()
            self.run_notice = None
            return
        if len(self._run) >= self.run_warning:
            # The run was warned about already, or run_warning is 0, so its
            # channels are not needed and the list stops growing.
            return
        self._run.append(cycle.top_channel())
        if len(self._run) != self.run_warning:
            return
        self.run_notice = self._run_text()
        logger.warning("%s", self.run_notice)

    def _run_text(self) -> str:
        """Describe the current run of whole-cycle alarms, naming a leading channel."""
        leader = ""
        # The same rule as the warning of grindwatch score names the channel.
        found = leading_channel(self._run)
        if found is not None:
            leader = f" Channel '{found[0]}' leads {found[1]} of them."
        return (
            f"{len(self._run)} recordings in a row were flagged along most of their "
            f"windows.{leader} A run like this is what a change of operating point "
            "(load, speed, part type) or of a sensor (gain, position, a loose mount) "
            "looks like, more than a fault. Check the machine and the sensor; if the "
            "operating point changed on purpose, train a model for it."
        )

    @property
    def store_failing(self) -> bool:
        """Whether the latest write to the results database failed."""
        return self._store_failures > 0

    @property
    def csv_behind(self) -> bool:
        """Whether the CSV copy lacks results because writing it failed."""
        return self._csv_stale and self.csv_path is not None

    def pending(self) -> list[str]:
        """Files seen but not yet scored, because they were still changing."""
        return sorted(self._seen)

    def empty(self) -> list[str]:
        """Files of 0 bytes, not scored until they have content."""
        return sorted(self._empty)

    def waiting_cycle_folders(self) -> list[str]:
        """Cycle folders whose logger streams are in but whose meta.json is not."""
        return sorted(set(self._streams.values()))

    def run(
        self,
        interval: float = 1.0,
        stop: threading.Event | None = None,
        max_polls: int | None = None,
    ) -> list[int]:
        """Poll each ``interval`` seconds until ``stop`` is set or ``max_polls`` ran.

        Returns the ids of the results this call added.
        """
        stop = stop or threading.Event()
        logger.info("watching %s, results in %s", self.folder, self.store.path)
        polls, added = 0, []
        try:
            while not stop.is_set():
                added += self.poll()
                polls += 1
                if max_polls is not None and polls >= max_polls:
                    break
                stop.wait(interval)
        finally:
            logger.info(
                "stopped watching %s after %d new results", self.folder, len(added)
            )
        return added


def _describe_worst_window(windows: pd.DataFrame) -> str:
    """Describe where the highest-scoring window lies, in seconds when the sample
    rate is known, else in samples."""
    worst = windows.loc[windows["score"].idxmax()]
    number = int(worst["window"])
    if "start_s" in windows and pd.notna(worst["start_s"]):
        # Significant digits, not milliseconds, so that a window of 64 samples
        # at 50 kHz reads 0.00128 to 0.00256 s, not 0.001 to 0.003 s.
        start = format_seconds(worst["start_s"])
        end = format_seconds(worst["end_s"])
        return f"worst window {number} at {start} to {end} s"
    return f"worst window {number} from sample {int(worst['start_sample'])}"


def _is_logger_stream(path: Path) -> bool:
    """Return True for a Parquet file in a ``raw/`` folder with a column named as
    the grinding logger names its streams, ``<channel>_rate<Hz>_clipping<n>_batch<n>``.

    The cycle folder reader leaves the other columns out, so one such column is
    enough.
    """
    if path.parent.name != "raw" or path.suffix.lower() not in (".parquet", ".pq"):
        return False
    import pyarrow
    import pyarrow.parquet

    try:
        names = pyarrow.parquet.read_schema(path).names
    except (OSError, pyarrow.ArrowException):
        return False  # still being written, or not Parquet: judged as a file
    return any(COLUMN_PATTERN.match(name) for name in names)


def _file_key(path: Path, folder: Path) -> FileKey | None:
    """Build the key of a file, or of a folder recording from the total size and the
    latest modification time of its files. Returns None when it has gone."""
    relative = _valid_utf8(path.relative_to(folder).as_posix())
    try:
        if not path.is_dir():
            # NOTE: on Windows st_ctime_ns is the creation time (Python 3.12 marks
            # that use as deprecated), so a rewrite in place that keeps the size and
            # the modification time is not seen there.
            stat = path.stat()
            return FileKey(relative, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        stats = [item.stat() for item in path.rglob("*") if item.is_file()]
    except FileNotFoundError:
        return None  # removed since the listing
    size = sum(stat.st_size for stat in stats)
    latest = max((stat.st_mtime_ns for stat in stats), default=0)
    changed = max((stat.st_ctime_ns for stat in stats), default=0)
    return FileKey(relative, size, latest, changed)


def _same_version(current: FileKey, stored: FileKey) -> bool:
    """Return True when the file's ``current`` key is the ``stored`` one, which
    lacks a ctime when an older grindwatch stored it."""
    if stored.ctime_ns == 0:
        return replace(current, ctime_ns=0) == stored
    return current == stored


def _valid_utf8(text: str) -> str:
    """Return ``text`` as SQLite can store it: a byte of a file name that is not
    UTF-8, which Python keeps as a lone surrogate, becomes a ``\\xNN`` escape."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def _unchanged(path: Path, key: FileKey, folder: Path) -> bool:
    return _file_key(path, folder) == key


def _log_known(key: FileKey, known: dict[str, Any], kind: str) -> None:
    """Log that the file ``key`` was stored as the result ``known`` moved, copied
    or touched."""
    previous = known["current_path"]
    if kind == "copied":
        # Recordings of real sensor signals do not repeat byte for byte, so this is
        # a copy made by hand, or a logger that wrote one cycle twice.
        logger.warning(
            "%s has the same size and SHA-256 as %s, which is still there; it is "
            "stored as a copy of result %d (%s) and not scored again",
            key.path,
            previous,
            known["id"],
            known["status"],
        )
    elif kind == "moved":
        logger.info(
            "%s is %s moved or renamed (same size and SHA-256); it keeps result %d "
            "(%s) and is not scored again",
            key.path,
            previous,
            known["id"],
            known["status"],
        )
    else:
        # The same modification time with a new ctime is a rewrite of the same
        # bytes (cp -p, rsync -t), a chmod or a restore from a backup.
        changed = (
            "modification time"
            if key.mtime_ns != known["mtime_ns"]
            else "ctime (a rewrite or a metadata change)"
        )
        logger.info(
            "%s has a new %s but the same content; it keeps result %d (%s) and is "
            "not scored again",
            key.path,
            changed,
            known["id"],
            known["status"],
        )


def _is_retry(key: FileKey, known: dict[str, Any]) -> bool:
    """Return True when ``key`` is a failed file given a new modification time
    (``touch``) without a change of content: the way to try it again."""
    return known["status"] == "failed" and known["current_path"] == key.path


def _content_sha256(path: Path) -> str | None:
    """Return the SHA-256 of a file or cycle folder, or None when it cannot be read.

    Such a file is then scored, so its read error is stored as usual.
    """
    try:
        return content_fingerprint(path)[1]
    except OSError as error:
        logger.debug("could not hash %s: %s", path, error)
        return None


def _has_content(path: Path, size: int, sha256: str) -> bool:
    """Return True when the file or cycle folder at ``path`` exists with this size
    and SHA-256."""
    key = _file_key(path, path.parent) if path.exists() else None
    if key is None or key.size != size:
        return False
    try:
        return content_fingerprint(path)[1] == sha256
    except OSError:
        return False
