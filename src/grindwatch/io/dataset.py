"""Read a data set: a file, a folder, a glob pattern or a list of those."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grindwatch.exceptions import InputError, lookalike_names, shorten_list
from grindwatch.io.binary import read_binary
from grindwatch.io.csv import read_csv_frame
from grindwatch.io.cycle_folder import is_cycle_folder, read_cycle_folder
from grindwatch.io.frames import (
    frame_to_recording,
    frame_to_table_rows,
    warn_irregular_time,
)
from grindwatch.io.hdf5 import read_hdf5
from grindwatch.io.labels import label_folder
from grindwatch.io.mat import read_mat
from grindwatch.io.numpy import read_numpy
from grindwatch.io.options import BOOL_WORDS, ReadOptions
from grindwatch.io.parquet import read_parquet_frame
from grindwatch.io.recording import Recording, RecordingSet, SkippedFile
from grindwatch.io.samples import check_quality, resample
from grindwatch.io.tdms import read_tdms
from grindwatch.io.wav import read_wav

logger = logging.getLogger(__name__)

__all__ = [
    "SUFFIXES",
    "label_roots",
    "list_files",
    "load_recordings",
    "matches_metadata",
    "paths_or_raise",
    "read_file",
    "source_path",
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
# The folder walk lists compressed recordings (r.csv.gz), so that reading them
# raises and names them. Otherwise they would be left out without a message.
_COMPRESSED_SUFFIXES = (".gz", ".zip", ".bz2", ".xz", ".zst", ".7z")
SUFFIXES = SIGNAL_SUFFIXES


def read_file(
    path: str | Path,
    options: ReadOptions | None = None,
    *,
    label_root: Path | None = None,
) -> list[Recording]:
    """Read one file into recordings: one for a signal file or a cycle folder, one
    per row of a table.

    Signal recordings are checked for constant and clipped channels (see
    ``grindwatch.io.samples.check_quality``) and resampled when ``resample_rate``
    is set. Recordings without a label column get their label from the nearest
    class-named folder at or below ``label_root`` (``grindwatch.io.labels``);
    without ``label_root``, from any parent folder.

    Raises
    ------
    InputError
        If the file is missing, empty, of an unsupported type, or unreadable, or a
        check set to ``raise`` fails.
    """
    path = Path(path)
    options = options or ReadOptions()
    if is_cycle_folder(path):
        recording = read_cycle_folder(path, options)
        return [_finish(recording, options, label_root, checked=True)]
    if _is_cycle_without_raw(path):
        raise InputError(
            path,
            "is a cycle folder (it contains meta.json) without its raw/ folder of "
            "logger streams",
            "copy the cycle's raw/ folder of Parquet files next to meta.json, or "
            "remove the folder from the data set",
        )
    if _is_broken_link(path):
        raise InputError(
            path,
            f"is a symbolic link to {path.readlink()}, which does not exist",
            "mount or restore the target, or remove the link",
        )
    if not path.is_file():
        raise InputError(path, "file not found", "check the path")
    if path.stat().st_size == 0:
        raise InputError(path, "the file is empty", "check that the export finished")
    suffix = path.suffix.lower()
    if suffix in _COMPRESSED_SUFFIXES:
        raise InputError(
            path,
            f"is compressed ({suffix}), and grindwatch reads uncompressed files only",
            "decompress it first (gunzip for .gz, unzip for .zip)",
        )

    if options.kind == "table":
        if suffix not in TABLE_SUFFIXES:
            raise InputError(
                path,
                f"feature tables must be CSV or Parquet, not {suffix!r}",
                "convert the table, or read it as signals",
            )
        frame = _read_frame(path, options)
        rows = frame_to_table_rows(path, frame, options)
        for row in rows:
            _set_label(row, path, label_root)
        return rows

    reader = _SIGNAL_READERS.get(suffix)
    if reader is None:
        raise InputError(
            path,
            f"unsupported file type {suffix!r}",
            f"grindwatch reads {', '.join(SIGNAL_SUFFIXES)} and cycle folders "
            "(meta.json plus raw/)",
        )
    return [_finish(reader(path, options), options, label_root)]


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


def _finish(  # noqa: ANN202
    recording: Recording,
    options: ReadOptions,
    label_root: Path | None,
    checked: bool = False,
):
    """Check quality, resample if asked, and set the label from the folder names."""
    if not checked:
        recording = check_quality(
            recording,
            options.constant_policy,
            options.clipping_policy,
            _time_like_among(recording, options),
        )
    if (
        options.resample_rate is not None
        and recording.metadata.get("cycle_mode") != "features"
    ):
        recording = resample(recording, options.resample_rate)
    _set_label(recording, recording.source or Path(recording.name), label_root)
    return recording


def _set_label(recording: Recording, path: Path, root: Path | None) -> None:
    """Record where a recording's label comes from, and take a folder's label
    where no label column gave one.

    ``metadata["label_source"]`` is ``"label column"`` or ``"folder NAME"``;
    it is absent for a recording without a label.
    """
    if recording.label is not None or recording.sample_labels is not None:
        recording.metadata["label_source"] = "label column"
        return
    found = label_folder(path, root)
    if found is not None:
        recording.label, folder = found
        recording.metadata["label_source"] = f"folder {folder.name}"


def _time_like_among(recording: Recording, options: ReadOptions) -> set[str] | None:
    """Channels worth the time-like check: not those the user named as channels,
    and when scoring only those the model reads."""
    among = set(recording.channels) - set(options.channels or ())
    if options.known_channels:
        among &= set(options.known_channels)
    return among


def _read_frame(path: Path, options: ReadOptions):  # noqa: ANN202
    if path.suffix.lower() in (".parquet", ".pq"):
        # A feature table's index is read only as its id column, because a
        # numeric row id taken as a feature would change every score.
        if options.kind == "table":
            return read_parquet_frame(path, index_names=[options.id_column])
        return read_parquet_frame(path)
    return read_csv_frame(path, options)


def list_files(source: str | Path | Iterable[str | Path], kind: str = "signals"):
    """Expand folders (recursively) and glob patterns into a sorted list of files."""
    return list(label_roots(source, kind))


def paths_or_raise(source: Any) -> Any:
    """Return ``source`` with an iterable of paths as a list, or raise TypeError.

    Arrays and Recording objects would otherwise fail deep inside the readers,
    with numpy's "truth value is ambiguous" or a missing file named by a repr.
    """
    if source is None or isinstance(source, (str, os.PathLike)):
        return source
    # bytes is an iterable of ints, which would be named as the wrong type.
    if isinstance(source, Iterable) and not isinstance(
        source, (np.ndarray, pd.DataFrame, Recording, bytes)
    ):
        source = list(source)
        if all(isinstance(item, (str, os.PathLike)) for item in source):
            return source
        kinds = sorted({type(item).__name__ for item in source})
    else:
        kinds = [type(source).__name__]
    hint = ""
    if "bytes" in kinds:
        hint = "; decode a path given as bytes with os.fsdecode(path)"
    elif "Recording" in kinds:
        hint = "; wrap Recording objects in grindwatch.RecordingSet(recordings)"
    elif "ndarray" in kinds:
        hint = (
            "; wrap each array of shape (n_channels, n_samples) as "
            "grindwatch.Recording(name, data, channels, sample_rate) and pass "
            "grindwatch.RecordingSet(recordings)"
        )
    elif "DataFrame" in kinds:
        hint = (
            "; wrap each frame of one column per channel as grindwatch.Recording("
            "name, frame.to_numpy(numpy.float32).T, list(frame.columns), "
            "sample_rate) and pass grindwatch.RecordingSet(recordings)"
        )
    raise TypeError(
        "data must be a file, folder or glob pattern (str or Path), a list of "
        f"them, or a RecordingSet, not {', '.join(kinds)}{hint}"
    )


def label_roots(
    source: str | Path | Iterable[str | Path], kind: str = "signals"
) -> dict[Path, Path]:
    """Expand ``source`` as ``list_files`` does, each file with its label root.

    The label root is the highest folder whose name may label the file: the
    folder given, the fixed part of a glob pattern (``data`` for
    ``data/*/x*.csv``), or the folder of a file given by name. Folders above it
    contain the data but do not describe it (``fault_study/line1/...``).
    """
    if isinstance(source, (str, Path)):
        source = [source]
    suffixes = TABLE_SUFFIXES if kind == "table" else SIGNAL_SUFFIXES
    files: dict[Path, Path] = {}
    for item in source:
        text = str(item)
        # A path that exists is taken as it is, so a folder named "line[2]" is not
        # read as a pattern that matches "line2".
        if any(char in text for char in "*?[") and not Path(text).exists():
            matches = sorted(Path(match) for match in glob.glob(text, recursive=True))
            if not matches:
                raise InputError(text, "the pattern matches no file", "check it")
            root = _fixed_prefix(Path(text))
            for match in matches:
                if (
                    match.is_file()
                    or _is_broken_link(match)
                    or (kind == "signals" and _is_cycle(match))
                ):
                    files.setdefault(match, root)
        elif Path(text).is_dir():
            found = _walk(Path(text), suffixes, kind)
            if not found:
                raise InputError(
                    text,
                    f"the folder holds no {', '.join(suffixes)} file and no cycle "
                    "folder (meta.json plus raw/)",
                    "point at the folder with the recordings",
                )
            for path in found:
                files.setdefault(path, Path(text))
        elif Path(text).exists():
            files.setdefault(Path(text), Path(text).parent)
        elif text.startswith("~") or "$" in text:
            # The shell expands these on the command line, but not in a config.
            raise InputError(
                text,
                "no such file or folder; '~' and '$NAME' are not expanded here",
                "write the full path",
            )
        else:
            raise InputError(text, "no such file or folder", "check the path")
    return files


def _fixed_prefix(pattern: Path) -> Path:
    """Return the folders of a glob pattern before its first wildcard."""
    fixed = []
    for part in pattern.parts[:-1]:
        if any(char in part for char in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


# MLflow 3.17 writes run artifacts to these folders of the working folder by
# default (mlartifacts with a SQLite store such as grindwatch's default
# mlflow.db or a local tracking server, mlruns with a file store). Their CSV and .txt
# files, such as the training score table that each run logs, are not
# recordings, and a second 'grindwatch train .' would otherwise read them.
MLFLOW_ARTIFACT_FOLDERS = frozenset({"mlartifacts", "mlruns"})


def _walk(
    folder: Path,
    suffixes: tuple[str, ...],
    kind: str,
    visited: set[Path] | None = None,
) -> list[Path]:
    """Files with a known suffix under ``folder``, and cycle folders as one item each.

    Hidden files and folders are left out, and so is everything inside a cycle
    folder. Symbolic links to folders are followed, but each real folder is walked
    once (``visited`` holds the resolved paths), so a link loop ends. Subfolders
    named as MLflow's artifact folders (``MLFLOW_ARTIFACT_FOLDERS``) are left out.
    """
    visited = set() if visited is None else visited
    real = folder.resolve()
    if real in visited:
        return []
    visited.add(real)
    if kind == "signals" and _is_cycle(folder):
        return [folder]
    found: list[Path] = []
    try:
        items = sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        # The folder was removed or replaced after its parent was listed, as when
        # another program moves finished recordings out of a watched folder.
        return found
    for item in items:
        # Microsoft Office writes "~$NAME" lock files beside a file it has open,
        # hidden on Windows but not on a share mounted elsewhere.
        if item.name.startswith((".", "~$")):
            continue
        if item.is_dir() and item.name in MLFLOW_ARTIFACT_FOLDERS:
            logger.info("left out %s: MLflow artifacts, not recordings", item)
            continue
        if item.is_dir():
            found.extend(_walk(item, suffixes, kind, visited))
        elif item.is_file() and item.suffix.lower() in suffixes:
            found.append(item)
        elif item.is_file() and _is_compressed_recording(item, suffixes):
            found.append(item)
        elif item.suffix.lower() in suffixes and _is_broken_link(item):
            # A link whose target is gone (an unmounted share) is listed, so
            # that reading it fails and the data set names it as skipped.
            found.append(item)
    return found


def _is_compressed_recording(path: Path, suffixes: tuple[str, ...]) -> bool:
    """Tell whether ``path`` is a compressed file of a readable kind (r.csv.gz)
    without its uncompressed copy beside it."""
    inner = Path(path.stem).suffix.lower()
    return (
        path.suffix.lower() in _COMPRESSED_SUFFIXES
        and inner in suffixes
        and not path.with_suffix("").exists()
    )


def _is_broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def _is_cycle(folder: Path) -> bool:
    """Tell whether ``folder`` is read as one cycle folder, complete or not."""
    return is_cycle_folder(folder) or _is_cycle_without_raw(folder)


def _is_cycle_without_raw(folder: Path) -> bool:
    """Tell whether ``folder`` is a cycle folder that lacks its ``raw/`` folder:
    it contains ``meta.json``, no ``raw/`` folder, and no subfolder or recording
    file that could be read instead.

    Such a folder is listed as one recording, so reading it raises and the data
    set reports it, where leaving it out would lose a cycle without a message.
    """
    if not (folder.is_dir() and (folder / "meta.json").is_file()):
        return False
    if (folder / "raw").is_dir():
        return False
    for item in folder.iterdir():
        if item.name.startswith("."):
            continue
        if item.is_dir() or item.suffix.lower() in SIGNAL_SUFFIXES:
            return False
    return True


def load_recordings(
    source: str | Path | Iterable[str | Path],
    options: ReadOptions | Any = None,
    strict: bool = False,
    *,
    match_files: bool = True,
    fill_rate: float | None = None,
) -> RecordingSet:
    """Read every recording in ``source``.

    ``options`` is a ReadOptions, or settings in any form that ``train``
    accepts (a Config, a dict of dotted settings or a YAML path), whose
    ``data`` section then gives the options, as in training.

    Files that fail to read are skipped, logged as warnings and listed in
    ``RecordingSet.skipped`` with the reason, unless ``strict`` is true, in which
    case the first failure raises. With ``match_files``, every recording is
    matched to the reference: the channel set that most files have (ties go to
    the earlier file), and the sample rate that most of those files have.
    Recordings are reordered by channel name, extra channels are left out, and a
    recording that lacks a reference channel is skipped. A recording at another
    sample rate is skipped, or resampled to the reference rate when
    ``options.resample`` is set. Without ``match_files`` the caller matches the
    recordings, as scoring does against the model. ``fill_rate`` is the sample
    rate given to signal recordings that have none. Recordings whose metadata
    does not equal ``options.match`` are left out (not listed as skipped).
    Constant and clipped channels, non-numeric columns, time-like columns left
    out and time columns with gaps are summarised in one warning each.

    Raises
    ------
    InputError
        If ``source`` names no files, no file can be read, or in strict mode
        when any file fails to read or does not match the reference.
    TypeError
        If ``source`` is not a path or a list of paths (an array, for example).
    """
    source = paths_or_raise(source)
    if source is None or not source:
        raise InputError(
            "source",
            f"is {source!r}, which names no files",
            "pass a file, folder or glob pattern, or a list of them",
        )
    if options is None:
        options = ReadOptions()
    elif not isinstance(options, ReadOptions):
        from grindwatch.config import as_config
        from grindwatch.pipeline import read_options

        options = read_options(as_config(options))
    roots = label_roots(source, options.kind)
    files = list(roots)
    order = {path: index for index, path in enumerate(files)}
    read: list[tuple[Path, list[Recording]]] = []
    skipped: list[SkippedFile] = []
    n_filtered = 0
    for path in files:
        try:
            found = read_file(path, options, label_root=roots[path])
        except (InputError, OSError) as error:
            if strict:
                raise
            _skip(skipped, path, error)
            continue
        file_recordings = [r for r in found if matches_metadata(r, options.match)]
        n_filtered += len(found) - len(file_recordings)
        if fill_rate is not None and options.kind == "signals":
            for recording in file_recordings:
                if recording.sample_rate is None:
                    recording.sample_rate = fill_rate
        if file_recordings:
            read.append((path, file_recordings))

    recordings: list[Recording] = []
    reference = _choose_reference(read) if match_files and read else None
    for path, file_recordings in read:
        try:
            if reference is not None:
                file_recordings = [
                    _match(reference, recording, options)
                    for recording in file_recordings
                ]
        except (InputError, OSError) as error:
            if strict:
                raise
            _skip(skipped, path, error)
            continue
        recordings.extend(file_recordings)
    skipped.sort(key=lambda item: order.get(item.path, len(order)))

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
    warn_quality(recordings)
    _warn_low_precision(recordings)
    _warn_time_like(recordings)
    _warn_non_numeric(recordings)
    _warn_unused_time(recordings)
    warn_irregular_time([(r.source or r.name, r.metadata) for r in recordings])
    logger.info("read %d recordings from %d files", len(recordings), len(files))
    return RecordingSet(recordings, skipped, options.kind)


def _skip(skipped: list[SkippedFile], path: Path, error: Exception) -> None:
    skipped.append(SkippedFile(path, _reason(error, path)))
    logger.warning("skipped %s", error)


def _reason(error: Exception, path: Path | None = None) -> str:
    """Return the problem and fix. Where ``path`` is a cycle folder and the error
    names a file in it, the reason starts with that file's path in the folder."""
    if not isinstance(error, InputError):
        return f"cannot be read ({error})"
    reason = error.problem + (f"; {error.fix}" if error.fix else "")
    if path is not None and error.path != str(path):
        inner = Path(error.path)
        if inner.is_relative_to(path):
            reason = f"{inner.relative_to(path)}: {reason}"
    return reason


def matches_metadata(recording: Recording, match: Iterable[tuple[str, str]]) -> bool:
    """Return True when every (key, value) pair equals the recording's metadata.

    Keys are looked up in ``metadata["meta"]`` (a cycle folder's meta.json) first,
    then in ``metadata``; values compare as text. A boolean in the metadata also
    equals the words that a boolean setting takes (``true``, ``on`` or ``yes``
    for true, ``false``, ``off`` or ``no`` for false), and a number in the
    metadata equals a value of the same number, so ``1`` matches ``1.0``.
    """
    meta = recording.metadata.get("meta", {})
    for key, value in match:
        found = meta.get(key, recording.metadata.get(key))
        if found is None:
            return False
        if isinstance(found, bool) and isinstance(value, str):
            value = BOOL_WORDS.get(value.strip().lower(), value)
        elif _is_number(found) and _equals_number(found, value):
            continue
        if str(found) != str(value):
            return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not (
        isinstance(value, (bool, np.bool_))
    )


def _equals_number(number: float, text: object) -> bool:
    """Return True when ``text`` reads as the same number as ``number``."""
    try:
        return float(str(text)) == float(number)
    except ValueError:
        return False


def warn_quality(recordings: list[Recording]) -> None:
    """Log one warning per kind of channel problem (constant, clipped) in a set."""
    for key, problem in (
        ("constant_channels", "constant (zero-variance)"),
        (
            "clipped_channels",
            "clipped (held at their minimum or maximum for a run of samples, as a "
            "saturated sensor or an axis at rest is)",
        ),
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
                shorten_list(channels),
                affected[0].source or affected[0].name,
                key,
            )


def _recordings_have(n_affected: int, n_total: int) -> str:
    """Return "recording has" or "recordings have" for "N of TOTAL ..." text: the
    noun agrees with the total and the verb with the count."""
    noun = "recording" if n_total == 1 else "recordings"
    return f"{noun} {'has' if n_affected == 1 else 'have'}"


def _warn_low_precision(recordings: list[Recording]) -> None:
    """Name the channels that float32 stores coarsely, once per data set."""
    affected = [r for r in recordings if r.metadata.get("low_precision_channels")]
    if not affected:
        return
    first = affected[0]
    coarse = first.metadata["low_precision_channels"]
    channel = next(iter(coarse))
    names = sorted({c for r in affected for c in r.metadata["low_precision_channels"]})
    logger.warning(
        "%d of %d %s channels %s whose variation is tiny next to their "
        "level (first: %s, where the standard deviation of %r is %.3g float32 "
        "steps). Samples are stored as float32, which keeps about 7 significant "
        "digits, so these channels keep only a few distinct values. Subtract the "
        "offset (a baseline or the mean) before saving the files",
        len(affected),
        len(recordings),
        _recordings_have(len(affected), len(recordings)),
        shorten_list(names),
        first.source or first.name,
        channel,
        coarse[channel],
    )


def _warn_time_like(recordings: list[Recording]) -> None:
    """Name the channels that look like a time or index column, once per data set."""
    affected = [r for r in recordings if r.metadata.get("time_like_channels")]
    if not affected:
        return
    channels = sorted({c for r in affected for c in r.metadata["time_like_channels"]})
    logger.warning(
        "%d of %d %s channels %s that rise by the same step at every "
        "sample (first: %s), so they are probably time or sample index columns, not "
        "sensor signals. They are kept as channels. Name a CSV or Parquet time "
        "column with --set data.time_column=NAME, so that it gives the sample rate, "
        "or leave the column out by listing the channels to use with --channels "
        "(data.channels)",
        len(affected),
        len(recordings),
        _recordings_have(len(affected), len(recordings)),
        shorten_list(channels),
        affected[0].source or affected[0].name,
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
    # A text column of a feature table is often the id of its cycles.
    id_hint = ""
    if any("row" in recording.metadata for recording in recordings):
        id_hint = (
            ". If one contains row ids, name the rows by it with "
            "--set data.id_column=NAME"
        )
    logger.warning(
        "%d of %d files have non-numeric columns %s (first: %s); they are left "
        "out and are not channels. If one should be a channel, write it as "
        "numbers; to use only named channels, set --channels (data.channels)%s",
        len(files),
        n_files,
        shorten_list(names),
        next(iter(files)),
        id_hint,
    )


def _warn_unused_time(recordings: list[Recording]) -> None:
    """Name the time-like columns left out beside the time column, once per data
    set."""
    files: dict[Path | str, Recording] = {}
    for recording in recordings:
        if recording.metadata.get("unused_time_columns"):
            files.setdefault(recording.source or recording.name, recording)
    if not files:
        return
    n_files = len({r.source or r.name for r in recordings})
    names = sorted(
        {name for r in files.values() for name in r.metadata["unused_time_columns"]}
    )
    first_file, first = next(iter(files.items()))
    time_column = first.metadata.get("time_column")
    used = "no time column" if time_column is None else f"time column {time_column!r}"
    logger.warning(
        "%d of %d files have columns %s that look like time but are not the time "
        "column, so they are left out and are not channels (first: %s, read with "
        "%s). Name the time column with --set data.time_column=NAME, or keep a "
        "column as a channel by listing the channels with --channels "
        "(data.channels)",
        len(files),
        n_files,
        shorten_list(names),
        first_file,
        used,
    )


@dataclass(frozen=True)
class _Reference:
    """The channels and sample rate that the recordings of a data set are matched to.

    ``n_channel_files`` files of ``n_files`` have exactly these channels, and
    ``n_rate_files`` of the ``n_with_channels`` files that have them all are at
    this rate.
    """

    channels: list[str]
    sample_rate: float | None
    n_files: int
    n_channel_files: int
    n_with_channels: int
    n_rate_files: int


def _same_rate(first: float | None, second: float | None) -> bool:
    if first is None or second is None:
        return first is second
    # Rates estimated from time columns differ in the last digits.
    return bool(np.isclose(first, second, rtol=1e-6))


def _choose_reference(read: list[tuple[Path, list[Recording]]]) -> _Reference:
    """Choose the channel set and sample rate that most files have.

    A count over all files, not the first file, decides, so one odd file cannot
    make every other file fail to match. Each file counts once, whatever its
    number of recordings (table rows). Ties go to the set or rate found first in
    file order.
    """
    channel_sets: dict[frozenset[str], list[Recording]] = {}
    for _, file_recordings in read:
        first = file_recordings[0]
        channel_sets.setdefault(frozenset(first.channels), []).append(first)
    # max() returns the first of equal counts, and dicts keep insertion order.
    sharing = max(channel_sets.values(), key=len)
    channels = sharing[0].channels

    rate_groups: list[list[float | None]] = []
    channel_set = set(channels)
    for _, file_recordings in read:
        if not channel_set <= set(file_recordings[0].channels):
            continue
        rate = file_recordings[0].sample_rate
        for group in rate_groups:
            if _same_rate(group[0], rate):
                group.append(rate)
                break
        else:
            rate_groups.append([rate])
    rates = max(rate_groups, key=len)
    reference = _Reference(
        channels=list(channels),
        sample_rate=rates[0],
        n_files=len(read),
        n_channel_files=len(sharing),
        n_with_channels=sum(len(group) for group in rate_groups),
        n_rate_files=len(rates),
    )
    if len(channel_sets) > 1:
        logger.warning(
            "the files have %d different channel sets; %d of %d files have %s, so "
            "those are the channels used. Files without one of them are skipped, "
            "and other channels are left out",
            len(channel_sets),
            reference.n_channel_files,
            reference.n_files,
            shorten_list(reference.channels),
        )
    if len(rate_groups) > 1:
        logger.warning(
            "the files have %s; %d of %d files with these channels %s, so the "
            "others are skipped%s",
            _rate_counts(rate_groups),
            reference.n_rate_files,
            reference.n_with_channels,
            _rate_phrase(reference.sample_rate),
            ", or resampled with resample: true where they have a rate"
            if reference.sample_rate is not None
            else "",
        )
    return reference


def _rate_counts(rate_groups: list[list[float | None]]) -> str:
    """Describe rate groups: "2 different sample rates and 1 file without one"."""
    n_rates = sum(group[0] is not None for group in rate_groups)
    n_without = sum(len(group) for group in rate_groups if group[0] is None)
    text = "one sample rate" if n_rates == 1 else f"{n_rates} different sample rates"
    if n_without:
        files = "file" if n_without == 1 else "files"
        text += f" and {n_without} {files} without one"
    return text


def _match(reference: _Reference, recording: Recording, options: ReadOptions):  # noqa: ANN202
    """Select the reference channels and check (or resample to) the reference rate.

    Raises
    ------
    InputError
        If a reference channel is missing, or the rate differs and
        ``options.resample`` is not set.
    """
    missing = [name for name in reference.channels if name not in recording.channels]
    if missing:
        raise InputError(
            recording.source or recording.name,
            f"missing channels {shorten_list(missing)}; it has "
            f"{shorten_list(recording.channels)}, and "
            f"{reference.n_channel_files} of {reference.n_files} files have "
            f"{shorten_list(reference.channels)}"
            f"{lookalike_names(missing, recording.channels)}",
            "record those channels, or pick channels that every file has with "
            "--channels (data.channels)",
        )
    if recording.channels != reference.channels:
        recording = recording.select_channels(reference.channels)
    rate, expected = recording.sample_rate, reference.sample_rate
    if _same_rate(rate, expected):
        recording.sample_rate = expected
        return recording
    if rate is not None and expected is not None and options.resample:
        return resample(recording, expected)
    raise InputError(
        recording.source or recording.name, *_rate_mismatch(reference, rate)
    )


def _rate_mismatch(reference: _Reference, rate: float | None) -> tuple[str, str]:
    """Return the problem and the fix for a recording not at the reference rate."""
    share = f"{reference.n_rate_files} of {reference.n_with_channels} files"
    expected = reference.sample_rate
    if rate is None:
        return (
            f"has no sample rate, but {share} {_rate_phrase(expected)}",
            "add a time column to the file, or set sample_rate (--sample-rate) if "
            "every file is at one rate",
        )
    if expected is None:
        return (
            f"has a sample rate of {_rate_text(rate)} samples/s, but {share} "
            f"{_rate_phrase(expected)}",
            "give every file a time column or leave this file out",
        )
    return (
        f"sample rate {_rate_text(rate)} differs from {_rate_text(expected)}, the "
        f"rate of {share}",
        "resample the recordings to one rate, or set resample: true",
    )


def _rate_phrase(rate: float | None) -> str:
    return "have no sample rate" if rate is None else f"are at {rate:.7g} samples/s"


def _rate_text(rate: float | None) -> str:
    return "unknown" if rate is None else f"{rate:.7g}"


def source_path(path: str | Path | None) -> str:
    """Return the absolute path of a recording's file, as the ``source`` column of
    result tables gives it, or "" for a recording without a file.

    Symbolic links are not resolved, so a file reached through a link keeps the
    link's path.
    """
    if path is None or str(path) == "":
        return ""
    return str(Path(path).absolute())


def folder_prefixes(folders: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Map each folder (its path parts) to the fewest trailing parts that tell
    it apart from the others, joined by "/".

    One part is enough for ``a`` and ``b``; ``m1/day`` and ``m2/day`` need two.
    """
    distinct = set(folders)
    if not distinct:
        return {}
    depth = 1
    for depth in range(1, max(len(parts) for parts in distinct) + 1):
        if len({parts[-depth:] for parts in distinct}) == len(distinct):
            break
    return {parts: "/".join(parts[-depth:]) for parts in distinct}


def _make_names_unique(recordings: list[Recording]) -> None:
    """Prefix clashing names (same stem in two folders) with their folders, and
    raise InputError for files that differ only in their extension.

    One parent folder is enough for ``a/r.csv`` and ``b/r.csv``. Where the
    parents have the same name too (``m1/day/r.csv`` and ``m2/day/r.csv``),
    more folders are added until the names differ, because score tables,
    reports and labels find a recording by its name.
    """
    groups: dict[str, list[Recording]] = {}
    for recording in recordings:
        groups.setdefault(recording.name, []).append(recording)
    for name, group in groups.items():
        located = [recording for recording in group if recording.source is not None]
        if len(group) < 2 or not located:
            continue
        # Rows of one table file share their folder, which counts once. Folders
        # come from the absolute path, so a clashing file in the working folder
        # gets that folder's name, as spark-score names it from the absolute
        # paths its workers return.
        folders = [
            Path(source_path(recording.source)).parent.parts for recording in located
        ]
        prefixes = folder_prefixes(folders)
        for recording, parts in zip(located, folders, strict=True):
            prefix = prefixes[parts]
            recording.name = f"{prefix}/{name}" if prefix else name
    # Files of one stem in one folder (r.csv and r.parquet) still share a name.
    named: dict[str, set[str]] = {}
    for recording in recordings:
        if recording.source is not None:
            named.setdefault(recording.name, set()).add(str(recording.source))
    for name, sources in named.items():
        if len(sources) > 1:
            listed = sorted(sources)
            raise InputError(
                ", ".join(listed[:3]) + (" ..." if len(listed) > 3 else ""),
                f"these files would all be named {name!r}, because they differ only "
                "in their extension, and score tables, reports and labels find a "
                "recording by its name",
                "rename one of them, or pass the files of one format only (for "
                "example 'DIR/**/*.parquet')",
            )
