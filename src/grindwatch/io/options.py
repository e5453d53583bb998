"""Options shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEFAULT_LABEL_COLUMNS", "ReadOptions"]

# Column names treated as labels: never used as channels, kept for evaluation.
DEFAULT_LABEL_COLUMNS = (
    "anomaly",
    "label",
    "labels",
    "is_anomaly",
    "target",
    "changepoint",
)


@dataclass(frozen=True)
class ReadOptions:
    """How to turn files into recordings.

    Attributes
    ----------
    kind : {"signals", "table"}
        ``signals``: rows are samples, columns are channels. ``table``: rows are
        process cycles, columns are features (one recording per row).
    delimiter, decimal : str or None
        CSV field separator and decimal mark; None detects them from the file.
    hdf5_key : str or None
        Dataset or group path inside HDF5 files, when a file holds several.
    channels : tuple of str or None
        Keep only these channels, in this order.
    label_columns : tuple of str
        Columns that hold labels; they are never taken as channels.
    sample_rate : float or None
        Samples per second, for files that do not store it.
    id_column : str or None
        For tables: the column that names each cycle.
    nan_policy : {"raise", "interpolate"}
        What to do with NaN or infinite samples inside a recording.
    """

    kind: str = "signals"
    delimiter: str | None = None
    decimal: str | None = None
    hdf5_key: str | None = None
    channels: tuple[str, ...] | None = None
    label_columns: tuple[str, ...] = field(default=DEFAULT_LABEL_COLUMNS)
    sample_rate: float | None = None
    id_column: str | None = None
    nan_policy: str = "raise"
