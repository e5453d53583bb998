"""Generated recordings for the speed and memory measurements.

Each recording has four channels, like the gearbox data: two tones, a slow
modulation and noise, with a seed per recording. Generated data keeps the speed
figures independent of which data sets are present.
"""

from __future__ import annotations

import numpy as np

from grindwatch.io import Recording, RecordingSet

__all__ = ["CHANNELS", "SAMPLE_RATE", "make_recordings"]

CHANNELS = ["vib_x", "vib_y", "vib_z", "current"]
SAMPLE_RATE = 20_000.0


def _recording(index: int, n_samples: int) -> Recording:
    rng = np.random.default_rng(index)
    t = np.arange(n_samples) / SAMPLE_RATE
    phases = rng.uniform(0, 2 * np.pi, (len(CHANNELS), 1))
    tones = np.array([[180.0], [420.0], [1250.0], [50.0]])
    envelope = 1 + 0.2 * np.sin(2 * np.pi * 0.5 * t)
    data = envelope * np.sin(2 * np.pi * tones * t + phases)
    data += 0.2 * rng.standard_normal(data.shape)
    return Recording(
        name=f"cycle_{index:04d}",
        data=data.astype(np.float32),
        channels=list(CHANNELS),
        sample_rate=SAMPLE_RATE,
    )


def make_recordings(n_recordings: int, n_samples: int) -> RecordingSet:
    """``n_recordings`` generated four-channel recordings of ``n_samples`` each."""
    return RecordingSet([_recording(i, n_samples) for i in range(n_recordings)])
