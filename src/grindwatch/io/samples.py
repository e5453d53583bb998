"""Sample-level checks and conversions shared by every reader.

- ``to_float32`` turns integer ADC counts into float before any arithmetic and
  records the scale used.
- ``check_quality`` finds constant (dead) and clipped channels.
- ``resample`` changes a recording's rate with an anti-aliasing filter.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import numpy as np

from grindwatch.exceptions import InputError
from grindwatch.io.recording import Recording

logger = logging.getLogger(__name__)

__all__ = [
    "CLIP_MIN_FRACTION",
    "CLIP_MIN_RUN",
    "FLOAT32_MIN_STEPS",
    "TIME_LIKE_MIN_SAMPLES",
    "apply_policies",
    "check_quality",
    "clipped_samples",
    "find_problems",
    "low_precision_channels",
    "resample",
    "resample_rows",
    "time_like_channels",
    "to_float32",
]

# A channel counts as clipped when at least this share of its samples (and at least
# CLIP_MIN_RUN samples) sit in runs of CLIP_MIN_RUN or more equal samples at its
# maximum or minimum. A noisy analogue signal almost never repeats its extreme value
# three times in a row; a saturated converter does.
CLIP_MIN_FRACTION = 0.001
CLIP_MIN_RUN = 3

# Samples are stored as float32, whose step at a value x is about x * 1.2e-7. A
# channel whose standard deviation spans fewer steps than this at its largest
# magnitude keeps only a coarse copy of its waveform. The float32 step at 2e7 is 2,
# so 2e7 plus a sine of amplitude 1 becomes one or a few levels.
FLOAT32_MIN_STEPS = 1000

# A channel of at least this many samples that rises by the same step at every
# sample, within 1% plus float32 rounding, is probably a time or index column.
TIME_LIKE_MIN_SAMPLES = 10


def _recorded(value: float | np.ndarray) -> float | list[float]:
    """Return a scale or offset as metadata: one float, or one per channel."""
    if np.ndim(value) == 0:
        return float(value)
    return [float(item) for item in np.ravel(value)]


def to_float32(
    values: np.ndarray,
    scale: float | np.ndarray | None = None,
    offset: float | np.ndarray | None = None,
    channels: list[str] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Convert samples to float32, applying ``values * scale + offset`` if given.

    ``scale`` and ``offset`` are one number, or arrays of shape (channels, 1)
    with one value per row of ``values``, recorded in the metadata as lists.

    Integer samples go through float64 first, so unsigned counts cannot wrap around
    and the scale is applied without loss. Returns the array and the metadata that
    records the conversion: ``source_dtype``, and for integers ``full_scale`` (the
    largest magnitude the type can represent), ``scale`` and ``offset``. With
    ``channels``, one name per row of ``values``, the rows that float32 keeps with
    few distinct values are listed in ``low_precision_channels`` (see
    ``low_precision_channels``), judged on the values before the conversion.
    """
    values = np.asarray(values)
    metadata: dict[str, Any] = {"source_dtype": str(values.dtype)}
    if values.dtype.kind in "iu":
        info = np.iinfo(values.dtype)
        metadata["full_scale"] = int(max(abs(info.min), info.max))
        metadata["scale"] = 1.0 if scale is None else _recorded(scale)
        metadata["offset"] = 0.0 if offset is None else _recorded(offset)
        converted = values.astype(np.float64)
    elif values.dtype.kind in "fb":
        scaled = scale is not None or offset is not None
        converted = values.astype(np.float64) if scaled else values
        if scale is not None:
            metadata["scale"] = _recorded(scale)
        if offset is not None:
            metadata["offset"] = _recorded(offset)
    else:
        raise TypeError(f"samples of dtype {values.dtype} are not numbers")
    if scale is not None:
        converted = converted * scale
    if offset is not None:
        converted = converted + offset
    if channels is not None and converted.ndim == 2:
        coarse = low_precision_channels(channels, list(converted))
        if coarse:
            metadata["low_precision_channels"] = coarse
    return np.asarray(converted, dtype=np.float32), metadata


