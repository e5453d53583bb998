"""Front ends: the spectrum's band energies against a float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

import grindwatch
from grindwatch.config import Config
from grindwatch.exceptions import ConfigError
from grindwatch.io.recording import Recording, RecordingSet
from grindwatch.signals import FrontEnd
from grindwatch.signals.frontends import band_edges


def _reference_spectrum(X: np.ndarray, n_bands: int) -> np.ndarray:
    """Log band energies computed in float64, one band sum at a time."""
    power = np.abs(np.fft.rfft(X.astype(np.float64) * np.hanning(X.shape[-1]))) ** 2
    edges = band_edges(power.shape[-1], n_bands)
    bands = [
        power[..., start:stop].sum(axis=-1)
        for start, stop in zip(edges[:-1], edges[1:], strict=True)
    ]
    energy = np.stack(bands, axis=-1)
    return np.log10(energy + 1e-12)


def test_spectrum_matches_float64_reference():
    X = np.random.default_rng(0).standard_normal((16, 3, 1024)).astype(np.float32)

    bands = FrontEnd("spectrum", 32)._apply(X)

    assert bands.shape == (16, 3, 32)
    assert bands.dtype == np.float32
    np.testing.assert_allclose(bands, _reference_spectrum(X, 32), atol=1e-4)


def test_spectrum_keeps_quiet_band_beside_loud_one():
    t = np.arange(1024)
    loud = 1000 * np.sin(2 * np.pi * 5 * t / 1024)
    quiet = 1e-3 * np.sin(2 * np.pi * 400 * t / 1024)
    X = (loud + quiet).astype(np.float32)[None, None]

    bands = FrontEnd("spectrum", 32)._apply(X)[0, 0]
    reference = _reference_spectrum(X, 32)[0, 0]

    # Bin 400 lies in band 24 (bins 385 to 400): 1e-6 of the loud tone's energy.
    assert bands[24] > -2.0
    np.testing.assert_allclose(bands[24], reference[24], atol=0.05)


def test_features_reject_one_sample_windows():
    windows = np.ones((4, 2, 1), dtype=np.float32)

    with pytest.raises(ConfigError, match="at least 2 samples"):
        FrontEnd("features").fit(windows)


def test_spectrum_rejects_one_sample_windows():
    # A search space with 1-sample windows caps n_bands at 1, which still does not
    # fit, and the fix must not suggest 0 bands.
    windows = np.ones((4, 2, 1), dtype=np.float32)

    with pytest.raises(ConfigError, match="at least 2 samples") as error:
        FrontEnd("spectrum", 1).fit(windows)

    assert "n_bands=0" not in str(error.value)


def test_spectrum_bands_error_names_setting():
    windows = np.ones((4, 2, 60), dtype=np.float32)

    with pytest.raises(ConfigError) as error:
        FrontEnd("spectrum", 32).fit(windows)

    assert "frontend.n_bands=32" in str(error.value)
    assert "--set frontend.n_bands=30" in str(error.value)


def _setpoint_cycles(rng: np.random.Generator, n: int) -> list[Recording]:
    # A noisy vibration channel beside a set point held at exactly 5.
    t = np.arange(2000) / 1000
    cycles = []
    for index in range(n):
        vibration = np.sin(2 * np.pi * 50 * t) + 0.1 * rng.standard_normal(t.size)
        data = np.stack([vibration, np.full(t.size, 5.0)])
        cycles.append(Recording(f"c{index}", data, ["vib", "setpoint"], 1000.0))
    return cycles


@pytest.mark.parametrize(
    ("kind", "step", "flagged"),
    [("spectrum", 0.05, True), ("features", 0.5, False)],
)
def test_constant_channel_change_by_front_end(kind, step, flagged):
    # The scaler's warning states which front ends flag a small change in a
    # channel that was constant in training. This checks both claims.
    rng = np.random.default_rng(0)
    config = Config().with_overrides(
        {
            "windows.length": 200,
            "frontend.kind": kind,
            "detector.family": "knn",
            "cycle.enabled": False,
            "tracking.enabled": False,
        }
    )
    with pytest.warns(UserWarning, match="features a change of a few units can pass"):
        model = grindwatch.train(RecordingSet(_setpoint_cycles(rng, 20)), config).model
    (changed,) = _setpoint_cycles(rng, 1)
    changed.data[1, 800:1200] += step

    result = model.score([changed])

    assert bool(result.recordings["flag"].iloc[0]) is flagged
    if flagged:
        assert result.recordings["top_channel"].iloc[0] == "setpoint"
