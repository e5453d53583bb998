"""Write result tables atomically as CSV or Parquet."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from grindwatch.exceptions import ConfigError

__all__ = ["window_table_path", "write_table"]


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to ``path`` (.csv or .parquet) via a temporary file and rename.

    A reader never sees a half-written file, and an interrupted write leaves any
    earlier file in place.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError(f"{path}: output must end in .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        if suffix == ".csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def window_table_path(path: str | Path) -> Path:
    """Where the per-window table goes beside a per-recording table."""
    path = Path(path)
    return path.with_name(f"{path.stem}.windows{path.suffix}")
