"""Generate grinding cycles in a grinding machine logger's folder layout.

Real raw cycles are large and not redistributable, so tests and benchmarks use
these. Each cycle goes through approach (no contact), spark-in (load ramps up),
grinding (full load) and spark-out (load decays). Acoustic emission (AE) is
broadband noise whose amplitude follows the load, with short bursts from grain
fractures; the three spindle phase currents are line-frequency sines whose amplitude
follows the load, and ``Irms_Grinding`` is their RMS.

Two anomalies can be injected in the second half of the grinding phase:

``burn``
    AE energy rises and gains high-frequency content, and the current rises.
``chatter``
    AE and current amplitudes are modulated at a chatter frequency (300-600 Hz).

The signal levels are plausible but invented; they are not calibrated against a real
machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

__all__ = ["ANOMALIES", "CURRENT_CHANNELS", "GeneratedCycle", "write_grinding_cycles"]

ANOMALIES = ("burn", "chatter")
CURRENT_CHANNELS = (
    "Irms_Grinding",
    "Grinding spindle current L1",
    "Grinding spindle current L2",
    "Grinding spindle current L3",
)
LINE_FREQUENCY = 50.0


@dataclass(frozen=True)
class GeneratedCycle:
    """One written cycle folder and the anomaly injected into it (None if normal)."""

    path: Path
    anomaly: str | None


def _load_envelope(t: np.ndarray, duration: float, rng: np.random.Generator):
    """Load between 0 and 1 over approach, spark-in, grinding and spark-out."""
    jitter = rng.uniform(-0.02, 0.02, 3) * duration
    contact = 0.15 * duration + jitter[0]
    full = 0.30 * duration + jitter[1]
    release = 0.80 * duration + jitter[2]
    envelope = np.clip((t - contact) / (full - contact), 0.0, 1.0)
    decay = np.exp(-(t - release) / (0.04 * duration))
    envelope = np.where(t > release, envelope * decay, envelope)
    return envelope, (full + release) / 2, release


def _acoustic_emission(t, envelope, rate, rng, anomaly, onset, end):  # noqa: ANN001, ANN202, PLR0913
    level = rng.uniform(0.9, 1.1)
    noise = rng.standard_normal(t.size)
    amplitude = 0.02 + 0.3 * level * envelope
    # Grain fractures: short decaying bursts, more of them under load.
    n_bursts = rng.poisson(200 * t[-1])
    burst = np.zeros(t.size)
    for position in rng.integers(0, t.size, n_bursts):
        span = min(int(rate * 2e-4), t.size - position)
        burst[position : position + span] += rng.uniform(0.5, 1.5) * np.exp(
            -np.arange(span) / (span / 4 + 1)
        )
    signal = amplitude * noise * (1 + 0.5 * burst * envelope)
    during = (t >= onset) & (t < end)
    if anomaly == "burn":
        growth = np.clip((t - onset) / (end - onset), 0, 1) * during
        # High-frequency content: white noise differenced is tilted to high frequencies.
        high = np.diff(rng.standard_normal(t.size + 1))
        signal = signal * (1 + 1.5 * growth) + 0.25 * growth * high
    elif anomaly == "chatter":
        frequency = rng.uniform(300, 600)
        signal = signal * (1 + 0.8 * during * np.sin(2 * np.pi * frequency * t))
    return signal.astype(np.float32)


def _currents(t, envelope, rng, anomaly, onset, end, chatter_frequency):  # noqa: ANN001, ANN202, PLR0913
    rms = 2.0 + 6.0 * rng.uniform(0.95, 1.05) * envelope
    during = (t >= onset) & (t < end)
    if anomaly == "burn":
        rms = rms * (1 + 0.4 * np.clip((t - onset) / (end - onset), 0, 1) * during)
    elif anomaly == "chatter":
        rms = rms * (1 + 0.3 * during * np.sin(2 * np.pi * chatter_frequency * t))
    phase = rng.uniform(0, 2 * np.pi)
    phases = [
        np.sqrt(2)
        * rms
        * np.sin(2 * np.pi * LINE_FREQUENCY * t + phase - k * 2 * np.pi / 3)
        + 0.05 * rng.standard_normal(t.size)
        for k in range(3)
    ]
    measured_rms = rms + 0.02 * rng.standard_normal(t.size)
    return [measured_rms.astype(np.float32), *(p.astype(np.float32) for p in phases)]


def _rate_label(rate: float) -> str:
    return f"{rate / 1000:g}KHz"


def _column(channel: str, rate: float) -> str:
    rate_text = str(int(rate)) if float(rate).is_integer() else str(rate)
    return f"{channel}_rate{rate_text}_clipping0_batch0"


def _write_cycle(  # noqa: PLR0913
    folder: Path,
    start: datetime,
    meta: dict,
    rng: np.random.Generator,
    anomaly: str | None,
    ae_rate: float,
    current_rate: float,
    duration: float,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = folder / "raw"
    raw.mkdir(parents=True)
    # Each stream is generated at its own rate from the same load profile.
    profile_seed = int(rng.integers(2**31))
    chatter_frequency = rng.uniform(300, 600)
    streams = {}
    for rate in (ae_rate, current_rate):
        t = np.arange(int(round(duration * rate))) / rate
        envelope, onset, end = _load_envelope(
            t, duration, np.random.default_rng(profile_seed)
        )
        streams[rate] = (t, envelope, onset, end)

    t, envelope, onset, end = streams[ae_rate]
    ae = _acoustic_emission(t, envelope, ae_rate, rng, anomaly, onset, end)
    pq.write_table(
        pa.table({_column("AEKi", ae_rate): ae}),
        raw / f"Sampling{_rate_label(ae_rate)}_AEKi-0.parquet",
    )
    t, envelope, onset, end = streams[current_rate]
    currents = _currents(t, envelope, rng, anomaly, onset, end, chatter_frequency)
    columns = {
        _column(name, current_rate): values
        for name, values in zip(CURRENT_CHANNELS, currents, strict=True)
    }
    pq.write_table(
        pa.table(columns),
        raw
        / f"Sampling{_rate_label(current_rate)}_{'-'.join(CURRENT_CHANNELS)}-0.parquet",
    )
    (folder / "meta.json").write_text(_meta_json(meta, start))


def _meta_json(meta: dict, start: datetime) -> str:
    import json

    stamp = start.strftime("%Y.%m.%d_%H.%M.%S")
    return json.dumps({**meta, "start_time": stamp})


def write_grinding_cycles(  # noqa: PLR0913
    root: str | Path,
    n_normal: int,
    anomalies: dict[str, int] | None = None,
    *,
    ae_rate: float = 2_000_000,
    current_rate: float = 100_000,
    duration: float = 0.3,
    tools: tuple[str, ...] = ("CRIN3-25-V",),
    material: str = "Test_202402-4",
    seed: int = 0,
) -> list[GeneratedCycle]:
    """Write ``n_normal`` normal cycles to ``OK_Measurements/`` and anomalous ones to
    ``NOK_Measurements/`` under ``root``.

    Parameters
    ----------
    anomalies : dict, optional
        Number of cycles per anomaly kind, e.g. ``{"burn": 3, "chatter": 3}``.
    ae_rate, current_rate : float
        Samples per second of the AE stream and of the four current channels.
    duration : float
        Cycle length in seconds.
    tools : tuple of str
        Tool names written to meta.json, assigned to cycles in turn.

    Returns
    -------
    list of GeneratedCycle
        In the order written (normal cycles first).
    """
    anomalies = dict(anomalies or {})
    unknown = set(anomalies) - set(ANOMALIES)
    if unknown:
        raise ValueError(f"unknown anomalies {sorted(unknown)}; use {ANOMALIES}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    kinds = [None] * n_normal + [k for k, n in anomalies.items() for _ in range(n)]
    clock = datetime(2024, 2, 14, 22, 0, 10)
    written = []
    for index, anomaly in enumerate(kinds):
        start = clock + timedelta(seconds=30 * index)
        parent = "OK_Measurements" if anomaly is None else "NOK_Measurements"
        folder = root / parent / f"{start:%Y.%m.%d_%H.%M.%S}_Grinding"
        meta = {
            "tool": tools[index % len(tools)],
            "material": material,
            "exp_Nr": 1 + index // 100,
            "stop": True,
            "running": True,
            "process": "Grinding",
        }
        _write_cycle(folder, start, meta, rng, anomaly, ae_rate, current_rate, duration)
        written.append(GeneratedCycle(folder, anomaly))
    return written
