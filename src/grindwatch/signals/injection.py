"""Synthetic anomalies injected into copies of normal windows, for label-free tuning.

Tuning holds out normal windows, injects one anomaly into a copy of each, and scores
how well a model's anomaly scores separate the copies from the originals. Every
injection acts on one channel of one window (signals) or on a few features of one row
(feature tables). It draws its parameters uniformly from the ranges below with the
caller's random generator and returns what it drew, so a run can be repeated and
logged.

Magnitudes are multiples of ``scale``, the robust standard deviation of the channel
(or feature) in the held-out data: the interquartile range divided by 1.349.

Signal windows, one channel of shape (length,):

- ``spike``: 1 to 3 single samples jump by 3 to 8 scale, either sign.
- ``noise_burst``: Gaussian noise of 0.5 to 2 scale is added to a segment of 5 to
  25 % of the window.
- ``level_shift``: every sample from a start point (10 to 75 % into the window) to
  the end is offset by 1 to 3 scale, either sign.
- ``dropout``: a segment of 10 to 40 % freezes at its first value.
- ``amplitude``: the deviations of a segment of 30 to 100 % from its own mean are
  multiplied by 0.3 to 0.6 or by 1.6 to 2.5.
- ``harmonic``: a sine of 0.3 to 1 scale, random phase, is added to the whole
  window at 2, 3 or 4 times its dominant frequency.
- ``frequency_shift``: a segment of 25 to 50 % is resampled 1.15 to 1.5 times
  faster or slower, so its frequencies scale by that factor.

Feature-table rows, shape (n_features,):

- ``feature_shift``: 1 to 3 features move by 3 to 6 times their scale, each with
  its own sign.
- ``feature_mix``: 30 to 60 % of the features take their values from another
  held-out row, which breaks the correlations between features.
- ``broad_shift``: 20 to 60 % of the features move by 3 to 10 times their scale,
  each with its own sign, as when a fault changes the whole process signal that
  many features are computed from.

Recurring anomalies (``inject_recurring``) reuse one draw of the parameters for
many windows: the same fault, seen again and again. Unlabeled production data
contains repeated faults, so tuning places a few of them in the data a trial fits
on and measures whether the trial still flags that fault in held-out windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_RECURRING",
    "SIGNAL_INJECTIONS",
    "TABLE_INJECTIONS",
    "InjectedWindows",
    "RecurringAnomalies",
    "add_broad_shift",
    "add_amplitude_change",
    "add_dropout",
    "add_feature_mix",
    "add_feature_shift",
    "add_frequency_shift",
    "add_harmonic",
    "add_level_shift",
    "add_noise_burst",
    "add_spike",
    "describe_injections",
    "inject_recurring",
    "inject_windows",
    "robust_scale",
]

Info = dict[str, Any]


def robust_scale(values: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """Interquartile range / 1.349 along ``axis``; the standard deviation where that
    is 0, and 1 where both are 0."""
    values = np.asarray(values, dtype=np.float64)
    low, high = np.percentile(values, [25, 75], axis=axis)
    scale = (high - low) / 1.349
    spread = values.std(axis=axis)
    scale = np.where(scale > 1e-12, scale, spread)
    return np.where(scale > 1e-12, scale, 1.0)


def _segment(rng: np.random.Generator, length: int, share: tuple[float, float]):
    """Draw a segment [start, stop) covering ``share`` of ``length`` samples."""
    size = int(round(rng.uniform(*share) * length))
    size = min(max(size, 1), length)
    start = int(rng.integers(0, length - size + 1))
    return start, start + size


def _signed(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high) * rng.choice([-1.0, 1.0]))


def add_spike(
    x: np.ndarray,
    rng: np.random.Generator,
    scale: float,
    count: tuple[int, int] = (1, 3),
    height: tuple[float, float] = (3.0, 8.0),
) -> tuple[np.ndarray, Info]:
    """Add ``count`` single-sample spikes of ``height`` times ``scale``."""
    out = x.copy()
    n = int(rng.integers(count[0], count[1] + 1))
    positions = np.sort(rng.choice(x.size, size=min(n, x.size), replace=False))
    heights = np.array([_signed(rng, *height) for _ in positions])
    out[positions] += (heights * scale).astype(x.dtype)
    return out, {"positions": positions.tolist(), "heights": heights.tolist()}


def add_noise_burst(
    x: np.ndarray,
    rng: np.random.Generator,
    scale: float,
    share: tuple[float, float] = (0.05, 0.25),
    noise: tuple[float, float] = (0.5, 2.0),
) -> tuple[np.ndarray, Info]:
    """Add Gaussian noise with standard deviation ``noise`` times ``scale`` to a
    segment."""
    out = x.copy()
    start, stop = _segment(rng, x.size, share)
    level = float(rng.uniform(*noise))
    out[start:stop] += (rng.standard_normal(stop - start) * level * scale).astype(
        x.dtype
    )
    return out, {"start": start, "stop": stop, "noise": level}


def add_level_shift(
    x: np.ndarray,
    rng: np.random.Generator,
    scale: float,
    start_share: tuple[float, float] = (0.1, 0.75),
    offset: tuple[float, float] = (1.0, 3.0),
) -> tuple[np.ndarray, Info]:
    """Offset every sample from a start point to the window's end by a constant."""
    out = x.copy()
    start = int(rng.uniform(*start_share) * x.size)
    level = _signed(rng, *offset)
    out[start:] += np.asarray(level * scale, dtype=x.dtype)
    return out, {"start": start, "stop": int(x.size), "offset": level}


