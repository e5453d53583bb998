"""Parquet reader."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from grindwatch.exceptions import InputError

__all__ = ["index_to_columns", "read_parquet_frame"]


def read_parquet_frame(
    path: Path, index_names: Collection[str] | None = None
) -> pd.DataFrame:
    """Read a Parquet file into a DataFrame.

    A named index stored in the file becomes a column (see ``index_to_columns``),
    or with ``index_names`` only the levels of those names do.

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
    frame = index_to_columns(path, frame, index_names)
    for name in frame.columns:
        column = frame[name]
        if isinstance(
            column.dtype, pd.api.extensions.ExtensionDtype
        ) and pd.api.types.is_numeric_dtype(column):
            if not pd.api.types.is_bool_dtype(column):
                frame[name] = column.to_numpy(dtype="float64", na_value=np.nan)
    return frame


def index_to_columns(
    path: Path, frame: pd.DataFrame, index_names: Collection[str] | None = None
) -> pd.DataFrame:
    """Move the named index levels of a frame read from Parquet into columns.

    ``DataFrame.to_parquet`` stores a named index, such as the time after
    ``set_index("time")``, as a column that pyarrow's ``to_pandas`` makes the
    index again, where the readers would not see it. With ``index_names`` only
    the levels of those names move, and the other levels are dropped. The index
    left is the data row numbers, so an unnamed index (row numbers left after
    filtering) is not read.

    Raises
    ------
    InputError
        If an index level has the name of a column.
    """
    names = [
        name
        for name in frame.index.names
        if name is not None and (index_names is None or name in index_names)
    ]
    repeated = [name for name in names if name in frame.columns]
    if repeated:
        raise InputError(
            path,
            f"has an index and a column both named {', '.join(map(repr, repeated))}",
            "give each column and index of the file its own name",
        )
    if names:
        frame = frame.reset_index(level=names)
    # The label check names data rows by index values, which count from 0.
    return frame.reset_index(drop=True)


def _unreadable(path: Path, error: Exception) -> InputError:
    return InputError(
        path,
        f"is not a readable Parquet file ({str(error).splitlines()[0]})",
        "check that the file was written completely",
    )