def _runs_at(row: np.ndarray, value: float) -> np.ndarray:
    """Mask of samples equal to ``value`` that lie in runs of CLIP_MIN_RUN or more."""
    hit = row == value
    if not hit.any():
        return hit
    edges = np.flatnonzero(np.diff(np.r_[0, hit.astype(np.int8), 0]))
    starts, ends = edges[::2], edges[1::2]
    mask = np.zeros_like(hit)
    for start, end in zip(starts, ends, strict=True):
        if end - start >= CLIP_MIN_RUN:
            mask[start:end] = True
    return mask


def clipped_samples(row: np.ndarray, integer_limits: tuple[int, int] | None = None):
    """Return the mask of clipped samples in one channel.

    Samples at an integer type's limits always count; otherwise the plateau rule of
    CLIP_MIN_FRACTION and CLIP_MIN_RUN applies.
    """
    mask = _runs_at(row, row.max()) | _runs_at(row, row.min())
    if mask.sum() < max(CLIP_MIN_RUN, CLIP_MIN_FRACTION * row.size):
        mask[:] = False
    if integer_limits is not None:
        mask |= (row <= integer_limits[0]) | (row >= integer_limits[1])
    return mask


def _integer_limits(metadata: dict[str, Any]) -> tuple[int, int] | None:
    dtype = metadata.get("source_dtype", "")
    if not dtype or np.dtype(dtype).kind not in "iu":
        return None
    if metadata.get("scale", 1.0) != 1.0 or metadata.get("offset", 0.0) != 0.0:
        return None  # scaled values no longer sit on the type's limits
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


def find_problems(
    channels: list[str],
    rows: list[np.ndarray],
    integer_limits: tuple[int, int] | None = None,
    already_clipped: dict[str, int] | None = None,
) -> tuple[list[str], dict[str, int]]:
    """Return the constant channels and the clipped ones with their first clipped
    sample. Rows may differ in length (streams of a cycle folder)."""
    constant = [
        name
        for name, row in zip(channels, rows, strict=True)
        if row.size and row.min() == row.max()
    ]
    clipped = dict(already_clipped or {})
    for name, row in zip(channels, rows, strict=True):
        if name in constant or name in clipped or row.size == 0:
            continue
        mask = clipped_samples(row, integer_limits)
        if mask.any():
            clipped[name] = int(np.argmax(mask))
    return constant, clipped


def low_precision_channels(
    channels: list[str], rows: list[np.ndarray]
) -> dict[str, float]:
    """Return the channels that float32 stores with few distinct values.

    Maps each such channel to its standard deviation in float32 steps at its
    largest magnitude, which is below FLOAT32_MIN_STEPS. A large offset (a
    level of 2e7 around which the signal varies by 1) causes it. Pass the rows
    before they are converted to float32, which may already have made them
    constant. Constant rows and rows with NaN or infinite samples are skipped.
    """
    found = {}
    for name, row in zip(channels, rows, strict=True):
        if row.size < 2:
            continue
        # inf and values beyond the float32 range give NaN or inf here.
        with np.errstate(all="ignore"):
            spread = float(np.std(row, dtype=np.float64))
            magnitude = float(np.max(np.abs(row)))
            steps = spread / float(np.spacing(np.float32(magnitude)))
        if spread > 0 and steps < FLOAT32_MIN_STEPS:
            found[name] = round(steps, 2)
    return found