def add_dropout(
    x: np.ndarray,
    rng: np.random.Generator,
    scale: float,
    share: tuple[float, float] = (0.1, 0.4),
) -> tuple[np.ndarray, Info]:
    """Freeze a segment at its first value, as a stuck sensor or lost samples do."""
    out = x.copy()
    start, stop = _segment(rng, x.size, share)
    out[start:stop] = x[start]
    return out, {"start": start, "stop": stop, "value": float(x[start])}


def add_amplitude_change(
    x: np.ndarray,
    rng: np.random.Generator,
    scale: float,
    share: tuple[float, float] = (0.3, 1.0),
    shrink: tuple[float, float] = (0.3, 0.6),
    grow: tuple[float, float] = (1.6, 2.5),
) -> tuple[np.ndarray, Info]:
    """Multiply a segment's deviations from its own mean by a factor."""
    out = x.copy()
    start, stop = _segment(rng, x.size, share)
    factor = float(rng.uniform(*(shrink if rng.random() < 0.5 else grow)))
    segment = x[start:stop].astype(np.float64)
    centre = segment.mean()
    out[start:stop] = (centre + (segment - centre) * factor).astype(x.dtype)
    return out, {"start": start, "stop": stop, "factor": factor}


def _dominant_frequency(x: np.ndarray) -> float:
    """Frequency of the largest non-zero FFT bin, in cycles per sample."""
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    if power.size < 2:
        return 0.0
    return float((np.argmax(power[1:]) + 1) / x.size)


def add_harmonic(
    x: np.ndarray,
    rng: np.random.Generator,
    scale: float,
    amplitude: tuple[float, float] = (0.3, 1.0),
    multiples: Sequence[int] = (2, 3, 4),
) -> tuple[np.ndarray, Info]:
    """Add a sine at a multiple of the window's dominant frequency.

    When that multiple would reach 0.45 cycles per sample (near Nyquist), or the
    window has no dominant frequency, the sine gets a random frequency between 2
    cycles per window and 0.25 cycles per sample instead.
    """
    base = _dominant_frequency(x)
    multiple = int(rng.choice(multiples))
    frequency = base * multiple
    if base == 0.0 or frequency >= 0.45:
        multiple = 0
        frequency = float(rng.uniform(min(2.0 / x.size, 0.25), 0.25))
    level = float(rng.uniform(*amplitude))
    phase = float(rng.uniform(0, 2 * np.pi))
    wave = level * scale * np.sin(2 * np.pi * frequency * np.arange(x.size) + phase)
    out = (x + wave).astype(x.dtype)
    return out, {
        "frequency": frequency,
        "multiple": multiple,
        "amplitude": level,
        "phase": phase,
    }


