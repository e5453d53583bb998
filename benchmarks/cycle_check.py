"""False alarms and detections of the cycle check, on generated and gearbox data.

Each generated cycle has an idle phase, an approach, grinding, a spark-out and a
retract, with phase ends that vary from cycle to cycle, in three channels:
acoustic emission, vibration and spindle current (2 kHz, 4096 samples). For
each training size, three training sets of normal cycles each train a model
with 256-sample windows and the PCA detector, which is enough because the cycle
check does not depend on the detector. Its cycle check then scores 200 other
normal cycles and 50 of each fault: a missing part (idle throughout), 1.6 times
the grinding load in AE and current, and a cycle cut at half length. For every
group the table also gives the share that the window score alone flags.

A second table uses the real gearbox vibration recordings (SpectraQuest, four
sensors), read from ``--data`` (default ../shared/data) and skipped when they
are absent. Each recording is cut into segments of 2048 samples. The model (the
default autoencoder, 256-sample windows) trains on the segments of the first
half of the healthy recording at 0 % load. It then scores the segments of the
second halves: healthy at 0 %, healthy at 20 to 80 % load (another operating
point) and with a broken tooth.

    python benchmarks/cycle_check.py [--sizes 20 40 80] [--normal 200] [--faulty 50]
        [--data ../shared/data]

Prints Markdown tables for benchmarks/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RATE = 2000.0
CHANNELS = ["acoustic_emission", "vibration", "spindle_current"]
FAULTS = ("missing", "load", "short")


def grinding_cycle(seed: int, fault: str | None = None, n: int = 4096) -> np.ndarray:
    """Idle, approach, grinding, spark-out and retract, with jittered phase ends.

    ``fault`` is "missing" (no part: idle throughout), "load" (1.6 times the
    grinding load in AE and current) or "short" (the cycle stops at half length).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    ends = ((np.cumsum([0.15, 0.1, 0.45, 0.15]) + rng.normal(0, 0.01, 4)) * n).astype(
        int
    )
    active = np.zeros(n)
    active[ends[1] : ends[2]] = 1.0
    spark = np.arange(ends[3] - ends[2])
    active[ends[2] : ends[3]] = np.exp(-spark / (0.3 * len(spark)))
    if fault == "missing":
        active[:] = 0.0
    load = 1.6 if fault == "load" else 1.0
    data = np.stack(
        [
            (0.05 + load * active) * rng.standard_normal(n),
            0.3 * np.sin(2 * np.pi * 120 * t + rng.uniform(0, 6))
            + 0.2 * active * np.sin(2 * np.pi * 310 * t)
            + 0.05 * rng.standard_normal(n),
            2.0 + 3.0 * load * active + 0.05 * rng.standard_normal(n),
        ]
    ).astype(np.float32)
    if fault == "short":
        data = data[:, : n // 2]
    return data


def cycle_recording(seed: int, fault: str | None = None):  # noqa: ANN201
    from grindwatch.io import Recording

    name = f"cycle_{seed:05d}" + (f"_{fault}" if fault else "")
    return Recording(name, grinding_cycle(seed, fault), list(CHANNELS), RATE)


def gearbox_segments(path: Path, half: int, length: int = 2048) -> list:
    """Cut the first (``half`` 0) or second half of a gearbox CSV into segments."""
    import pandas as pd

    from grindwatch.io import Recording

    data = pd.read_csv(path).dropna().to_numpy(np.float32).T
    middle = data.shape[1] // 2
    part = data[:, :middle] if half == 0 else data[:, middle:]
    channels = [f"sensor {k + 1}" for k in range(data.shape[0])]
    return [
        Recording(
            f"{path.stem}:{half}:{i}", part[:, i * length : (i + 1) * length], channels
        )
        for i in range(part.shape[1] // length)
    ]


def gearbox_table(root: Path) -> None:
    from grindwatch.config import Config
    from grindwatch.io import RecordingSet
    from grindwatch.pipeline import Model

    folder = root / "gearbox_spectraquest"
    if not folder.is_dir():
        print(f"\ngearbox: skipped, {folder} not found")
        return
    config = Config().with_overrides({"windows.length": 256, "tracking.enabled": False})
    training = gearbox_segments(folder / "healthy" / "h30hz0.csv", 0)
    model = Model(config).fit(RecordingSet(training))
    check = model.cycle_check
    groups = {"healthy, 0 % load": folder / "healthy" / "h30hz0.csv"}
    for load in (20, 40, 60, 80):
        groups[f"healthy, {load} % load"] = folder / "healthy" / f"h30hz{load}.csv"
    for load in (0, 20, 40, 60, 80):
        groups[f"broken tooth, {load} % load"] = (
            folder / "broken_tooth" / f"b30hz{load}.csv"
        )
    print(
        f"\ngearbox: {len(training)} training segments, cycle threshold "
        f"{check.threshold_.value:.2f} ({check.threshold_.method}), blocks of "
        f"{check.block_length_} samples\n"
    )
    print(
        "| second-half segments | n | flagged by the cycle check | by window score "
        "| median cycle score |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, path in groups.items():
        table = model.score(gearbox_segments(path, 1), attribution=False).recordings
        by_windows = np.mean(table["score"] > model.threshold_.value)
        print(
            f"| {name} | {len(table)} | {table['cycle_flag'].mean():.0%} | "
            f"{by_windows:.0%} | {table['cycle_score'].median():.1f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[20, 40, 80],
        help="training cycles per model, one table row group each (default: 20 40 80)",
    )
    parser.add_argument(
        "--normal", type=int, default=200, help="normal cycles scored (default: 200)"
    )
    parser.add_argument(
        "--faulty",
        type=int,
        default=50,
        help="cycles scored per fault type (default: 50)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data",
        help="folder with the shared data sets (default: ../shared/data)",
    )
    args = parser.parse_args()
    logging.getLogger("grindwatch").setLevel(logging.ERROR)

    from grindwatch.config import Config
    from grindwatch.io import RecordingSet
    from grindwatch.pipeline import Model

    config = Config().with_overrides(
        {"windows.length": 256, "detector.family": "pca", "tracking.enabled": False}
    )
    normal = [cycle_recording(50_000 + i) for i in range(args.normal)]
    faulty = {
        fault: [
            cycle_recording(60_000 + 1000 * k + i, fault) for i in range(args.faulty)
        ]
        for k, fault in enumerate(FAULTS)
    }
    started = time.perf_counter()
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print()
    print(
        "| training cycles | training set | cycle threshold | rule | normal flagged; "
        "by window score "
        "| largest normal score | "
        + " | ".join(
            f"{fault} flagged (median score); by window score" for fault in FAULTS
        )
        + " |"
    )
    print("| --- " * (6 + len(FAULTS)) + "|")
    for size in args.sizes:
        for offset in (0, 10_000, 20_000):
            training = RecordingSet([cycle_recording(offset + i) for i in range(size)])
            model = Model(config).fit(training)
            check = model.cycle_check
            scores = [v.score for v in model.cycle_verdicts(model.prepare(normal))]
            table = model.score(normal, attribution=False).recordings
            normal_by_windows = np.mean(table["score"] > model.threshold_.value)
            cells = [
                str(size),
                f"seeds from {offset}",
                f"{check.threshold_.value:.2f}",
                check.threshold_.method,
                f"{np.mean(np.array(scores) > check.threshold_.value):.1%}; "
                f"windows {normal_by_windows:.0%}",
                f"{max(scores):.1f}",
            ]
            for fault in FAULTS:
                verdicts = model.cycle_verdicts(model.prepare(faulty[fault]))
                flagged = np.mean([v.flag for v in verdicts])
                median = np.median([v.score for v in verdicts])
                table = model.score(faulty[fault], attribution=False).recordings
                by_windows = np.mean(table["score"] > model.threshold_.value)
                cells.append(f"{flagged:.0%} ({median:.1f}); windows {by_windows:.0%}")
            print("| " + " | ".join(cells) + " |")
    gearbox_table(args.data)
    print(f"\nrun time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
