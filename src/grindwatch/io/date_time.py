"""Combine a date column and a time-of-day column into one time axis.

Machine and PLC exports often split each timestamp into two columns, such as
``Date;Time`` with ``2026-03-01;23:59:58.500`` or ``Datum;Uhrzeit`` with
``01.03.2026;23:59:58,500``. Read alone, the time of day drops by a day at
midnight. ``find_date_time_pair`` finds such a pair by the column names (see
``grindwatch.io.time_names``) and by content, and adds each row's time of day to
its date.

Dates are read in these forms, each optionally followed by a time of exactly
midnight (``01.03.2026 00:00:00``, as spreadsheets export dates):

- year first: ``2026-03-01``, ``2026/03/01``, ``2026.03.01``, or the number or
  text ``20260301``;
- day first with dots: ``01.03.2026``, ``1.3.26``;
- year last with slashes or hyphens: ``01/03/2026``, ``01-03-2026``. They are
  day first when some cell's first number is above 12, and month first when
  some cell's second number is. Otherwise the order that puts consecutive dates
  one day apart is used, and a file with a single date reads the same either way;
- with an English month name: ``1 Mar 2026``, ``March 1, 2026``;
- date values (Parquet ``date32``) and date-time values at midnight.

Two-digit years 00 to 68 are 2000 to 2068 and 69 to 99 are 1969 to 1999, as
Python's ``%y`` reads them. Times of day are ``H:MM``, ``H:MM:SS`` or
``H:MM:SS.fff`` with up to nine digits after ``.`` or ``,``, optionally followed
by ``AM`` or ``PM``, or ``MM:SS.fff``, or time values (Parquet ``time64``).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from grindwatch.exceptions import InputError, shorten_list
from grindwatch.io.options import ReadOptions
from grindwatch.io.time_names import is_date_name, is_time_of_day_name

__all__ = [
    "DateTimePair",
    "check_date_column",
    "date_time_pair_columns",
    "find_date_time_pair",
    "parse_times",
]

# A column found by its name is a date or time-of-day column when this share of
# its filled cells parses, the share a single text time column needs too.
_MIN_PARSED_SHARE = 0.9

_MIDNIGHT = r"(?:[ T]0?0:00(?::00(?:[.,]0+)?)?)?"
_YEAR_FIRST = re.compile(
    rf"^(?P<year>\d{{4}})(?P<sep>[-/.])(?P<first>\d{{1,2}})(?P=sep)"
    rf"(?P<second>\d{{1,2}}){_MIDNIGHT}$"
)
_COMPACT = re.compile(r"^(?P<year>\d{4})(?P<first>\d{2})(?P<second>\d{2})$")
_DAY_FIRST = re.compile(
    rf"^(?P<first>\d{{1,2}})\.(?P<second>\d{{1,2}})\.(?P<year>\d{{4}}|\d{{2}})"
    rf"{_MIDNIGHT}$"
)
_YEAR_LAST = re.compile(
    rf"^(?P<first>\d{{1,2}})(?P<sep>[/-])(?P<second>\d{{1,2}})(?P=sep)"
    rf"(?P<year>\d{{4}}|\d{{2}}){_MIDNIGHT}$"
)
_MONTH_NAME = re.compile(r"[A-Za-z]{3}")
# Run by pyarrow's RE2 engine on whole columns. Optional parts that are absent
# come back as empty strings.
# The second form, minutes and seconds with a fraction (01:59.990), is how
# spreadsheets show elapsed time. Read as hours and minutes, pandas takes the
# fraction for part of a minute. Clocks write no fraction after the minutes, so
# this form is always minutes and seconds. Elapsed hours and minutes may have
# more than two digits (125:30.250, 100:00:00), and ``parse_times`` checks the
# ranges. Six digits of hours (114 years) keep nanoseconds within int64.
_CLOCK_TIME = (
    r"^(?:(?P<hour>[0-9]{1,6}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]{1,9}))?)?"
    r"(?:\s*(?P<half>[AaPp])\.?[Mm]\.?)?"
    r"|(?P<short_minute>[0-9]{1,7}):(?P<short_second>[0-9]{2})"
    r"[.,](?P<short_fraction>[0-9]{1,9}))$"
)


@dataclass(frozen=True)
class _DateCell:
    """A parsed date cell. ``month_first`` is None where the order is open."""

    year: int
    first: int
    second: int
    month_first: bool | None

    def to_date(self, month_first: bool) -> np.datetime64:
        if self.month_first is not None:
            month_first = self.month_first
        month, day = (
            (self.first, self.second) if month_first else (self.second, self.first)
        )
        try:
            return np.datetime64(datetime.date(self.year, month, day), "ns")
        except ValueError:
            return np.datetime64("NaT", "ns")


@dataclass(frozen=True)
class _ParsedColumn:
    """Parsed cells of one column, in frame order.

    ``values`` are dates (datetime64) or times of day (timedelta64), NaT where a
    cell is empty or invalid. ``invalid`` marks filled cells that did not parse.
    ``problem`` is a column-wide reason (message and fix) that the cells cannot
    be read, such as dates in both day-first and month-first order.
    """

    values: np.ndarray
    filled: np.ndarray
    invalid: np.ndarray
    problem: tuple[str, str] | None = None

    def parsed_share(self) -> float:
        n_filled = int(self.filled.sum())
        if n_filled == 0:
            return 0.0
        return float((self.filled & ~self.invalid).sum()) / n_filled


@dataclass(frozen=True)
class DateTimePair:
    """A date column and a time-of-day column read together as one time axis.

    Attributes
    ----------
    date_column, time_column : column labels
        The two columns of the frame.
    values : Series of datetime64[ns], indexed like the frame
        Each row's date plus its time of day, as naive local time. NaT where
        either cell is empty or invalid.
    problem : tuple of (str, str) or None
        Why some cell could not be combined, and the fix, as for ``InputError``.
        Readers raise it only when they use the pair as the time axis.
    """

    date_column: object
    time_column: object
    values: pd.Series
    problem: tuple[str, str] | None = None

    def raise_if_invalid(self, path: Path) -> None:
        """Raise ``InputError`` for the first cell that could not be combined."""
        if self.problem is not None:
            raise InputError(path, *self.problem)


def find_date_time_pair(
    path: Path, frame: pd.DataFrame, options: ReadOptions
) -> DateTimePair | None:
    """Find a date column and a time-of-day column and combine them.

    ``options.date_column`` and ``options.time_column`` name the columns. A date
    column that is not named is found by its name (``is_date_name``), a
    time-of-day column by its name (``is_time_of_day_name``), and 90% of the
    filled cells of either must parse. With only ``options.date_column`` set, the
    only column of times of day is used whatever its name. Columns
    named as channels, labels or the id column are never part of a pair.

    Returns None when the frame has no such pair.

    Raises
    ------
    InputError
        If ``options.date_column`` names a column that the frame lacks, that is
        also the time column or a channel, or if no time-of-day column is found
        beside it.
    """
    excluded = _excluded_names(options)
    cells = _ParsedCells(frame)
    date_column = _date_column(path, cells, options, excluded)
    if date_column is None:
        return None
    time_column = _time_of_day_column(path, cells, options, excluded, date_column)
    if time_column is None:
        return None
    return _combine(cells, date_column, time_column)


class _ParsedCells:
    """The columns of one frame, each parsed as dates or times of day once."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._dates: dict[object, _ParsedColumn] = {}
        self._times: dict[object, _ParsedColumn] = {}

    def dates(self, name: object) -> _ParsedColumn:
        if name not in self._dates:
            self._dates[name] = _parse_dates(self.frame[name])
        return self._dates[name]

    def times(self, name: object) -> _ParsedColumn:
        if name not in self._times:
            self._times[name] = parse_times(self.frame[name])
        return self._times[name]


