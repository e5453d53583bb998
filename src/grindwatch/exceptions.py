"""Exceptions raised by grindwatch.

Each one subclasses the builtin it stands for, so callers can catch ``ValueError``
or ``RuntimeError`` without importing grindwatch.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "ConfigError",
    "InputError",
    "NotFittedError",
    "StorageError",
    "TrackingError",
    "lookalike_names",
    "missing_channels_fix",
    "shorten_list",
]


class InputError(ValueError):
    """A recording, table or labels file that cannot be used as given.

    The message names the file, the problem and what to change.
    """

    def __init__(self, path: object, problem: str, fix: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        if fix:
            message += f"; {fix}"
        super().__init__(message)


class ConfigError(ValueError):
    """A setting that is invalid or contradicts another setting."""


class NotFittedError(RuntimeError):
    """A model or detector was used before it was fitted."""


class StorageError(RuntimeError):
    """An Optuna storage database that failed while a study ran.

    The message names the storage, the database's reason and how to continue.
    """


class TrackingError(RuntimeError):
    """An MLflow tracking store that cannot be opened or written.

    The message names the tracking URI, MLflow's reason and what to check.
    """


def shorten_list(names: list[str] | tuple[str, ...], limit: int = 8) -> str:
    """Format names for a message: all of them up to ``limit``, else the first ones
    and a count, so that a data set of 200 features does not fill the screen."""
    names = list(names)
    if len(names) <= limit:
        return str(names)
    return f"{names[:limit]} and {len(names) - limit} more"


def lookalike_names(missing: list[str], available: list[str]) -> str:
    """Describe the missing names that differ from an available one only in
    surrounding spaces, Unicode normalisation or letter case, or return "" when
    none does.

    Names of the first two kinds print alike: "ä" as one code point (NFC) or as
    "a" and a combining mark (NFD). The pairs are shown with ``ascii()`` so that
    the difference is visible. Case is reported apart, because exports from
    another tool often change it (``Vib_X`` for ``vib_x``). Matching stays exact
    in every case.
    """

    def key(name: str) -> str:
        return unicodedata.normalize("NFC", name).strip()

    by_key = {key(name): name for name in available}
    by_folded = {key(name).casefold(): name for name in available}
    spacing = [
        f"{ascii(name)} expected, {ascii(by_key[key(name)])} found"
        for name in missing
        if key(name) in by_key
    ]
    case = [
        f"{name!r} expected, {by_folded[key(name).casefold()]!r} found"
        for name in missing
        if key(name) not in by_key and key(name).casefold() in by_folded
    ]
    parts = []
    if spacing:
        parts.append(
            "names that differ only in spaces or Unicode normalisation: "
            f"{_first_pairs(spacing)}"
        )
    if case:
        parts.append(f"names that differ only in letter case: {_first_pairs(case)}")
    if not parts:
        return ""
    return f" ({'; '.join(parts)}; rename the columns to match exactly)"


def _first_pairs(pairs: list[str]) -> str:
    if len(pairs) > 3:
        pairs = [*pairs[:3], f"{len(pairs) - 3} more"]
    return "; ".join(pairs)


# Names the readers give channels when the file stores none: channel_0 ... for NumPy,
# WAV and headerless binary files, NAME[0] ... for HDF5 datasets and MATLAB arrays.
_NUMBERED_CHANNEL = re.compile(r"channel_\d+|.+\[\d+\]")


def missing_channels_fix(available: list[str], otherwise: str) -> str:
    """Return the fix for a recording that lacks channels a model needs.

    When every available name is a number that a reader gave because the file
    stores no names, renaming columns is no help, so the fix lists where each format
    stores names. Otherwise it returns ``otherwise``.
    """
    if available and all(_NUMBERED_CHANNEL.fullmatch(name) for name in available):
        return (
            "this file stores no channel names, so its channels were numbered; "
            "save the recording with the model's channel names: a header row in "
            "CSV or Parquet, a 'channels' array in .npz, a 'channels' attribute "
            "on the HDF5 dataset or a 'channels' variable in a .mat file"
        )
    return otherwise
