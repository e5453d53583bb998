"""Parquet reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from grindwatch.exceptions import InputError

__all__ = ["read_parquet_frame"]


def read_parquet_frame(path: Path) -> pd.DataFrame:
    """Read a Parquet file into a DataFrame.

    Decimal columns become float64, and nullable numbers (pandas' Int64 and
    Float64, or Arrow-backed columns) become float64 with NaN for a missing
    value, so the NaN policy (``data.nan_policy``) treats them as it treats
    an empty CSV cell.
    """
    import pyarrow
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pyarrow.ArrowException, ValueError) as error:
        raise _unreadable(path, error) from None
    names = list(schema.names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(
            path,
            f"has more than one column named {', '.join(map(repr, repeated))}",
            "give each column of the file its own name",
        )
    try:
        table = pq.read_table(path)
        for index, field in enumerate(table.schema):
            if pyarrow.types.is_decimal(field.type):
                table = table.set_column(
                    index, field.name, table.column(index).cast(pyarrow.float64())
                )
        frame = table.to_pandas()
    except (OSError, pyarrow.ArrowException, ValueError) as error:
        raise _unreadable(path, error) from None
    for name in frame.columns:
        column = frame[name]
        if isinstance(
            column.dtype, pd.api.extensions.ExtensionDtype
        ) and pd.api.types.is_numeric_dtype(column):
            if not pd.api.types.is_bool_dtype(column):
                frame[name] = column.to_numpy(dtype="float64", na_value=np.nan)
    return frame


def _unreadable(path: Path, error: Exception) -> InputError:
    return InputError(
        path,
        f"is not a readable Parquet file ({str(error).splitlines()[0]})",
        "check that the file was written completely",
    )
