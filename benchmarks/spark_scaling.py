"""Speed-up of Spark scoring from one to two cores, in Spark's local mode.

Writes generated recordings (three channels at 10 kHz, a few with a fault) to a
temporary folder, trains the default model (spectrum front end, autoencoder) on
some of them, and scores them all three ways: ``grindwatch.score`` in this
process, then ``spark_score`` with ``local[1]`` and with ``local[2]``, each Spark
run in a fresh session and repeated. Times cover scoring and writing the tables,
not starting Spark. It also checks that each Spark result equals the local one.

    python benchmarks/spark_scaling.py --recordings 1200

Needs pyspark (extra ``spark``) and Java 17. Other processes on the machine slow
both Spark runs and shrink the speed-up, so the script prints the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RATE = 10_000.0
CHANNELS = ["vib_x", "vib_y", "ae"]


def write_recordings(folder: Path, count: int, samples: int) -> None:
    """Write ``count`` recordings; every 50th has a burst in its second channel."""
    rng = np.random.default_rng(0)
    t = np.arange(samples) / RATE
    for index in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        data = np.stack(
            [
                np.sin(2 * np.pi * 120 * t + phase[0]),
                0.5 * np.sin(2 * np.pi * 450 * t + phase[1]),
                0.3 * np.sin(2 * np.pi * 1500 * t + phase[2]),
            ]
        )
        data += 0.1 * rng.standard_normal(data.shape)
        if index % 50 == 49:
            data[1, samples // 2 : samples // 2 + 500] += 2 * rng.standard_normal(500)
        np.savez(
            folder / f"cycle_{index:05d}.npz",
            data=data.astype(np.float32),
            channels=CHANNELS,
            sample_rate=RATE,
        )


def time_spark(
    cores: int, model, data: Path, output: Path, repeats: int
) -> list[float]:  # noqa: ANN001
    from grindwatch.spark_scoring import spark_score, spark_session

    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
    seconds = []
    with spark_session(f"local[{cores}]", settings, app_name="spark-scaling") as spark:
        for _ in range(repeats):
            shutil.rmtree(output, ignore_errors=True)
            shutil.rmtree(
                output.with_name(output.name + ".windows"), ignore_errors=True
            )
            start = time.perf_counter()
            spark_score(spark, model, [data], output)
            seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recordings",
        type=int,
        default=1200,
        help="generated recordings to score (default: 1200)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=8192,
        help="samples per channel of each recording (default: 8192)",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="Spark runs per core count."
    )
    parser.add_argument(
        "--frontend",
        default="spectrum",
        help="Front end of the model: spectrum (the default), raw or features.",
    )
    arguments = parser.parse_args()

    from grindwatch.config import Config
    from grindwatch.pipeline import score, train

    with tempfile.TemporaryDirectory(prefix="spark-scaling-") as folder:
        base = Path(folder)
        data = base / "recordings"
        data.mkdir()
        write_recordings(data, arguments.recordings, arguments.samples)
        config = Config().with_overrides(
            {"tracking.enabled": False, "frontend.kind": arguments.frontend}
        )
        training = sorted(data.glob("*.npz"))[:40]
        model = train(training, config).model

        start = time.perf_counter()
        local = score(model, data)
        local_seconds = time.perf_counter() - start
        # Compared through Parquet, as grindwatch score --output writes them.
        local.recordings.to_parquet(base / "local.parquet", index=False)
        local.windows.to_parquet(base / "local.windows.parquet", index=False)
        expected = pd.read_parquet(base / "local.parquet")
        expected_windows = pd.read_parquet(base / "local.windows.parquet")

        results = {"load_before": os.getloadavg()}
        for cores in (1, 2):
            output = base / f"spark-{cores}"
            results[f"local[{cores}]"] = time_spark(
                cores, model, data, output, arguments.repeats
            )
            found = pd.read_parquet(output)
            pd.testing.assert_frame_equal(found, expected, check_exact=True)
            found_windows = pd.read_parquet(output.with_name(output.name + ".windows"))
            pd.testing.assert_frame_equal(
                found_windows, expected_windows, check_exact=True
            )
        results["load_after"] = os.getloadavg()

    one, two = min(results["local[1]"]), min(results["local[2]"])
    summary = {
        "recordings": arguments.recordings,
        "samples": arguments.samples,
        "frontend": arguments.frontend,
        "windows": len(local.windows),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "score_in_process_s": round(local_seconds, 1),
        "spark_local_1_s": [round(s, 1) for s in results["local[1]"]],
        "spark_local_2_s": [round(s, 1) for s in results["local[2]"]],
        "speed_up_best": round(one / two, 2),
        "load_before": [round(x, 2) for x in results["load_before"]],
        "load_after": [round(x, 2) for x in results["load_after"]],
        "tables_equal_to_local": True,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