def date_time_pair_columns(schema: pd.DataFrame, options: ReadOptions) -> list:
    """List the columns that ``find_date_time_pair`` may read, from a table schema.

    They are the columns named by ``options.date_column`` and
    ``options.time_column``, the columns with a date or time-of-day name, and,
    with ``options.date_column`` set, every non-numeric column, in file order.
    The chunked Parquet reader reads only these to look for a pair.
    """
    named = {options.date_column, options.time_column} - {None}
    return [
        name
        for name in schema.columns
        if name in named
        or is_date_name(str(name))
        or is_time_of_day_name(str(name))
        or (
            options.date_column is not None
            and not pd.api.types.is_numeric_dtype(schema[name])
        )
    ]


def _excluded_names(options: ReadOptions) -> set[str]:
    names = set(options.channels or ()) | set(options.known_channels)
    names |= {name.lower() for name in options.label_columns}
    if options.id_column is not None:
        names.add(options.id_column)
    return names


def _is_excluded(name: object, excluded: set[str]) -> bool:
    return str(name) in excluded or str(name).lower() in excluded


def _date_column(
    path: Path, cells: _ParsedCells, options: ReadOptions, excluded: set[str]
) -> object | None:
    named = options.date_column
    if named is not None:
        check_date_column(path, cells.frame, options)
        return named
    for name in cells.frame.columns:
        if name == options.time_column or _is_excluded(name, excluded):
            continue
        if not is_date_name(str(name)):
            continue
        if cells.dates(name).parsed_share() >= _MIN_PARSED_SHARE:
            return name
    return None


