"""The folder watcher: completeness, failures, restarts and a kill mid-stream."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import grindwatch
from grindwatch.cli import _register_extensions
from grindwatch.cli import app as cli_app
from grindwatch.config import Config
from grindwatch.exceptions import InputError
from grindwatch.explain import format_seconds
from grindwatch.watch import FileKey, ResultStore, Watcher
from tests.conftest import write_cycles
from tests.servetools import (
    grindwatch_command,
    restored_logging,  # noqa: F401 - a fixture
    stop_process,
    train_small,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("watch")
    write_cycles(root / "good", 8)
    result = train_small(root / "good", output=root / "bundle")
    return {"model": result.model, "bundle": root / "bundle"}


# Short logger cycles: acoustic emission at 20 kHz, current at 2 kHz, 0.2 s each.
SMALL_CYCLES = {"ae_rate": 20_000, "current_rate": 2_000, "duration": 0.2}


@pytest.fixture(scope="module")
def grinding_model(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A PCA model of window features, trained on 6 generated logger cycle folders."""
    from grindwatch.io.synthetic import write_grinding_cycles

    root = tmp_path_factory.mktemp("grinding")
    write_grinding_cycles(root / "train", 6, **SMALL_CYCLES)
    config = {
        "windows.length": 100,
        "frontend.kind": "features",
        "detector.family": "pca",
        "tracking.enabled": False,
    }
    return grindwatch.train(root / "train", Config().with_overrides(config)).model


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "incoming"
    path.mkdir()
    return path


def _watcher(trained, folder, tmp_path, **options) -> Watcher:  # noqa: ANN001, ANN003
    store = ResultStore(tmp_path / "results.sqlite")
    options.setdefault("settle_seconds", 0)
    return Watcher(trained["model"], folder, store, tmp_path / "results.csv", **options)


def _paths(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT path FROM results ORDER BY id").fetchall()
    return [row[0] for row in rows]


def test_each_new_file_scored_once(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 2, start_seed=10)

    first = watcher.poll()
    second = watcher.poll()
    write_cycles(folder, 1, start_seed=12)
    third = watcher.poll()

    assert len(first) == 2
    assert second == []
    assert len(third) == 1
    assert _paths(tmp_path / "results.sqlite") == [
        "cycle_010.csv",
        "cycle_011.csv",
        "cycle_012.csv",
    ]


def test_subfolders_are_watched(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder / "line2" / "2024-05-01", 1, start_seed=20)

    watcher.poll()

    assert _paths(tmp_path / "results.sqlite") == ["line2/2024-05-01/cycle_020.csv"]


def test_link_loop_scored_once(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder / "line2", 1, start_seed=25)
    os.symlink(folder, folder / "line2" / "loop")

    added = watcher.poll()

    assert len(added) == 1
    assert _paths(tmp_path / "results.sqlite") == ["line2/cycle_025.csv"]


def test_folder_removed_while_listed(trained, folder, tmp_path, monkeypatch):
    """A subfolder moved away between listing its parent and its own files."""
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=26)
    (folder / "archive" / "done").mkdir(parents=True)
    iterdir = Path.iterdir

    def remove_then_list(path: Path):  # noqa: ANN202
        # Remove the folder at the moment the watcher lists it, as an archiving
        # program that moves folders out of the watched folder can.
        if path.name == "done":
            shutil.rmtree(path)
        return iterdir(path)

    monkeypatch.setattr(Path, "iterdir", remove_then_list)
    added = watcher.poll()

    assert len(added) == 1
    assert _paths(tmp_path / "results.sqlite") == ["cycle_026.csv"]


def test_unreadable_subfolder_logged_once(
    trained, folder, tmp_path, monkeypatch, caplog
):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=27)
    (folder / "locked").mkdir()
    iterdir = Path.iterdir

    def deny_locked(path: Path):  # noqa: ANN202
        # File permissions do not stop root, so the denial is simulated.
        if path.name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return iterdir(path)

    monkeypatch.setattr(Path, "iterdir", deny_locked)
    with caplog.at_level(logging.INFO, logger="grindwatch.watch"):
        denied = watcher.poll()
        watcher.poll()
        monkeypatch.setattr(Path, "iterdir", iterdir)
        allowed = watcher.poll()

    assert denied == []
    assert caplog.text.count("could not list the watched folder") == 1
    assert "Permission denied" in caplog.text
    assert "listed the watched folder" in caplog.text
    assert len(allowed) == 1


def test_file_name_not_utf8_stored_once(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 2, start_seed=27)
    undecodable = os.fsdecode(b"cycle_\xff.csv")
    (folder / "cycle_027.csv").rename(folder / undecodable)

    first = watcher.poll()
    second = watcher.poll()

    assert len(first) == 2
    assert second == []
    assert _paths(tmp_path / "results.sqlite") == ["cycle_028.csv", "cycle_\\xff.csv"]
    assert ResultStore(tmp_path / "results.sqlite").get(first[1])["status"] == "scored"


