"""Folder expansion: symbolic links to folders, including link loops."""

from __future__ import annotations

import os

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