def time_like_channels(channels: list[str], rows: list[np.ndarray]) -> list[str]:
    """Return the channels that rise by one constant step from sample to sample.

    Such a channel is almost surely a time or sample index column read as a
    signal. Steps may differ by 1% of the median step plus twice the float32
    resolution at the channel's largest magnitude, the rounding that storing
    timestamps as float32 adds.
    """
    found = []
    for name, row in zip(channels, rows, strict=True):
        if row.size < TIME_LIKE_MIN_SAMPLES:
            continue
        # Most signals fall somewhere in their first samples: reject those
        # before the full pass, which would triple the time to read a file.
        if (np.diff(row[:TIME_LIKE_MIN_SAMPLES]) <= 0).any():
            continue
        steps = np.diff(row.astype(np.float64))
        if steps.min() <= 0:
            continue
        median = float(np.median(steps))
        rounding = 2.0 * float(np.spacing(np.float32(np.abs(row).max())))
        if np.abs(steps - median).max() <= 0.01 * median + rounding:
            found.append(name)
    return found


def apply_policies(
    source: object,
    constant: list[str],
    clipped: dict[str, int],
    constant_policy: str,
    clipping_policy: str,
) -> dict[str, Any]:
    """Raise for constant or clipped channels, or return the metadata recording them.

    Raises
    ------
    InputError
        With policy ``raise``, naming the file, the channel and, for clipping, the
        first clipped sample.
    """
    if constant and constant_policy == "raise":
        raise InputError(
            source,
            f"channel {constant[0]!r} is constant (zero variance)",
            "drop the channel with the channels option, or set constant_policy: warn",
        )
    if clipped and clipping_policy == "raise":
        name, position = next(iter(clipped.items()))
        raise InputError(
            source,
            f"channel {name!r} is clipped, first at sample {position}",
            "lower the sensor gain, or set clipping_policy: warn to keep it",
        )
    metadata: dict[str, Any] = {}
    if constant:
        metadata["constant_channels"] = constant
        logger.info("%s: constant channels %s", source, constant)
    if clipped:
        metadata["clipped_channels"] = clipped
        logger.info("%s: clipped channels %s", source, sorted(clipped))
    return metadata


def check_quality(
    recording: Recording,
    constant_policy: str = "warn",
    clipping_policy: str = "warn",
    time_like_among: set[str] | None = None,
) -> Recording:
    """Find constant and clipped channels; raise or record them per the policies.

    With ``warn`` the channels stay in the recording and are listed in
    ``metadata["constant_channels"]`` and ``metadata["clipped_channels"]`` (as
    ``{channel: first clipped sample}``), and ``load_recordings`` logs one summary
    warning for the data set. Channels that look like a time or index column (see
    ``time_like_channels``) are kept and listed in ``metadata["time_like_channels"]``
    whatever the policies, and so are those that the reader found float32 to store
    coarsely, in ``metadata["low_precision_channels"]``. ``time_like_among``
    limits the time-like check to those channels (None: all).

    Raises
    ------
    InputError
        If the recording contains no samples, or with policy ``raise`` for a constant
        or clipped channel, naming the file, the channel and the first clipped
        sample.
    """
    source = recording.source or recording.name
    if recording.n_samples == 0:
        raise InputError(
            source, "contains no samples", "check that the export finished"
        )
    constant, clipped = find_problems(
        recording.channels,
        list(recording.data),
        _integer_limits(recording.metadata),
        recording.metadata.get("clipped_channels"),
    )
    recording.metadata.update(
        apply_policies(source, constant, clipped, constant_policy, clipping_policy)
    )
    # The reader found these before the float32 conversion; keep only the channels
    # that a channel selection left in the recording.
    coarse = recording.metadata.pop("low_precision_channels", {})
    coarse = {name: coarse[name] for name in recording.channels if name in coarse}
    if coarse:
        recording.metadata["low_precision_channels"] = coarse
        logger.info(
            "%s: channels whose standard deviation spans few float32 steps %s",
            source,
            coarse,
        )
    time_like = [
        name
        for name in time_like_channels(recording.channels, list(recording.data))
        if time_like_among is None or name in time_like_among
    ]
    if time_like:
        recording.metadata["time_like_channels"] = time_like
        logger.info(
            "%s: channels that look like time or an index %s", source, time_like
        )
    return recording


