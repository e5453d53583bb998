"""Folder expansion: symbolic links to folders, including link loops, and the
names of files that share a stem."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from grindwatch.io import list_files, load_recordings
from tests.conftest import write_cycles


def test_link_loop_lists_each_file_once(tmp_path):
    folder = tmp_path / "d"
    write_cycles(folder, 1)
    write_cycles(folder / "sub", 1, start_seed=1)
    os.symlink(folder, folder / "sub" / "up")

    listed = list_files(folder)

    assert listed == [folder / "cycle_000.csv", folder / "sub" / "cycle_001.csv"]


def test_two_links_to_one_folder_walked_once(tmp_path):
    write_cycles(tmp_path / "shared", 1)
    folder = tmp_path / "d"
    folder.mkdir()
    os.symlink(tmp_path / "shared", folder / "first")
    os.symlink(tmp_path / "shared", folder / "second")

    listed = list_files(folder)

    assert listed == [folder / "first" / "cycle_000.csv"]


def test_link_loop_loads_each_recording_once(tmp_path):
    folder = tmp_path / "d"
    write_cycles(folder, 2)
    os.symlink(folder, folder / "loop")

    loaded = load_recordings(folder)

    assert [recording.name for recording in loaded.recordings] == [
        "cycle_000",
        "cycle_001",
    ]


def test_broken_link_skipped_with_reason(tmp_path):
    folder = tmp_path / "cycles"
    write_cycles(folder, 3)
    os.symlink(tmp_path / "unmounted" / "r9.csv", folder / "r9.csv")

    # Before, the folder walk and the glob left the link out without a message.
    for source in (folder, str(folder / "*.csv")):
        loaded = load_recordings(source)

        assert len(loaded.recordings) == 3
        assert [item.path.name for item in loaded.skipped] == ["r9.csv"]
        assert "is a symbolic link to" in loaded.skipped[0].reason
        assert "which does not exist" in loaded.skipped[0].reason


def test_compressed_recording_skipped_with_fix(tmp_path):
    folder = tmp_path / "cycles"
    paths = write_cycles(folder, 4)
    with gzip.open(folder / "cycle_009.csv.gz", "wb") as packed:
        packed.write(paths[0].read_bytes())
    # An archive copy beside its uncompressed file is left out.
    with gzip.open(folder / "cycle_001.csv.gz", "wb") as packed:
        packed.write(paths[1].read_bytes())

    # Before, the folder walk left cycle_009.csv.gz out without a message.
    loaded = load_recordings(folder)

    assert len(loaded.recordings) == 4
    assert [item.path.name for item in loaded.skipped] == ["cycle_009.csv.gz"]
    assert "is compressed (.gz)" in loaded.skipped[0].reason
    assert "decompress it first" in loaded.skipped[0].reason


def test_office_lock_file_left_out(tmp_path):
    folder = tmp_path / "cycles"
    write_cycles(folder, 2)
    # Excel's lock file for an open cycle_000.csv: the user name, padded.
    (folder / "~$cycle_000.csv").write_bytes(b"\x05alice" + b"\x00 " * 40)

    loaded = load_recordings(folder)

    assert len(loaded.recordings) == 2
    assert loaded.skipped == []


def test_unexpanded_home_in_path_named():
    import pytest

    from grindwatch.exceptions import InputError

    # data.paths in a config file reaches the reader as written.
    with pytest.raises(InputError) as raised:
        load_recordings("~/grindwatch-missing/recordings")

    assert "'~' and '$NAME' are not expanded here" in raised.value.problem
    assert raised.value.fix == "write the full path"


def test_clashing_names_get_enough_folders(tmp_path):
    # Both parents are named "day", so one folder would leave the names equal.
    write_cycles(tmp_path / "m1" / "day", 1)
    write_cycles(tmp_path / "m2" / "day", 1)
    write_cycles(tmp_path / "m2" / "night", 1, start_seed=1)
    write_cycles(tmp_path / "m3" / "night", 1, start_seed=1)

    loaded = load_recordings(tmp_path)

    assert sorted(recording.name for recording in loaded.recordings) == [
        "m1/day/cycle_000",
        "m2/day/cycle_000",
        "m2/night/cycle_001",
        "m3/night/cycle_001",
    ]


def test_clashing_names_get_one_folder():
    from grindwatch.io.dataset import _make_names_unique
    from grindwatch.io.recording import Recording

    data = np.zeros((1, 4), dtype=np.float32)
    recordings = [
        Recording("r", data, ["x"], 1.0, source=Path("data/good/r.csv")),
        Recording("r", data, ["x"], 1.0, source=Path("data/bad/r.csv")),
        Recording("s", data, ["x"], 1.0, source=Path("data/bad/s.csv")),
    ]

    _make_names_unique(recordings)

    assert [recording.name for recording in recordings] == ["good/r", "bad/r", "s"]


def test_clash_in_working_folder_named(tmp_path, monkeypatch):
    """A file given relative to the working folder is named by that folder's name
    when it clashes, as spark-score names it from the absolute path."""
    work = tmp_path / "line1"
    write_cycles(work, 1)
    write_cycles(work / "line2", 1)
    monkeypatch.chdir(work)

    loaded = load_recordings(["cycle_000.csv", "line2/cycle_000.csv"])

    assert [recording.name for recording in loaded.recordings] == [
        "line1/cycle_000",
        "line2/cycle_000",
    ]


def test_same_stem_in_two_formats_rejected(tmp_path):
    import pandas as pd
    import pytest

    from grindwatch.exceptions import InputError

    write_cycles(tmp_path / "x", 1)
    csv_file = tmp_path / "x" / "cycle_000.csv"
    pd.read_csv(csv_file).to_parquet(tmp_path / "x" / "cycle_000.parquet")

    with pytest.raises(InputError) as raised:
        load_recordings(tmp_path / "x")

    message = str(raised.value)
    assert "cycle_000.csv" in message
    assert "cycle_000.parquet" in message
    assert "differ only in their extension" in message
    assert "pass the files of one format" in message
