"""Options shared by every reader."""

from __future__ import annotations

import codecs
import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field

from grindwatch.exceptions import ConfigError

__all__ = [
    "BOOL_WORDS",
    "CYCLE_MODES",
    "DEFAULT_LABEL_COLUMNS",
    "QUALITY_POLICIES",
    "ReadOptions",
]

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
KINDS = ("signals", "table")
NAN_POLICIES = ("raise", "interpolate")
# Words that a boolean setting reads as pydantic's bool fields do. The config
# loader leaves them as text, and a data.match value equals a boolean in the
# metadata through them.
BOOL_WORDS = {
    "true": True,
    "yes": True,
    "on": True,
    "false": False,
    "no": False,
    "off": False,
}


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

    Raises
    ------
    ConfigError
        If a value is outside what the ``data`` section of the config accepts
        (an unknown ``kind`` or policy, a rate or count that is not positive,
        an unknown encoding or time zone), or two options contradict each other.
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

    def __post_init__(self) -> None:
        # Only the first problem is raised, because messages contain semicolons.
        problem = next(_problems(self), None)
        if problem is not None:
            raise ConfigError(f"invalid ReadOptions: {problem}")

    def stream_mode(self, stream: str) -> str:
        """Return the cycle mode for one stream: its exception, else ``cycle_mode``."""
        return dict(self.stream_modes).get(stream, self.cycle_mode)


def _problems(options: ReadOptions) -> Iterator[str]:
    """Yield a message for each option that the ``data`` section of the config
    rejects too."""
    choices = (
        ("kind", KINDS),
        ("nan_policy", NAN_POLICIES),
        ("constant_policy", QUALITY_POLICIES),
        ("clipping_policy", QUALITY_POLICIES),
        ("cycle_mode", CYCLE_MODES),
    )
    for name, allowed in choices:
        value = getattr(options, name)
        if value not in allowed:
            yield f"{name} is {value!r}; use {_either(allowed)}"
    for stream, mode in options.stream_modes:
        if mode not in CYCLE_MODES:
            yield (
                f"stream_modes gives {mode!r} for stream {stream!r}; use "
                f"{_either(CYCLE_MODES)}"
            )
    yield from _number_problems(options)
    yield from _text_problems(options)


def _number_problems(options: ReadOptions) -> Iterator[str]:
    positive = (
        ("sample_rate", "samples per second"),
        ("resample_rate", "samples per second"),
        ("frame_seconds", "seconds"),
        ("frame_hop_seconds", "seconds"),
    )
    for name, unit in positive:
        value = getattr(options, name)
        if value is None and name != "frame_seconds":
            continue
        if not _is_number(value) or not (math.isfinite(value) and value > 0):
            yield f"{name} is {value!r}; it should be a number greater than 0 ({unit})"
    counts = (("raw_channels", 1), ("chunk_samples", 1), ("frame_bands", 0))
    for name, least in counts:
        value = getattr(options, name)
        if value is None and name == "chunk_samples":
            continue
        if not (_is_number(value) and float(value).is_integer() and value >= least):
            yield f"{name} is {value!r}; it should be a whole number of {least} or more"


def _text_problems(options: ReadOptions) -> Iterator[str]:
    yield from encoding_problems(options.encoding)
    yield from timezone_problems(options.timezone)
    for problem in channel_problems(options.channels, "channels None"):
        yield f"channels {problem}"
    yield from time_column_problems(
        options.ignore_time, options.time_column, options.date_column, options.timezone
    )


def encoding_problems(encoding: str) -> Iterator[str]:
    """Yield a message when ``encoding`` is no Python codec name.

    The ``data`` section of the config runs this check and those below too.
    """
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        yield (
            f"unknown text encoding {encoding!r}; use a Python codec name "
            "such as utf-8, latin-1 or cp1252"
        )


def timezone_problems(timezone: str | None) -> Iterator[str]:
    """Yield a message when ``timezone`` is set and is no IANA time zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if timezone is None:
        return
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        yield (
            f"unknown time zone {timezone!r}; use an IANA name such as "
            "Europe/Berlin or America/Chicago"
        )


def channel_problems(
    channels: tuple[str, ...] | list[str] | None, unset: str
) -> Iterator[str]:
    """Yield a message for an empty list, an empty name or a repeated name.

    Each message follows the setting's name. ``unset`` names how to leave the
    list unset, such as ``channels None``.
    """
    if channels is None:
        return
    if not channels:
        yield (
            f"lists no channels; name at least one channel, or leave "
            f"{unset} to use all channels"
        )
    if any(not str(name).strip() for name in channels):
        yield (
            f"contains an empty channel name in {channels!r}; remove it "
            "or write the channel's name"
        )
    repeated = sorted({name for name in channels if list(channels).count(name) > 1})
    if repeated:
        yield f"lists {repeated} more than once; list each channel once"


def time_column_problems(
    ignore_time: bool,
    time_column: str | None,
    date_column: str | None,
    timezone: str | None,
) -> Iterator[str]:
    """Yield a message for time settings that contradict each other."""
    named = [
        f"{name}={value!r}"
        for name, value in (
            ("time_column", time_column),
            ("date_column", date_column),
            ("timezone", timezone),
        )
        if value is not None
    ]
    if ignore_time and named:
        yield (
            f"ignore_time reads no time column, but {', '.join(named)} is set; "
            "unset one or the other"
        )
    if date_column is not None and date_column == time_column:
        yield (
            f"date_column and time_column both name {date_column!r}; "
            "date_column names the column of dates and time_column the column "
            "of times of day"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _either(allowed: tuple[str, ...]) -> str:
    return " or ".join(repr(value) for value in allowed)