def add_frequency_shift(
    x: np.ndarray,
    rng: np.random.Generator,
    scale: float,
    share: tuple[float, float] = (0.25, 0.5),
    factor: tuple[float, float] = (1.15, 1.5),
) -> tuple[np.ndarray, Info]:
    """Resample a segment at ``factor`` times (or 1 / ``factor`` times) its speed.

    Sample ``start + j`` of the result is the input, linearly interpolated, at
    ``start + j * f``, so every frequency in the segment is multiplied by ``f``.
    Samples outside the segment are unchanged.
    """
    speed = float(rng.uniform(*factor))
    if rng.random() < 0.5:
        speed = 1.0 / speed
    size = int(round(rng.uniform(*share) * x.size))
    # The fast case reads past the segment's end: keep that read inside the window.
    size = max(1, min(size, int((x.size - 1) / max(speed, 1.0))))
    reach = int(np.ceil((size - 1) * max(speed, 1.0)))
    start = int(rng.integers(0, x.size - reach))
    positions = start + np.arange(size) * speed
    out = x.copy()
    out[start : start + size] = np.interp(positions, np.arange(x.size), x).astype(
        x.dtype
    )
    return out, {"start": start, "stop": start + size, "factor": speed}


def _move_features(
    row: np.ndarray, features: np.ndarray, shifts: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, Info]:
    """Add ``shifts`` times their scale to ``features`` of a copy of ``row``."""
    out = row.copy()
    out[features] += (shifts * scale[features]).astype(row.dtype)
    return out, {"features": features.tolist(), "shifts": shifts.tolist()}


def add_feature_shift(
    row: np.ndarray,
    rng: np.random.Generator,
    scale: np.ndarray,
    count: tuple[int, int] = (1, 3),
    shift: tuple[float, float] = (3.0, 6.0),
) -> tuple[np.ndarray, Info]:
    """Move ``count`` features by ``shift`` times their own scale."""
    n = min(int(rng.integers(count[0], count[1] + 1)), row.size)
    features = np.sort(rng.choice(row.size, size=n, replace=False))
    shifts = np.array([_signed(rng, *shift) for _ in features])
    return _move_features(row, features, shifts, scale)


def add_feature_mix(
    row: np.ndarray,
    rng: np.random.Generator,
    scale: np.ndarray,
    pool: np.ndarray,
    exclude: int | None = None,
    share: tuple[float, float] = (0.3, 0.6),
) -> tuple[np.ndarray, Info]:
    """Replace a share of the features with those of a random row of ``pool``.

    Each feature keeps a value seen in normal data, but the row as a whole mixes two
    cycles, so correlations between features break. ``exclude`` is the index of
    ``row`` itself in ``pool``, never drawn as donor unless ``pool`` has no other
    row. The copy is then unchanged.
    """
    out = row.copy()
    if exclude is None or pool.shape[0] < 2:
        donor = int(rng.integers(0, pool.shape[0]))
    else:
        donor = int(rng.integers(0, pool.shape[0] - 1))
        donor += int(donor >= exclude)
    n = min(max(1, int(round(rng.uniform(*share) * row.size))), row.size)
    features = np.sort(rng.choice(row.size, size=n, replace=False))
    out[features] = pool[donor, features]
    return out, {"features": features.tolist(), "donor": donor}


def add_broad_shift(
    row: np.ndarray,
    rng: np.random.Generator,
    scale: np.ndarray,
    share: tuple[float, float] = (0.2, 0.6),
    shift: tuple[float, float] = (3.0, 10.0),
) -> tuple[np.ndarray, Info]:
    """Move a ``share`` of the features by ``shift`` times their own scale."""
    n = min(max(1, int(round(rng.uniform(*share) * row.size))), row.size)
    features = np.sort(rng.choice(row.size, size=n, replace=False))
    shifts = rng.uniform(*shift, size=n) * rng.choice([-1.0, 1.0], size=n)
    return _move_features(row, features, shifts, scale)


# The call that draws parameters for one channel (signals) or one row (tables).
SignalInjection = Callable[
    [np.ndarray, np.random.Generator, float], tuple[np.ndarray, Info]
]

