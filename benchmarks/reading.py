"""Reading: grindwatch's readers next to a bare read of the same file.

One generated recording (eight channels of float32) is written as CSV, Parquet and
HDF5. grindwatch's time covers ``read_file``: reading, the channel and time-column
logic, the NaN check and the constant and clipped channel checks. The bare read is
the library call alone: ``pandas.read_csv``, ``pyarrow.parquet.read_table`` and
h5py's ``dataset[()]``. Throughput is the file size per second, so CSV figures are
not comparable with the binary formats.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grindwatch.io import ReadOptions, read_file

__all__ = ["SAMPLES", "run_reading", "write_files"]

CHANNELS = 8
SAMPLES = 250_000
SAMPLE_RATE = 50_000.0


def write_files(folder: Path) -> dict[str, Path]:
    """Write one generated recording as CSV, Parquet and HDF5 into ``folder``."""
    import h5py

    rng = np.random.default_rng(0)
    data = rng.standard_normal((CHANNELS, SAMPLES)).astype(np.float32)
    names = [f"channel_{i}" for i in range(CHANNELS)]
    frame = pd.DataFrame(data.T, columns=names)
    paths = {
        "csv": folder / "recording.csv",
        "parquet": folder / "recording.parquet",
        "hdf5": folder / "recording.h5",
    }
    frame.insert(0, "time", np.arange(SAMPLES) / SAMPLE_RATE)
    frame.to_csv(paths["csv"], index=False, float_format="%.7g")
    frame.drop(columns="time").to_parquet(paths["parquet"])
    with h5py.File(paths["hdf5"], "w") as handle:
        dataset = handle.create_dataset("signals", data=data)
        dataset.attrs["sample_rate"] = SAMPLE_RATE
        dataset.attrs["channels"] = names
    return paths


def _bare_read(kind: str, path: Path) -> Any:
    if kind == "csv":
        return pd.read_csv(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    import h5py

    with h5py.File(path, "r") as handle:
        return handle["signals"][()]


def _options(kind: str) -> ReadOptions:
    return ReadOptions(sample_rate=SAMPLE_RATE) if kind == "parquet" else ReadOptions()


def _seconds(call: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_reading(repeats: int) -> dict[str, Any]:
    """Median read time and throughput per format, grindwatch and bare."""
    results: dict[str, Any] = {"channels": CHANNELS, "samples": SAMPLES, "formats": {}}
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(Path(folder))
        for kind, path in paths.items():
            megabytes = path.stat().st_size / 2**20
            ours = _seconds(lambda p=path, k=kind: read_file(p, _options(k)), repeats)
            bare = _seconds(lambda p=path, k=kind: _bare_read(k, p), repeats)
            results["formats"][kind] = {
                "file_mib": megabytes,
                "grindwatch_s": ours,
                "bare_s": bare,
                "grindwatch_mib_per_s": megabytes / ours,
                "bare_mib_per_s": megabytes / bare,
                "grindwatch_msamples_per_s": CHANNELS * SAMPLES / ours / 1e6,
            }
    return results
