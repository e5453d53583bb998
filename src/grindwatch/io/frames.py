"""Turn a pandas DataFrame read from CSV or Parquet into recordings."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from grindwatch.exceptions import InputError, shorten_list
from grindwatch.io.date_time import DateTimePair, find_date_time_pair, parse_times
from grindwatch.io.options import ReadOptions
from grindwatch.io.recording import Recording
from grindwatch.io.samples import low_precision_channels
from grindwatch.io.time_names import (
    has_time_unit,
    is_date_name,
    is_date_stem_name,
    is_one_letter_time_name,
    seconds_per_unit,
    time_name_scale,
)

logger = logging.getLogger(__name__)

__all__ = [
    "finite_or_raise",
    "frame_to_recording",
    "frame_to_table_rows",
    "raise_if_serial_days",
    "warn_irregular_time",
]

# Sample index columns are not channels, but they give no sample rate either.
_INDEX_NAMES = re.compile(
    r"^(index|idx|sample|samples|sample_index|unnamed: ?0)$", re.IGNORECASE
)


def _is_time_column(name: str, column: pd.Series) -> bool:
    """Tell whether a column looks like time by its type, name or values.

    Index columns do not count: they are never channels, but give no time.
    """
    if pd.api.types.is_datetime64_any_dtype(column):
        return True
    if pd.api.types.is_timedelta64_dtype(column):
        return True
    if time_name_scale(str(name).strip()) is not None:
        return True
    # Text that parses as date and time or as durations, whatever the
    # column's name ("Zeit").
    if pd.api.types.is_numeric_dtype(column):
        return False
    return _as_datetime(column) is not None or _durations(column) is not None


def _as_datetime(column: pd.Series) -> pd.Series | None:
    """Return a date-time column as naive UTC times, or None if it is not one.

    Times with a zone or with offsets that change (a daylight-saving switch)
    are converted to UTC, so their differences are elapsed seconds.
    """
    if pd.api.types.is_datetime64_any_dtype(column):
        return _naive_utc(column)
    if column.dtype == object or pd.api.types.is_string_dtype(column):
        # Numbers as text ("2,5" in a column with a text cell) parse as dates.
        if _mostly_numbers(column):
            return None
        texts = _first_texts(column)
        # Dotted dates (01.03.2026) are written day first, while pandas' mixed
        # format reads them month first by default.
        if _dotted_dates(texts):
            return _parsed_datetimes(column, texts, dayfirst=True)
        # Slashed dates (01/03/2026) are day first when a first number above 12
        # shows it, and month first when a second number does.
        order = _slashed_order(pd.concat([texts, _last_texts(column)]))
        parsed = _parsed_datetimes(column, texts, dayfirst=order == "day")
        if order == "open" and parsed is not None:
            # Neither order shows, so take the one with the smaller largest
            # step: 03/03 to 04/03 is one day read day first, a month otherwise.
            other = _parsed_datetimes(column, texts, dayfirst=True)
            if other is not None and _largest_step(other) < _largest_step(parsed):
                return other
        return parsed
    return None


def _parsed_datetimes(
    column: pd.Series, texts: pd.Series, dayfirst: bool
) -> pd.Series | None:
    """Parse text date-times, or times of day alone, or return None when fewer
    than 90 % of the cells parse."""
    # One format guessed from the first cell parses about ten times faster
    # than guessing each cell; columns that mix formats fall back to that.
    guessed = _guessed_format(texts, dayfirst)
    if guessed is not None:
        parsed = pd.to_datetime(column, errors="coerce", format=guessed, utc=True)
        failed = (parsed.isna() & column.notna()).to_numpy(dtype=bool)
        if failed.any():
            parsed = _in_own_order(column, parsed, failed)
        if parsed.notna().mean() > 0.9:
            return _naive_utc(parsed)
    else:
        # Times of day alone (23:59:58.5) count from midnight of 1 January 1970,
        # and so does elapsed time (125:30.250), which a lone column may hold.
        clock = parse_times(column, elapsed=True)
        if clock.parsed_share() > 0.9:
            return pd.Series(np.datetime64(0, "ns") + clock.values, column.index)
    parsed = pd.to_datetime(
        column, errors="coerce", format="mixed", dayfirst=dayfirst, utc=True
    )
    parsed = _in_own_order(column, parsed, column.notna().to_numpy(dtype=bool))
    if parsed.notna().mean() > 0.9:
        return _naive_utc(parsed)
    return None


def _in_own_order(column: pd.Series, parsed: pd.Series, cells: np.ndarray) -> pd.Series:
    """Parse again the cells in ``cells`` (a boolean mask) that contain ISO
    dates (2024-03-01), as year-month-day, and those that contain dotted dates
    (01.03.2024), day first.

    Without this, a column that mixes the two (files merged from two loggers)
    is parsed in the order of most of its cells, and pandas with
    ``format="mixed"`` and ``dayfirst=True`` reads 2024-03-01 as 3 January
    (checked with pandas 3.1).
    """
    texts = column[cells].astype("string").str.strip()
    parsed = parsed.copy()
    for pattern, options in (
        (_ISO_DATE, {"format": "ISO8601"}),
        (_DOTTED_DATE, {"format": "mixed", "dayfirst": True}),
    ):
        own = texts.str.match(pattern).fillna(False).to_numpy(dtype=bool)
        if own.any():
            rows = np.flatnonzero(cells)[own]
            parsed.iloc[rows] = pd.to_datetime(
                texts[own], errors="coerce", utc=True, **options
            ).to_numpy()
    return parsed


def _largest_step(times: pd.Series) -> float:
    steps = times.dropna().diff().abs().dropna()
    return float(steps.max().total_seconds()) if len(steps) else 0.0


def _first_texts(column: pd.Series, limit: int = 1000) -> pd.Series:
    """Return up to ``limit`` of the column's first filled cells as stripped text."""
    texts = column.dropna().head(limit).astype(str).str.strip()
    return texts[texts != ""]


def _last_texts(column: pd.Series, limit: int = 1000) -> pd.Series:
    """Return up to ``limit`` of the column's last filled cells as stripped text."""
    texts = column.dropna().tail(limit).astype(str).str.strip()
    return texts[texts != ""]