SIGNAL_INJECTIONS: dict[str, SignalInjection] = {
    "spike": add_spike,
    "noise_burst": add_noise_burst,
    "level_shift": add_level_shift,
    "dropout": add_dropout,
    "amplitude": add_amplitude_change,
    "harmonic": add_harmonic,
    "frequency_shift": add_frequency_shift,
}
TABLE_INJECTIONS: dict[str, Callable[..., tuple[np.ndarray, Info]]] = {
    "feature_shift": add_feature_shift,
    "feature_mix": add_feature_mix,
    "broad_shift": add_broad_shift,
}
# Recurring anomalies used when the caller names none: the broad shift for tables,
# where repeated faults that change a few features are hard to tell from the
# spread of normal cycles, and every signal type.
DEFAULT_RECURRING = {"table": ("broad_shift",), "signals": tuple(SIGNAL_INJECTIONS)}


def _registry(kind: str, names: Sequence[str]) -> dict[str, Callable[..., Any]]:
    registry = TABLE_INJECTIONS if kind == "table" else SIGNAL_INJECTIONS
    unknown = sorted(set(names) - set(registry))
    if unknown:
        raise ValueError(
            f"unknown injection types {unknown} for {kind}; use some of "
            f"{list(registry)}"
        )
    return registry


def describe_injections(kind: str, types: Sequence[str] | None = None) -> list[Info]:
    """List each injection type of ``kind`` with its parameter ranges, for JSON."""
    import inspect

    registry = TABLE_INJECTIONS if kind == "table" else SIGNAL_INJECTIONS
    described = []
    for name in types or list(registry):
        function = registry[name]
        # Parameters with a tuple default are the ranges (or choices) drawn from.
        ranges = {
            parameter.name: list(parameter.default)
            for parameter in inspect.signature(function).parameters.values()
            if isinstance(parameter.default, tuple)
        }
        summary = (function.__doc__ or "").strip().split("\n\n")[0]
        described.append(
            {"type": name, "summary": " ".join(summary.split()), "parameters": ranges}
        )
    return described


@dataclass
class InjectedWindows:
    """Copies of windows, each with one injected anomaly.

    Attributes
    ----------
    X : ndarray of shape (n_windows, n_channels, length)
        The injected copies, in the order of the input windows.
    types : ndarray of shape (n_windows,), str
        The injection type of each copy.
    channels : ndarray of shape (n_windows,), int
        The channel (or, for tables, -1) that each injection changed.
    details : list of dict
        The drawn parameters of each injection.
    """

    X: np.ndarray
    types: np.ndarray
    channels: np.ndarray
    details: list[Info] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        names, counts = np.unique(self.types, return_counts=True)
        return {
            str(name): int(count) for name, count in zip(names, counts, strict=True)
        }


def inject_windows(
    X: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    types: Sequence[str] | None = None,
) -> InjectedWindows:
    """Inject one anomaly into a copy of each window.

    Types take turns in a random order, so each type gets an equal share (within one
    window). For signals the channel is drawn at random; for tables (``kind`` "table",
    windows shaped (n, n_features, 1)) each row is changed as a whole.

    Parameters
    ----------
    X : ndarray of shape (n_windows, n_channels, length)
        Normal raw windows, before scaling; they are not modified.
    kind : {"signals", "table"}
    rng : numpy Generator
    types : sequence of str, optional
        Injection types to use; all of the kind's types by default.
    """
    registry = _registry(kind, types or [])
    names = list(types) if types else list(registry)
    order = rng.permutation(X.shape[0])
    assigned = np.empty(X.shape[0], dtype=object)
    assigned[order] = [names[i % len(names)] for i in range(X.shape[0])]

    out = X.copy()
    channels = np.full(X.shape[0], -1, dtype=np.int64)
    details: list[Info] = []
    if kind == "table":
        rows = X[:, :, 0]
        scale = robust_scale(rows, axis=0)
        for i, name in enumerate(assigned):
            extra = {"pool": rows, "exclude": i} if name == "feature_mix" else {}
            out[i, :, 0], info = registry[name](rows[i], rng, scale, **extra)
            details.append(info)
    else:
        scale = robust_scale(X, axis=(0, 2))
        for i, name in enumerate(assigned):
            channel = int(rng.integers(0, X.shape[1]))
            out[i, channel], info = registry[name](X[i, channel], rng, scale[channel])
            channels[i] = channel
            details.append(info)
    return InjectedWindows(
        X=out, types=assigned.astype(str), channels=channels, details=details
    )