def check_date_column(path: Path, frame: pd.DataFrame, options: ReadOptions) -> None:
    """Check ``options.date_column`` against the columns of ``frame``, if it is set.

    Raises
    ------
    InputError
        If the column is missing, or named as the time column or as a channel.
    """
    named = options.date_column
    if named is None:
        return
    if named not in frame.columns:
        raise InputError(
            path,
            f"date column {named!r} not found; the columns are "
            f"{shorten_list([str(name) for name in frame.columns])}",
            "fix data.date_column, or unset it to detect a date column by name",
        )
    if named == options.time_column:
        raise InputError(
            path,
            f"column {named!r} is named both as the date column and as the time column",
            "set data.date_column to the column of dates and data.time_column to "
            "the column of times of day",
        )
    if named in (options.channels or ()):
        raise InputError(
            path,
            f"column {named!r} is named both as the date column and as a channel",
            "remove it from data.channels or unset data.date_column",
        )


def _time_of_day_column(
    path: Path,
    cells: _ParsedCells,
    options: ReadOptions,
    excluded: set[str],
    date_column: object,
) -> object | None:
    """Return the time-of-day column to combine with ``date_column``, or None."""
    named_date = options.date_column is not None
    named_time = options.time_column
    if named_time is not None:
        # With a named date column, invalid cells of a named time column raise.
        # Without one, a time column of seconds stays a column of seconds.
        if named_date or cells.times(named_time).parsed_share() >= _MIN_PARSED_SHARE:
            return named_time
        return None

    others = [
        name
        for name in cells.frame.columns
        if name != date_column and not _is_excluded(name, excluded)
    ]
    # NOTE: elapsed MM:SS.fff beside a date column pairs when 90% of its cells
    # are below 60:00.000, and the cells from there on then raise as no time of
    # day. With more cells past the hour, the column is read as elapsed time.
    for name in others:
        if not is_time_of_day_name(str(name)):
            continue
        if cells.times(name).parsed_share() >= _MIN_PARSED_SHARE:
            return name
    if not named_date:
        return None

    clocks = [
        name
        for name in others
        if not pd.api.types.is_numeric_dtype(cells.frame[name])
        and cells.times(name).parsed_share() >= _MIN_PARSED_SHARE
    ]
    if len(clocks) == 1:
        return clocks[0]
    found = (
        f"columns {shorten_list([str(name) for name in clocks])} all hold times of day"
        if clocks
        else "no column holds times of day such as 23:59:58.500"
    )
    raise InputError(
        path,
        f"no time-of-day column found beside date column {date_column!r} "
        f"(data.date_column): {found}",
        "name the time-of-day column with data.time_column",
    )


