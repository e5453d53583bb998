"""Headerless binary reader (``.bin``, ``.raw``): interleaved samples of one dtype.

Such files store nothing but samples, so the dtype (``raw_dtype``), the number of
interleaved channels (``raw_channels``) and the rate (``sample_rate``) come from the
options.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grindwatch.exceptions import InputError
from grindwatch.io.frames import finite_or_raise
from grindwatch.io.options import ReadOptions
from grindwatch.io.recording import Recording
from grindwatch.io.samples import to_float32

__all__ = ["binary_layout", "read_binary"]


def binary_layout(path: Path, options: ReadOptions) -> tuple[np.dtype, int, int]:
    """Return (dtype, channels, samples) of a headerless binary file.

    Raises
    ------
    InputError
        If ``raw_dtype`` is not set or invalid, or the file size is not a whole
        number of sample frames (a truncated write). ``ReadOptions`` itself
        rejects a ``raw_channels`` below 1.
    """
    if options.raw_dtype is None:
        raise InputError(
            path,
            "is a headerless binary file and raw_dtype is not set",
            "set raw_dtype (e.g. '<i2' or '<f4'), raw_channels and sample_rate",
        )
    try:
        dtype = np.dtype(options.raw_dtype)
    except TypeError:
        raise InputError(
            path,
            f"raw_dtype {options.raw_dtype!r} is not a NumPy dtype",
            "use a dtype string such as '<i2' or '<f4'",
        ) from None
    if dtype.kind not in "iuf":
        raise InputError(
            path, f"raw_dtype {dtype} is not numeric", "use '<i2' or '<f4'"
        )
    frame = dtype.itemsize * options.raw_channels
    size = path.stat().st_size
    if size % frame:
        raise InputError(
            path,
            f"size {size} bytes is not a whole number of "
            f"{options.raw_channels}-channel "
            f"{dtype} samples ({frame} bytes each), so the file is truncated or the "
            "layout options are wrong",
            "check raw_dtype and raw_channels, or cut the file after the last whole "
            "sample",
        )
    return dtype, options.raw_channels, size // frame


def read_binary(path: Path, options: ReadOptions) -> Recording:
    """Read a whole headerless binary file."""
    dtype, n_channels, n_samples = binary_layout(path, options)
    values = np.fromfile(path, dtype=dtype).reshape(n_samples, n_channels)
    channels = [f"channel_{i}" for i in range(n_channels)]
    data, metadata = to_float32(values.T, channels=channels)
    data = finite_or_raise(path, data, channels, options.nan_policy)
    recording = Recording(
        name=path.stem,
        data=data,
        channels=channels,
        sample_rate=options.sample_rate,
        source=path,
        metadata=metadata,
    )
    if options.channels is not None:
        recording = recording.select_channels(list(options.channels))
    return recording
