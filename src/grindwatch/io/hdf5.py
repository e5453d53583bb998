"""HDF5 reader: finds the signal dataset, or takes the one named by ``hdf5_key``."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from grindwatch.exceptions import InputError, shorten_list
from grindwatch.io.frames import finite_or_raise
from grindwatch.io.options import ReadOptions
from grindwatch.io.rates import resolve_rate, stored_rate
from grindwatch.io.recording import Recording
from grindwatch.io.samples import to_float32
from grindwatch.io.time_vectors import (
    TimeVectors,
    find_time_vectors,
    time_beside_matrix,
)

__all__ = ["read_hdf5"]

logger = logging.getLogger(__name__)

_RATE_ATTRIBUTES = ("sample_rate", "sampling_rate", "fs", "rate", "samplerate")
_CHANNEL_ATTRIBUTES = ("channels", "channel_names", "columns")
# Physical value = stored value * scale + offset (the CF convention's names first).
_SCALE_ATTRIBUTES = ("scale_factor", "scale")
_OFFSET_ATTRIBUTES = ("add_offset", "offset")


def _numeric_datasets(handle) -> dict[str, object]:  # noqa: ANN001 - h5py.File
    import h5py

    found: dict[str, object] = {}

    def visit(name: str, item: object) -> None:
        if (
            isinstance(item, h5py.Dataset)
            and item.dtype.kind in "iuf"
            and item.ndim in (1, 2)
            and item.size > 1
        ):
            found[name] = item

    handle.visititems(visit)
    return found


def _named_attribute(items: list, names: tuple[str, ...]):  # noqa: ANN202
    """Return the first attribute found as (name, value), or None."""
    for item in items:
        for name in names:
            if name in item.attrs:
                return name, item.attrs[name]
    return None


def _attribute(items: list, names: tuple[str, ...]):  # noqa: ANN202
    found = _named_attribute(items, names)
    return None if found is None else found[1]


def two_d_samples_axis(
    items: list, shape: tuple[int, int], n_samples: int | None = None
) -> int:
    """Return the axis of one 2-D dataset that runs along the samples.

    The length of the time vectors beside the dataset (``n_samples``) decides
    when it fits one axis only. Next, a channel-name attribute whose count fits
    one axis only decides. So a (samples, channels) dataset with more channels
    than samples is not read transposed. Otherwise the longer axis is samples.
    """
    if n_samples is not None and shape[0] != shape[1] and n_samples in shape:
        return shape.index(n_samples)
    found = _named_attribute(items, _CHANNEL_ATTRIBUTES)
    if found is not None and shape[0] != shape[1]:
        count = len(np.atleast_1d(found[1]))
        if count == shape[1]:
            return 0
        if count == shape[0]:
            return 1
    return 0 if shape[0] > shape[1] else 1


def two_d_channel_names(
    path: Path, names: list[str], items: list, n_channels: int
) -> list:
    """Name the channels of one 2-D dataset from its attribute, else ``NAME[i]``."""
    found = _named_attribute(items, _CHANNEL_ATTRIBUTES)
    if found is None:
        return [f"{names[0]}[{i}]" for i in range(n_channels)]
    channel_names = np.atleast_1d(found[1])
    if len(channel_names) != n_channels:
        # Without this warning the numbered names show up only as missing
        # channels when a model trained on the attribute's names scores the file.
        logger.warning(
            "%s: the HDF5 attribute %r of %r names %d channels, but the dataset "
            "holds %d, so they are named %s[0] to %s[%d]; write one name per "
            "channel",
            path,
            found[0],
            names[0],
            len(channel_names),
            n_channels,
            names[0],
            names[0],
            n_channels - 1,
        )
        return [f"{names[0]}[{i}]" for i in range(n_channels)]
    return list(channel_names)


def _number(path: Path, value, where: str) -> float:  # noqa: ANN001
    """Convert one stored number (or text of one) to float, naming ``where``."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        value = value.item()
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    # A NaN scale made every sample NaN, and the error then named the samples.
    if number is None or not np.isfinite(number):
        raise InputError(
            path,
            f"{where} contains {value!r}, which is not a finite number",
            "store the scale and offset as numbers, one per channel or one for all",
        )
    return number