def _combine(
    cells: _ParsedCells, date_column: object, time_column: object
) -> DateTimePair:
    frame = cells.frame
    dates = cells.dates(date_column)
    times = cells.times(time_column)
    values = pd.Series(dates.values + times.values, index=frame.index)
    problem = dates.problem
    if problem is None:
        problem = _first_invalid_cell(frame, date_column, time_column, dates, times)
    return DateTimePair(date_column, time_column, values, problem)


def _first_invalid_cell(
    frame: pd.DataFrame,
    date_column: object,
    time_column: object,
    dates: _ParsedColumn,
    times: _ParsedColumn,
) -> tuple[str, str] | None:
    invalid = dates.invalid | times.invalid
    if not invalid.any():
        return None
    row = int(np.flatnonzero(invalid)[0])
    combining = (
        f"cannot combine date column {date_column!r} with time column {time_column!r}"
    )
    if dates.invalid[row]:
        value = _cell_text(frame[date_column].iloc[row])
        return (
            f"{combining}: {value!r} at data row {row} is not a date",
            "correct or delete that row; dates such as 2026-03-01, 01.03.2026 or "
            "1 Mar 2026 are read",
        )
    value = _cell_text(frame[time_column].iloc[row])
    return (
        f"{combining}: {value!r} at data row {row} is not a time of day",
        "correct or delete that row; times of day such as 23:59:58, 23:59:58.500 "
        "or 23:59:58,5 are read",
    )


def _cell_text(value: object) -> str:
    """Return a cell as the text that a message quotes, without NumPy's type name."""
    return value if isinstance(value, str) else str(value)


def _filled_mask(column: pd.Series) -> np.ndarray:
    filled = column.notna().to_numpy(dtype=bool)
    if column.dtype == object or pd.api.types.is_string_dtype(column):
        text = column.astype("string").str.strip()
        filled = filled & (text != "").fillna(False).to_numpy(dtype=bool)
    return filled


# Dates ---------------------------------------------------------------------------


def _parse_dates(column: pd.Series) -> _ParsedColumn:
    filled = _filled_mask(column)
    if pd.api.types.is_datetime64_any_dtype(column):
        return _dates_from_datetimes(column, filled)
    serial = _dates_from_serial_days(column, filled)
    if serial is not None:
        return serial

    codes, uniques = pd.factorize(column)
    cells = [_date_cell(value) for value in uniques]
    month_first, problem = _date_order(column, codes, uniques, cells)
    parsed = np.array(
        [
            np.datetime64("NaT", "ns") if cell is None else cell.to_date(month_first)
            for cell in cells
        ],
        dtype="datetime64[ns]",
    )
    values = np.full(len(column), np.datetime64("NaT", "ns"))
    known = codes >= 0
    values[known] = parsed[codes[known]]
    invalid = filled & np.isnat(values)
    return _ParsedColumn(values, filled, invalid, problem)


# Whole serial days as spreadsheets write a date cell without its format:
# days since 1899-12-30 (20000 to 80000, the years 1954 to 2119), or MATLAB
# datenums, days since year 0 (693962 to 767011, the years 1900 to 2100).
_SERIAL_DAY_OFFSETS = ((20_000.0, 80_000.0, 0), (693_962.0, 767_011.0, 693_960))
_SERIAL_DAY_ZERO = np.datetime64("1899-12-30", "ns")


def _dates_from_serial_days(
    column: pd.Series, filled: np.ndarray
) -> _ParsedColumn | None:
    """Read a numeric column of whole serial days as dates, or return None when
    its numbers are not all whole days in one serial range."""
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return None
    days = column.to_numpy(dtype=float, na_value=np.nan)
    known = days[np.isfinite(days)]
    if known.size == 0 or not np.all(known == np.floor(known)):
        return None
    for low, high, offset in _SERIAL_DAY_OFFSETS:
        if known.min() >= low and known.max() <= high:
            values = np.full(len(column), np.datetime64("NaT", "ns"))
            finite = np.isfinite(days)
            whole = (days[finite] - offset).astype(np.int64)
            values[finite] = _SERIAL_DAY_ZERO + whole.astype("timedelta64[D]")
            return _ParsedColumn(values, filled, filled & np.isnat(values))
    return None