# Largest denominator of the rate ratio. With 1000, a 999.7 Hz file for a 1 kHz
# model kept its samples (ratio 1/1) and a 3001 Hz one became 1/3. Times after
# resampling then ran 0.03 % off, which is 18 ms after one minute. With 10,000,
# a sweep of 20,000 source rates from 100 Hz to 60 kHz to targets of 1 kHz to
# 20 kHz found the ratio within 5e-5 of the true one, and within 4e-6 for 99 %
# of them. resample_poly's filter then has up to about 200,000 taps.
_MAX_DENOMINATOR = 10_000


def _ratio(source_rate: float, target_rate: float) -> tuple[int, int]:
    ratio = target_rate / source_rate
    if ratio < 1 / _MAX_DENOMINATOR:
        # A limited denominator rounds this ratio to 0 or its smallest step, so a
        # 100 kHz file for a 0.5 Hz model could not be resampled. One output
        # sample per whole number of input samples is within 0.005 % of the ratio.
        return 1, round(1 / ratio)
    fraction = Fraction(ratio).limit_denominator(_MAX_DENOMINATOR)
    return fraction.numerator, fraction.denominator


def resample_rows(data: np.ndarray, source_rate: float, target_rate: float):
    """Resample every row of ``data`` from ``source_rate`` to ``target_rate``.

    Uses polyphase filtering (``scipy.signal.resample_poly``), whose low-pass filter
    removes content above the new Nyquist frequency when downsampling. The rate
    ratio is approximated by a fraction with a denominator of at most 10,000,
    or, below 1/10,000, by one over a whole number.

    Raises
    ------
    ValueError
        If a rate is not a finite number greater than 0.
    """
    from scipy.signal import resample_poly

    for name, rate in (("source_rate", source_rate), ("target_rate", target_rate)):
        if not (np.isfinite(rate) and rate > 0):
            raise ValueError(
                f"{name} is {rate!r}; resampling needs rates greater than 0, in "
                "samples per second"
            )
    if np.isclose(source_rate, target_rate):
        return data
    up, down = _ratio(source_rate, target_rate)
    # resample_poly pads with zeros by default. Padding along a fitted line instead
    # keeps a signal with a large offset (a current) from dipping at the ends.
    out = resample_poly(data.astype(np.float64), up, down, axis=-1, padtype="line")
    return out.astype(np.float32)


def resample(recording: Recording, target_rate: float) -> Recording:
    """Return ``recording`` resampled to ``target_rate`` samples per second.

    Raises
    ------
    InputError
        If the recording's rate is unknown.
    ValueError
        If a rate is not a finite number greater than 0.
    """
    source = recording.source or recording.name
    if recording.sample_rate is None:
        raise InputError(
            source,
            "has no known sample rate, so it cannot be resampled",
            "set sample_rate in the config",
        )
    if np.isclose(recording.sample_rate, target_rate):
        return recording
    data = resample_rows(recording.data, recording.sample_rate, target_rate)
    metadata = dict(recording.metadata)
    metadata["resampled_from"] = recording.sample_rate
    logger.debug(
        "%s: resampled from %g to %g samples/s",
        source,
        recording.sample_rate,
        target_rate,
    )
    sample_labels = None
    if recording.sample_labels is not None:
        # Labels follow the nearest original sample.
        index = np.arange(data.shape[1]) * recording.sample_rate / target_rate
        index = np.minimum(index.round().astype(int), recording.n_samples - 1)
        sample_labels = recording.sample_labels[index]
    return Recording(
        name=recording.name,
        data=data,
        channels=list(recording.channels),
        sample_rate=float(target_rate),
        source=recording.source,
        label=recording.label,
        sample_labels=sample_labels,
        metadata=metadata,
    )