def channel_scaling(path: Path, names: list[str], items: list, n_channels: int):  # noqa: ANN001, ANN201
    """Return the scale and the offset to apply, each None, one float for all
    channels, or an array of shape (n_channels, 1).

    One 2-D dataset may give one value for all channels or one per channel.
    Several 1-D datasets each give their own, and one without it is not scaled.

    Raises
    ------
    InputError
        If an attribute is not a number, or a 2-D dataset's gives neither one
        value nor one per channel.
    """
    found = []
    for attributes, default in ((_SCALE_ATTRIBUTES, 1.0), (_OFFSET_ATTRIBUTES, 0.0)):
        if len(items) == 1:
            attribute = _named_attribute(items, attributes)
            if attribute is None:
                found.append(None)
                continue
            where = f"the HDF5 attribute {attribute[0]!r} of {names[0]!r}"
            values = np.ravel(attribute[1])
            if values.size == 1:
                found.append(_number(path, values[0], where))
                continue
            if values.size != n_channels:
                raise InputError(
                    path,
                    f"{where} contains {values.size} values for {n_channels} channels",
                    "store one value for all channels or one per channel",
                )
            numbers = [_number(path, value, where) for value in values]
        else:
            numbers, any_found = [], False
            for name, item in zip(names, items, strict=True):
                attribute = _named_attribute([item], attributes)
                if attribute is None:
                    numbers.append(default)
                    continue
                any_found = True
                where = f"the HDF5 attribute {attribute[0]!r} of {name!r}"
                values = np.ravel(attribute[1])
                if values.size != 1:
                    raise InputError(
                        path,
                        f"{where} contains {values.size} values for one channel",
                        "store one value for each 1-D dataset",
                    )
                numbers.append(_number(path, values[0], where))
            if not any_found:
                found.append(None)
                continue
        found.append(np.array(numbers, dtype=np.float64)[:, None])
    return found[0], found[1]


def _pick(path: Path, handle, options: ReadOptions):  # noqa: ANN001, ANN202
    import h5py

    candidates = _numeric_datasets(handle)
    if options.hdf5_key is not None:
        key = options.hdf5_key.strip("/")
        if key not in handle:
            raise InputError(
                path,
                f"no dataset or group {options.hdf5_key!r}; numeric datasets found: "
                f"{sorted(candidates)}",
                "set hdf5_key to one of those",
            )
        item = handle[key]
        if isinstance(item, h5py.Group):
            inside = {n: d for n, d in candidates.items() if n.startswith(key + "/")}
            return _from_group(path, inside)
        if not _is_signal(item):
            raise InputError(
                path,
                f"dataset {options.hdf5_key!r} ({_describe(item)}) is not a numeric "
                f"1-D or 2-D array of samples; numeric datasets found: "
                f"{sorted(candidates)}",
                "set hdf5_key to a dataset of numbers, shaped (samples,) or "
                "(channels, samples)",
            )
        return [key], [item]
    if not candidates:
        raise InputError(
            path,
            "holds no numeric 1-D or 2-D dataset; its datasets are "
            f"{shorten_list(_dataset_listing(handle))}",
            "store the samples as a dataset of numbers, shaped (samples,) or "
            "(channels, samples)",
        )
    return _from_group(path, candidates)


def _is_signal(item) -> bool:  # noqa: ANN001 - h5py.Dataset
    """Tell whether a dataset named by hdf5_key can be read as samples.

    Booleans count as numbers here, because a user named the dataset.
    """
    return item.dtype.kind in "biuf" and item.ndim in (1, 2) and item.size > 0


def _describe(item) -> str:  # noqa: ANN001 - h5py.Dataset
    return f"dtype {item.dtype}, shape {item.shape}"


def _dataset_listing(handle) -> list[str]:  # noqa: ANN001 - h5py.File
    import h5py

    found: list[str] = []

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            found.append(f"{name} ({_describe(item)})")

    handle.visititems(visit)
    return found


def _from_group(path: Path, candidates: dict[str, object]):  # noqa: ANN202
    if len(candidates) == 1:
        name, item = next(iter(candidates.items()))
        return [name], [item]
    lengths = {item.shape[0] for item in candidates.values() if item.ndim == 1}
    if all(item.ndim == 1 for item in candidates.values()) and len(lengths) == 1:
        # Several 1-D datasets of one length: one channel each.
        names = sorted(candidates)
        leaves = Counter(name.rsplit("/", 1)[-1] for name in names)
        repeated = sorted(leaf for leaf, count in leaves.items() if count > 1)
        if repeated:
            # The same channel in several groups is usually one group per run.
            groups = sorted({name.rsplit("/", 1)[0] for name in names if "/" in name})
            raise InputError(
                path,
                f"contains datasets named {repeated} in several groups ("
                f"{shorten_list(groups)}), and channels are named by the dataset",
                "set hdf5_key to the group of one recording, or write each "
                "recording to its own file",
            )
        return names, [candidates[name] for name in names]
    listing = ", ".join(f"{n} {candidates[n].shape}" for n in sorted(candidates))
    raise InputError(
        path,
        f"holds several candidate signal datasets ({listing})",
        "set hdf5_key to the one to use",
    )