def _dates_from_datetimes(column: pd.Series, filled: np.ndarray) -> _ParsedColumn:
    """Read date-time values at midnight as dates; other times are invalid."""
    times = column
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_localize(None)
    days = times.dt.normalize()
    at_midnight = (times == days).to_numpy(dtype=bool)
    values = days.to_numpy(dtype="datetime64[ns]").copy()
    values[~at_midnight] = np.datetime64("NaT", "ns")
    return _ParsedColumn(values, filled, filled & ~at_midnight)


def _date_cell(value: object) -> _DateCell | None:
    """Parse one date cell, or return None where it is not a date."""
    if isinstance(value, datetime.datetime):
        if value.time() != datetime.time(0):
            return None
        return _DateCell(value.year, value.month, value.day, month_first=True)
    if isinstance(value, datetime.date):
        return _DateCell(value.year, value.month, value.day, month_first=True)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        text = str(int(value))
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        text = str(int(value))
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    return _date_text(text)


def _date_text(text: str) -> _DateCell | None:
    for pattern, month_first in (
        (_YEAR_FIRST, True),
        (_COMPACT, True),
        (_DAY_FIRST, False),
        (_YEAR_LAST, None),
    ):
        match = pattern.match(text)
        if match is not None:
            year = _four_digit_year(match["year"])
            return _DateCell(
                year, int(match["first"]), int(match["second"]), month_first
            )
    if ":" in text or not _MONTH_NAME.search(text):
        return None
    try:
        stamp = pd.to_datetime(text, format="mixed")
    except (ValueError, OverflowError):
        return None
    if pd.isna(stamp) or stamp != stamp.normalize():
        return None
    return _DateCell(stamp.year, stamp.month, stamp.day, month_first=True)


def _four_digit_year(text: str) -> int:
    year = int(text)
    if len(text) > 2:
        return year
    return 2000 + year if year < 69 else 1900 + year


def _date_order(
    column: pd.Series,
    codes: np.ndarray,
    uniques: pd.Index | np.ndarray,
    cells: list[_DateCell | None],
) -> tuple[bool, tuple[str, str] | None]:
    """Choose day-first or month-first order for dates such as ``01/03/2026``.

    Returns whether such dates are month first, and a problem (message and fix)
    when neither order fits.
    """
    open_order = [
        i for i, cell in enumerate(cells) if cell and cell.month_first is None
    ]
    day_first = [i for i in open_order if cells[i].first > 12]
    month_first = [i for i in open_order if cells[i].second > 12]
    name = column.name
    if day_first and month_first:
        return False, (
            f"date column {name!r} has day-first dates ({uniques[day_first[0]]!r}) "
            f"and month-first dates ({uniques[month_first[0]]!r})",
            "write all dates in one order, best year first (2026-03-01)",
        )
    if day_first or month_first:
        return bool(month_first), None

    fitting = [
        order
        for order in (False, True)
        if _consecutive_days(codes, cells, month_first=order)
    ]
    if len(fitting) == 1:
        return fitting[0], None
    if not fitting:
        examples = [repr(uniques[i]) for i in open_order[:2]]
        return False, (
            f"date column {name!r} has dates such as {' and '.join(examples)} that "
            "may be day first or month first, and in neither order are "
            "consecutive dates one day apart",
            "write the dates year first (2026-03-01) or day first with dots "
            "(01.03.2026)",
        )
    return False, None


def _consecutive_days(
    codes: np.ndarray, cells: list[_DateCell | None], month_first: bool
) -> bool:
    """Tell whether each change of date between rows is one day forward.

    Also true when the column contains a single date.
    """
    dates = np.array(
        [
            np.datetime64("NaT", "D") if cell is None else cell.to_date(month_first)
            for cell in cells
        ],
        dtype="datetime64[D]",
    )
    in_rows = dates[codes[codes >= 0]]
    in_rows = in_rows[~np.isnat(in_rows)]
    changes = np.diff(in_rows)
    changes = changes[changes != np.timedelta64(0, "D")]
    return bool((changes == np.timedelta64(1, "D")).all())


