"""Write result tables atomically as CSV or Parquet."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from grindwatch.exceptions import ConfigError

__all__ = [
    "atomic_write_bytes",
    "check_table_path",
    "window_table_path",
    "write_table",
]


def _naming(error: OSError, path: Path) -> OSError:
    """Return an OSError like ``error`` that names ``path``.

    A failed write names the hidden temporary file, or no file at all when the
    disk is full, so the message would not say which output failed.
    """
    return OSError(error.errno, error.strerror or str(error), str(path))


def _temporary_beside(path: Path) -> str:
    """Create an empty temporary file next to ``path`` with the usual permissions.

    mkstemp makes files readable by their owner only; result files are meant to be
    shared, so they get what a plain open() would give under the current umask.
    """
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:
        raise _naming(error, path) from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(handle, 0o666 & ~umask)
    os.close(handle)
    return temporary


def atomic_write_bytes(path: str | Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` via a temporary file and a rename.

    The file's data reach the disk before the rename, and the rename before the
    call returns, so a power cut leaves the old file or the whole new one. The
    rename is not synced where the folder cannot be opened or synced (Windows,
    a folder without read permission, some network shares).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(path)
    try:
        with open(temporary, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        _sync_folder(path.parent)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _naming(error, path) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _sync_file(path: str | Path) -> None:
    """Flush a written file's data to disk."""
    with open(path, "rb+") as written:
        os.fsync(written.fileno())


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the system can."""
    if os.name != "posix":
        return  # Windows cannot open a folder for fsync
    # The file is already in place, so a folder that cannot be opened (write
    # and search permission only) or synced (some network shares) is skipped.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def check_table_path(path: str | Path) -> Path:
    """Return ``path`` as a Path; raise ConfigError unless it ends in .csv or .parquet.

    Callers check before the work that produces the table, so a wrong name fails
    at once instead of after scoring.
    """
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(f"{path}: output must end in .csv or .parquet")
    if path.is_dir():
        raise ConfigError(f"{path}: output is a folder; name a .csv or .parquet file")
    check_output_folder(path.parent)
    return path


def check_output_folder(folder: str | Path) -> Path:
    """Raise ConfigError when ``folder`` cannot become a folder that takes new
    files: it, or a folder above it, is a file, or the nearest existing one
    rejects a new file (no permission, a read-only file system). Called before
    the work whose results go there."""
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                raise ConfigError(
                    f"{folder}: cannot write there, because {part} is a file; "
                    "choose another output path"
                )
            _check_writable(folder, part)
            break
    return folder


def _check_writable(folder: Path, existing: Path) -> None:
    """Create and delete a temporary file in ``existing``, the nearest existing
    folder of ``folder``. A real file is a better check than the permission
    bits, which root ignores and which do not show a read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".grindwatch-check-"):
            pass
    except OSError as error:
        raise ConfigError(
            f"{folder}: cannot write there, because {existing} does not take new "
            f"files ({error.strerror or error}); choose another output path"
        ) from None


def check_not_input(output: str | Path, inputs: list[Path]) -> None:
    """Raise ConfigError when writing ``output`` or its window table would
    replace one of the ``inputs`` (a recording to score)."""
    targets = {Path(output).resolve(), window_table_path(output).resolve()}
    for path in inputs:
        if path.resolve() in targets:
            raise ConfigError(
                f"{path}: is both a recording to score and where --output would "
                "write, so the recording would be lost; choose another output path"
            )


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to ``path`` (.csv or .parquet) via a temporary file and rename.

    A reader never sees a half-written file, and an interrupted write or a
    power cut leaves any earlier file in place.
    """
    path = check_table_path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(path)
    try:
        if suffix == ".csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)
        _sync_file(temporary)
        os.replace(temporary, path)
        _sync_folder(path.parent)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _naming(error, path) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def window_table_path(path: str | Path) -> Path:
    """Where the per-window table goes beside a per-recording table.

    ``today.csv`` gets ``today.windows.csv``, and a folder without a suffix,
    such as spark-score's ``scores``, gets ``scores.windows``.
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.windows{path.suffix}")
