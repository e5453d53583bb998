"""Peak memory of scoring one large single-stream file in chunks.

Trains a small PCA model on generated one-channel cycles and writes a float32
``.npy`` file of the requested size to a temporary folder. A child process scores
it with ``data.chunk_samples`` set. The script prints the child's peak resident
memory (from ``wait4``), its wall time and the window count, then deletes the file.

    python benchmarks/chunked_memory.py --gigabytes 4

Needs free disk space of the file's size in the temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WINDOW = 1024
RATE = 50_000.0
CHILD = """
import json, sys, time
import grindwatch
start = time.perf_counter()
result = grindwatch.score(sys.argv[1], sys.argv[2], attribution=False)
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "n_windows": len(result.windows),
    "flagged_windows": int(result.windows["flag"].sum()),
    "recording_score": float(result.recordings["score"].iloc[0]),
}))
"""


def _signal(start: int, count: int, rng: np.random.Generator) -> np.ndarray:
    t = (start + np.arange(count)) / RATE
    values = np.sin(2 * np.pi * 1200 * t) + 0.3 * np.sin(2 * np.pi * 4100 * t)
    return (values + 0.1 * rng.standard_normal(count)).astype(np.float32)


def _train(folder: Path, chunk_samples: int) -> Path:
    import grindwatch
    from grindwatch.config import Config
    from grindwatch.io import Recording, RecordingSet

    rng = np.random.default_rng(0)
    recordings = [
        Recording(
            f"cycle_{i}", _signal(i * 65536, 65536, rng)[None], ["channel_0"], RATE
        )
        for i in range(20)
    ]
    config = Config().with_overrides(
        {
            "windows.length": WINDOW,
            "frontend.kind": "spectrum",
            "frontend.n_bands": 16,
            "detector.family": "pca",
            "tracking.enabled": False,
            "data.sample_rate": RATE,
            "data.chunk_samples": chunk_samples,
        }
    )
    model_dir = folder / "model"
    grindwatch.train(RecordingSet(recordings), config, output=model_dir)
    return model_dir


def _write_large(path: Path, n_samples: int, block: int = 1 << 24) -> None:
    """Write a float32 .npy with a few injected bursts, block by block."""
    rng = np.random.default_rng(1)
    header = {"descr": "<f4", "fortran_order": False, "shape": (n_samples,)}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_2_0(handle, header)
        for start in range(0, n_samples, block):
            values = _signal(start, min(block, n_samples - start), rng)
            if (start // block) % 16 == 3:
                values[: WINDOW * 8] += 4 * rng.standard_normal(WINDOW * 8)
            handle.write(values.tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gigabytes",
        type=float,
        default=4.0,
        help="size of the generated file in GiB (default: 4)",
    )
    parser.add_argument(
        "--chunk-samples",
        type=int,
        default=1 << 22,
        help="samples per chunk when scoring, data.chunk_samples (default: 4194304)",
    )
    parser.add_argument(
        "--folder",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="folder for the temporary file, which needs its size free "
        "(default: the system's temporary folder)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.folder) as temporary:
        folder = Path(temporary)
        model_dir = _train(folder, args.chunk_samples)
        path = folder / "large_stream.npy"
        n_samples = int(args.gigabytes * 2**30 // 4)
        started = time.perf_counter()
        _write_large(path, n_samples)
        write_seconds = time.perf_counter() - started

        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(model_dir), str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"scoring failed with exit status {status}")
        result = json.loads(output)
        result.update(
            {
                "file_bytes": path.stat().st_size,
                "samples": n_samples,
                "chunk_samples": args.chunk_samples,
                # ru_maxrss is in KiB on Linux.
                "peak_rss_mib": usage.ru_maxrss / 1024,
                "write_seconds": write_seconds,
                "machine": f"{platform.machine()} {os.cpu_count()} CPUs, "
                f"{platform.python_version()}",
            }
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