# Times of day --------------------------------------------------------------------


def parse_times(column: pd.Series, elapsed: bool = False) -> _ParsedColumn:
    """Parse times of day (``23:59:58.5``, ``11:59 PM``) as time since midnight.

    With ``elapsed`` true, the column may also hold elapsed time past the ranges
    of a clock: minutes above 59 in ``MM:SS.fff`` (``125:30.250``) and hours
    above 23 in ``H:MM:SS`` (``26:00:00``). ``H:MM`` without seconds stays hours
    and minutes up to ``23:59``, because ``60:00`` may be 60 minutes or 60 hours.
    Seconds above 59, and minutes above 59 after hours, are invalid either way.
    """
    filled = _filled_mask(column)
    not_a_time = np.full(len(column), np.timedelta64("NaT", "ns"))
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(
        column
    ):
        # Numbers are seconds or other units, and date-time values carry a date.
        return _ParsedColumn(not_a_time, filled, filled.copy())

    texts = [
        value.isoformat()
        if isinstance(value, datetime.time)
        else value
        if isinstance(value, str)
        else None
        for value in column.to_numpy(dtype=object)
    ]
    parts = pc.extract_regex(
        pc.utf8_trim_whitespace(pa.array(texts, pa.string())), _CLOCK_TIME
    )
    matched = parts.is_valid().to_numpy(zero_copy_only=False)
    # Of each pair of fields (minute and short_minute ...), the one of the form
    # that did not match is empty, which _integers reads as 0.
    short_form = _is_filled(pc.struct_field(parts, "short_minute"))
    with_seconds = _is_filled(pc.struct_field(parts, "second"))
    hour = _integers(pc.struct_field(parts, "hour"))
    clock_minute = _integers(pc.struct_field(parts, "minute"))
    short_minute = _integers(pc.struct_field(parts, "short_minute"))
    second = _integers(pc.struct_field(parts, "second")) + _integers(
        pc.struct_field(parts, "short_second")
    )
    fraction = _integers(
        pc.utf8_rpad(pc.struct_field(parts, "fraction"), 9, padding="0")
    ) + _integers(
        pc.utf8_rpad(pc.struct_field(parts, "short_fraction"), 9, padding="0")
    )
    half = pc.utf8_upper(pc.struct_field(parts, "half")).fill_null("")
    half = half.to_numpy(zero_copy_only=False)

    # 12 AM is midnight and 12 PM is noon. With AM or PM, the hour runs from 1 to 12.
    twelve_hour = half != ""
    valid = matched & (clock_minute <= 59) & (second <= 59)
    if not elapsed:
        valid &= short_minute <= 59
    longest_hour = np.where(elapsed & with_seconds, np.iinfo(np.int64).max, 23)
    valid &= np.where(twelve_hour, (hour >= 1) & (hour <= 12), hour <= longest_hour)
    hour = np.where(twelve_hour, hour % 12 + np.where(half == "P", 12, 0), hour)
    minute = np.where(short_form, short_minute, hour * 60 + clock_minute)
    nanoseconds = (minute * 60 + second) * 1_000_000_000 + fraction
    values = nanoseconds.astype("timedelta64[ns]")
    values[~valid] = np.timedelta64("NaT", "ns")
    return _ParsedColumn(values, filled, filled & ~valid)


def _is_filled(texts: pa.Array) -> np.ndarray:
    """Mark the strings that are neither null nor empty."""
    return pc.fill_null(pc.not_equal(texts, ""), False).to_numpy(zero_copy_only=False)


def _integers(texts: pa.Array) -> np.ndarray:
    """Convert digit strings to int64, with 0 for empty strings and nulls."""
    digits = pc.if_else(pc.equal(texts, ""), "0", texts).fill_null("0")
    return pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)