def test_missing_folder_warned_once(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    folder.rmdir()

    with caplog.at_level(logging.INFO, logger="grindwatch.watch"):
        watcher.poll()
        watcher.poll()
        write_cycles(folder, 1, start_seed=32)
        added = watcher.poll()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "was not found" in warnings[0].getMessage()
    assert "is back" in caplog.text
    assert len(added) == 1


def test_folder_named_like_pattern_watched(trained, tmp_path):
    folder = tmp_path / "line[2]"
    write_cycles(folder, 1, start_seed=29)
    write_cycles(tmp_path / "line2", 1, start_seed=30)
    watcher = _watcher(trained, folder, tmp_path)

    added = watcher.poll()

    assert len(added) == 1
    assert _paths(tmp_path / "results.sqlite") == ["cycle_029.csv"]


def test_waits_until_file_settles(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path, settle_seconds=0.4)
    write_cycles(folder, 1, start_seed=30)

    seen = watcher.poll()
    waiting = watcher.pending()
    # The file grows (a writer appends): the wait starts again.
    path = folder / "cycle_030.csv"
    with open(path, "a") as handle:
        handle.write(pd.read_csv(path).tail(1).to_csv(header=False, index=False))
    time.sleep(0.25)
    grown = watcher.poll()
    time.sleep(0.25)
    still = watcher.poll()
    time.sleep(0.25)
    settled = watcher.poll()

    assert seen == []
    assert waiting == ["cycle_030.csv"]
    assert grown == []
    assert still == []
    assert len(settled) == 1
    assert watcher.pending() == []


def test_file_deleted_before_settling_not_pending(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path, settle_seconds=60)
    write_cycles(folder, 2, start_seed=32)

    watcher.poll()
    waiting = watcher.pending()
    (folder / "cycle_032.csv").unlink()
    watcher.poll()

    assert waiting == ["cycle_032.csv", "cycle_033.csv"]
    assert watcher.pending() == ["cycle_033.csv"]


def test_marker_suffix_completes_without_waiting(trained, folder, tmp_path):
    watcher = _watcher(
        trained, folder, tmp_path, settle_seconds=60, marker_suffix=".done"
    )
    write_cycles(folder, 2, start_seed=40)
    (folder / "cycle_041.csv.done").touch()

    added = watcher.poll()

    assert len(added) == 1
    assert _paths(tmp_path / "results.sqlite") == ["cycle_041.csv"]


def test_folder_marker_completes_folder(trained, folder, tmp_path):
    watcher = _watcher(
        trained, folder, tmp_path, settle_seconds=60, folder_marker="_COMPLETE"
    )
    write_cycles(folder / "ready", 2, start_seed=50)
    write_cycles(folder / "writing", 1, start_seed=52)
    (folder / "ready" / "_COMPLETE").touch()

    watcher.poll()

    assert _paths(tmp_path / "results.sqlite") == [
        "ready/cycle_050.csv",
        "ready/cycle_051.csv",
    ]


def test_unreadable_file_recorded_as_failed(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    (folder / "a_broken.csv").write_text("no,numbers\nhere,at all\n")
    write_cycles(folder, 1, start_seed=60)

    with caplog.at_level(logging.ERROR, logger="grindwatch.watch"):
        watcher.poll()
    rows = ResultStore(tmp_path / "results.sqlite").frame().set_index("path")

    assert rows.loc["a_broken.csv", "status"] == "failed"
    assert "no numeric channel" in rows.loc["a_broken.csv", "reason"]
    assert rows.loc["cycle_060.csv", "status"] == "scored"
    assert "failed a_broken.csv" in caplog.text


def test_empty_file_waits_for_content(trained, folder, tmp_path, caplog):
    # A logger that creates its file when a cycle starts and writes it when the
    # cycle ends leaves 0 bytes for longer than --settle.
    watcher = _watcher(trained, folder, tmp_path)
    target = folder / "cycle_061.csv"
    target.write_bytes(b"")

    with caplog.at_level(logging.INFO, logger="grindwatch.watch"):
        first = watcher.poll() + watcher.poll()
    waiting = watcher.empty()
    write_cycles(tmp_path / "source", 1, start_seed=61)
    target.write_bytes((tmp_path / "source" / "cycle_061.csv").read_bytes())
    watcher.poll()
    rows = ResultStore(tmp_path / "results.sqlite").frame().set_index("path")

    assert first == []
    assert waiting == ["cycle_061.csv"]
    assert caplog.text.count("cycle_061.csv is empty") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert rows.loc["cycle_061.csv", "status"] == "scored"
    assert watcher.empty() == []


def test_empty_file_with_marker_recorded_as_failed(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path, marker_suffix=".done")
    (folder / "cycle_062.npy").write_bytes(b"")
    (folder / "cycle_062.npy.done").touch()

    watcher.poll()
    rows = ResultStore(tmp_path / "results.sqlite").frame().set_index("path")

    assert rows.loc["cycle_062.npy", "status"] == "failed"
    assert "empty" in rows.loc["cycle_062.npy", "reason"]


def test_wrong_channels_recorded_as_failed(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(tmp_path / "source", 1, start_seed=70)
    frame = pd.read_csv(tmp_path / "source" / "cycle_070.csv").drop(columns="vib_y")
    frame.to_csv(folder / "partial.csv", index=False)

    watcher.poll()
    row = ResultStore(tmp_path / "results.sqlite").frame().iloc[0]

    assert row["status"] == "failed"
    assert "missing channels ['vib_y']" in row["reason"]


def test_unnamed_channels_fix_names_formats(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(tmp_path / "source", 1, start_seed=71)
    frame = pd.read_csv(tmp_path / "source" / "cycle_071.csv")
    data = frame[["vib_x", "vib_y", "current"]].to_numpy().T
    np.savez(folder / "unnamed.npz", data=data, sample_rate=1000.0)

    watcher.poll()
    row = ResultStore(tmp_path / "results.sqlite").frame().iloc[0]

    assert row["status"] == "failed"
    assert "it has ['channel_0', 'channel_1', 'channel_2']" in row["reason"]
    assert "this file stores no channel names" in row["reason"]
    assert "a 'channels' array in .npz" in row["reason"]


def test_locked_store_retried_next_poll(trained, folder, tmp_path, monkeypatch, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=31)
    connect = watcher.store._connect

    def impatient_connect() -> sqlite3.Connection:
        # Give up on the lock after 0.1 s instead of the store's 30 s.
        connection = connect()
        connection.execute("PRAGMA busy_timeout = 100")
        return connection

    monkeypatch.setattr(watcher.store, "_connect", impatient_connect)
    lock = sqlite3.connect(tmp_path / "results.sqlite", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    with caplog.at_level(logging.ERROR, logger="grindwatch.watch"):
        locked = watcher.poll()
    lock.execute("ROLLBACK")
    lock.close()
    unlocked = watcher.poll()

    assert locked == []
    assert "could not store the result of cycle_031.csv" in caplog.text
    assert "database is locked" in caplog.text
    assert len(unlocked) == 1
    assert _paths(tmp_path / "results.sqlite") == ["cycle_031.csv"]


def test_changed_file_scored_again(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=80)
    watcher.poll()

    # One digit changes, so the size stays the same and only the hash differs.
    path = folder / "cycle_080.csv"
    stat = path.stat()
    text = path.read_text()
    digit = text.index("0.0", text.index("\n"))
    path.write_text(text[:digit] + "9" + text[digit + 1 :])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    watcher.poll()
    table = watcher.store.frame()

    assert path.stat().st_size == stat.st_size
    assert _paths(tmp_path / "results.sqlite") == ["cycle_080.csv", "cycle_080.csv"]
    assert table["sha256"].nunique() == 2
    assert watcher.store.moves().empty


def test_partly_written_file_rescored_warns(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(tmp_path / "source", 1, start_seed=81)
    lines = (tmp_path / "source" / "cycle_081.csv").read_text().splitlines(True)
    path = folder / "cycle_081.csv"
    path.write_text("".join(lines[: len(lines) // 2]))

    with caplog.at_level(logging.INFO, logger="grindwatch.watch"):
        watcher.poll()
        path.write_text("".join(lines))
        watcher.poll()
        path.write_text("".join(lines[:-1]))
        watcher.poll()
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "changed after" in record.getMessage()
    ]
    infos = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.INFO and "changed after" in record.getMessage()
    ]

    assert _paths(tmp_path / "results.sqlite") == ["cycle_081.csv"] * 3
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "cycle_081.csv changed after it was scored as result 1, so it is scored "
        "again as result 2"
    )
    assert "raise --settle" in warnings[0]
    assert len(infos) == 1
    assert "scored as result 2, so it is scored again as result 3" in infos[0]


def _same_size_variant(path: Path, target: Path) -> None:
    """Write ``target`` as ``path`` with one digit changed, so the size stays."""
    text = path.read_text()
    digit = text.index("0.0", text.index("\n"))
    target.write_text(text[:digit] + "9" + text[digit + 1 :])


def test_rewrite_keeping_mtime_scored_again(trained, folder, tmp_path):
    """cp -p of other bytes of the same size over a scored file keeps its size
    and modification time. Only the new ctime distinguishes the new version."""
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=79)
    watcher.poll()
    path = folder / "cycle_079.csv"
    stat = path.stat()
    staged = tmp_path / "staged.csv"
    _same_size_variant(path, staged)
    os.utime(staged, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    subprocess.run(["cp", "-p", str(staged), str(path)], check=True)
    added = watcher.poll()
    again = watcher.poll()
    restarted = _watcher(trained, folder, tmp_path).poll()
    table = watcher.store.frame()

    assert path.stat().st_size == stat.st_size
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert len(added) == 1
    assert again == []
    assert restarted == []
    assert table["path"].tolist() == ["cycle_079.csv", "cycle_079.csv"]
    assert table["sha256"].nunique() == 2
    assert watcher.store.moves().empty


def test_chmod_not_scored_again(trained, folder, tmp_path, caplog):
    """A new ctime with the same content (chmod) is hashed once, not scored."""
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=78)
    watcher.poll()
    path = folder / "cycle_078.csv"

    path.chmod(0o600)
    with caplog.at_level(logging.INFO, logger="grindwatch.watch"):
        added = watcher.poll()
    again = watcher.poll()
    moves = watcher.store.moves()

    assert added == []
    assert again == []
    assert _paths(tmp_path / "results.sqlite") == ["cycle_078.csv"]
    assert moves["kind"].tolist() == ["touched"]
    assert "has a new ctime" in caplog.text


def test_touched_file_not_scored_again(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=81)
    watcher.poll()

    path = folder / "cycle_081.csv"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with caplog.at_level(logging.INFO, logger="grindwatch.watch"):
        added = watcher.poll()
    moves = watcher.store.moves()

    assert added == []
    assert _paths(tmp_path / "results.sqlite") == ["cycle_081.csv"]
    assert moves["kind"].tolist() == ["touched"]
    assert moves["mtime_ns"].tolist() == [stat.st_mtime_ns + 10**9]
    assert "same content; it keeps result 1" in caplog.text


def test_moved_file_not_scored_again(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 2, start_seed=82)
    watcher.poll()

    (folder / "archive").mkdir()
    (folder / "cycle_082.csv").rename(folder / "archive" / "cycle_082.csv")
    with caplog.at_level(logging.INFO, logger="grindwatch.watch"):
        added = watcher.poll()
    table = watcher.store.frame()
    moves = watcher.store.moves()
    mirrored = pd.read_csv(tmp_path / "results.csv")

    assert added == []
    assert table["path"].tolist() == ["cycle_082.csv", "cycle_083.csv"]
    assert table["current_path"].tolist() == ["archive/cycle_082.csv", "cycle_083.csv"]
    assert mirrored["current_path"].tolist() == table["current_path"].tolist()
    assert moves["kind"].tolist() == ["moved"]
    assert moves["from_path"].tolist() == ["cycle_082.csv"]
    assert moves["result_id"].tolist() == [1]
    assert "archive/cycle_082.csv is cycle_082.csv moved or renamed" in caplog.text
    assert watcher.store.get(1)["current_path"] == "archive/cycle_082.csv"


def test_moved_file_known_after_restart(trained, folder, tmp_path):
    write_cycles(folder, 1, start_seed=84)
    _watcher(trained, folder, tmp_path).poll()
    (folder / "archive").mkdir()
    (folder / "cycle_084.csv").rename(folder / "archive" / "cycle_084.csv")
    _watcher(trained, folder, tmp_path).poll()

    restarted = _watcher(trained, folder, tmp_path)
    added = restarted.poll()

    assert added == []
    assert restarted.candidates() == []
    assert len(restarted.store.moves()) == 1
    assert _paths(tmp_path / "results.sqlite") == ["cycle_084.csv"]


def test_moved_twice_follows_file(trained, folder, tmp_path):
    """A copy with a new modification time and the original deleted, twice over."""
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=85)
    watcher.poll()

    (folder / "2024").mkdir()
    shutil.copy(folder / "cycle_085.csv", folder / "2024" / "a.csv")
    (folder / "cycle_085.csv").unlink()
    watcher.poll()
    (folder / "2024" / "a.csv").rename(folder / "2024" / "b.csv")
    watcher.poll()
    moves = watcher.store.moves()

    assert _paths(tmp_path / "results.sqlite") == ["cycle_085.csv"]
    assert moves["from_path"].tolist() == ["cycle_085.csv", "2024/a.csv"]
    assert moves["path"].tolist() == ["2024/a.csv", "2024/b.csv"]
    assert moves["kind"].tolist() == ["moved", "moved"]
    assert watcher.store.frame()["current_path"].tolist() == ["2024/b.csv"]


def test_moved_back_file_followed(trained, folder, tmp_path):
    """A file moved into a subfolder and back, with its old modification time,
    is current at its old path again, so the next move starts from there."""
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=84)
    watcher.poll()

    (folder / "sub").mkdir()
    (folder / "cycle_084.csv").rename(folder / "sub" / "cycle_084.csv")
    watcher.poll()
    (folder / "sub" / "cycle_084.csv").rename(folder / "cycle_084.csv")
    back = watcher.poll()
    current_after_back = watcher.store.frame()["current_path"].tolist()
    csv_after_back = pd.read_csv(tmp_path / "results.csv")["current_path"].tolist()
    (folder / "cycle_084.csv").rename(folder / "renamed.csv")
    watcher.poll()
    moves = watcher.store.moves()

    assert back == []
    assert current_after_back == ["cycle_084.csv"]
    assert csv_after_back == ["cycle_084.csv"]
    # Linux file systems set the ctime on a rename, so the move back is a row of
    # its own there. Where a rename keeps the ctime, the key is known and no row
    # is added.
    assert moves["from_path"].iloc[0] == "cycle_084.csv"
    assert moves["from_path"].iloc[-1] == "cycle_084.csv"
    assert set(moves["kind"]) == {"moved"}
    assert watcher.store.frame()["current_path"].tolist() == ["renamed.csv"]


def test_copy_stays_copy_while_original_there(trained, folder, tmp_path):
    """A copy of a scored file leaves the current path at the original until the
    original is deleted."""
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=83)
    watcher.poll()
    shutil.copy(folder / "cycle_083.csv", folder / "copy.csv")
    watcher.poll()
    watcher.poll()
    current_with_original = watcher.store.frame()["current_path"].tolist()
    (folder / "cycle_083.csv").unlink()
    watcher.poll()

    assert current_with_original == ["cycle_083.csv"]
    assert watcher.store.frame()["current_path"].tolist() == ["copy.csv"]


def test_copied_file_stored_as_copy(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=86)
    watcher.poll()

    (folder / "review").mkdir()
    shutil.copy(folder / "cycle_086.csv", folder / "review" / "cycle_086.csv")
    with caplog.at_level(logging.INFO, logger="grindwatch.watch"):
        added = watcher.poll()
    moves = watcher.store.moves()

    assert added == []
    assert moves["kind"].tolist() == ["copied"]
    assert moves["path"].tolist() == ["review/cycle_086.csv"]
    assert watcher.store.frame()["current_path"].tolist() == ["cycle_086.csv"]
    assert "which is still there; it is stored as a copy of result 1" in caplog.text


def test_touched_failed_file_retried(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    (folder / "broken.csv").write_text("no,numbers\nhere,at all\n")
    watcher.poll()

    path = folder / "broken.csv"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    added = watcher.poll()

    assert len(added) == 1
    assert _paths(tmp_path / "results.sqlite") == ["broken.csv", "broken.csv"]
    assert watcher.store.moves().empty


def test_moved_failed_file_not_retried(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    (folder / "broken.csv").write_text("no,numbers\nhere,at all\n")
    watcher.poll()

    (folder / "broken.csv").rename(folder / "broken_2.csv")
    added = watcher.poll()

    assert added == []
    assert _paths(tmp_path / "results.sqlite") == ["broken.csv"]
    assert watcher.store.moves()["kind"].tolist() == ["moved"]
    assert watcher.failed == ["broken.csv"]


def test_same_content_scored_once_per_poll(trained, folder, tmp_path):
    """Two identical new files in one poll: the first is scored, the second is
    stored as its copy."""
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=87)
    shutil.copy(folder / "cycle_087.csv", folder / "cycle_087_copy.csv")

    added = watcher.poll()
    moves = watcher.store.moves()

    assert len(added) == 1
    assert moves["path"].tolist() == ["cycle_087_copy.csv"]
    assert moves["kind"].tolist() == ["copied"]


# The results and windows tables as grindwatch wrote them before results kept a
# content hash, the current path and the full path.
_OLD_SCHEMA = """
CREATE TABLE results (
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
    UNIQUE (path, size, mtime_ns)
);
CREATE TABLE windows (
    result_id INTEGER NOT NULL REFERENCES results (id),
    window INTEGER NOT NULL,
    start_sample INTEGER NOT NULL,
    start_s REAL,
    end_s REAL,
    score REAL NOT NULL,
    flag INTEGER NOT NULL,
    channel_shares TEXT,
    PRIMARY KEY (result_id, window)
) WITHOUT ROWID;
"""


def test_old_results_hashed_then_moved(trained, folder, tmp_path):
    write_cycles(folder, 2, start_seed=88)
    database = tmp_path / "results.sqlite"
    with sqlite3.connect(database) as connection:
        connection.executescript(_OLD_SCHEMA)
        for name in ("cycle_088.csv", "cycle_089.csv"):
            stat = (folder / name).stat()
            connection.execute(
                "INSERT INTO results (path, size, mtime_ns, status, reason, "
                "scored_at) VALUES (?, ?, ?, 'failed', 'old', '2026-01-01')",
                (name, stat.st_size, stat.st_mtime_ns),
            )
    connection.close()
    # The second file changed since, so its stored key no longer fits it.
    (folder / "cycle_089.csv").write_text("x\n")

    watcher = _watcher(trained, folder, tmp_path)
    first = watcher.poll()
    (folder / "cycle_088.csv").rename(folder / "moved_088.csv")
    second = watcher.poll()
    table = watcher.store.frame()

    assert len(first) == 1
    assert second == []
    assert table["sha256"].notna().tolist() == [True, False, True]
    assert table["current_path"].tolist() == [
        "moved_088.csv",
        "cycle_089.csv",
        "cycle_089.csv",
    ]
    assert watcher.store.moves()["from_path"].tolist() == ["cycle_088.csv"]


def test_old_keys_adopted_then_rewrite_seen(trained, folder, tmp_path):
    """Results stored before keys had a ctime are neither hashed nor scored after
    the upgrade, and a later rewrite that keeps the mtime is scored."""
    write_cycles(folder, 1, start_seed=77)
    path = folder / "cycle_077.csv"
    database = tmp_path / "results.sqlite"
    with sqlite3.connect(database) as connection:
        connection.executescript(_OLD_SCHEMA)
        stat = path.stat()
        connection.execute(
            "INSERT INTO results (path, size, mtime_ns, status, score, threshold, "
            "scored_at) VALUES (?, ?, ?, 'scored', 0.5, 1.0, '2026-01-01')",
            (path.name, stat.st_size, stat.st_mtime_ns),
        )
    connection.close()

    upgraded = _watcher(trained, folder, tmp_path).poll()
    with sqlite3.connect(database) as connection:
        stored_ctime = connection.execute("SELECT ctime_ns FROM results").fetchone()
    connection.close()
    staged = tmp_path / "staged.csv"
    _same_size_variant(path, staged)
    os.utime(staged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    subprocess.run(["cp", "-p", str(staged), str(path)], check=True)
    rewritten = _watcher(trained, folder, tmp_path).poll()

    assert upgraded == []
    assert stored_ctime == (stat.st_ctime_ns,)
    assert len(rewritten) == 1
    assert _paths(database) == ["cycle_077.csv", "cycle_077.csv"]


def _break_reader(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Make the watcher's reader raise TypeError on the file ``name``, as a reader
    bug would; return the names of the files it is called on."""
    from grindwatch import watch

    calls = []
    real_read_file = watch.read_file

    def read_file(path, options):  # noqa: ANN001, ANN202
        calls.append(Path(path).name)
        if Path(path).name == name:
            raise TypeError("boolean value of NA is ambiguous")
        return real_read_file(path, options)

    monkeypatch.setattr(watch, "read_file", read_file)
    return calls


def test_unexpected_error_stored_as_failed(
    trained, folder, tmp_path, monkeypatch, caplog
):
    _break_reader(monkeypatch, "cycle_131.csv")
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 3, start_seed=130)

    with caplog.at_level(logging.ERROR, logger="grindwatch.watch"):
        added = watcher.poll()
    rows = ResultStore(tmp_path / "results.sqlite").frame().set_index("path")
    reason = rows.loc["cycle_131.csv", "reason"]

    assert len(added) == 3
    assert rows.loc["cycle_130.csv", "status"] == "scored"
    assert rows.loc["cycle_132.csv", "status"] == "scored"
    assert rows.loc["cycle_131.csv", "status"] == "failed"
    assert "TypeError: boolean value of NA is ambiguous" in reason
    assert "bug in grindwatch" in reason
    assert watcher.failed == ["cycle_131.csv"]
    assert "unexpected error while scoring" in caplog.text
    assert "Traceback" in caplog.text


def test_unexpected_error_retried_only_when_changed(
    trained, folder, tmp_path, monkeypatch
):
    calls = _break_reader(monkeypatch, "cycle_140.csv")
    write_cycles(folder, 1, start_seed=140)
    watcher = _watcher(trained, folder, tmp_path)
    watcher.poll()
    watcher.poll()

    restarted = _watcher(trained, folder, tmp_path)
    restarted.poll()
    calls_before_change = calls.count("cycle_140.csv")
    path = folder / "cycle_140.csv"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    restarted.poll()

    assert calls_before_change == 1
    assert calls.count("cycle_140.csv") == 2
    assert _paths(tmp_path / "results.sqlite") == ["cycle_140.csv", "cycle_140.csv"]


def test_alarm_logged_with_details(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=100, anomaly="spike")

    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        watcher.poll()
    row = ResultStore(tmp_path / "results.sqlite").frame().iloc[0]

    assert bool(row["flag"]) is True
    assert row["top_channel"] == "vib_y"
    assert "ALARM cycle_100.csv" in caplog.text
    assert "above the threshold" in caplog.text


def test_alarm_log_file_has_whole_lines(trained, folder, tmp_path):
    # A long folder name makes the alarm longer than any console width.
    deep = folder / ("line_with_a_long_descriptive_name_" * 4)
    write_cycles(deep, 1, start_seed=100, anomaly="spike")
    command = grindwatch_command(
        "watch",
        str(folder),
        "--model",
        str(trained["bundle"]),
        "--results",
        str(tmp_path / "results.sqlite"),
        "--settle",
        "0",
        "--once",
    )

    with open(tmp_path / "watch.log", "wb") as log:
        subprocess.run(command, stderr=log, check=True, timeout=120)
    lines = (tmp_path / "watch.log").read_text().splitlines()
    alarms = [line for line in lines if "ALARM" in line]

    assert len(alarms) == 1, lines
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ WARNING ", alarms[0])
    assert "cycle_100.csv: score" in alarms[0]
    assert "worst window" in alarms[0]


def test_alarm_names_worst_window_time(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=100, anomaly="spike")

    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        [result_id] = watcher.poll()
    windows = watcher.store.get(result_id)["windows"]
    worst = max(windows, key=lambda window: window["score"])
    [alarm] = [r.getMessage() for r in caplog.records if "ALARM" in r.getMessage()]

    assert worst["start_s"] is not None
    expected = f"worst window {worst['window']} at {format_seconds(worst['start_s'])}"
    assert expected in alarm
    assert f"{format_seconds(worst['end_s'])} s" in alarm


def test_alarm_window_time_at_high_rate():
    from grindwatch.io import Recording, RecordingSet
    from grindwatch.online import score_recording
    from grindwatch.watch import _describe_worst_window

    rate = 50_000.0
    rng = np.random.default_rng(4)

    def recording(name: str) -> Recording:
        data = rng.standard_normal((2, 640)).astype(np.float32)
        return Recording(name, data, ["a", "b"], rate)

    config = Config().with_overrides(
        {
            "windows.length": 64,
            "detector.family": "pca",
            "tracking.enabled": False,
            "cycle.enabled": False,
        }
    )
    model = grindwatch.train(RecordingSet([recording("ok")]), config).model
    faulty = recording("burst")
    faulty.data[1, 64:128] *= 20
    windows = score_recording(model, faulty).windows

    text = _describe_worst_window(windows)

    # Three decimals wrote this 1.28 ms window as 0.001 to 0.003 s.
    assert text == "worst window 1 at 0.00128 to 0.00256 s"


def test_restart_neither_rescores_nor_skips(trained, folder, tmp_path):
    write_cycles(folder, 2, start_seed=90)
    _watcher(trained, folder, tmp_path).poll()
    write_cycles(folder, 1, start_seed=92)

    restarted = _watcher(trained, folder, tmp_path)
    added = restarted.poll()

    assert len(added) == 1
    assert _paths(tmp_path / "results.sqlite") == [
        "cycle_090.csv",
        "cycle_091.csv",
        "cycle_092.csv",
    ]


def test_source_joins_score_table(trained, folder, tmp_path, monkeypatch):
    """A file scored by the watcher and by score in one batch has two names, but
    one full path in both tables."""
    write_cycles(folder / "line1", 1, start_seed=95)
    (other,) = write_cycles(tmp_path / "staging", 1, start_seed=96)
    (folder / "line2").mkdir()
    other.rename(folder / "line2" / "cycle_095.csv")
    watcher = _watcher(trained, folder, tmp_path)
    watcher.poll()
    monkeypatch.chdir(tmp_path)

    scored = grindwatch.score(trained["model"], "incoming", attribution=False)
    watched = watcher.store.frame().set_index("path")
    joined = watched.merge(scored.recordings, on="source", suffixes=("", "_score"))

    assert watched.loc["line1/cycle_095.csv", "recording"] == "cycle_095"
    assert scored.recordings["recording"].tolist() == [
        "line1/cycle_095",
        "line2/cycle_095",
    ]
    assert scored.recordings["source"].tolist() == [
        str(folder / "line1" / "cycle_095.csv"),
        str(folder / "line2" / "cycle_095.csv"),
    ]
    assert joined["recording_score"].tolist() == ["line1/cycle_095", "line2/cycle_095"]
    assert joined["score"].tolist() == pytest.approx(joined["score_score"].tolist())


def test_csv_mirrors_sqlite_table(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 2, start_seed=110)
    (folder / "broken.csv").write_text("x\n")

    watcher.poll()
    table = ResultStore(tmp_path / "results.sqlite").frame()
    mirrored = pd.read_csv(tmp_path / "results.csv")

    assert mirrored["path"].tolist() == table["path"].tolist()
    assert mirrored["score"].tolist()[1:] == table["score"].tolist()[1:]
    assert mirrored["status"].tolist() == ["failed", "scored", "scored"]


def test_csv_write_failure_retried(trained, folder, tmp_path, caplog):
    store = ResultStore(tmp_path / "results.sqlite")
    csv_folder = tmp_path / "shared"
    csv_folder.mkdir()
    watcher = Watcher(
        trained["model"], folder, store, csv_folder / "results.csv", settle_seconds=0
    )
    # A file in place of the CSV copy's folder makes writing the copy fail, also
    # for root, whom file permissions do not stop.
    shutil.rmtree(csv_folder)
    csv_folder.write_text("not a folder")
    write_cycles(folder, 1, start_seed=115)

    with caplog.at_level(logging.ERROR, logger="grindwatch.watch"):
        blocked = watcher.poll()
    csv_folder.unlink()
    csv_folder.mkdir()
    retried = watcher.poll()
    mirrored = pd.read_csv(csv_folder / "results.csv")

    assert len(blocked) == 1
    assert retried == []
    assert "could not write the CSV copy" in caplog.text
    assert str(csv_folder / "results.csv") in caplog.text
    assert mirrored["path"].tolist() == ["cycle_115.csv"]


def test_csv_window_counts_are_integers(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=110)
    (folder / "broken.csv").write_text("x\n")

    watcher.poll()
    lines = (tmp_path / "results.csv").read_text().splitlines()
    header = lines[0].split(",")
    scored = lines[2].split(",")

    assert scored[header.index("n_windows")] == "8"
    assert scored[header.index("flagged_windows")] == "0"


def test_file_stored_by_other_watcher_not_touched(trained, folder, tmp_path):
    first = _watcher(trained, folder, tmp_path)
    second = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=116)

    scored = first.poll()
    seen = second.poll()
    again = second.poll()

    assert len(scored) == 1
    assert seen == []
    assert again == []
    assert _paths(tmp_path / "results.sqlite") == ["cycle_116.csv"]
    assert second.store.moves().empty


def test_deleted_store_started_again(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=117)
    watcher.poll()
    for path in tmp_path.glob("results.sqlite*"):
        path.unlink()
    write_cycles(folder, 1, start_seed=118)

    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        added = watcher.poll()
    mirrored = pd.read_csv(tmp_path / "results.csv")

    assert len(added) == 2
    assert "was deleted while watching" in caplog.text
    assert _paths(tmp_path / "results.sqlite") == ["cycle_117.csv", "cycle_118.csv"]
    assert mirrored["path"].tolist() == ["cycle_117.csv", "cycle_118.csv"]


def test_store_ignores_key_already_stored(trained, tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    key = FileKey("a.csv", 10, 20)

    first = store.add(key, None, "unreadable")
    second = store.add(key, None, "unreadable")

    assert first == 1
    assert second is None
    assert len(store.frame()) == 1


def test_stored_cycle_has_window_shares(trained, folder, tmp_path):
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=100, anomaly="spike")

    [result_id] = watcher.poll()
    cycle = watcher.store.get(result_id)

    assert len(cycle["windows"]) == cycle["n_windows"] == 8
    assert sum(cycle["channel_shares"].values()) == pytest.approx(1)
    flagged = [w for w in cycle["windows"] if w["flag"]]
    assert len(flagged) == cycle["flagged_windows"]
    assert max(flagged[0]["channel_shares"], key=flagged[0]["channel_shares"].get) == (
        "vib_y"
    )


@pytest.mark.usefixtures("restored_logging")
def test_watch_command_once(trained, folder, tmp_path):
    _register_extensions()
    write_cycles(folder, 2, start_seed=120)
    (folder / "broken.csv").write_text("not,a\nrecording\n")

    result = CliRunner().invoke(
        cli_app,
        [
            "watch",
            str(folder),
            "--model",
            str(trained["bundle"]),
            "--once",
            "--settle",
            "0.2",
            "--results",
            "out.sqlite",
            "--csv",
            "out.csv",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "Scanning" in result.output
    # --once exits by itself, so it does not tell the user to press Ctrl-C.
    assert "Ctrl-C" not in result.output
    assert "Scored 2 new files. 1 could not be scored" in result.output
    assert len(pd.read_csv("out.csv")) == 3
    assert _paths(Path("out.sqlite")) == [
        "broken.csv",
        "cycle_120.csv",
        "cycle_121.csv",
    ]


@pytest.mark.usefixtures("restored_logging")
def test_watch_once_fails_when_store_locked(trained, folder, monkeypatch):
    _register_extensions()
    write_cycles(folder, 1, start_seed=122)
    ResultStore("out.sqlite")
    connect = ResultStore._connect

    def impatient_connect(store: ResultStore) -> sqlite3.Connection:
        # Give up on the lock after 0.1 s instead of the store's 30 s.
        connection = connect(store)
        connection.execute("PRAGMA busy_timeout = 100")
        return connection

    monkeypatch.setattr(ResultStore, "_connect", impatient_connect)
    lock = sqlite3.connect("out.sqlite", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        result = CliRunner().invoke(
            cli_app,
            ["watch", str(folder), "--model", str(trained["bundle"]), "--once"]
            + ["--settle", "0", "--results", "out.sqlite"],
        )
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    assert result.exit_code == 2, result.output
    assert "database is locked" in result.output
    assert "out.sqlite: could not store every result" in result.output
    assert "still changing" not in result.output
    assert _paths(Path("out.sqlite")) == []


@pytest.mark.usefixtures("restored_logging")
def test_watch_command_survives_reader_bug(trained, folder, monkeypatch):
    _register_extensions()
    _break_reader(monkeypatch, "cycle_150.csv")
    write_cycles(folder, 2, start_seed=150)

    result = CliRunner().invoke(
        cli_app,
        ["watch", str(folder), "--model", str(trained["bundle"]), "--once"]
        + ["--settle", "0", "--results", "out.sqlite"],
    )
    rows = ResultStore(Path("out.sqlite")).frame().set_index("path")

    assert result.exit_code == 0, result.output
    assert "Scored 1 new file. 1 could not be scored" in result.output
    assert rows.loc["cycle_150.csv", "status"] == "failed"
    assert rows.loc["cycle_151.csv", "status"] == "scored"


@pytest.mark.usefixtures("restored_logging")
def test_watch_once_names_empty_files(trained, folder, tmp_path):
    _register_extensions()
    write_cycles(folder, 1, start_seed=152)
    (folder / "cycle_153.csv").write_bytes(b"")

    result = CliRunner().invoke(
        cli_app,
        ["watch", str(folder), "--model", str(trained["bundle"]), "--once"]
        + ["--settle", "0", "--results", str(tmp_path / "out.sqlite")],
    )

    assert result.exit_code == 0, result.output
    summary = " ".join(result.output.split())
    assert "Scored 1 new file." in summary
    assert "1 file is empty and wait for content: cycle_153.csv." in summary


@pytest.mark.usefixtures("restored_logging")
def test_watch_rejects_results_not_sqlite(trained, folder):
    _register_extensions()
    Path("notes.sqlite").write_text("time,vib_x\n0,1\n")

    result = CliRunner().invoke(
        cli_app,
        ["watch", str(folder), "--model", str(trained["bundle"]), "--once"]
        + ["--results", "notes.sqlite"],
    )

    assert result.exit_code == 2, result.output
    assert "notes.sqlite: is not an SQLite database (file is not a database)" in (
        result.output
    )
    assert "choose another --results path or move that file away" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert Path("notes.sqlite").read_text() == "time,vib_x\n0,1\n"


def test_watch_rejects_file_as_folder(trained, folder):
    _register_extensions()
    recording = folder / "cycle.csv"
    recording.write_text("time,vib_x\n0,1\n")

    result = CliRunner().invoke(
        cli_app,
        ["watch", str(recording), "--model", str(trained["bundle"]), "--once"],
    )

    assert result.exit_code == 2, result.output
    assert "cycle.csv: is a file, not a folder" in result.output
    assert "pass the folder that new recordings land in" in result.output
    assert "no such folder" not in result.output


def test_watch_rejects_csv_at_results_path(trained, folder, tmp_path):
    _register_extensions()
    # Only a database named like a table passes the check of the --csv suffix.
    database = tmp_path / "results.csv"
    ResultStore(database).add(FileKey("a.csv", 10, 20), None, "unreadable")

    result = CliRunner().invoke(
        cli_app,
        ["watch", str(folder), "--model", str(trained["bundle"]), "--once"]
        + ["--results", str(database), "--csv", str(database)],
    )

    assert result.exit_code == 2, result.output
    assert "the CSV copy would overwrite the results database" in result.output
    assert ResultStore(database).frame()["path"].tolist() == ["a.csv"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_watch_keeps_other_file_at_csv_path(trained, folder, tmp_path, suffix):
    _register_extensions()
    [recording] = write_cycles(tmp_path / "kept", 1, start_seed=154)
    other = recording.with_suffix(suffix)
    if suffix == ".parquet":
        pd.read_csv(recording).to_parquet(other)
    before = other.read_bytes()
    command = ["watch", str(folder), "--model", str(trained["bundle"]), "--once"]
    command += ["--settle", "0", "--results", str(tmp_path / "out.sqlite")]

    rejected = CliRunner().invoke(cli_app, [*command, "--csv", str(other)])
    first = CliRunner().invoke(cli_app, [*command, "--csv", str(tmp_path / "r.csv")])
    again = CliRunner().invoke(cli_app, [*command, "--csv", str(tmp_path / "r.csv")])

    assert rejected.exit_code == 2, rejected.output
    assert "is not a copy of a results table" in " ".join(rejected.output.split())
    assert other.read_bytes() == before
    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output


def test_store_rejects_folder_path(tmp_path):
    (tmp_path / "results.sqlite").mkdir()

    with pytest.raises(InputError, match="cannot be opened as an SQLite database"):
        ResultStore(tmp_path / "results.sqlite")


def test_store_rejects_file_as_folder(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")

    with pytest.raises(InputError, match="cannot create the folder"):
        ResultStore(tmp_path / "taken" / "results.sqlite")


@pytest.mark.parametrize("command", ["watch", "serve"])
def test_negative_settle_rejected(trained, folder, command):
    _register_extensions()
    # --once and an address of no local interface end the command quickly even
    # where the option check is missing.
    if command == "watch":
        arguments = [str(folder), "--once"]
    else:
        arguments = ["--watch", str(folder), "--host", "192.0.2.1"]

    result = CliRunner().invoke(
        cli_app,
        [command, *arguments, "--model", str(trained["bundle"]), "--settle", "-5"],
    )

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--settle'" in result.output
    assert "greater than or equal to 0" in result.output
    assert not Path("grindwatch-results.sqlite").exists()


def test_zero_interval_rejected(trained, folder):
    _register_extensions()

    result = CliRunner().invoke(
        cli_app,
        ["watch", str(folder), "--model", str(trained["bundle"]), "--interval", "0"],
    )

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--interval'" in result.output


@pytest.mark.usefixtures("restored_logging")
def test_watch_command_reading_option(trained, folder, tmp_path):
    _register_extensions()
    write_cycles(tmp_path / "source", 1, start_seed=125)
    frame = pd.read_csv(tmp_path / "source" / "cycle_125.csv")
    frame.loc[10:12, "vib_x"] = float("nan")
    frame.to_csv(folder / "gaps.csv", index=False)
    command = ["watch", str(folder), "--model", str(trained["bundle"]), "--once"]
    command += ["--settle", "0.2"]

    plain = CliRunner().invoke(cli_app, [*command, "--results", "a.sqlite"])
    reason = ResultStore(Path("a.sqlite")).frame()["reason"].iloc[0]
    filled = CliRunner().invoke(
        cli_app,
        [*command, "--results", "b.sqlite", "--set", "data.nan_policy=interpolate"],
    )

    assert plain.exit_code == 0, plain.output
    assert "--set data.nan_policy=interpolate" in reason
    assert filled.exit_code == 0, filled.output
    assert "Scored 1 new file" in filled.output
    assert ResultStore(Path("b.sqlite")).frame()["status"].tolist() == ["scored"]


@pytest.mark.usefixtures("restored_logging")
def test_watch_once_names_folder_without_meta(grinding_model, tmp_path):
    from grindwatch.io.synthetic import write_grinding_cycles

    _register_extensions()
    grinding_model.save(tmp_path / "bundle")
    [cycle] = write_grinding_cycles(tmp_path / "new", 1, seed=5, **SMALL_CYCLES)
    shutil.copytree(cycle.path / "raw", tmp_path / "incoming" / "c1" / "raw")

    result = CliRunner().invoke(
        cli_app,
        ["watch", str(tmp_path / "incoming"), "--model", str(tmp_path / "bundle")]
        + ["--once", "--settle", "0.1", "--results", str(tmp_path / "r.sqlite")],
    )

    assert result.exit_code == 0, result.output
    assert "Scored 0 new files." in result.output
    assert "1 cycle folder has streams but no meta.json" in result.output
    assert "still changing" not in result.output


def test_kill_mid_stream_loses_and_duplicates_nothing(trained, folder, tmp_path):
    database, csv = tmp_path / "results.sqlite", tmp_path / "results.csv"
    command = grindwatch_command(
        "watch",
        str(folder),
        "--model",
        str(trained["bundle"]),
        "--results",
        str(database),
        "--csv",
        str(csv),
        "--settle",
        "0.3",
        "--interval",
        "0.1",
    )
    log = open(tmp_path / "watch.log", "wb")  # noqa: SIM115 - closed in finally

    # Files land one by one; the watcher is killed once some are stored.
    watcher = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        seed = 200
        while time.monotonic() < deadline and len(_stored(database)) < 3:
            write_cycles(folder, 1, start_seed=seed)
            seed += 1
            time.sleep(0.15)
        assert len(_stored(database)) >= 3, (tmp_path / "watch.log").read_text()
        watcher.send_signal(signal.SIGKILL)
        watcher.wait(timeout=10)
        at_kill = len(_stored(database))
        written_before_kill = seed - 200
        # More files land while no watcher runs.
        write_cycles(folder, 3, start_seed=seed)
        total = written_before_kill + 3

        watcher = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_stored(database)) < total:
            time.sleep(0.2)
        time.sleep(0.5)  # a duplicate, if any, would land now
    finally:
        stop_process(watcher)
        log.close()

    paths = _stored(database)
    expected = [f"cycle_{200 + i:03d}.csv" for i in range(total)]
    assert at_kill < written_before_kill, "the kill came after the stream ended"
    assert sorted(paths) == expected
    assert len(paths) == len(set(paths))
    mirrored = pd.read_csv(csv)
    assert mirrored["path"].tolist() == paths
    assert mirrored["score"].notna().all()


def _stored(database: Path) -> list[str]:
    if not database.exists():
        return []
    try:
        return _paths(database)
    except sqlite3.OperationalError:
        return []  # the watcher has not created the table yet


def test_cycle_folders_scored_as_one_recording(grinding_model, tmp_path):
    from grindwatch.io.synthetic import write_grinding_cycles

    model = grinding_model
    cycles = write_grinding_cycles(
        tmp_path / "new", 1, {"burn": 1}, seed=5, **SMALL_CYCLES
    )
    folder = tmp_path / "incoming"
    for cycle in cycles:
        shutil.copytree(cycle.path, folder / "line1" / cycle.path.name)
    watcher = Watcher(
        model, folder, ResultStore(tmp_path / "results.sqlite"), settle_seconds=0
    )

    added = watcher.poll()
    again = watcher.poll()
    rows = watcher.store.frame()

    assert len(added) == 2
    assert again == []
    assert rows["path"].tolist() == [f"line1/{c.path.name}" for c in cycles]
    assert rows["status"].tolist() == ["scored", "scored"]
    assert rows["n_windows"].tolist() == [4, 4]


def test_damaged_cycle_folder_names_file(grinding_model, tmp_path):
    from grindwatch.io.synthetic import write_grinding_cycles

    [cycle] = write_grinding_cycles(tmp_path / "new", 1, seed=6, **SMALL_CYCLES)
    folder = tmp_path / "incoming"
    shutil.copytree(cycle.path, folder / cycle.path.name)
    (folder / cycle.path.name / "meta.json").write_text("{not json")
    watcher = Watcher(
        grinding_model,
        folder,
        ResultStore(tmp_path / "results.sqlite"),
        settle_seconds=0,
    )

    watcher.poll()
    row = watcher.store.frame().iloc[0]

    assert row["status"] == "failed"
    assert row["reason"].startswith("meta.json: ")


def test_moved_cycle_folder_not_scored_again(grinding_model, tmp_path):
    from grindwatch.io.synthetic import write_grinding_cycles

    folder = tmp_path / "incoming"
    (cycle,) = write_grinding_cycles(folder, 1, seed=7, **SMALL_CYCLES)
    watcher = Watcher(
        grinding_model,
        folder,
        ResultStore(tmp_path / "results.sqlite"),
        settle_seconds=0,
    )
    watcher.poll()

    (folder / "archive").mkdir()
    cycle.path.rename(folder / "archive" / cycle.path.name)
    added = watcher.poll()
    moves = watcher.store.moves()

    assert added == []
    assert moves["kind"].tolist() == ["moved"]
    assert watcher.store.frame()["current_path"].tolist() == [
        f"archive/{cycle.path.name}"
    ]


def test_cycle_folder_name_not_utf8_moved(grinding_model, tmp_path):
    """A file in a cycle folder whose name is not UTF-8 neither stops the poll
    nor keeps the moved folder from being recognised."""
    from grindwatch.io.synthetic import write_grinding_cycles

    folder = tmp_path / "incoming"
    (cycle,) = write_grinding_cycles(folder, 1, seed=8, **SMALL_CYCLES)
    note = os.path.join(os.fsencode(cycle.path), b"note\xff.txt")
    with open(note, "wb") as handle:
        handle.write(b"operator note")
    watcher = Watcher(
        grinding_model,
        folder,
        ResultStore(tmp_path / "results.sqlite"),
        settle_seconds=0,
    )
    first = watcher.poll()
    (folder / "archive").mkdir()
    cycle.path.rename(folder / "archive" / cycle.path.name)
    second = watcher.poll()

    assert len(first) == 1
    assert second == []
    assert watcher.store.moves()["kind"].tolist() == ["moved"]


def test_cycles_of_other_tool_left_out(grinding_model, tmp_path):
    import copy

    from grindwatch.io.synthetic import write_grinding_cycles

    # A model fitted on one tool's cycles, as data.match selects them.
    model = copy.copy(grinding_model)
    model.config = model.config.with_overrides({"data.match": {"tool": "CRIN3-25-V"}})
    folder = tmp_path / "incoming"
    write_grinding_cycles(
        folder, 4, tools=("CRIN3-25-V", "B126-X"), seed=5, **SMALL_CYCLES
    )
    watcher = Watcher(
        model, folder, ResultStore(tmp_path / "results.sqlite"), settle_seconds=0
    )

    added = watcher.poll()
    again = watcher.poll()
    scored = grindwatch.score(model, folder, attribution=False)

    assert len(added) == 2
    assert again == []
    assert len(watcher.left_out) == 2
    assert len(scored.recordings) == 2
    assert watcher.store.frame()["recording"].tolist() == (
        scored.recordings["recording"].tolist()
    )


def test_cycle_folder_waits_for_meta_json(grinding_model, tmp_path, caplog):
    from grindwatch.io.synthetic import write_grinding_cycles

    model = grinding_model
    [cycle] = write_grinding_cycles(tmp_path / "new", 1, seed=5, **SMALL_CYCLES)
    # The logger has written its streams but not yet meta.json.
    target = tmp_path / "incoming" / cycle.path.name
    shutil.copytree(cycle.path / "raw", target / "raw")
    watcher = Watcher(
        model,
        tmp_path / "incoming",
        ResultStore(tmp_path / "r.sqlite"),
        settle_seconds=0,
    )

    with caplog.at_level(logging.INFO, logger="grindwatch.watch"):
        early = watcher.poll()
    waiting = watcher.waiting_cycle_folders()
    changing = watcher.pending()
    shutil.copy(cycle.path / "meta.json", target / "meta.json")
    late = watcher.poll()
    rows = watcher.store.frame()

    assert early == []
    assert waiting == [cycle.path.name]
    assert changing == []
    assert "waiting for meta.json" in caplog.text
    assert len(late) == 1
    assert rows["path"].tolist() == [cycle.path.name]
    assert rows["status"].tolist() == ["scored"]
    assert watcher.waiting_cycle_folders() == []


def _write_gained(folder: Path, names: list[str], gain: float) -> None:
    from tests.conftest import make_cycle

    for name in names:
        # The seed follows the number in the name, so that files written by two
        # calls differ as two cycles do, and are not taken for copies of each other.
        data = make_cycle(60 + int(Path(name).stem[1:]))
        data[1] *= gain  # vib_y read through another gain
        frame = pd.DataFrame(data.T, columns=["vib_x", "vib_y", "current"])
        frame.insert(0, "time", [i / 1000.0 for i in range(data.shape[1])])
        frame.to_csv(folder / name, index=False)


def _run_warnings(caplog) -> list[str]:  # noqa: ANN001
    messages = [record.getMessage() for record in caplog.records]
    return [
        message for message in messages if "recordings in a row were flagged" in message
    ]


def test_run_of_whole_cycle_alarms_warned_once(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path, run_warning=3)
    _write_gained(folder, ["a1.csv", "a2.csv", "a3.csv", "a4.csv"], gain=6.0)

    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        watcher.poll()

    warned = _run_warnings(caplog)
    assert len(warned) == 1
    assert warned[0].startswith("3 recordings in a row were flagged")
    assert "Channel 'vib_y' leads 3 of them" in warned[0]


def test_run_warning_counts_across_restart(trained, folder, tmp_path, caplog):
    _write_gained(folder, ["a1.csv", "a2.csv"], gain=6.0)
    _watcher(trained, folder, tmp_path, run_warning=3).poll()
    _write_gained(folder, ["a3.csv", "a4.csv"], gain=6.0)

    restarted = _watcher(trained, folder, tmp_path, run_warning=3)
    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        added = restarted.poll()

    warned = _run_warnings(caplog)
    assert len(added) == 2
    assert len(warned) == 1
    assert warned[0].startswith("3 recordings in a row were flagged")


def test_run_warned_before_restart_not_repeated(trained, folder, tmp_path, caplog):
    _write_gained(folder, ["a1.csv", "a2.csv", "a3.csv"], gain=6.0)
    _watcher(trained, folder, tmp_path, run_warning=3).poll()
    _write_gained(folder, ["a4.csv", "a5.csv", "a6.csv"], gain=6.0)
    caplog.clear()

    restarted = _watcher(trained, folder, tmp_path, run_warning=3)
    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        restarted.poll()

    assert _run_warnings(caplog) == []


def test_run_of_other_model_not_carried(trained, folder, tmp_path, caplog):
    _write_gained(folder, ["a1.csv", "a2.csv"], gain=6.0)
    _watcher(trained, folder, tmp_path, run_warning=3).poll()
    with sqlite3.connect(tmp_path / "results.sqlite") as connection:
        connection.execute("UPDATE results SET threshold = threshold * 2")
    _write_gained(folder, ["a3.csv"], gain=6.0)

    restarted = _watcher(trained, folder, tmp_path, run_warning=3)
    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        restarted.poll()

    assert _run_warnings(caplog) == []


def test_restart_with_other_model_warns(trained, folder, tmp_path, caplog):
    write_cycles(folder, 2)
    _watcher(trained, folder, tmp_path).poll()
    with sqlite3.connect(tmp_path / "results.sqlite") as connection:
        connection.execute("UPDATE results SET threshold = threshold * 2")
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        restarted = _watcher(trained, folder, tmp_path)
        added = restarted.poll()

    warned = [r.getMessage() for r in caplog.records if "another model" in r.message]
    assert added == []
    assert len(warned) == 1
    assert "results.sqlite contains results of another model" in warned[0]
    assert "pass another --results file" in warned[0]


def test_restart_with_same_model_is_quiet(trained, folder, tmp_path, caplog):
    write_cycles(folder, 2)
    _watcher(trained, folder, tmp_path).poll()

    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        _watcher(trained, folder, tmp_path)

    assert "another model" not in caplog.text


def test_run_after_restart_ended_by_normal(trained, folder, tmp_path, caplog):
    _write_gained(folder, ["a1.csv", "a2.csv"], gain=6.0)
    _write_gained(folder, ["a3.csv"], gain=1.0)
    _watcher(trained, folder, tmp_path, run_warning=3).poll()
    _write_gained(folder, ["a4.csv", "a5.csv"], gain=6.0)

    restarted = _watcher(trained, folder, tmp_path, run_warning=3)
    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        restarted.poll()

    assert _run_warnings(caplog) == []


def test_run_warning_names_no_tied_channel(trained, folder, tmp_path, caplog):
    from tests.conftest import make_cycle

    watcher = _watcher(trained, folder, tmp_path, run_warning=2)
    # Each cycle reads one other channel through a sixfold gain, so the two
    # alarms of the run have different top channels.
    for seed, (name, channel) in enumerate([("a1.csv", 0), ("a2.csv", 1)], start=60):
        data = make_cycle(seed)
        data[channel] *= 6.0
        frame = pd.DataFrame(data.T, columns=["vib_x", "vib_y", "current"])
        frame.insert(0, "time", [i / 1000.0 for i in range(data.shape[1])])
        frame.to_csv(folder / name, index=False)

    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        watcher.poll()

    tops = ResultStore(tmp_path / "results.sqlite").frame()["top_channel"]
    warned = _run_warnings(caplog)
    assert tops.tolist() == ["vib_x", "vib_y"]
    assert len(warned) == 1
    assert "leads" not in warned[0]


def test_run_warning_zero_keeps_no_run(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path, run_warning=0)
    _write_gained(folder, ["a1.csv", "a2.csv", "a3.csv"], gain=6.0)

    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        watcher.poll()

    assert _run_warnings(caplog) == []
    assert watcher._run == []


def test_normal_recording_ends_the_run(trained, folder, tmp_path, caplog):
    watcher = _watcher(trained, folder, tmp_path, run_warning=3)
    _write_gained(folder, ["a1.csv", "a2.csv", "b3.csv", "b4.csv"], gain=6.0)
    _write_gained(folder, ["a3.csv"], gain=1.0)

    with caplog.at_level(logging.WARNING, logger="grindwatch.watch"):
        watcher.poll()

    flags = ResultStore(tmp_path / "results.sqlite").frame()["flag"].astype(bool)
    assert flags.tolist() == [True, True, False, True, True]
    assert _run_warnings(caplog) == []


def test_live_page_data_carries_run_notice(trained, folder, tmp_path):
    from fastapi.testclient import TestClient

    from grindwatch.serve import create_app

    watcher = _watcher(trained, folder, tmp_path, run_warning=3)
    _write_gained(folder, ["a1.csv", "a2.csv", "a3.csv"], gain=6.0)
    watcher.poll()
    client = TestClient(create_app(trained["model"], watcher=watcher))

    during = client.get("/api/cycles").json()
    _write_gained(folder, ["b1.csv"], gain=1.0)
    watcher.poll()
    after = client.get("/api/cycles").json()

    assert during["notice"].startswith("3 recordings in a row were flagged")
    assert after["notice"] is None
    assert [c["flag"] for c in after["cycles"]] == [True, True, True, False]


def test_restarted_watcher_keeps_run_notice(trained, folder, tmp_path):
    _write_gained(folder, ["a1.csv", "a2.csv", "a3.csv"], gain=6.0)
    _watcher(trained, folder, tmp_path, run_warning=3).poll()

    restarted = _watcher(trained, folder, tmp_path, run_warning=3)

    assert restarted.run_notice.startswith("3 recordings in a row were flagged")


def test_failed_current_path_says_what_failed(
    trained, folder, tmp_path, monkeypatch, caplog
):
    """A copy whose original is deleted becomes the result's file. A failed write
    of its new current path is logged and tried again."""
    watcher = _watcher(trained, folder, tmp_path)
    write_cycles(folder, 1, start_seed=85)
    watcher.poll()
    (folder / "sub").mkdir()
    shutil.copy2(folder / "cycle_085.csv", folder / "sub" / "cycle_085.csv")
    watcher.poll()

    def locked(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise sqlite3.OperationalError("database is locked")

    (folder / "cycle_085.csv").unlink()
    with monkeypatch.context() as patch:
        patch.setattr(watcher.store, "set_current_path", locked)
        with caplog.at_level("ERROR", logger="grindwatch.watch"):
            watcher.poll()
    failed_current = watcher.store.frame()["current_path"].tolist()
    watcher.poll()

    assert "record result 1's new current path sub/cycle_085.csv" in caplog.text
    assert "the next poll tries again" in caplog.text
    assert "it is scored again" not in caplog.text
    assert failed_current == ["cycle_085.csv"]
    assert watcher.store.frame()["current_path"].tolist() == ["sub/cycle_085.csv"]