def _slashed_order(texts: pd.Series) -> str | None:
    """Tell the order of slashed dates (01/03/2026) in ``texts``.

    Returns "day" when some date's first number is above 12, "month" when some
    date's second number is, "open" when neither shows, and None without
    slashed dates or when both show (pandas' mixed format then decides).
    """
    parts = texts.str.extract(_SLASHED_DATE).dropna()
    if parts.empty:
        return None
    day_first = bool((parts[0].astype(int) > 12).any())
    month_first = bool((parts[1].astype(int) > 12).any())
    if day_first == month_first:
        return None if day_first else "open"
    return "day" if day_first else "month"


def _guessed_format(texts: pd.Series, dayfirst: bool) -> str | None:
    from pandas.tseries.api import guess_datetime_format

    if texts.empty:
        return None
    # The order of ISO dates (2024-03-01) and dotted dates (01.03.2024) is
    # fixed, whatever most cells show. guess_datetime_format reads an ISO date
    # as %Y-%d-%m with dayfirst=True.
    first = texts.iloc[0]
    if _ISO_DATE.match(first):
        dayfirst = False
    elif _DOTTED_DATE.match(first):
        dayfirst = True
    return guess_datetime_format(first, dayfirst=dayfirst)


_DOTTED_DATE = re.compile(r"\d{1,2}\.\d{1,2}\.\d{2,4}(\s|$)")
_ISO_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?:[T\s]|$)")
_ZONE_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_SLASHED_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/\d{2,4}(?:\s|$)")


def _dotted_dates(texts: pd.Series) -> bool:
    """Tell whether most of ``texts`` start with a dotted date (01.03.2026)."""
    if texts.empty:
        return False
    dotted = texts.map(lambda text: _DOTTED_DATE.match(text) is not None)
    return bool(dotted.mean() > 0.5)


def _naive_utc(times: pd.Series) -> pd.Series:
    if getattr(times.dt, "tz", None) is None:
        return times
    return times.dt.tz_convert("UTC").dt.tz_localize(None)


def _named_channels(options: ReadOptions) -> set[str]:
    return set(options.channels or ()) | set(options.known_channels)


def _time_candidates(path: Path, frame: pd.DataFrame, options: ReadOptions) -> list:
    """List the columns that may be the time column, the ``time_column`` one first.

    Columns named in ``options.channels`` or ``options.known_channels`` and index
    columns are no candidates.

    Raises
    ------
    InputError
        If ``options.time_column`` names a column the file does not have, or a
        column that ``options.channels`` names as a channel.
    """
    named = options.time_column
    if named is not None and named not in frame.columns:
        raise InputError(
            path,
            f"time column {named!r} not found; the columns are "
            f"{shorten_list([str(name) for name in frame.columns])}",
            "fix data.time_column, or unset it to detect time columns by name",
        )
    if named is not None and named in (options.channels or ()):
        raise InputError(
            path,
            f"column {named!r} is named both as the time column and as a channel",
            "remove it from data.channels or unset data.time_column",
        )
    channel_names = _named_channels(options)
    found = [
        name
        for name in frame.columns
        if name != named
        and str(name) not in channel_names
        and not _INDEX_NAMES.match(str(name).strip())
        # With the rate given, a one-letter t or T is a channel (a temperature
        # that may rise steadily), so its values cannot contradict the rate.
        and not (options.sample_rate is not None and is_one_letter_time_name(str(name)))
        and _is_time_column(str(name), frame[name])
    ]
    return found if named is None else [named, *found]


def _combine_split_timestamp(
    path: Path, frame: pd.DataFrame, options: ReadOptions, candidates: list
) -> tuple[pd.DataFrame, list, DateTimePair | None]:
    """Put date plus time of day into the time-of-day column of a split timestamp.

    Returns the frame, the time column candidates with both columns of the pair
    added, and the pair (see ``find_date_time_pair``). Without a pair, the frame
    and candidates are returned unchanged. With one, the frame is a new one,
    and the caller's frame keeps its values.
    """
    pair = find_date_time_pair(path, frame, options)
    if pair is None:
        return frame, candidates, None
    frame = frame.copy(deep=False)
    frame[pair.time_column] = pair.values
    added = [
        name for name in (pair.time_column, pair.date_column) if name not in candidates
    ]
    return frame, [*candidates, *added], pair


def _choose_time_column(
    path: Path,
    frame: pd.DataFrame,
    candidates: list,
    options: ReadOptions,
    pair: DateTimePair | None = None,
) -> object | None:
    """Pick the time column among ``candidates``, or None if none can be one.

    ``options.time_column`` wins, and so does the time-of-day column of ``pair``
    when ``options.date_column`` is set. Otherwise full time names (``Time [s]``)
    come before the one-letter ``t``/``T``, then strictly increasing columns
    before others, then file order. A column whose median step is not positive,
    such as a date column that repeats one day on every row, is not a time
    column. The date column of ``pair`` is never the time column, because the
    pair's time-of-day column holds the combined values.

    Raises
    ------
    InputError
        If ``options.time_column`` names a column that does not increase.
    """
    if pair is not None and options.date_column is not None:
        return pair.time_column
    named = options.time_column
    if named is not None:
        seconds = _seconds(str(named), frame[named], named)
        steps = np.array([]) if seconds is None else np.diff(seconds)
        steps = steps[np.isfinite(steps)]
        if steps.size and not np.median(steps) > 0:
            raise InputError(
                path,
                f"time column {named!r} (data.time_column) does not increase: its "
                f"median step is {float(np.median(steps)):g} s",
                "name a column that counts time, or unset data.time_column",
            )
        return named
    ranked = []
    for order, name in enumerate(candidates):
        if pair is not None and name == pair.date_column:
            continue
        rank = _time_rank(str(name), frame[name])
        if rank is not None:
            ranked.append((is_one_letter_time_name(str(name)), rank, order))
    if not ranked:
        return None
    return candidates[min(ranked)[2]]


def _time_rank(name: str, column: pd.Series) -> int | None:
    """Rank a candidate time column: 0 strictly increasing, lower is better.

    1 is a column with repeated or backward steps but a positive median step,
    which ``_ordered_by_time`` cleans or rejects. 2 is a column with fewer than
    two finite values. None means it cannot be the time column. A one-letter
    name (``T``, usually a temperature) ranks only when strictly increasing.
    """
    seconds = _seconds(name, column, None)
    if seconds is None:
        return None
    steps = np.diff(seconds[np.isfinite(seconds)])
    if steps.size > 0 and (steps > 0).all():
        return 0
    if is_one_letter_time_name(name):
        return None
    if steps.size == 0:
        return 2
    return 1 if np.median(steps) > 0 else None


