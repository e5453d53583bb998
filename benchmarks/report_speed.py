"""Time and size of the HTML report for 1000 generated recordings.

Trains a model on 200 normal recordings of 3 channels, 4096 samples at 10 kHz,
with the default configuration: spectrum front end, 1024-sample windows and the
convolutional autoencoder. Then it builds the report of 1000 recordings, 2 % of
which carry an injected fault (a noise burst, an added tone or a level shift).
The recordings are passed in memory. So the timing covers scoring with
attribution, the detail sections (at most ``--max-details``, 20 by default) and
writing the file, but not reading files. With ``--track`` the report is also
logged to a scoring run in a temporary MLflow store.

    python benchmarks/report_speed.py [--recordings 1000] [--detector autoencoder]

Prints a Markdown table for benchmarks/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE = 10_000.0
SAMPLES = 4096
CHANNELS = ["vibration", "acoustic_emission", "spindle_power"]
FAULTS = ("burst", "tone", "level")


def generated_cycle(seed: int, fault: str | None = None) -> np.ndarray:
    """Three channels of tones and noise; ``fault`` changes the middle quarter."""
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLES) / RATE
    phase = rng.uniform(0, 2 * np.pi, 3)
    data = np.stack(
        [
            np.sin(2 * np.pi * 180 * t + phase[0])
            + 0.3 * np.sin(2 * np.pi * 1200 * t + phase[1]),
            0.5 * np.sin(2 * np.pi * 3100 * t + phase[2])
            + 0.2 * rng.standard_normal(t.size),
            1.0 + 0.1 * np.sin(2 * np.pi * 25 * t),
        ]
    )
    data += 0.05 * rng.standard_normal(data.shape)
    middle = slice(SAMPLES // 2, SAMPLES // 2 + SAMPLES // 4)
    if fault == "burst":
        data[1, middle] += 2.0 * rng.standard_normal(SAMPLES // 4)
    elif fault == "tone":
        data[0, middle] += 0.8 * np.sin(2 * np.pi * 2200 * t[middle])
    elif fault == "level":
        data[2, middle] += 1.5
    return data.astype(np.float32)


def recordings(count: int, start: int, faulty_share: float = 0.0) -> list:
    from grindwatch.io import Recording

    n_faulty = int(round(count * faulty_share))
    out = []
    for index in range(count):
        fault = FAULTS[index % len(FAULTS)] if index < n_faulty else None
        name = f"cycle_{start + index:05d}" + (f"_{fault}" if fault else "")
        data = generated_cycle(start + index, fault)
        out.append(Recording(name, data, list(CHANNELS), RATE))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recordings",
        type=int,
        default=1000,
        help="recordings in the report, 2 %% of them faulty (default: 1000)",
    )
    parser.add_argument(
        "--detector",
        default="autoencoder",
        help="detector family of the model (default: autoencoder)",
    )
    parser.add_argument(
        "--epochs", type=int, default=30, help="autoencoder epochs (default: 30)"
    )
    parser.add_argument(
        "--max-details",
        type=int,
        default=20,
        help="maximum flagged recordings with a detail section (default: 20)",
    )
    parser.add_argument(
        "--track",
        action="store_true",
        help="log training and the report to runs in a temporary MLflow store",
    )
    args = parser.parse_args()

    import grindwatch
    from grindwatch.config import Config
    from grindwatch.io import RecordingSet
    from grindwatch.report import create_report

    folder = Path(tempfile.mkdtemp(prefix="report-speed-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    config = Config().with_overrides(
        {
            "detector.family": args.detector,
            "detector.autoencoder.epochs": args.epochs,
            "tracking.enabled": args.track,
            "tracking.log_model": False,
        }
    )
    started = time.perf_counter()
    model = grindwatch.train(RecordingSet(recordings(200, 0)), config).model
    trained = time.perf_counter() - started

    data = RecordingSet(recordings(args.recordings, 100_000, faulty_share=0.02))
    scoring = {}
    for attribution in (False, True):
        begin = time.perf_counter()
        model.score(data, attribution=attribution)
        scoring[attribution] = time.perf_counter() - begin
    # Other processes on the machine slow the wall time; CPU time is this
    # process's own, so it varies less with them.
    load = os.getloadavg()[0]
    cpu_started = time.process_time()
    result = create_report(
        model,
        data,
        folder / "report.html",
        max_details=args.max_details,
        track=args.track,
    )
    cpu = time.process_time() - cpu_started

    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print(f"training on 200 recordings: {trained:.1f} s ({args.detector})")
    print(
        f"scoring {args.recordings} recordings: {scoring[False]:.1f} s, "
        f"{scoring[True]:.1f} s with attribution"
    )
    print(f"1-minute load average when the report started: {load:.1f}")
    print()
    header = "| recordings | flagged | detail sections | MLflow | wall (s) | CPU (s) |"
    print(header + " size (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {result.n_recordings} | {result.n_flagged} | {result.n_details} | "
        f"{'logged' if result.run_id else 'off'} | {result.seconds:.1f} | "
        f"{cpu:.1f} | {result.size_bytes / 1e6:.1f} |"
    )
    print(f"\nreport: {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
