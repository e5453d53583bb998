"""NumPy .npy and .npz reader."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from grindwatch.exceptions import InputError
from grindwatch.io.frames import finite_or_raise
from grindwatch.io.options import ReadOptions
from grindwatch.io.rates import resolve_rate, stored_rate
from grindwatch.io.recording import Recording
from grindwatch.io.samples import to_float32
from grindwatch.io.time_vectors import find_time_vectors

__all__ = ["read_numpy"]

_DATA_KEYS = ("data", "signal", "signals", "x", "X")


def _load(path: Path):  # noqa: ANN202
    try:
        # allow_pickle stays False: a .npy file must not run code when read.
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(
            path, f"is not a readable NumPy file ({error})", "check the file"
        ) from None


def _array(path: Path, archive, key: str) -> np.ndarray:  # noqa: ANN001 - NpzFile
    """Read one array of an .npz archive, which is loaded only when accessed."""
    try:
        return archive[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(
            path,
            f"array {key!r} cannot be read ({error})",
            "save it as a plain numeric or text array, such as "
            "np.array(names, dtype=str) for channel names (np.array(df.columns) "
            "is an array of Python objects, which only pickle can load)",
        ) from None


def _read_npz(path: Path, archive):  # noqa: ANN001, ANN202 - NpzFile
    """Return the signal array, the channel names or None, and the rate or None."""
    keys = list(archive.keys())
    key = next((k for k in _DATA_KEYS if k in keys), None)
    if key is None and len(keys) == 1:
        key = keys[0]
    if key is None:
        raise InputError(
            path,
            f"holds arrays {keys} and none is named {list(_DATA_KEYS[:3])}",
            "save the signal under the key 'data'",
        )
    data = _array(path, archive, key)
    channels = None
    if "channels" in keys:
        channels = [str(name) for name in _array(path, archive, "channels")]
    rate = None
    if "sample_rate" in keys:
        value = _array(path, archive, "sample_rate")
        rate = stored_rate(path, value, "the array 'sample_rate'")
    return data, channels, rate


def read_numpy(path: Path, options: ReadOptions) -> Recording:
    """Read a recording from .npy (the array) or .npz (``data`` plus metadata).

    Raises
    ------
    InputError
        If the file is unreadable or contains no numeric array of one or two
        dimensions, if its ``sample_rate`` is not one positive number, or if it
        differs from the ``sample_rate`` setting.
    """
    loaded = _load(path)
    channels = None
    rate = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            data, channels, rate = _read_npz(path, loaded)
    else:
        data = loaded

    if data.dtype.kind not in "iuf":
        raise InputError(path, f"holds {data.dtype} values, not numbers")
    if data.size == 0:
        raise InputError(
            path,
            f"holds no samples (an array of shape {data.shape})",
            "check the export",
        )
    if data.ndim == 1:
        data = data[None, :]
    elif data.ndim != 2:
        raise InputError(
            path,
            f"holds an array of shape {data.shape}",
            "save one recording as (channels, samples)",
        )
    elif channels is not None and len(channels) == data.shape[1] != data.shape[0]:
        data = data.T  # the channel names fit the second axis
    elif (channels is None or len(channels) not in data.shape) and (
        data.shape[0] > data.shape[1]
    ):
        # NOTE: without channel names the longer axis is taken as samples, so a
        # square array is read as (channels, samples).
        data = data.T  # stored as (samples, channels)
    if channels is not None and len(channels) != data.shape[0]:
        raise InputError(
            path,
            f"names {len(channels)} channels in its 'channels' array, but its data "
            f"has shape {data.shape}, which fits neither axis",
            "store one name per channel, or leave the 'channels' array out",
        )
    if channels is None:
        channels = [f"channel_{i}" for i in range(data.shape[0])]
    repeated = sorted({name for name in channels if channels.count(name) > 1})
    if repeated:
        # Channels are matched by name, so a repeated name would read the first
        # of its channels twice.
        raise InputError(
            path,
            f"names more than one channel {', '.join(map(repr, repeated))} in its "
            "'channels' array",
            "give each channel its own name",
        )
    time = find_time_vectors(path, channels, lambda i: data[i], options)
    if time.dropped:
        channel_rows = [i for i in range(len(channels)) if i not in time.dropped]
        data = data[channel_rows]
        channels = [channels[i] for i in channel_rows]
    if rate is None:
        rate = time.rate
    rate = resolve_rate(path, rate, options.sample_rate)

    values, metadata = to_float32(data, channels=channels)
    metadata.update(time.metadata())
    values = finite_or_raise(path, values, channels, options.nan_policy)
    recording = Recording(
        name=path.stem,
        data=values,
        channels=channels,
        sample_rate=rate,
        source=path,
        metadata=metadata,
    )
    if options.channels is not None:
        recording = recording.select_channels(list(options.channels))
    return recording