@dataclass
class RecurringAnomalies:
    """Recurring anomalies placed in fitting windows and in held-out copies.

    Attributes
    ----------
    fit : ndarray of shape (n_fit, n_channels, length)
        The fitting windows, with the rows ``fit_rows`` replaced by copies that
        carry a recurring anomaly.
    fit_rows : ndarray of int
    held_out : ndarray of shape (n_held, n_channels, length)
        A copy of each held-out window carrying one of the recurring anomalies.
    types : ndarray of shape (n_held,), str
        The type of the anomaly in each held-out copy.
    patterns : list of dict
        Per recurring anomaly: its type, channel (-1 for tables), seed and the
        parameters drawn in its first use.
    """

    fit: np.ndarray
    fit_rows: np.ndarray
    held_out: np.ndarray
    types: np.ndarray
    patterns: list[Info] = field(default_factory=list)


def inject_recurring(
    fit: np.ndarray,
    held_out: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    share: float,
    types: Sequence[str] | None = None,
) -> RecurringAnomalies:
    """Place recurring anomalies in a ``share`` of ``fit`` and in held-out copies.

    One pattern is drawn per type: a channel (signals) and a seed. Every use of a
    pattern draws its parameters from a new generator with that seed, so each
    window carrying it gets the same change (the same spike positions, the same
    shifted features, the same offset). Magnitudes use the robust scale of ``fit``,
    so a pattern changes fitting and held-out windows by the same amount. The
    patterns take turns over the ``share`` of fitting windows (at least one
    window, never all). When that share is fewer windows than there are types,
    a random subset of the types is used.

    Parameters
    ----------
    fit, held_out : ndarray of shape (n, n_channels, length)
        Raw windows, before scaling; they are not modified.
    kind : {"signals", "table"}
    rng : numpy Generator
    share : float
        Share of the fitting windows to replace, in (0, 1).
    types : sequence of str, optional
        Injection types to draw patterns from; ``DEFAULT_RECURRING`` by default.
    """
    names = list(types) if types else list(DEFAULT_RECURRING[kind])
    registry = _registry(kind, names)
    if not 0 < share < 1:
        raise ValueError(f"share={share} must lie between 0 and 1")
    if fit.shape[0] < 2:
        raise ValueError("recurring anomalies need at least two fitting windows")
    # At least one window carries a pattern, and at least one stays clean.
    n_fit = min(max(1, int(round(share * fit.shape[0]))), fit.shape[0] - 1)
    if n_fit < len(names):
        keep = np.sort(rng.choice(len(names), size=n_fit, replace=False))
        names = [names[i] for i in keep]
    table = kind == "table"
    scale = robust_scale(fit[:, :, 0], axis=0) if table else robust_scale(fit, (0, 2))
    patterns = [
        {
            "type": name,
            "channel": -1 if table else int(rng.integers(0, fit.shape[1])),
            "seed": int(rng.integers(0, 2**31)),
        }
        for name in names
    ]

    def apply(
        X: np.ndarray, assigned: np.ndarray, pool_rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Inject each row's assigned pattern; ``pool_rows`` are the rows' own
        indices in ``fit``, which a feature mix must not draw as its donor."""
        out = X.copy()
        for i, index in enumerate(assigned):
            pattern = patterns[index]
            function = registry[pattern["type"]]
            draw = np.random.default_rng(pattern["seed"])
            if table:
                extra = {}
                if pattern["type"] == "feature_mix":
                    extra["pool"] = fit[:, :, 0]
                    if pool_rows is not None:
                        extra["exclude"] = int(pool_rows[i])
                out[i, :, 0], info = function(X[i, :, 0], draw, scale, **extra)
            else:
                channel = pattern["channel"]
                out[i, channel], info = function(X[i, channel], draw, scale[channel])
            pattern.setdefault("parameters", info)
        return out

    fit_rows = np.sort(rng.choice(fit.shape[0], size=n_fit, replace=False))
    fit_assigned = np.arange(n_fit) % len(names)
    held_assigned = rng.permutation(held_out.shape[0]) % len(names)
    contaminated = fit.copy()
    contaminated[fit_rows] = apply(fit[fit_rows], fit_assigned, fit_rows)
    return RecurringAnomalies(
        fit=contaminated,
        fit_rows=fit_rows,
        held_out=apply(held_out, held_assigned),
        types=np.array(names)[held_assigned].astype(str),
        patterns=patterns,
    )