def _seconds(name: str, column: pd.Series, time_column: str | None):  # noqa: ANN202
    """Return a time column in seconds, or None for an index column.

    Date-time values count from the first row, numbers from their own zero.
    """
    as_datetime = _as_datetime(column)
    if as_datetime is not None:
        valid = as_datetime.dropna()
        if valid.empty:
            return None
        return (as_datetime - valid.iloc[0]).dt.total_seconds().to_numpy()
    if pd.api.types.is_timedelta64_dtype(column):
        return column.dt.total_seconds().to_numpy()
    durations = _durations(column)
    if durations is not None:
        return durations.dt.total_seconds().to_numpy()
    if not pd.api.types.is_numeric_dtype(column):
        # Numbers stored as text (a Parquet string column) count when every
        # filled cell is one.
        filled, is_number = _number_cells(column)
        if not filled.any() or (filled & ~is_number).any():
            return None
        column = pd.to_numeric(column.astype("string").str.strip(), errors="coerce")
    if name != time_column and _INDEX_NAMES.match(name.strip()):
        return None
    # A unit in the name ("Time [ms]") converts numbers to seconds, and numbers
    # without one are seconds, except serial dates in a column named date.
    scale = time_name_scale(name) or seconds_per_unit(name) or 1.0
    values = column.to_numpy(dtype=float, na_value=np.nan)
    if is_date_stem_name(name) and _serial_day_kind(values) is not None:
        scale = _SECONDS_PER_DAY
    return values * scale


_SECONDS_PER_DAY = 86400.0
# Serial dates count days, with the time of day as the fraction. Spreadsheets
# (Excel, LibreOffice) count from 1899-12-30, so 45717.5 is 2025-03-01 12:00,
# and MATLAB's datenum counts from year 0, so 739677.5 is the same time. The
# ranges cover the years 1954 to 2119 and 1900 to 2100, and do not overlap.
_SERIAL_DAY_RANGES = {
    "spreadsheet serial dates (days since 1899-12-30)": (20_000.0, 80_000.0),
    "MATLAB datenums (days since year 0)": (693_962.0, 767_011.0),
}


def _serial_day_kind(values: np.ndarray) -> str | None:
    """Name the serial dates that every finite value, and at least one, can be.

    Returns None when the values fit no range of ``_SERIAL_DAY_RANGES``.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    for kind, (low, high) in _SERIAL_DAY_RANGES.items():
        if finite.min() >= low and finite.max() <= high:
            return kind
    return None


def raise_if_serial_days(path: Path, name: str, column: pd.Series) -> None:
    """Raise when a time column without a unit looks like serial dates in days.

    Numbers in a range of ``_SERIAL_DAY_RANGES`` that all lie within one unit of
    each other are the serial days of a recording shorter than a day, or the
    seconds since some start of a recording shorter than a second. Read as
    seconds, serial days give a rate 86400 times too high, so the column's unit
    must be named. A column named date, datetime or date time is read as serial
    days instead. ``column`` must contain the first and the last time of the
    file, as the first and last row group of a chunked Parquet file do.

    NOTE: a serial-day column named time that spans more than a day passes as
    seconds, because seconds since a start span more than one unit as well.
    """
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return
    if has_time_unit(name) or is_date_stem_name(name):
        return
    values = column.to_numpy(dtype=float, na_value=np.nan)
    finite = values[np.isfinite(values)]
    kind = _serial_day_kind(finite)
    if finite.size < 2 or kind is None:
        return
    span = float(finite.max() - finite.min())
    if not 0 < span < 1:
        return
    raise InputError(
        path,
        f"time column {name!r} has no unit and holds numbers from "
        f"{finite.min():.10g} to {finite.max():.10g}: as seconds the "
        f"{finite.size} samples span {span:.3g} s, as {kind} they span "
        f"{span * _SECONDS_PER_DAY:.4g} s",
        f"name the unit in the column's header, '{name} [d]' for serial dates or "
        f"'{name} [s]' for seconds, or export the times as date-time text "
        "(2026-03-01 10:00:00.000)",
    )


# A duration as pandas writes one to CSV: "0 days 00:00:01.500000".
_DURATION_TEXT = re.compile(r"-?\d+ days? \d{2}:\d{2}:\d{2}(?:\.\d+)?")


def _durations(column: pd.Series) -> pd.Series | None:
    """Parse a text column of durations, or return None when it is not one."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(
        column
    ):
        return None
    texts = column.dropna().astype("string").str.strip()
    if texts.empty or not texts.iloc[:1000].str.fullmatch(_DURATION_TEXT).all():
        return None
    return pd.to_timedelta(column, errors="coerce")


def _rate_from_time(
    path: Path, name: str, column: pd.Series, time_column: str | None = None
) -> tuple[float | None, dict[str, object] | None]:
    """Estimate the sample rate from a time column's median step.

    Returns the rate, or None for an index column or a column that does not
    increase, and a description of gaps and short steps for
    ``metadata["irregular_time_steps"]`` (see ``_irregular_steps``), or None.
    """
    seconds = _seconds(name, column, time_column)
    if seconds is None:
        return None, None
    # Steps between neighbouring rows only: a step next to an empty cell is
    # unknown, not a gap.
    all_steps = np.diff(seconds)
    known = np.isfinite(all_steps)
    steps = all_steps[known]
    if steps.size == 0:
        return None, None
    step = float(np.median(steps))
    if step <= 0:
        logger.warning("%s: time column %r is not increasing; ignoring it", path, name)
        return None, None
    # The row after each step, as a data row of the file, and its time.
    rows = column.index.to_numpy()[1:][known]
    first = seconds[np.isfinite(seconds)][0]
    after = seconds[1:][known] - first
    if _holds_days(name, column, seconds):
        rate = _rate_from_days(path, name, seconds, steps, step)
    else:
        # Time stamps such as arange(n) / rate carry float64 rounding, so 1 / step
        # comes out as 10000.0000000011 for 10 kHz. Nine significant digits drop
        # that noise and move any rate by at most 5 parts in 10**9.
        rate = float(f"{1.0 / step:.9g}")
    return rate, _irregular_steps(name, steps, after, rows, step)


def _holds_days(name: str, column: pd.Series, seconds: np.ndarray) -> bool:
    """Tell whether ``_seconds`` read the numbers of ``column`` as days."""
    if pd.api.types.is_bool_dtype(column):
        return False
    if not pd.api.types.is_numeric_dtype(column) and not _mostly_numbers(column):
        return False
    if seconds_per_unit(name) == _SECONDS_PER_DAY:
        return True
    if not is_date_stem_name(name):
        return False
    return _serial_day_kind(seconds / _SECONDS_PER_DAY) is not None


