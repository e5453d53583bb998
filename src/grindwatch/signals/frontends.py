"""Front ends: what a detector sees of each window.

``raw`` passes the scaled samples through. ``spectrum`` turns each channel into log
band energies of a Hann-windowed FFT, so detectors compare frequency content.
``features`` computes per-channel statistics used by classical detectors. Every
front end maps (n, channels, length) to (n, channels, k).
"""

from __future__ import annotations

import numpy as np

from grindwatch.exceptions import ConfigError

__all__ = ["FEATURE_NAMES", "FRONTENDS", "FrontEnd", "band_edges"]

FRONTENDS = ("raw", "spectrum", "features")
FEATURE_NAMES = (
    "mean",
    "std",
    "rms",
    "peak",
    "peak_to_peak",
    "crest_factor",
    "skewness",
    "kurtosis",
    "zero_crossing_rate",
    "mean_abs_diff",
)


def band_edges(n_bins: int, n_bands: int) -> np.ndarray:
    """Edges of ``n_bands`` equal-width bands over ``n_bins`` FFT bins."""
    return np.linspace(0, n_bins, n_bands + 1).round().astype(int)


def _spectrum(X: np.ndarray, n_bands: int) -> np.ndarray:
    import scipy.fft

    length = X.shape[-1]
    taper = np.hanning(length).astype(np.float32)
    # SciPy's FFT transforms float32 about three times faster than NumPy's.
    power = np.abs(scipy.fft.rfft(X * taper, axis=-1)) ** 2
    edges = band_edges(power.shape[-1], n_bands)
    # Sum each band on its own. Differences of a float32 running sum lose every
    # band more than about 1e-7 below the loud bands before it.
    energy = np.add.reduceat(power, edges[:-1], axis=-1)
    return np.log10(energy + 1e-12).astype(np.float32)


def _features(X: np.ndarray) -> np.ndarray:
    X = X.astype(np.float64)
    mean = X.mean(axis=-1)
    centred = X - mean[..., None]
    std = centred.std(axis=-1)
    safe_std = np.where(std > 1e-12, std, 1.0)
    rms = np.sqrt((X**2).mean(axis=-1))
    peak = np.abs(X).max(axis=-1)
    standardised = centred / safe_std[..., None]
    signs = np.signbit(centred)
    return np.stack(
        [
            mean,
            std,
            rms,
            peak,
            X.max(axis=-1) - X.min(axis=-1),
            peak / np.where(rms > 1e-12, rms, 1.0),
            (standardised**3).mean(axis=-1),
            (standardised**4).mean(axis=-1),
            (signs[..., 1:] != signs[..., :-1]).mean(axis=-1),
            np.abs(np.diff(X, axis=-1)).mean(axis=-1),
        ],
        axis=-1,
    ).astype(np.float32)


class FrontEnd:
    """Transform scaled windows, then standardise each output with training values.

    Parameters
    ----------
    kind : {"raw", "spectrum", "features"}
    n_bands : int
        Number of frequency bands for ``spectrum``.

    Attributes
    ----------
    mean_, std_ : ndarray of shape (n_channels, k)
        Standardisation of the transformed training windows (``spectrum`` and
        ``features`` only; ``raw`` is already scaled per channel).
    """

    def __init__(self, kind: str = "raw", n_bands: int = 32) -> None:
        self.kind = kind
        self.n_bands = n_bands

    def _apply(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "raw":
            return X
        if self.kind == "spectrum":
            return _spectrum(X, self.n_bands)
        return _features(X)

    def fit(self, X: np.ndarray) -> FrontEnd:
        if self.kind not in FRONTENDS:
            raise ConfigError(
                f"frontend={self.kind!r} is invalid; use one of {', '.join(FRONTENDS)}"
            )
        if self.kind == "spectrum" and X.shape[-1] < 2:
            raise ConfigError(
                f"the spectrum front end needs windows of at least 2 samples, not "
                f"{X.shape[-1]}; use longer windows or the raw front end"
            )
        if self.kind == "spectrum" and not 1 <= self.n_bands <= X.shape[-1] // 2:
            raise ConfigError(
                f"frontend.n_bands={self.n_bands} does not fit windows of "
                f"{X.shape[-1]} samples, which have at most {X.shape[-1] // 2} "
                f"bands; set fewer (--set frontend.n_bands={X.shape[-1] // 2}) or "
                f"use longer windows"
            )
        if self.kind == "features" and X.shape[-1] < 2:
            # Zero-crossing rate and mean absolute difference compare neighbouring
            # samples.
            raise ConfigError(
                f"the features front end needs windows of at least 2 samples, not "
                f"{X.shape[-1]}; use longer windows or the raw front end"
            )
        if self.kind != "raw":
            transformed = self._apply(X)
            self.mean_ = transformed.mean(axis=0)
            std = transformed.std(axis=0)
            self.std_ = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        transformed = self._apply(X)
        if self.kind == "raw":
            return transformed
        return ((transformed - self.mean_) / self.std_).astype(np.float32)
