"""Sample rates stored in files: checked, converted to Hz, and reconciled with the
``sample_rate`` setting."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grindwatch.exceptions import InputError

__all__ = ["resolve_rate", "stored_rate"]

_FIX = (
    "store the sample rate as one number in Hz (samples per second, e.g. 1000.0), "
    "or remove it and set data.sample_rate"
)


def stored_rate(path: Path, value: object, where: str) -> float | None:
    """Convert a sample rate read from a file to samples per second.

    ``value`` is what the file stores: a number, a one-element array, or text of a
    number. ``where`` names it in messages, e.g. ``"the HDF5 attribute 'fs'"``.
    Returns None when ``value`` is None.

    Raises
    ------
    InputError
        If the value is not one finite, positive number.
    """
    if value is None:
        return None
    array = np.asarray(value)
    if array.size != 1:
        preview = np.array2string(array.ravel()[:4], separator=", ", threshold=4)
        raise InputError(
            path,
            f"{where} contains {array.size} values, not one sample rate "
            f"(starting {preview})",
            _FIX,
        )
    item = array.ravel().tolist()[0]
    if isinstance(item, bytes):
        item = item.decode("utf-8", errors="replace")
    try:
        rate = float(item)
    except (TypeError, ValueError):
        raise InputError(
            path, f"{where} contains {item!r}, which is not a number in Hz", _FIX
        ) from None
    if not (np.isfinite(rate) and rate > 0):
        raise InputError(
            path,
            f"{where} is {rate:g}, which is not a positive number of samples per "
            "second",
            _FIX,
        )
    return rate


def resolve_rate(path: Path, stored: float | None, given: float | None) -> float | None:
    """Return the ``sample_rate`` setting, else the rate stored in the file.

    Raises
    ------
    InputError
        If both are given and differ by more than ``numpy.isclose`` allows.
    """
    if given is not None and stored is not None and not np.isclose(stored, given):
        raise InputError(
            path,
            f"the file stores sample rate {stored:g} but sample_rate is {given:g}",
            "remove sample_rate from the config; when scoring with a model "
            "trained with it, pass --set data.sample_rate=null",
        )
    return given if given is not None else stored