def _rate_from_days(
    path: Path, name: str, seconds: np.ndarray, steps: np.ndarray, median: float
) -> float:
    """Estimate the rate of times written as days, such as spreadsheet serial dates.

    A spreadsheet writes 15 significant digits, so serial days near 46000 are
    rounded to 1e-10 days (8.64 us). The median step of a 1 kHz recording is
    then off by up to 0.7%, and that of datenums near 739000 ten times more.
    The mean of the regular steps is used instead. Within a run of regular steps
    the rounding cancels except at its two ends, so the rate is rounded to the
    digits that this leaves.

    Raises
    ------
    InputError
        If the rounding is a third of the mean step or more, because regular
        steps then differ by more than the gap band and cannot be told apart
        from gaps (datenums above about 4 kHz, serial dates above about 40 kHz).
    """
    largest_days = float(np.nanmax(np.abs(seconds))) / _SECONDS_PER_DAY
    rounding_s = 10.0 ** (np.floor(np.log10(largest_days)) - 14) * _SECONDS_PER_DAY
    mean_step = float(steps.sum()) / steps.size
    if rounding_s * 3 >= mean_step:
        raise InputError(
            path,
            f"time column {name!r} holds days with 15 significant digits, which "
            f"round its times to {rounding_s * 1e6:.3g} us, too coarse for its "
            f"steps of about {mean_step * 1e6:.3g} us, so the sample rate and "
            "gaps cannot be read from it",
            "export the times as elapsed seconds ('time [s]') or as date-time "
            "text with milliseconds, or set data.ignore_time=true and "
            "data.sample_rate to the rate in Hz",
        )
    regular = steps[(steps > median / _GAP_FACTOR) & (steps < median * _GAP_FACTOR)]
    n_runs = 1 + steps.size - regular.size
    relative_error = 2 * rounding_s * n_runs / float(regular.sum())
    digits = int(np.clip(np.floor(-np.log10(relative_error)), 4, 9))
    return float(f"{regular.size / float(regular.sum()):.{digits}g}")


# Steps outside (1 / _GAP_FACTOR, _GAP_FACTOR) times the median step are irregular.
# Timestamps rounded to a coarse clock (3 kHz samples stamped in 0.1 ms) vary by a
# third of a step, so the band is wider than that.
_GAP_FACTOR = 1.5


def _irregular_steps(
    name: str, steps: np.ndarray, after: np.ndarray, rows: np.ndarray, step: float
) -> dict[str, object] | None:
    """Describe a time column's gaps and steps far shorter than the median.

    ``steps`` are the known steps, ``after`` the time (from the first sample)
    and ``rows`` the data row at the end of each. Samples are read as evenly
    spaced, so times computed from sample positions, such as window start_s,
    are off after such a step. Returns None when every step is within the band.
    """
    long = steps > _GAP_FACTOR * step
    short = steps < step / _GAP_FACTOR
    if not (long.any() or short.any()):
        return None
    found: dict[str, object] = {
        "column": name,
        "median_step_s": step,
        "n_steps": int(steps.size),
        "n_gaps": int(long.sum()),
        "n_short_steps": int(short.sum()),
    }
    if long.any():
        largest = int(np.argmax(steps))
        found["largest_gap_s"] = float(steps[largest])
        found["largest_gap_row"] = int(rows[largest])
        found["largest_gap_at_s"] = float(after[largest])
    if short.any():
        first = int(np.argmax(short))
        found["first_short_step_row"] = int(rows[first])
        found["first_short_step_at_s"] = float(after[first])
    return found


_IRREGULAR_CONSEQUENCE = (
    "The samples are read as evenly spaced at the median step, so times computed "
    "from sample positions (window start_s) are off after such a step. Split the "
    "files at the gaps, or resample them to a regular time grid. Each recording "
    "lists its steps in metadata['irregular_time_steps']"
)


def warn_irregular_time(sources: list[tuple[object, dict]]) -> None:
    """Warn once about time columns with gaps and once about short steps.

    ``sources`` pairs each file (or recording name) with its metadata. The gap
    warning names the largest gap of all files and its file.
    """
    n_files = len({source for source, _ in sources})
    found = {
        source: metadata["irregular_time_steps"]
        for source, metadata in sources
        if metadata.get("irregular_time_steps")
    }
    gaps = {source: info for source, info in found.items() if info["n_gaps"]}
    if gaps:
        source = max(gaps, key=lambda key: gaps[key]["largest_gap_s"])
        info = gaps[source]
        logger.warning(
            "%d of %d files have gaps in their time column (steps longer than %g "
            "median steps). The largest is %.6g s, %.3g times the median step of "
            "%.6g s, in %s, column %r, at data row %d (%.6g s after the first "
            "sample). %s",
            len(gaps),
            n_files,
            _GAP_FACTOR,
            info["largest_gap_s"],
            info["largest_gap_s"] / info["median_step_s"],
            info["median_step_s"],
            source,
            info["column"],
            info["largest_gap_row"],
            info["largest_gap_at_s"],
            _IRREGULAR_CONSEQUENCE,
        )
    short = {source: info for source, info in found.items() if info["n_short_steps"]}
    if short:
        source, info = next(iter(short.items()))
        logger.warning(
            "%d of %d files have time steps shorter than 1/%g of the median step "
            "(first: %s, column %r, %d of %d steps, first at data row %d, %.6g s "
            "after the first sample, median step %.6g s). %s",
            len(short),
            n_files,
            _GAP_FACTOR,
            source,
            info["column"],
            info["n_short_steps"],
            info["n_steps"],
            info["first_short_step_row"],
            info["first_short_step_at_s"],
            info["median_step_s"],
            _IRREGULAR_CONSEQUENCE,
        )


