"""Cycle folders as a grinding machine's data logger writes them.

One folder per cycle, named by its start time (``2024.02.14_22.01.41_Grinding/``),
holding ``meta.json`` (tool, material, experiment number, process, start time) and a
``raw/`` folder of Parquet files, one per sensor stream. Each column's name carries
its signal, rate, clipping flag and batch number, e.g.
``AEKi_rate2000000_clipping0_batch0`` (acoustic emission at 2 MHz) or
``Grinding spindle current L1_rate100000_clipping0_batch0``. Streams of different
rates start together at the cycle's start time.

A cycle becomes one recording in one of two ways (``ReadOptions.cycle_mode``, with
per-stream exceptions in ``stream_modes``):

``resample``
    Every channel is resampled to one common rate (``resample_rate``, default the
    lowest stream rate) with an anti-aliasing filter. The recording contains samples.
``features``
    All channels are cut into the same time frames (``frame_seconds`` long, every
    ``frame_hop_seconds``). A ``features`` channel gives per-frame statistics
    computed at its own rate (``<channel>.<statistic>``: mean, std, rms, peak, ...,
    and ``<channel>.band<k>`` log band energies); a ``resample`` channel gives its
    mean per frame. The recording contains one column per frame, and its sample rate
    is frames per second, so detectors with window length 1 and the ``raw`` front
    end score each frame.

Columns whose names do not follow the pattern are left out, and a cycle whose
streams end at different times is cut to the shortest stream.

NOTE: the layout, the column pattern and the meaning of the clipping flag (non-zero
when the logger saw clipping) are inferred from the logger's file and column names;
no real raw file was available to check them against.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grindwatch.exceptions import InputError, shorten_list
from grindwatch.io.frames import finite_or_raise
from grindwatch.io.options import CYCLE_MODES, ReadOptions
from grindwatch.io.parquet import read_parquet_frame
from grindwatch.io.recording import Recording
from grindwatch.io.samples import (
    apply_policies,
    find_problems,
    low_precision_channels,
    resample_rows,
)

logger = logging.getLogger(__name__)

__all__ = ["COLUMN_PATTERN", "is_cycle_folder", "read_cycle_folder"]

COLUMN_PATTERN = re.compile(
    r"^(?P<channel>.+)_rate(?P<rate>\d+(?:\.\d+)?)_clipping(?P<clipping>\d+)"
    r"_batch(?P<batch>\d+)$"
)
# The logger numbers the parts of a stream in the file name: "...-0.parquet".
_PART_NUMBER = re.compile(r"-(\d+)$")


@dataclass
class _Channel:
    name: str
    rate: float
    values: np.ndarray
    clipping: int
    # Standard deviation in float32 steps, when below FLOAT32_MIN_STEPS.
    low_precision_steps: float | None = None


def is_cycle_folder(path: Path) -> bool:
    """Return True for a folder holding ``meta.json`` and a ``raw/`` folder."""
    return path.is_dir() and (path / "meta.json").is_file() and (path / "raw").is_dir()


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(
            path, f"is not readable JSON ({error})", "check the file"
        ) from None
    if not isinstance(meta, dict):
        raise InputError(path, f"contains a {type(meta).__name__}, not a JSON object")
    return meta


def _part_key(path: Path) -> tuple[int, str]:
    match = _PART_NUMBER.search(path.stem)
    return (int(match.group(1)) if match else 0, path.name)


def _read_channels(folder: Path, options: ReadOptions) -> list[_Channel]:
    files = sorted((folder / "raw").glob("*.parquet"), key=_part_key)
    if not files:
        raise InputError(
            folder / "raw", "contains no Parquet file", "check that the logger finished"
        )
    # (channel) -> list of (part, batch, values); rate and clipping per channel.
    parts: dict[str, list[tuple[tuple[int, str], int, np.ndarray]]] = {}
    rates: dict[str, float] = {}
    clipping: dict[str, int] = {}
    for path in files:
        frame = read_parquet_frame(path)
        for column in frame.columns:
            match = COLUMN_PATTERN.match(str(column))
            if match is None:
                logger.info(
                    "%s: column %r is not a logger stream; left out", path, column
                )
                continue
            name, rate = match.group("channel"), float(match.group("rate"))
            if rate <= 0:
                raise InputError(
                    path,
                    f"column {column!r} gives sample rate {rate:g}, which is not a "
                    "positive number of samples per second",
                    "check that these are the logger's raw files",
                )
            if rates.setdefault(name, rate) != rate:
                raise InputError(
                    path,
                    f"channel {name!r} appears at rates {rates[name]:g} and {rate:g}",
                    "keep one rate per channel in a cycle folder",
                )
            values = frame[column].dropna().to_numpy()
            parts.setdefault(name, []).append(
                (_part_key(path), int(match.group("batch")), values)
            )
            clipping[name] = max(clipping.get(name, 0), int(match.group("clipping")))
    if not parts:
        raise InputError(
            folder / "raw",
            "contains no column named like <signal>_rate<Hz>_clipping<n>_batch<n>",
            "check that these are the logger's raw files",
        )
    channels = []
    for name, pieces in parts.items():
        pieces.sort(key=lambda piece: (piece[0], piece[1]))
        values = np.concatenate([piece[2] for piece in pieces])
        channels.append(_Channel(name, rates[name], values, clipping[name]))
    return _selected(folder, channels, options)


def _selected(folder: Path, channels: list[_Channel], options: ReadOptions):  # noqa: ANN202
    if options.channels is None:
        return channels
    by_name = {channel.name: channel for channel in channels}
    missing = [name for name in options.channels if name not in by_name]
    if missing:
        raise InputError(
            folder,
            f"missing channels {shorten_list(missing)}; the cycle has "
            f"{shorten_list(list(by_name))}",
            "fix the channel names in the config",
        )
    return [by_name[name] for name in options.channels]


def _aligned(folder: Path, channels: list[_Channel], options: ReadOptions):  # noqa: ANN202
    """Convert to float, check for NaN and cut all channels to the shortest duration."""
    for channel in channels:
        if channel.values.dtype.kind not in "iufb" or channel.values.size == 0:
            raise InputError(
                folder,
                f"channel {channel.name!r} contains no numeric samples",
                "check the logger's raw files",
            )
        as_float64 = channel.values.astype(np.float64)
        coarse = low_precision_channels([channel.name], [as_float64])
        channel.low_precision_steps = coarse.get(channel.name)
        values = as_float64.astype(np.float32)[None, :]
        channel.values = finite_or_raise(
            folder, values, [channel.name], options.nan_policy
        )[0]
    durations = {c.name: c.values.size / c.rate for c in channels}
    shortest = min(durations.values())
    if max(durations.values()) - shortest > 0.01 * max(durations.values()):
        logger.info(
            "%s: streams end at different times %s; cut to %.6g s",
            folder,
            durations,
            shortest,
        )
    for channel in channels:
        channel.values = channel.values[: int(round(shortest * channel.rate))]
    return channels, shortest


def _resampled(channels: list[_Channel], rate: float) -> np.ndarray:
    rows = [resample_rows(c.values[None, :], c.rate, rate)[0] for c in channels]
    length = min(row.size for row in rows)
    return np.stack([row[:length] for row in rows])


def _frames(channel: _Channel, n_frames: int, frame_s: float, hop_s: float):  # noqa: ANN202
    # Rounding can make a frame one sample longer than a channel cut to the cycle.
    length = min(max(int(round(frame_s * channel.rate)), 1), channel.values.size)
    starts = np.round(np.arange(n_frames) * hop_s * channel.rate).astype(np.int64)
    starts = np.minimum(starts, channel.values.size - length)
    view = np.lib.stride_tricks.sliding_window_view(channel.values, length)
    return view[starts]  # (n_frames, length)


def _frame_features(
    channels: list[_Channel], duration: float, options: ReadOptions, source: Path
) -> tuple[np.ndarray, list[str]]:
    from grindwatch.signals.frontends import FEATURE_NAMES, _features, _spectrum

    frame_s = options.frame_seconds
    hop_s = options.frame_hop_seconds or frame_s
    n_frames = int(np.floor((duration - frame_s) / hop_s + 1e-9)) + 1
    if duration < frame_s or n_frames < 1:
        raise InputError(
            source,
            f"lasts {duration:.6g} s, shorter than one frame of {frame_s:g} s",
            "lower frame_seconds or leave this cycle out",
        )
    rows, names = [], []
    for channel in channels:
        frames = _frames(channel, n_frames, frame_s, hop_s)
        if options.stream_mode(channel.name) == "resample":
            rows.append(frames.mean(axis=1)[None, :])
            names.append(channel.name)
            continue
        statistics = _features(frames[:, None, :])[:, 0, :].T  # (10, n_frames)
        rows.append(statistics)
        names.extend(f"{channel.name}.{statistic}" for statistic in FEATURE_NAMES)
        n_bands = min(options.frame_bands, frames.shape[1] // 2)
        if n_bands > 0:
            bands = _spectrum(frames[:, None, :], n_bands)[:, 0, :].T
            rows.append(bands)
            names.extend(f"{channel.name}.band{k}" for k in range(n_bands))
    return np.concatenate(rows).astype(np.float32), names


def _quality(folder: Path, channels: list[_Channel], options: ReadOptions):  # noqa: ANN202
    """Check each channel at its own rate, before resampling or features hide it."""
    # The logger's own clipping flag counts too; where it clipped is then unknown,
    # unless the samples show a plateau.
    flagged = {c.name: 0 for c in channels if c.clipping}
    constant, clipped = find_problems(
        [c.name for c in channels], [c.values for c in channels]
    )
    for name in flagged:
        clipped.setdefault(name, 0)
    quality = apply_policies(
        folder, constant, clipped, options.constant_policy, options.clipping_policy
    )
    coarse = {
        c.name: c.low_precision_steps
        for c in channels
        if c.low_precision_steps is not None
    }
    if coarse:
        quality["low_precision_channels"] = coarse
    return quality


def read_cycle_folder(folder: Path, options: ReadOptions) -> Recording:
    """Read one cycle folder into a recording.

    ``metadata["meta"]`` contains the fields of ``meta.json``, ``metadata["streams"]``
    each channel's own rate, and ``metadata["cycle_mode"]`` the mode used.

    Raises
    ------
    InputError
        If ``meta.json`` is not a JSON object, ``raw/`` contains no logger stream, a
        stream file is unreadable, a channel contains NaN (with ``nan_policy: raise``),
        or the cycle is shorter than one frame.
    """
    modes = {options.cycle_mode, *dict(options.stream_modes).values()}
    if not modes <= set(CYCLE_MODES):
        raise InputError(
            folder,
            f"cycle modes {sorted(modes - set(CYCLE_MODES))} are invalid",
            f"use one of {', '.join(CYCLE_MODES)}",
        )
    meta = _read_meta(folder)
    channels, duration = _aligned(folder, _read_channels(folder, options), options)
    quality = _quality(folder, channels, options)
    streams = {channel.name: channel.rate for channel in channels}
    use_features = any(options.stream_mode(c.name) == "features" for c in channels)
    if use_features:
        data, names = _frame_features(channels, duration, options, folder)
        rate = 1.0 / (options.frame_hop_seconds or options.frame_seconds)
        mode = "features"
    else:
        rate = options.resample_rate or min(streams.values())
        data, names = _resampled(channels, rate), [c.name for c in channels]
        mode = "resample"
    if data.shape[1] == 0:
        raise InputError(folder, "contains no samples", "check the logger's raw files")

    metadata: dict[str, Any] = {
        "meta": meta,
        "streams": streams,
        "cycle_mode": mode,
        "duration_s": duration,
    }
    metadata.update(quality)
    if use_features:
        metadata["frame_seconds"] = options.frame_seconds
        metadata["frame_hop_seconds"] = (
            options.frame_hop_seconds or options.frame_seconds
        )
    return Recording(
        name=folder.name,
        data=data,
        channels=names,
        sample_rate=float(rate),
        source=folder,
        metadata=metadata,
    )
