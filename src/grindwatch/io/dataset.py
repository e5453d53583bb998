"""Read a data set: a file, a folder, a glob pattern or a list of those."""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from grindwatch.exceptions import InputError
from grindwatch.io.binary import read_binary
from grindwatch.io.csv import read_csv_frame
from grindwatch.io.cycle_folder import is_cycle_folder, read_cycle_folder
from grindwatch.io.frames import frame_to_recording, frame_to_table_rows
from grindwatch.io.hdf5 import read_hdf5
from grindwatch.io.labels import label_from_path
from grindwatch.io.mat import read_mat
from grindwatch.io.numpy import read_numpy
from grindwatch.io.options import ReadOptions
from grindwatch.io.parquet import read_parquet_frame
from grindwatch.io.recording import Recording, RecordingSet, SkippedFile
from grindwatch.io.samples import check_quality, resample
from grindwatch.io.tdms import read_tdms
from grindwatch.io.wav import read_wav

logger = logging.getLogger(__name__)

__all__ = [
    "SUFFIXES",
    "list_files",
    "load_recordings",
    "matches_metadata",
    "read_file",
]

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
    ".wav",
    ".tdms",
    ".mat",
    ".bin",
    ".raw",
)
TABLE_SUFFIXES = (".csv", ".txt", ".parquet", ".pq")
SUFFIXES = SIGNAL_SUFFIXES


def read_file(path: str | Path, options: ReadOptions | None = None) -> list[Recording]:
    """Read one file into recordings: one for a signal file or a cycle folder, one
    per row of a table.

    Signal recordings are checked for constant and clipped channels (see
    ``grindwatch.io.samples.check_quality``) and resampled when ``resample_rate``
    is set.

    Raises
    ------
    InputError
        If the file is missing, empty, of an unsupported type, or unreadable, or a
        check set to ``raise`` fails.
    """
    path = Path(path)
    options = options or ReadOptions()
    if is_cycle_folder(path):
        return [_finish(read_cycle_folder(path, options), options, checked=True)]
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

    reader = _SIGNAL_READERS.get(suffix)
    if reader is None:
        raise InputError(
            path,
            f"unsupported file type {suffix!r}",
            f"grindwatch reads {', '.join(SIGNAL_SUFFIXES)} and cycle folders "
            "(meta.json plus raw/)",
        )
    return [_finish(reader(path, options), options)]


def _read_frame_recording(path: Path, options: ReadOptions) -> Recording:
    return frame_to_recording(path, _read_frame(path, options), options)


_SIGNAL_READERS = {
    ".csv": _read_frame_recording,
    ".txt": _read_frame_recording,
    ".parquet": _read_frame_recording,
    ".pq": _read_frame_recording,
    ".h5": read_hdf5,
    ".hdf5": read_hdf5,
    ".hdf": read_hdf5,
    ".npy": read_numpy,
    ".npz": read_numpy,
    ".wav": read_wav,
    ".tdms": read_tdms,
    ".mat": read_mat,
    ".bin": read_binary,
    ".raw": read_binary,
}


def _finish(recording: Recording, options: ReadOptions, checked: bool = False):  # noqa: ANN202
    """Check quality, resample if asked, and set the label from the folder names."""
    if not checked:
        recording = check_quality(
            recording, options.constant_policy, options.clipping_policy
        )
    if (
        options.resample_rate is not None
        and recording.metadata.get("cycle_mode") != "features"
    ):
        recording = resample(recording, options.resample_rate)
    recording.label = label_from_path(recording.source or Path(recording.name))
    return recording


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
            files.extend(
                match
                for match in matches
                if match.is_file() or (kind == "signals" and is_cycle_folder(match))
            )
        elif Path(text).is_dir():
            found = _walk(Path(text), suffixes, kind)
            if not found:
                raise InputError(
                    text,
                    f"the folder holds no {', '.join(suffixes)} file and no cycle "
                    "folder (meta.json plus raw/)",
                    "point at the folder with the recordings",
                )
            files.extend(found)
        elif Path(text).exists():
            files.append(Path(text))
        else:
            raise InputError(text, "no such file or folder", "check the path")
    return list(dict.fromkeys(files))