def _channel_columns(
    path: Path,
    frame: pd.DataFrame,
    options: ReadOptions,
    time_column: object | None,
    time_candidates: list,
    date_column: object | None = None,
) -> tuple[list, list[str], list[str]]:
    """Split the columns into numeric channels, non-numeric columns left out and
    time columns left out.

    ``time_column`` is the chosen time column, ``date_column`` the date column
    combined with it, if any, and ``time_candidates`` the columns that could
    have been the time column (see ``_time_candidates``). The other candidates are
    left out, except a numeric one with a one-letter name (``T``), which is
    usually a temperature and stays a channel. Label and index columns are
    neither channels nor left out, nor is ``options.id_column`` (numeric or
    text), which names the rows. With ``options.channels`` set, only the named
    columns are checked, and no column counts as left out.

    Raises
    ------
    InputError
        If a column of numbers has text cells, because leaving it out would drop
        a channel without notice.
    """
    label_names = {name.lower() for name in options.label_columns}
    requested = None if options.channels is None else set(options.channels)
    named = _named_channels(options)
    channels = []
    left_out = []
    unused_time = []
    for name in frame.columns:
        column = frame[name]
        is_bool = pd.api.types.is_bool_dtype(column)
        is_number = pd.api.types.is_numeric_dtype(column) and not is_bool
        if str(name).lower() in label_names or name in (time_column, date_column):
            continue
        if name in time_candidates:
            if is_number and is_one_letter_time_name(str(name)):
                channels.append(name)
            elif requested is None:
                unused_time.append(str(name))
            continue
        if str(name) not in named and _INDEX_NAMES.match(str(name).strip()):
            continue
        if name == options.id_column:
            continue  # names the rows; a numeric id is no feature either
        if is_number:
            channels.append(name)
            continue
        if requested is not None and name not in requested:
            continue
        if not is_bool:
            _raise_if_mostly_numbers(path, str(name), column, options.decimal)
        left_out.append(str(name))
    return channels, left_out, unused_time


# A number with thousands separators and a decimal part (1.234,5 or 1,234.5 or
# 1 234,5): the decimal mark differs from the separator. Without a decimal part,
# 123.456.789 may as well be a part number.
_GROUPED_NUMBER = re.compile(
    r"[+-]?\d{1,3}(?:(?:\.\d{3})+,|(?:,\d{3})+\.|([ '\u00a0])\d{3}(?:\1\d{3})*[.,])\d+"
)


# A number with a percent sign (12.5 %), as some machine panels export a load.
_PERCENT = re.compile(r"[+-]?\d+(?:[.,]\d+)?\s?%")


def _is_grouped_number(text: str) -> bool:
    return _GROUPED_NUMBER.fullmatch(text) is not None


