"""Time vectors in formats that store one vector per channel (HDF5, MATLAB, TDMS,
.npz).

Such files often keep the time axis beside the signals, as a dataset or variable
named ``time`` or ``t``. It is named by the rules for CSV time columns, leaves
the channels and gives the sample rate, so that it is not scored as a steadily
rising signal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from grindwatch.exceptions import InputError
from grindwatch.io.options import ReadOptions
from grindwatch.io.time_names import (
    is_date_stem_name,
    is_one_letter_time_name,
    seconds_per_unit,
    time_name_scale,
)

__all__ = ["TimeVectors", "find_time_vectors", "time_beside_matrix"]


@dataclass
class TimeVectors:
    """The time vectors among a file's vectors and the rate the chosen one gives."""

    dropped: list[int] = field(default_factory=list)
    rate: float | None = None
    time_name: str | None = None
    unused: list[str] = field(default_factory=list)
    # Values per time vector beside a 2-D matrix, which marks its samples axis.
    n_samples: int | None = None

    def metadata(self) -> dict[str, object]:
        """Return the entries that readers add to ``Recording.metadata``."""
        found: dict[str, object] = {}
        if self.time_name is not None:
            found["time_column"] = self.time_name
        if self.unused:
            found["unused_time_columns"] = self.unused
        return found


def _scale(name: str, options: ReadOptions) -> float | None:
    """Return seconds per unit when ``name`` is a time vector, else None."""
    if name == options.time_column:
        return seconds_per_unit(name) or 1.0
    if is_date_stem_name(name):
        # NOTE: numbers under a date name may be serial dates, which only the
        # CSV and Parquet readers convert, so such a vector stays a channel.
        return None
    return time_name_scale(name)


def find_time_vectors(
    path: Path,
    names: list[str],
    read: Callable[[int], np.ndarray],
    options: ReadOptions,
) -> TimeVectors:
    """Find the time vectors among ``names`` and the sample rate they give.

    ``read(i)`` returns the values of vector ``i``. A name in ``channels`` or
    ``known_channels`` (a model's channels, when it scores) is always a
    channel. A one-letter name (``t``, ``T``, also the symbol for temperature)
    is time only when its values strictly increase and ``sample_rate`` is not
    set. ``time_column`` names a vector that these rules miss, and it gives the
    rate. Otherwise the first full time name wins over a one-letter one. With
    ``ignore_time`` every time vector is left out and gives no rate.

    Raises
    ------
    InputError
        If the chosen vector's median step is not positive.
    """
    named_channels = set(options.channels or ()) | set(options.known_channels)
    candidates: list[tuple[int, float]] = []
    for index, name in enumerate(names):
        scale = _scale(name, options)
        if scale is None or name in named_channels:
            continue
        if is_one_letter_time_name(name) and name != options.time_column:
            steps = np.diff(np.asarray(read(index), dtype=np.float64))
            if options.sample_rate is not None or not np.all(steps > 0):
                continue
        candidates.append((index, scale))
    if not candidates or len(candidates) == len(names):
        # A file of time vectors only has no signal to read, so its vectors
        # stay channels and the reader reports what it finds.
        return TimeVectors()
    dropped = [index for index, _ in candidates]
    if options.ignore_time:
        return TimeVectors(dropped=dropped, unused=[names[i] for i in dropped])

    # NOTE: a time_column that names none of the vectors falls back to the
    # rules above without an error, while the CSV reader raises for it.
    named = [c for c in candidates if names[c[0]] == options.time_column]
    full_names = [c for c in candidates if not is_one_letter_time_name(names[c[0]])]
    index, scale = (named or full_names or candidates)[0]
    name = names[index]
    steps = np.diff(np.asarray(read(index), dtype=np.float64))
    steps = steps[np.isfinite(steps)]
    median = float(np.median(steps)) if steps.size else float("nan")
    if not median > 0:
        raise InputError(
            path,
            f"the time vector {name!r} has median step {median:g}, not a positive "
            "number, so the sample rate cannot be read from it",
            "store times that increase, or set data.ignore_time with data.sample_rate",
        )
    unused = [names[i] for i in dropped if i != index]
    # As for CSV time columns, nine significant digits drop the float64 noise
    # of times such as arange(n) / rate (10000.0000000011 for 10 kHz).
    rate = float(f"{1.0 / (median * scale):.9g}")
    return TimeVectors(dropped=dropped, rate=rate, time_name=name, unused=unused)


def time_beside_matrix(
    path: Path,
    candidates: dict[str, Any],
    separator: str,
    options: ReadOptions,
) -> tuple[str, TimeVectors] | None:
    """Find the one 2-D signal matrix of a file and the time vectors beside it.

    ``candidates`` maps the names of the file's numeric datasets or variables to
    their values (NumPy arrays or h5py datasets), and ``separator`` ends the
    group or struct part of a name. Returns the matrix's name and the time
    vectors, or None unless exactly one candidate is 2-D and every 1-D one is a
    time vector with one value per sample of the matrix. The result's
    ``n_samples`` then marks the matrix's samples axis.
    """
    matrices = [name for name, value in candidates.items() if value.ndim == 2]
    if len(matrices) != 1:
        return None
    matrix_shape = candidates[matrices[0]].shape
    vectors = {name: value for name, value in candidates.items() if value.ndim == 1}
    names = sorted(vectors)
    lengths = {vectors[name].shape[0] for name in names}
    if len(lengths) != 1 or lengths.isdisjoint(matrix_shape):
        return None
    # The empty name stands for the matrix. find_time_vectors keeps every
    # vector as a channel when all names are time names, so it needs one that
    # is not.
    leaves = [name.rsplit(separator, 1)[-1] for name in names] + [""]
    time = find_time_vectors(path, leaves, lambda i: vectors[names[i]][()], options)
    if sorted(time.dropped) != list(range(len(names))):
        return None
    (length,) = lengths
    return matrices[0], replace(time, n_samples=length)