def _walk(folder: Path, suffixes: tuple[str, ...], kind: str) -> list[Path]:
    """Files with a known suffix under ``folder``, and cycle folders as one item each.

    Hidden files and folders are left out, and so is everything inside a cycle
    folder.
    """
    if kind == "signals" and is_cycle_folder(folder):
        return [folder]
    found: list[Path] = []
    for item in sorted(folder.iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_dir():
            found.extend(_walk(item, suffixes, kind))
        elif item.is_file() and item.suffix.lower() in suffixes:
            found.append(item)
    return found


def load_recordings(
    source: str | Path | Iterable[str | Path],
    options: ReadOptions | None = None,
    strict: bool = False,
) -> RecordingSet:
    """Read every recording in ``source``.

    Files that fail to read are skipped, logged as warnings and listed in
    ``RecordingSet.skipped`` with the reason, unless ``strict`` is true, in which
    case the first failure raises. Recordings whose channels differ from the first
    file's are reordered by name, and skipped when a channel is missing. A
    recording at another sample rate than the first file's is skipped, or
    resampled to that rate when ``options.resample`` is set. Recordings whose
    metadata does not equal ``options.match`` are left out (not listed as skipped).
    Constant and clipped channels are summarised in one warning.

    Raises
    ------
    InputError
        If no file can be read, or in strict mode when any file fails.
    """
    options = options or ReadOptions()
    files = list_files(source, options.kind)
    recordings: list[Recording] = []
    skipped: list[SkippedFile] = []
    n_filtered = 0
    for path in files:
        try:
            read = read_file(path, options)
            kept = [r for r in read if matches_metadata(r, options.match)]
            n_filtered += len(read) - len(kept)
            if recordings or kept:
                reference = recordings[0] if recordings else kept[0]
                kept = [_match(reference, recording, options) for recording in kept]
        except (InputError, OSError) as error:
            if strict:
                raise
            skipped.append(SkippedFile(path, _reason(error)))
            logger.warning("skipped %s", error)
            continue
        recordings.extend(kept)

    if not recordings:
        reasons = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[:5])
        if n_filtered and not skipped:
            expected = dict(options.match)
            reasons = f"{n_filtered} recordings, none with metadata {expected}"
        raise InputError(
            ", ".join(map(str, files[:3])) + (" ..." if len(files) > 3 else ""),
            f"no readable recording ({reasons})",
            "fix or remove the files listed",
        )
    if n_filtered:
        logger.info(
            "left out %d recordings whose metadata is not %s",
            n_filtered,
            dict(options.match),
        )
    _make_names_unique(recordings)
    _warn_quality(recordings)
    _warn_non_numeric(recordings)
    logger.info("read %d recordings from %d files", len(recordings), len(files))
    return RecordingSet(recordings, skipped, options.kind)


def _reason(error: Exception) -> str:
    if isinstance(error, InputError):
        return error.problem + (f"; {error.fix}" if error.fix else "")
    return f"cannot be read ({error})"


def matches_metadata(recording: Recording, match: Iterable[tuple[str, str]]) -> bool:
    """Return True when every (key, value) pair equals the recording's metadata.

    Keys are looked up in ``metadata["meta"]`` (a cycle folder's meta.json) first,
    then in ``metadata``; values compare as text.
    """
    meta = recording.metadata.get("meta", {})
    for key, value in match:
        found = meta.get(key, recording.metadata.get(key))
        if found is None or str(found) != str(value):
            return False
    return True


def _warn_quality(recordings: list[Recording]) -> None:
    for key, problem in (
        ("constant_channels", "constant (zero-variance)"),
        ("clipped_channels", "clipped"),
    ):
        affected = [r for r in recordings if r.metadata.get(key)]
        if affected:
            channels = sorted({c for r in affected for c in r.metadata[key]})
            logger.warning(
                "%d of %d recordings have %s channels %s (first: %s); they are kept "
                "as they are, and each recording lists them in metadata[%r]",
                len(affected),
                len(recordings),
                problem,
                channels,
                affected[0].source or affected[0].name,
                key,
            )


def _warn_non_numeric(recordings: list[Recording]) -> None:
    """Name the non-numeric columns left out, once per data set."""
    files: dict[Path | str, list[str]] = {}
    for recording in recordings:
        columns = recording.metadata.get("non_numeric_columns")
        if columns:
            files.setdefault(recording.source or recording.name, columns)
    if not files:
        return
    n_files = len({r.source or r.name for r in recordings})
    names = sorted({name for columns in files.values() for name in columns})
    logger.warning(
        "%d of %d files have non-numeric columns %s (first: %s); they are left "
        "out and are not channels. If one should be a channel, write it as "
        "numbers; to use only named channels, set --channels (data.channels)",
        len(files),
        n_files,
        names,
        next(iter(files)),
    )


def _match(reference: Recording, recording: Recording, options: ReadOptions):  # noqa: ANN202
    if recording.channels != reference.channels:
        recording = recording.select_channels(reference.channels)
    rate, wanted = recording.sample_rate, reference.sample_rate
    if rate == wanted:
        return recording
    if rate is not None and wanted is not None:
        # Rates estimated from time columns differ in the last digits.
        if np.isclose(rate, wanted, rtol=1e-6):
            recording.sample_rate = wanted
            return recording
        if options.resample:
            return resample(recording, wanted)
    raise InputError(
        recording.source or recording.name,
        f"sample rate {_rate_text(rate)} differs from the first file's "
        f"{_rate_text(wanted)}",
        "resample the recordings to one rate, or set resample: true",
    )


def _rate_text(rate: float | None) -> str:
    return "unknown" if rate is None else f"{rate:.7g}"


def _make_names_unique(recordings: list[Recording]) -> None:
    """Prefix clashing names (same stem in two folders) with their parent folder."""
    seen: dict[str, int] = {}
    for recording in recordings:
        seen[recording.name] = seen.get(recording.name, 0) + 1
    for recording in recordings:
        if seen[recording.name] > 1 and recording.source is not None:
            recording.name = f"{recording.source.parent.name}/{recording.name}"