def _number_cells(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Masks of a text column's filled cells and of the filled cells with a number.

    Numbers with a decimal comma or with thousands separators count as numbers.
    """
    text = column.astype("string").str.strip()
    filled = (column.notna() & (text != "")).to_numpy(dtype=bool)
    values = pd.to_numeric(text.to_numpy(dtype=object), errors="coerce")
    comma_values = pd.to_numeric(
        text.str.replace(",", ".", regex=False).to_numpy(dtype=object),
        errors="coerce",
    )
    is_number = filled & (np.isfinite(values) | np.isfinite(comma_values))
    # Only the cells left over need the slower pattern match.
    rest = filled & ~is_number
    if rest.any():
        grouped = text[rest].str.fullmatch(_GROUPED_NUMBER).fillna(False)
        grouped |= text[rest].str.fullmatch(_PERCENT).fillna(False)
        is_number[rest] = grouped.to_numpy(dtype=bool)
    return filled, is_number


def _mostly_numbers(column: pd.Series) -> bool:
    filled, is_number = _number_cells(column)
    return int(is_number.sum()) > int((filled & ~is_number).sum())


def _raise_if_mostly_numbers(
    path: Path, name: str, column: pd.Series, decimal: str | None
) -> None:
    """Raise if most filled cells of a text column are numbers.

    Such a column is a channel with a few damaged cells ("ERR", "---"), not a
    part id or comment column. ``decimal`` is the configured decimal mark.
    """
    filled, is_number = _number_cells(column)
    not_number = filled & ~is_number
    n_numbers, n_other = int(is_number.sum()), int(not_number.sum())
    if n_numbers <= n_other:
        return
    if n_other == 0:
        # Show a cell that needs the decimal comma or thousands separators, as
        # the first cells may be plain numbers ("0" before "49,98").
        plain = pd.to_numeric(
            column.astype("string").str.strip().to_numpy(dtype=object),
            errors="coerce",
        )
        needs_mark = is_number & ~np.isfinite(plain)
        first = int(np.flatnonzero(needs_mark if needs_mark.any() else is_number)[0])
        raise InputError(
            path,
            f"column {name!r} holds numbers stored as text (first: "
            f"{column.iloc[first]!r} at data row {first})",
            _text_number_fix(path, str(column.iloc[first]).strip(), decimal),
        )
    row = int(np.flatnonzero(not_number)[0])
    count = (
        f"1 of its {n_numbers + n_other} filled cells is not a number"
        if n_other == 1
        else f"{n_other} of its {n_numbers + n_other} filled cells are not numbers"
    )
    cell = column.iloc[row]
    if str(cell).strip() == str(name).strip():
        # Joining exports often copies each file's header line into the data.
        raise InputError(
            path,
            f"the header line appears again at data row {row} (column {name!r} "
            f"holds {cell!r} there)",
            "delete the repeated header lines",
        )
    fix = (
        "clean the file, or leave the column out by listing the channels to use "
        "with --channels (data.channels)"
    )
    if row == 0:
        fix = f"if the line under the header holds units, delete it; else {fix}"
    raise InputError(
        path,
        f"non-numeric value {cell!r} in column {name!r} at data row {row} ({count})",
        fix,
    )


def _text_number_fix(path: Path, cell: str, decimal: str | None) -> str:
    """Suggest how to get a text number read as a number."""
    if _is_grouped_number(cell):
        return "export the numbers without thousands separators"
    if _PERCENT.fullmatch(cell):
        return "export the numbers without the % sign"
    as_csv = path.suffix.lower() in (".csv", ".txt")
    if as_csv and "," in cell and decimal != ",":
        return "for a decimal comma set data.decimal to ','"
    return "write the column as numbers"


def _select(path: Path, available: list[str], options: ReadOptions) -> list[str]:
    if options.channels is None:
        if not available:
            raise InputError(
                path,
                "no numeric channel columns found",
                "check the delimiter and decimal mark, or name the columns with "
                "--channels",
            )
        return available
    missing = [name for name in options.channels if name not in available]
    if missing and len(missing) == len(options.channels):
        # No channel in common: another kind of file (a label list, a summary
        # table) that lies among the recordings.
        # Scoring reads with the model's channels, which the user cannot change.
        otherwise = (
            "it lacks the model's channels, so score it with a model trained on its own"
            if options.known_channels
            else "correct the names in data.channels (--channels)"
        )
        raise InputError(
            path,
            f"has none of the channels {shorten_list(missing)}; its numeric columns "
            f"are {shorten_list(available)}, so it is probably not a recording",
            "leave it out by passing the recordings' files or a glob such as "
            f"'DIR/**/*.csv'; if it is a recording, {otherwise}",
        )
    if missing:
        fix = (
            "record those channels, or score the file with a model trained on "
            "the channels it has"
            if options.known_channels
            else "fix the channel names in data.channels, or record those channels"
        )
        raise InputError(
            path,
            f"channels {shorten_list(missing)} not found; numeric columns are "
            f"{shorten_list(available)}",
            fix,
        )
    return list(options.channels)


def finite_or_raise(path: Path, data: np.ndarray, channels: list[str], policy: str):
    """Check that every sample is finite, or interpolate the gaps if asked.

    Returns the (possibly repaired) array.
    """
    bad = ~np.isfinite(data)
    if not bad.any():
        return data
    empty = np.flatnonzero(bad.all(axis=1))
    if empty.size:
        # Interpolation cannot fill it, so do not suggest it.
        raise InputError(
            path,
            f"channel {channels[empty[0]]!r} has no finite sample (all "
            f"{data.shape[1]} are empty, NaN or infinite)",
            "check the sensor, or leave the channel out by listing the channels "
            "to use in training (--channels, data.channels)",
        )
    if policy == "raise":
        # Transposed, so that the first match is the earliest sample.
        position, channel = np.argwhere(bad.T)[0]
        raise InputError(
            path,
            f"{int(bad.sum())} NaN or infinite samples (values beyond the float32 "
            f"range of about 3.4e38 count as infinite), first in channel "
            f"{channels[channel]!r} at sample {int(position)}",
            "clean the file, or fill the gaps by interpolation with "
            "--set data.nan_policy=interpolate",
        )
    repaired = data.copy()
    index = np.arange(data.shape[1])
    for row in range(data.shape[0]):
        good = ~bad[row]
        repaired[row, ~good] = np.interp(index[~good], index[good], data[row, good])
    logger.warning("%s: interpolated %d NaN or infinite samples", path, int(bad.sum()))
    return repaired


def _labels_from(
    path: Path, frame: pd.DataFrame, options: ReadOptions
) -> np.ndarray | None:
    lower = {str(name).lower(): name for name in frame.columns}
    for candidate in options.label_columns:
        if candidate.lower() in lower and candidate.lower() != "changepoint":
            name = lower[candidate.lower()]
            return _sample_labels(path, name, frame[name])
    return None


def _sample_labels(path: Path, name: object, column: pd.Series) -> np.ndarray:
    """Read a label column as 0 (normal) or 1 (anomalous) per sample.

    Empty cells are normal. Other cells must be 0 or 1, or a word that a labels
    file takes (normal, anomalous, OK, NOK ...). Any other value raises,
    because a setpoint channel named "target" or -1 for anomalous would give
    labels that look valid but are wrong.
    """
    from grindwatch.io.labels import _FALSE, _TRUE

    words = {**dict.fromkeys(_TRUE, 1), **dict.fromkeys(_FALSE, 0)}
    values = pd.to_numeric(column, errors="coerce")
    values = values.fillna(column.astype(str).str.strip().str.lower().map(words))
    invalid = column.notna() & ~values.isin([0, 1])
    if invalid.any():
        first = invalid.to_numpy().argmax()
        value = column.iloc[first]
        value = value.item() if isinstance(value, np.generic) else value
        raise InputError(
            path,
            f"label column {name!r} holds {value!r} at data row "
            f"{column.index[first]}, but a label column's cells must be 0 or "
            "a normal word (normal, OK ...), 1 or an anomalous word (anomalous, "
            "NOK ...), or empty (normal)",
            "if it is a sensor channel, leave its name out of data.label_columns",
        )
    return values.fillna(0).to_numpy().astype(np.int8)


def _drop_empty_rows(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    empty = frame.isna().all(axis=1)
    if empty.any():
        logger.info("%s: dropped %d empty rows", path, int(empty.sum()))
        frame = frame.loc[~empty]
    return frame


def local_times_to_utc(
    path: Path,
    name: object,
    column: pd.Series,
    timezone: str,
    after: pd.Timestamp | None = None,
) -> pd.Series:
    """Read date-times written without a zone as local times in ``timezone``.

    Returns them as naive UTC times. Columns of numbers, and date-times that
    carry a zone or an offset, are returned unchanged. The repeated hour when
    clocks go back is placed by the order of the rows. A column that lies
    entirely within that hour (a chunk of a file) is placed right after
    ``after``, the UTC time before it, or in summer time, the first pass,
    without one.

    Raises
    ------
    InputError
        When a local time does not exist in the zone (skipped when clocks go
        forward) or the repeated hour cannot be placed.
    """
    if _has_zone(column):
        return column
    times = _as_datetime(column)
    if times is None:
        return column
    known = times.notna()
    try:
        local = _localized(times[known], timezone, after)
    except (ValueError, TypeError) as error:
        # pandas adds advice about its own arguments after the first sentence.
        reason = str(error).split(". ")[0].rstrip(".")
        raise InputError(
            path,
            f"time column {name!r} has times that are not valid local times in "
            f"{timezone} ({reason})",
            "check that the times are local times of that zone, or leave "
            "data.timezone unset",
        ) from error
    converted = pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns]")
    converted[known] = local
    return converted


def _localized(
    times: pd.Series, timezone: str, after: pd.Timestamp | None
) -> pd.Series:
    """Localize naive times in ``timezone`` and return them as naive UTC."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)

    def utc(ambiguous: object) -> pd.Series:
        local = times.dt.tz_localize(zone, ambiguous=ambiguous, nonexistent="raise")
        return local.dt.tz_convert("UTC").dt.tz_localize(None)

    try:
        return utc("infer")
    except ValueError:
        # Without a change of offset among them, ambiguous times are all in one
        # pass of the repeated hour: the first (summer time) or the second.
        candidates = [utc(np.ones(len(times), bool)), utc(np.zeros(len(times), bool))]
    if after is None or times.empty:
        return candidates[0]
    later = [c for c in candidates if c.iloc[0] > after]
    return min(later, key=lambda c: c.iloc[0]) if later else candidates[0]


def _has_zone(column: pd.Series) -> bool:
    """Tell whether date-times carry a zone: a dtype with one, or an offset."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return True
    if column.dtype == object or pd.api.types.is_string_dtype(column):
        texts = _first_texts(column, limit=20)
        return bool(texts.str.contains(_ZONE_SUFFIX).any())
    return False


def _time_values(name: str, column: pd.Series) -> np.ndarray | None:
    """Seconds or datetime values of a time column, or None for an index column."""
    as_datetime = _as_datetime(column)
    if as_datetime is not None:
        return as_datetime.to_numpy()
    if pd.api.types.is_numeric_dtype(column) and not _INDEX_NAMES.match(name.strip()):
        return column.to_numpy(dtype=float)
    return None


def _ordered_by_time(
    path: Path, frame: pd.DataFrame, name: str, date_column: object | None = None
) -> pd.DataFrame:
    """Drop rows that repeat a timestamp; raise where time goes backwards.

    A repeated timestamp is what a logger writes when it flushes a buffer twice, so
    the first row is kept and the repeats are dropped with a warning. Time running
    backwards means rows were merged out of order, and sorting them could hide a
    clock jump, so it raises.

    ``date_column`` is the date column whose dates ``name`` holds combined with
    its times of day, if any.

    Raises
    ------
    InputError
        Naming the column and the first row where time decreases.
    """
    values = _time_values(str(name), frame[name])
    if values is None or len(values) < 2:
        return frame
    steps = np.diff(values)
    zero = steps == steps.dtype.type(0)
    backwards = steps < steps.dtype.type(0)
    if backwards.any():
        row = int(np.argmax(backwards)) + 1
        column = f"time column {name!r}"
        fix = (
            "sort the rows by time; if the row order is right, read the rows in "
            "file order with data.ignore_time=true and data.sample_rate"
        )
        if date_column is not None:
            column += f" (combined with date column {date_column!r})"
            fix = (
                "sort the rows by time; if the order is right, check that the "
                f"dates in column {date_column!r} change at midnight"
            )
        elif parse_times(frame[name].iloc[row - 1 : row + 1]).parsed_share() == 1:
            # Clock times that restart at midnight need the day from a date column.
            fix = (
                "sort the rows by time; if the times of day pass midnight, name "
                "the column that holds the date with data.date_column"
            )
        if _about_one_hour(values[row - 1] - values[row]):
            # Local time repeats an hour when clocks go back.
            fix += (
                "; if the step back is a daylight-saving switch, name the time "
                "zone with data.timezone (for example Europe/Berlin)"
            )
        raise InputError(
            path,
            f"{column} goes backwards at data row {row} "
            f"({frame[name].iloc[row]} after {frame[name].iloc[row - 1]})",
            fix,
        )
    if zero.any():
        first = int(np.argmax(zero)) + 1
        logger.warning(
            "%s: dropped %d %s that repeat%s a timestamp of column %r, first at "
            "data row %d",
            path,
            int(zero.sum()),
            "row" if zero.sum() == 1 else "rows",
            "s" if zero.sum() == 1 else "",
            name,
            first,
        )
        frame = frame.loc[np.r_[True, ~zero]]
    return frame


def _about_one_hour(step: object) -> bool:
    """Tell whether a step back in time is 50 to 70 minutes long."""
    if isinstance(step, np.timedelta64):
        seconds = step / np.timedelta64(1, "s")
    else:
        seconds = float(step)
    return 3000 <= seconds <= 4200


class _ColumnRoles(NamedTuple):
    """The roles of a table's columns.

    ``frame`` is the table with a split timestamp combined (see
    ``_combine_split_timestamp``). ``date_pair`` is the combined date and
    time-of-day pair when its time-of-day column is ``time_column``, else None.
    ``left_out`` are non-numeric columns and ``unused_time`` time-like columns,
    neither of them channels (see ``_channel_columns``).
    """

    frame: pd.DataFrame
    time_column: object | None
    date_pair: DateTimePair | None
    numeric: list
    left_out: list[str]
    unused_time: list[str]

    @property
    def date_column(self) -> object | None:
        return None if self.date_pair is None else self.date_pair.date_column


def _column_roles(
    path: Path, frame: pd.DataFrame, options: ReadOptions
) -> _ColumnRoles:
    candidates = _time_candidates(path, frame, options)
    if options.ignore_time:
        # Time-like columns are then left out as unused, and no pair is parsed.
        numeric, left_out, unused_time = _channel_columns(
            path, frame, options, None, candidates
        )
        return _ColumnRoles(frame, None, None, numeric, left_out, unused_time)
    frame, candidates, pair = _combine_split_timestamp(path, frame, options, candidates)
    time_column = _choose_time_column(path, frame, candidates, options, pair)
    if pair is not None and pair.time_column != time_column:
        pair = None
    numeric, left_out, unused_time = _channel_columns(
        path,
        frame,
        options,
        time_column,
        candidates,
        None if pair is None else pair.date_column,
    )
    return _ColumnRoles(frame, time_column, pair, numeric, left_out, unused_time)


def _column_metadata(
    time_column: object | None,
    left_out: list[str],
    unused_time: list[str],
    date_column: object | None = None,
) -> dict[str, object]:
    metadata: dict[str, object] = {}
    if time_column is not None:
        metadata["time_column"] = str(time_column)
    if date_column is not None:
        metadata["date_column"] = str(date_column)
    if left_out:
        metadata["non_numeric_columns"] = left_out
    if unused_time:
        metadata["unused_time_columns"] = unused_time
    return metadata


def frame_to_recording(path: Path, frame: pd.DataFrame, options: ReadOptions):
    """Build one signal recording from a table whose rows are samples."""
    # Checked before empty rows are dropped, so a bad cell's data row is its row
    # in the file.
    roles = _column_roles(path, frame, options)
    if roles.date_pair is not None:
        roles.date_pair.raise_if_invalid(path)
    time_column = roles.time_column
    if time_column is None and options.sample_rate is None and not options.ignore_time:
        _raise_if_damaged_time(path, roles.frame, roles.unused_time)
    frame = _drop_empty_rows(path, roles.frame)
    if frame.empty:
        raise InputError(path, "the file holds no data rows", "check the file")

    sample_rate, irregular = None, None
    if time_column is not None:
        if options.timezone is not None:
            frame = frame.copy(deep=False)
            frame[time_column] = local_times_to_utc(
                path, time_column, frame[time_column], options.timezone
            )
        frame = _ordered_by_time(path, frame, time_column, roles.date_column)
        raise_if_serial_days(path, str(time_column), frame[time_column])
        sample_rate, irregular = _rate_from_time(
            path, str(time_column), frame[time_column], options.time_column
        )
    sample_rate = _resolve_rate(path, sample_rate, options.sample_rate)

    channels = _select(path, roles.numeric, options)
    known = set(options.known_channels)
    if known and known <= {str(name) for name in channels}:
        # Scoring reads only the model's channels, so a gap in a column that the
        # model does not use skips no file. When some are missing, every channel
        # stays, so the missing-channel message lists what the file has.
        channels = [name for name in channels if str(name) in known]
    values = frame[channels].to_numpy()
    if values.dtype == object:
        # Nullable number columns (Int64, Float64) contain pd.NA for a missing value.
        values = frame[channels].to_numpy(dtype=np.float64, na_value=np.nan)
    metadata: dict[str, object] = {"source_dtype": str(values.dtype)}
    metadata.update(
        _column_metadata(
            time_column, roles.left_out, roles.unused_time, roles.date_column
        )
    )
    if irregular is not None:
        metadata["irregular_time_steps"] = irregular
    names = [str(name) for name in channels]
    coarse = low_precision_channels(names, list(values.T))
    if coarse:
        metadata["low_precision_channels"] = coarse
    data = np.ascontiguousarray(values.T, dtype=np.float32)
    data = finite_or_raise(path, data, names, options.nan_policy)

    return Recording(
        name=path.stem,
        data=data,
        channels=names,
        sample_rate=sample_rate,
        source=path,
        sample_labels=_labels_from(path, frame, options),
        metadata=metadata,
    )


def _raise_if_damaged_time(path: Path, frame: pd.DataFrame, names: list[str]) -> None:
    """Raise when a column named as time is no time column only through damage.

    Left out, such a column leaves the file at no sample rate, so scoring would
    take the model's rate for it, whatever the file's real rate.
    A column named ``time`` (not the one-letter ``t``, often a temperature, nor
    a date that repeats on every row) with a cell that is not a number, or with
    times that run backwards, is damaged. Other columns stay left out, with the
    warning of ``load_recordings``.
    """
    for name in names:
        if (
            time_name_scale(name) is None
            or is_one_letter_time_name(name)
            or is_date_name(name)
        ):
            continue
        column = frame[name]
        problem = None
        fix = "repair the column, or delete it to read the rows without times"
        if not (
            pd.api.types.is_numeric_dtype(column)
            or pd.api.types.is_datetime64_any_dtype(column)
            or pd.api.types.is_timedelta64_dtype(column)
        ):
            filled, is_number = _number_cells(column)
            damaged = filled & ~is_number
            # Text in every cell that does not parse as date-time, such as a
            # zone abbreviation ("10:00:00 CET") that pandas cannot place.
            unparsed = not is_number.any() and _as_datetime(column) is None
            if damaged.any() and (is_number.sum() > damaged.sum() or unparsed):
                row = int(np.flatnonzero(damaged)[0])
                cell = repr(column.iloc[row])
                cell = cell if len(cell) <= 40 else cell[:36] + "...'"
                problem = f"has {cell} at data row {row}, which is not a time"
                if unparsed:
                    problem = (
                        f"has {cell} at data row {row}, and none of its cells "
                        "parses as a number or date-time"
                    )
                    fix = (
                        "write a time zone as an offset (+01:00), or leave it out "
                        "and set data.timezone to its IANA name (Europe/Berlin); "
                        "or read the rows without times with data.ignore_time=true "
                        "and data.sample_rate"
                    )
        if problem is None:
            seconds = _seconds(name, column, None)
            steps = (
                np.array([])
                if seconds is None
                else np.diff(seconds[np.isfinite(seconds)])
            )
            if steps.size and np.median(steps) < 0:
                problem = f"runs backwards (median step {float(np.median(steps)):g} s)"
        if problem is not None:
            raise InputError(
                path,
                f"the time column {name!r} {problem}, so the sample rate cannot "
                "be read from it",
                fix,
            )


class TimeColumnRateError(InputError):
    """A time column whose rate differs from the configured ``data.sample_rate``.

    Both rates are kept, in samples per second, so that a caller can word its own
    fix.
    """

    def __init__(
        self, path: Path, time_column_rate: float, configured_rate: float
    ) -> None:
        super().__init__(
            path,
            f"the time column gives {time_column_rate:g} samples/s but sample_rate "
            f"is {configured_rate:g}",
            "remove sample_rate from the config (when scoring with a model "
            "trained with it, pass --set data.sample_rate=null) or fix the time "
            "column",
        )
        self.time_column_rate = time_column_rate
        self.configured_rate = configured_rate


def _resolve_rate(path: Path, found: float | None, given: float | None):
    if given is None:
        return found
    if found is not None and not np.isclose(found, given, rtol=1e-3):
        raise TimeColumnRateError(path, found, given)
    return float(given)


def frame_to_table_rows(path: Path, frame: pd.DataFrame, options: ReadOptions):
    """Build one recording per row of a per-cycle feature table."""
    roles = _column_roles(path, frame, options)
    frame = _drop_empty_rows(path, roles.frame)
    if frame.empty:
        raise InputError(path, "the table holds no rows", "check the file")

    features = _select(path, roles.numeric, options)
    values = frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
    names = [str(name) for name in features]
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise InputError(
            path,
            f"{int(bad.sum())} NaN or infinite values, first in row {int(row)}, "
            f"feature {names[column]!r}",
            "fill them, or drop their rows from the table; nan_policy: "
            "interpolate applies to signals only, because a table row has one "
            "value per feature",
        )
    labels = _labels_from(path, frame, options)
    if options.id_column is not None:
        if options.id_column not in frame.columns:
            raise InputError(
                path,
                f"id column {options.id_column!r} not found",
                f"pick one of {list(map(str, frame.columns))}",
            )
        row_names = [str(value) for value in frame[options.id_column]]
    else:
        row_names = [f"{path.stem}#{i}" for i in range(len(frame))]

    rows = []
    column_metadata = _column_metadata(
        roles.time_column, roles.left_out, roles.unused_time, roles.date_column
    )
    for i, row_name in enumerate(row_names):
        metadata = {"row": i, **column_metadata}
        rows.append(
            Recording(
                name=row_name,
                data=values[i].astype(np.float32)[:, None],
                channels=names,
                source=path,
                label=None if labels is None else int(labels[i]),
                metadata=metadata,
            )
        )
    return rows
