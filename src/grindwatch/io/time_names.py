"""Recognise time columns by name and read the unit their name carries.

A time column's name is a stem such as ``time``, ``t``, ``Zeit`` or ``timestamp``,
optionally followed by a unit in brackets or parentheses (``Time [s]``,
``Zeit (ms)``, ``Time [d]``), after an underscore (``time_ms``) or after a slash
(``Zeit / s``).
A name whose unit is unknown (``T [°C]``, ``t_oil``) is no time name.

The one-letter stem ``t`` (``T``, ``t [s]``, ``T_s``) is also the usual symbol for
temperature, so ``is_one_letter_time_name`` marks it, and the readers take such a
column as time only when its values strictly increase (see
``grindwatch.io.frames``).

A date column (``Date``, ``Datum``) and a time-of-day column (``Time``,
``Uhrzeit``) are recognised by the separate names in ``DATE_NAMES`` and
``TIME_OF_DAY_NAMES``, which only pair columns (see ``grindwatch.io.date_time``).
"""

from __future__ import annotations

import re

__all__ = [
    "DATE_NAMES",
    "TIME_OF_DAY_NAMES",
    "TIME_STEMS",
    "has_time_unit",
    "is_date_name",
    "is_date_stem_name",
    "is_one_letter_time_name",
    "is_time_of_day_name",
    "seconds_per_unit",
    "time_name_scale",
]

# Lower case, with runs of spaces, underscores, hyphens and dots read as one space.
TIME_STEMS = frozenset(
    {
        "time",
        "times",
        "t",
        "zeit",
        "tiempo",
        "tempo",
        "timestamp",
        "time stamp",
        "zeitstempel",
        "datetime",
        "date time",
        "date",
        "elapsed",
        "elapsed time",
        "seconds",
        "sec",
        "secs",
    }
)

# Names of the two columns of a split timestamp, compared like TIME_STEMS after a
# bracketed note such as a format ("Date (dd.mm.yyyy)") is removed. They are kept
# apart from TIME_STEMS, so "Uhrzeit" alone is still no time name.
DATE_NAMES = frozenset({"date", "datum", "day", "fecha"})
TIME_OF_DAY_NAMES = frozenset(
    {
        "time",
        "zeit",
        "uhrzeit",
        "time of day",
        "tageszeit",
        "clock",
        "clock time",
        "hora",
    }
)

# Seconds per unit. After an underscore or slash only units that cannot mean
# something else count, because "t_min" is more often a minimum temperature.
_SEPARATED_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "ms": 1e-3,
    "msec": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,  # MICRO SIGN
    "μs": 1e-6,  # GREEK SMALL LETTER MU
    "usec": 1e-6,
    "ns": 1e-9,
}
_BRACKETED_UNITS = {
    **_SEPARATED_UNITS,
    "second": 1.0,
    "seconds": 1.0,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "microsecond": 1e-6,
    "microseconds": 1e-6,
    "nanosecond": 1e-9,
    "nanoseconds": 1e-9,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}

# Stems that name a date and time, whose numbers in a spreadsheet export are
# serial dates, and stems that name seconds as their unit.
_DATE_STEMS = frozenset({"date", "datetime", "date time"})
_SECONDS_STEMS = frozenset({"seconds", "sec", "secs"})

_WITH_UNIT = re.compile(
    r"^(?P<stem>.*?)\s*"
    r"(?:[\[(]\s*(?P<bracketed>[^\[\]()]+?)\s*[\])]|[_/ ]\s*(?P<separated>[^\s_/]+))$"
)


def _normalise(stem: str) -> str:
    return re.sub(r"[\s_\-.]+", " ", stem.strip().lower())


_BRACKETED_NOTE = re.compile(r"\s*[\[(][^\[\]()]*[\])]\s*$")


def is_date_name(name: str) -> bool:
    """Tell whether ``name`` names the date column of a split timestamp.

    ``Date``, ``Datum`` and ``Date (dd.mm.yyyy)`` count. Any bracketed note is
    ignored, because the column's content decides whether it contains dates.
    """
    return _normalise(_BRACKETED_NOTE.sub("", name)) in DATE_NAMES


def is_time_of_day_name(name: str) -> bool:
    """Tell whether ``name`` names the time-of-day column of a split timestamp.

    ``Time``, ``Uhrzeit`` and ``Time [hh:mm:ss]`` count.
    """
    return _normalise(_BRACKETED_NOTE.sub("", name)) in TIME_OF_DAY_NAMES


def seconds_per_unit(name: str) -> float | None:
    """Return the seconds per unit that a column name's unit suffix gives.

    Any name counts, so an explicitly named time column (``clock [ms]``) gives its
    unit too. Returns None when the name carries no known time unit.
    """
    match = _WITH_UNIT.match(name.strip())
    if match is None:
        return None
    if match["bracketed"] is not None:
        return _BRACKETED_UNITS.get(match["bracketed"].lower())
    return _SEPARATED_UNITS.get(match["separated"].lower())


def time_name_scale(name: str) -> float | None:
    """Return seconds per unit if ``name`` names a time column, else None.

    A stem without a unit (``time``, ``Zeit``) gives 1.0, so its numbers are read
    as seconds. ``seconds`` and ``sec`` are stems as well.
    """
    text = name.strip()
    match = _WITH_UNIT.match(text)
    if match is not None and _normalise(match["stem"]) in TIME_STEMS:
        scale = seconds_per_unit(text)
        if scale is not None:
            return scale
    if _normalise(text) in TIME_STEMS:
        return 1.0
    return None


def has_time_unit(name: str) -> bool:
    """Tell whether ``name`` states the unit of its numbers.

    ``Time [s]``, ``time_ms`` and the stems ``seconds`` and ``sec`` do, ``time``
    and ``date`` do not.
    """
    return seconds_per_unit(name) is not None or _normalise(name) in _SECONDS_STEMS


def is_date_stem_name(name: str) -> bool:
    """Tell whether ``name`` is ``date``, ``datetime`` or ``date time`` with no unit.

    Numbers in such a column are serial dates, not seconds, when they lie in the
    range of spreadsheet serial dates or MATLAB datenums (see
    ``grindwatch.io.frames``).
    """
    return _normalise(name) in _DATE_STEMS


def is_one_letter_time_name(name: str) -> bool:
    """Tell whether ``name`` is a time name with the stem ``t`` or ``T``.

    ``t``, ``T``, ``t [ms]`` and ``T_s`` count, ``time`` and ``T [°C]`` do not.
    """
    text = name.strip()
    if time_name_scale(text) is None:
        return False
    match = _WITH_UNIT.match(text)
    if match is not None and seconds_per_unit(text) is not None:
        text = match["stem"]
    return _normalise(text) == "t"
