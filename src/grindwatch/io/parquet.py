"""Parquet reader."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from grindwatch.exceptions import InputError

__all__ = ["read_parquet_frame"]


def read_parquet_frame(path: Path) -> pd.DataFrame:
    """Read a Parquet file into a DataFrame."""
    import pyarrow

    try:
        return pd.read_parquet(path)
    except (OSError, pyarrow.ArrowException, ValueError) as error:
        raise InputError(
            path,
            f"is not a readable Parquet file ({str(error).splitlines()[0]})",
            "check that the file was written completely",
        ) from None