# What h5py raises on damaged files: errors of the HDF5 library surface as OSError,
# RuntimeError (failed object visitation), KeyError or ValueError, and a damaged
# attribute can have a type that float() or str() rejects.
_DAMAGE_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)
# NOTE: a few damaged files make the HDF5 library itself allocate memory without
# bound while it walks the file (seen in fuzzing with h5py 3.16: "memory allocation
# failed for chunk" under a memory limit, a killed process without one). Python
# cannot intercept that; reading untrusted files in a memory-limited process does.


def _with_parent_groups(items: list, handle) -> list:  # noqa: ANN001 - h5py.File
    """Return the datasets, then the groups that contain them (nearest first),
    then the file's root group, so that a rate stored on the group of the
    signals (``run.attrs["fs"]``) is found as well as one on the file."""
    found = list(items)
    for item in items:
        group = item.parent
        while group.name != "/" and group not in found:
            found.append(group)
            group = group.parent
    return [*found, handle]


def _matrix_beside_time(path: Path, handle, options: ReadOptions):  # noqa: ANN001, ANN202
    """Return the one 2-D dataset and the time vectors beside it (``time``
    beside ``data``), or None unless every other numeric dataset is a time
    vector with one value per sample of the matrix."""
    if options.hdf5_key is not None:
        return None
    candidates = _numeric_datasets(handle)
    found = time_beside_matrix(path, candidates, "/", options)
    if found is None:
        return None
    name, time = found
    return [name], [candidates[name]], time


def pick_signals(path: Path, handle, options: ReadOptions):  # noqa: ANN001, ANN202
    """Return the signal datasets' names, the datasets, their sample rate and
    the time vectors left out of the channels (a ``time`` dataset beside
    1-D channel datasets)."""
    beside_time = _matrix_beside_time(path, handle, options)
    if beside_time is not None:
        names, items, time = beside_time
    else:
        names, items = _pick(path, handle, options)
        time = TimeVectors()
    if len(items) > 1:
        leaves = [name.rsplit("/", 1)[-1] for name in names]
        time = find_time_vectors(path, leaves, lambda i: items[i][()], options)
        names = [n for i, n in enumerate(names) if i not in time.dropped]
        items = [d for i, d in enumerate(items) if i not in time.dropped]
    attribute = _named_attribute(_with_parent_groups(items, handle), _RATE_ATTRIBUTES)
    if attribute is None:
        rate = resolve_rate(path, time.rate, options.sample_rate)
    else:
        rate = _rate(path, attribute, options.sample_rate)
    return names, items, rate, time


def _read_open(path: Path, handle, options: ReadOptions):  # noqa: ANN001, ANN202
    names, items, rate, time = pick_signals(path, handle, options)
    if len(items) == 1 and items[0].ndim == 2:
        data = np.asarray(items[0][()])
        if two_d_samples_axis(items, data.shape, time.n_samples) == 0:
            data = data.T
        channel_names = two_d_channel_names(path, names, items, data.shape[0])
    else:
        data = np.stack([np.asarray(item[()]) for item in items])
        channel_names = [name.rsplit("/", 1)[-1] for name in names]
    channels = [c.decode() if isinstance(c, bytes) else str(c) for c in channel_names]
    scale, offset = channel_scaling(path, names, items, len(channels))
    data, metadata = to_float32(data, scale, offset, channels)
    metadata["hdf5_datasets"] = names
    metadata.update(time.metadata())
    return metadata, data, channels, rate


def read_hdf5(path: Path, options: ReadOptions) -> Recording:
    """Read one recording from an HDF5 file.

    Raises
    ------
    InputError
        If the file is not HDF5 or is damaged, holds no or several candidate
        datasets (and ``hdf5_key`` does not pick one), or holds NaN samples.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            metadata, data, channels, rate = _read_open(path, handle, options)
    except InputError:
        raise
    except _DAMAGE_ERRORS as error:
        raise InputError(
            path,
            f"is not a readable HDF5 file ({type(error).__name__}: {error})",
            "check that the file was written completely",
        ) from None

    data = finite_or_raise(path, data, channels, options.nan_policy)
    recording = Recording(
        name=path.stem,
        data=data,
        channels=channels,
        sample_rate=rate,
        source=path,
        metadata=metadata,
    )
    if options.channels is not None:
        recording = recording.select_channels(list(options.channels))
    return recording


def _rate(path: Path, attribute, given: float | None) -> float | None:  # noqa: ANN001
    """Convert a rate attribute, given as (name, value), to Hz and compare it with
    the ``sample_rate`` setting ``given``."""
    found = None
    if attribute is not None:
        name, value = attribute
        found = stored_rate(path, value, f"the HDF5 attribute {name!r}")
    return resolve_rate(path, found, given)
