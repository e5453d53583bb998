"""Options shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CYCLE_MODES", "DEFAULT_LABEL_COLUMNS", "QUALITY_POLICIES", "ReadOptions"]

# Column names treated as labels: never used as channels, kept for evaluation.
DEFAULT_LABEL_COLUMNS = (
    "anomaly",
    "label",
    "labels",
    "is_anomaly",
    "target",
    "changepoint",
)
CYCLE_MODES = ("resample", "features")
QUALITY_POLICIES = ("warn", "raise")


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
    encoding : str
        Text encoding of CSV files, as a Python codec name (``latin-1``,
        ``cp1252``, ``utf-16``).
    hdf5_key : str or None
        Dataset or group path inside HDF5 files, when a file holds several.
    channels : tuple of str or None
        Keep only these channels, in this order. A CSV or Parquet column named
        here is a channel even where its name or values would make it the time
        column.
    known_channels : tuple of str
        CSV or Parquet columns read as channels, never as time, without requiring
        them as ``channels`` does. Scoring sets it to the model's channels, so a
        column that a model was trained on as a channel stays one when a newer
        version would take it as time. A file that has all of them is read
        with those channels only.
    label_columns : tuple of str
        Columns that hold labels; they are never taken as channels.
    time_column : str or None
        The CSV or Parquet column that contains time, for a name that is not
        recognised as one (see ``grindwatch.io.time_names``). A unit in its name
        (``clock [ms]``) is read; without one, numbers are seconds. With a date
        column, it is the column of times of day.
    date_column : str or None
        The CSV or Parquet column of dates whose times of day are in another
        column, as in ``Date;Time`` exports. The time-of-day column is
        ``time_column``, or the column recognised as one (see
        ``grindwatch.io.date_time``). None finds such a pair by its column names.
    timezone : str or None
        IANA time zone of date-times written without a zone or offset. They are
        converted to UTC, so a daylight-saving switch inside a file is neither a
        gap nor a backward step. None reads them as they are.
    ignore_time : bool
        Read no time column: the rows are samples in file order at
        ``sample_rate``, and time-like columns are left out.
    sample_rate : float or None
        Samples per second, for files that do not store it.
    id_column : str or None
        For tables: the column that names each cycle.
    nan_policy : {"raise", "interpolate"}
        What to do with NaN or infinite samples inside a recording.
    constant_policy : {"warn", "raise"}
        What to do with a channel whose samples are all equal (a dead sensor).
        ``warn`` keeps it and lists it in ``metadata["constant_channels"]``.
    clipping_policy : {"warn", "raise"}
        What to do with a clipped channel (see ``grindwatch.io.samples``).
        ``warn`` keeps it and lists it in ``metadata["clipped_channels"]``.
    resample : bool
        Resample a recording whose rate differs from the reference rate (the rate
        that most files of a data set have, or the model's rate when scoring)
        instead of rejecting it.
    resample_rate : float or None
        Resample every recording to this rate (samples per second) when it is read.
        For multi-rate cycle folders it is the common rate of ``cycle_mode
        "resample"``; None there means the cycle's lowest stream rate.
    cycle_mode : {"resample", "features"}
        How a cycle folder with streams at different rates becomes one recording:
        ``resample`` brings every stream to one common rate; ``features`` cuts all
        streams into the same time frames and computes statistics per frame at each
        stream's own rate.
    stream_modes : tuple of (str, str) pairs
        Per-stream exceptions to ``cycle_mode``, as (stream name, mode) pairs.
    frame_seconds, frame_hop_seconds : float, float or None
        Frame length and hop in seconds for ``cycle_mode="features"``; the hop
        defaults to the frame length.
    frame_bands : int
        Log band energies added per channel and frame for ``features`` streams.
    tdms_group : str or None
        The group to read from TDMS files that hold several.
    mat_variable : str or None
        The variable to read from MATLAB files that hold several.
    raw_dtype : str or None
        NumPy dtype of headerless binary files (``.bin``, ``.raw``), e.g. ``<i2``.
    raw_channels : int
        Interleaved channels in headerless binary files.
    match : tuple of (str, str) pairs
        Keep only recordings whose metadata has these values, e.g.
        ``(("tool", "CRIN3-25-V"),)``, so a model or threshold is fitted per tool
        or material.
    chunk_samples : int or None
        When set, single-stream files are scored in chunks of this many samples
        with bounded memory instead of being read whole.
    """

    kind: str = "signals"
    delimiter: str | None = None
    decimal: str | None = None
    encoding: str = "utf-8"
    hdf5_key: str | None = None
    channels: tuple[str, ...] | None = None
    known_channels: tuple[str, ...] = ()
    label_columns: tuple[str, ...] = field(default=DEFAULT_LABEL_COLUMNS)
    time_column: str | None = None
    date_column: str | None = None
    timezone: str | None = None
    ignore_time: bool = False
    sample_rate: float | None = None
    id_column: str | None = None
    nan_policy: str = "raise"
    constant_policy: str = "warn"
    clipping_policy: str = "warn"
    resample: bool = False
    resample_rate: float | None = None
    cycle_mode: str = "resample"
    stream_modes: tuple[tuple[str, str], ...] = ()
    frame_seconds: float = 0.01
    frame_hop_seconds: float | None = None
    frame_bands: int = 4
    tdms_group: str | None = None
    mat_variable: str | None = None
    raw_dtype: str | None = None
    raw_channels: int = 1
    match: tuple[tuple[str, str], ...] = ()
    chunk_samples: int | None = None

    def stream_mode(self, stream: str) -> str:
        """Return the cycle mode for one stream: its exception, else ``cycle_mode``."""
        return dict(self.stream_modes).get(stream, self.cycle_mode)
