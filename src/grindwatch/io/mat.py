"""MATLAB .mat reader: v5 files through scipy.io, v7.3 files (HDF5) through h5py.

Variables are addressed by name; fields of structs (v5) and groups (v7.3) by dotted
paths such as ``run.data``. A variable named like a sample rate (``fs``, ``Fs``,
``sample_rate`` ...) gives the rate and must be one number. ``rate`` is the
exception: with several values it is read as a signal. A cell array of strings
named ``channels`` (v5 only) gives the channel names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from grindwatch.exceptions import InputError
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

__all__ = ["read_mat"]

_RATE_NAMES = ("fs", "sample_rate", "sampling_rate", "samplerate", "rate", "sr")
# "rate" also names signals such as a feed rate, so it gives the sample rate only
# when it is one number. With several values it is a signal candidate.
_AMBIGUOUS_RATE_NAMES = ("rate",)
_CHANNEL_NAMES = ("channels", "channel_names")


def _flatten_v5(prefix: str, value: Any, out: dict[str, Any]) -> None:
    from scipy.io.matlab import mat_struct

    if isinstance(value, mat_struct):
        for field in value._fieldnames:
            _flatten_v5(f"{prefix}.{field}", getattr(value, field), out)
    else:
        out[prefix] = value


def _load_v5(path: Path) -> dict[str, Any]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        raw = loadmat(path, squeeze_me=True, struct_as_record=False)
    except (
        MatReadError,
        ValueError,
        OSError,
        EOFError,
        TypeError,
        NotImplementedError,
    ) as error:
        raise InputError(
            path,
            f"is not a readable MATLAB file ({error})",
            "check that the file was written completely",
        ) from None
    variables: dict[str, Any] = {}
    for name, value in raw.items():
        if not name.startswith("__"):
            _flatten_v5(name, value, variables)
    return variables


def _load_v73(path: Path) -> dict[str, Any]:
    import h5py

    variables: dict[str, Any] = {}

    def visit(name: str, item: object) -> None:
        if name.startswith("#refs#") or not isinstance(item, h5py.Dataset):
            return
        matlab_class = item.attrs.get("MATLAB_class", b"")
        if isinstance(matlab_class, bytes):
            matlab_class = matlab_class.decode()
        if matlab_class in ("char", "cell") or item.dtype.kind not in "iufb":
            return
        # MATLAB writes column-major, so h5py reads every array transposed. MATLAB
        # has no 1-D arrays, so vectors and scalars are squeezed, as the v5 reader
        # does (scipy's squeeze_me), and both versions read alike.
        variables[name.replace("/", ".")] = np.squeeze(np.asarray(item[()]).T)

    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(visit)
    except (OSError, KeyError, ValueError) as error:
        raise InputError(
            path,
            f"is not a readable MATLAB v7.3 file ({error})",
            "check that the file was written completely",
        ) from None
    return variables


def _is_signal(value: Any) -> bool:
    return (
        isinstance(value, np.ndarray)
        and value.dtype.kind in "iuf"
        and value.ndim in (1, 2)
        and value.size > 1
    )


def _is_rate_variable(name: str, value: Any) -> bool:
    lower = name.rsplit(".", 1)[-1].lower()
    if lower not in _RATE_NAMES:
        return False
    return lower not in _AMBIGUOUS_RATE_NAMES or np.asarray(value).size == 1


def _rate(path: Path, variables: dict[str, Any], signals: list[str]) -> float | None:
    """Return the rate stored in the first rate-named variable, or None.

    A rate among the fields of the struct that contains all ``signals``
    (``run.fs`` beside ``run.data``) comes first, then one in each struct above
    it, and a top-level variable last.

    Raises
    ------
    InputError
        If that variable is not one positive number, as for .npz and HDF5 files.
    """
    by_lower = {name.lower(): name for name in variables}
    parts = signals[0].split(".")[:-1]
    for signal in signals[1:]:
        others = signal.split(".")[:-1]
        common = 0
        while common < min(len(parts), len(others)) and parts[common] == others[common]:
            common += 1
        parts = parts[:common]
    prefixes = [".".join(parts[:end]) + "." for end in range(len(parts), 0, -1)]
    for prefix in [*prefixes, ""]:
        for rate_name in _RATE_NAMES:
            name = by_lower.get((prefix + rate_name).lower())
            if name is not None and _is_rate_variable(name, variables[name]):
                return stored_rate(path, variables[name], f"the variable {name!r}")
    return None


def _pick(path: Path, variables: dict[str, Any], options: ReadOptions):  # noqa: ANN202
    """Return the names and values of the signal variables, and the time
    vectors beside a signal matrix (``t`` beside ``data``), if any."""
    candidates = {
        name: np.asarray(value)
        for name, value in variables.items()
        if _is_signal(value) and not _is_rate_variable(name, value)
    }
    if options.mat_variable is not None:
        if options.mat_variable not in candidates:
            raise InputError(
                path,
                f"no numeric variable {options.mat_variable!r}; candidates are "
                f"{sorted(candidates)}",
                "set mat_variable to one of those",
            )
        return [options.mat_variable], [candidates[options.mat_variable]], TimeVectors()
    if not candidates:
        raise InputError(
            path, "contains no numeric 1-D or 2-D variable", "check the file"
        )
    if len(candidates) == 1:
        name, value = next(iter(candidates.items()))
        return [name], [value], TimeVectors()
    shapes = {value.shape for value in candidates.values()}
    if all(value.ndim == 1 for value in candidates.values()) and len(shapes) == 1:
        names = sorted(candidates)
        return names, [candidates[name] for name in names], TimeVectors()
    beside_time = _matrix_beside_time(path, candidates, options)
    if beside_time is not None:
        return beside_time
    listing = ", ".join(f"{n} {candidates[n].shape}" for n in sorted(candidates))
    raise InputError(
        path,
        f"contains several candidate signal variables ({listing})",
        "set mat_variable to the one to use",
    )


def _matrix_beside_time(path: Path, candidates: dict[str, np.ndarray], options):  # noqa: ANN001, ANN202
    """Return the one signal matrix with channels first and the time vectors
    beside it, or None unless every other candidate is a time vector with one
    value per sample of the matrix."""
    found = time_beside_matrix(path, candidates, ".", options)
    if found is None:
        return None
    name, time = found
    matrix = candidates[name]
    if matrix.shape[0] == time.n_samples != matrix.shape[1]:
        matrix = matrix.T
    return [name], [matrix], time


def _channel_names(
    variables: dict[str, Any],
    signal: str,
    count: int,
    default: list[str] | None = None,
) -> list[str] | None:
    """Return the names in a ``channels`` variable of ``count`` names, else
    ``default``. A field beside the signal in its struct (``run.channels``
    beside ``run.data``) comes first, then one in each struct above it, and a
    top-level variable last, as for the sample rate."""
    parts = signal.split(".")[:-1]
    prefixes = [".".join(parts[:end]) + "." for end in range(len(parts), 0, -1)]
    candidates = [
        prefix + name for prefix in [*prefixes, ""] for name in _CHANNEL_NAMES
    ]
    for name in candidates:
        value = variables.get(name)
        if value is None:
            continue
        items = np.atleast_1d(value)
        names = [str(item) for item in items]
        if items.dtype.kind == "U":
            # A char matrix pads its rows with spaces to the longest name.
            names = [name.rstrip(" ") for name in names]
        if len(names) == count:
            return names
    return default


def _channels_first(variables: dict[str, Any], name: str, array: np.ndarray):  # noqa: ANN202
    """Return the matrix ``array`` of variable ``name`` with channels as rows.

    Names that fit one axis only decide which axis is channels, so that a
    (samples, channels) matrix with more channels than samples is not read
    transposed. Otherwise the longer axis is samples.
    """
    fits_rows = _channel_names(variables, name, array.shape[0]) is not None
    fits_columns = _channel_names(variables, name, array.shape[1]) is not None
    if fits_columns and not fits_rows:
        return array.T
    if fits_rows == fits_columns and array.shape[0] > array.shape[1]:
        return array.T
    return array


def read_mat(path: Path, options: ReadOptions) -> Recording:
    """Read one recording from a MATLAB .mat file (v5 or v7.3)."""
    import h5py

    is_v73 = h5py.is_hdf5(path)
    variables = _load_v73(path) if is_v73 else _load_v5(path)
    names, values, time = _pick(path, variables, options)
    if len(values) == 1 and values[0].ndim == 2:
        array = values[0]
        # _pick returns a matrix beside a time vector with channels first.
        if not time.dropped:
            array = _channels_first(variables, names[0], array)
        default = [f"{names[0]}[{i}]" for i in range(array.shape[0])]
        channels = _channel_names(variables, names[0], array.shape[0], default)
    else:
        channels = [name.rsplit(".", 1)[-1] for name in names]
        time = find_time_vectors(path, channels, lambda i: values[i], options)
        channel_rows = [i for i in range(len(names)) if i not in time.dropped]
        names = [names[i] for i in channel_rows]
        channels = [channels[i] for i in channel_rows]
        array = np.stack([np.atleast_1d(values[i]) for i in channel_rows])

    data, metadata = to_float32(array, channels=channels)
    data = finite_or_raise(path, data, channels, options.nan_policy)
    metadata.update({"mat_version": "7.3" if is_v73 else "5", "mat_variables": names})
    metadata.update(time.metadata())
    stored = _rate(path, variables, names)
    if stored is None:
        stored = time.rate
    rate = resolve_rate(path, stored, options.sample_rate)
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
