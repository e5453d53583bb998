"""Read a data set: a file, a folder, a glob pattern or a list of those."""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable
from pathlib import Path

from grindwatch.exceptions import InputError
from grindwatch.io.csv import read_csv_frame
from grindwatch.io.frames import frame_to_recording, frame_to_table_rows
from grindwatch.io.hdf5 import read_hdf5
from grindwatch.io.labels import label_from_path
from grindwatch.io.numpy import read_numpy
from grindwatch.io.options import ReadOptions
from grindwatch.io.parquet import read_parquet_frame
from grindwatch.io.recording import Recording, RecordingSet, SkippedFile

logger = logging.getLogger(__name__)

__all__ = ["SUFFIXES", "list_files", "load_recordings", "read_file"]

SIGNAL_SUFFIXES = (
    ".csv",
    ".txt",
    ".parquet",
    ".pq",
    ".h5",
    ".hdf5",
    ".hdf",
    ".npy",
    ".npz",
)
TABLE_SUFFIXES = (".csv", ".txt", ".parquet", ".pq")
SUFFIXES = SIGNAL_SUFFIXES


def read_file(path: str | Path, options: ReadOptions | None = None) -> list[Recording]:
    """Read one file into recordings: one for a signal file, one per row of a table.

    Raises
    ------
    InputError
        If the file is missing, of an unsupported type, or unreadable.
    """
    path = Path(path)
    options = options or ReadOptions()
    if not path.is_file():
        raise InputError(path, "file not found", "check the path")
    if path.stat().st_size == 0:
        raise InputError(path, "the file is empty", "check that the export finished")
    suffix = path.suffix.lower()

    if options.kind == "table":
        if suffix not in TABLE_SUFFIXES:
            raise InputError(
                path,
                f"feature tables must be CSV or Parquet, not {suffix!r}",
                "convert the table, or read it as signals",
            )
        frame = _read_frame(path, options)
        rows = frame_to_table_rows(path, frame, options)
        folder_label = label_from_path(path)
        for row in rows:
            if row.label is None:
                row.label = folder_label
        return rows

    if suffix in (".csv", ".txt", ".parquet", ".pq"):
        recording = frame_to_recording(path, _read_frame(path, options), options)
    elif suffix in (".h5", ".hdf5", ".hdf"):
        recording = read_hdf5(path, options)
    elif suffix in (".npy", ".npz"):
        recording = read_numpy(path, options)
    else:
        raise InputError(
            path,
            f"unsupported file type {suffix!r}",
            f"grindwatch reads {', '.join(SIGNAL_SUFFIXES)}",
        )
    recording.label = label_from_path(path)
    return [recording]


def _read_frame(path: Path, options: ReadOptions):  # noqa: ANN202
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet_frame(path)
    return read_csv_frame(path, options)


def list_files(source: str | Path | Iterable[str | Path], kind: str = "signals"):
    """Expand folders (recursively) and glob patterns into a sorted list of files."""
    if isinstance(source, (str, Path)):
        source = [source]
    suffixes = TABLE_SUFFIXES if kind == "table" else SIGNAL_SUFFIXES
    files: list[Path] = []
    for item in source:
        text = str(item)
        if any(char in text for char in "*?["):
            matches = sorted(Path(match) for match in glob.glob(text, recursive=True))
            if not matches:
                raise InputError(text, "the pattern matches no file", "check it")
            files.extend(match for match in matches if match.is_file())
        elif Path(text).is_dir():
            found = sorted(
                p
                for p in Path(text).rglob("*")
                if p.is_file()
                and p.suffix.lower() in suffixes
                and not any(part.startswith(".") for part in p.relative_to(text).parts)
            )
            if not found:
                raise InputError(
                    text,
                    f"the folder holds no {', '.join(suffixes)} file",
                    "point at the folder with the recordings",
                )
            files.extend(found)
        elif Path(text).exists():
            files.append(Path(text))
        else:
            raise InputError(text, "no such file or folder", "check the path")
    return list(dict.fromkeys(files))


def load_recordings(
    source: str | Path | Iterable[str | Path],
    options: ReadOptions | None = None,
    strict: bool = False,
) -> RecordingSet:
    """Read every recording in ``source``.

    Files that fail to read are skipped, logged as warnings and listed in
    ``RecordingSet.skipped``, unless ``strict`` is true, in which case the first
    failure raises. Recordings whose channels differ from the first file's are
    reordered by name, and skipped when a channel is missing.

    Raises
    ------
    InputError
        If no file can be read, or in strict mode when any file fails.
    """
    options = options or ReadOptions()
    files = list_files(source, options.kind)
    recordings: list[Recording] = []
    skipped: list[SkippedFile] = []
    for path in files:
        try:
            read = read_file(path, options)
            if recordings:
                read = [_match(recordings[0], recording) for recording in read]
        except InputError as error:
            if strict:
                raise
            reason = error.problem + (f"; {error.fix}" if error.fix else "")
            skipped.append(SkippedFile(path, reason))
            logger.warning("skipped %s", error)
            continue
        recordings.extend(read)

    if not recordings:
        reasons = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[:5])
        raise InputError(
            ", ".join(map(str, files[:3])) + (" ..." if len(files) > 3 else ""),
            f"no readable recording ({reasons})",
            "fix or remove the files listed",
        )
    _make_names_unique(recordings)
    logger.info("read %d recordings from %d files", len(recordings), len(files))
    return RecordingSet(recordings, skipped, options.kind)


def _match(reference: Recording, recording: Recording) -> Recording:
    if recording.channels != reference.channels:
        recording = recording.select_channels(reference.channels)
    if recording.sample_rate != reference.sample_rate:
        raise InputError(
            recording.source or recording.name,
            f"sample rate {recording.sample_rate} differs from the first file's "
            f"{reference.sample_rate}",
            "resample the recordings to one rate",
        )
    return recording


def _make_names_unique(recordings: list[Recording]) -> None:
    """Prefix clashing names (same stem in two folders) with their parent folder."""
    seen: dict[str, int] = {}
    for recording in recordings:
        seen[recording.name] = seen.get(recording.name, 0) + 1
    for recording in recordings:
        if seen[recording.name] > 1 and recording.source is not None:
            recording.name = f"{recording.source.parent.name}/{recording.name}"
