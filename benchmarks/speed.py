"""Speed: autoencoder training and scoring, PyOD's AutoEncoder and the matmul rate.

The workload is generated (``benchmarks.workload``): four-channel recordings cut into
1024-sample windows. Two front ends are measured: grindwatch's default ``spectrum``
(the autoencoder sees 4 x 32 band energies) and ``raw`` (it sees 4 x 1024 samples).
PyOD's AutoEncoder gets the same features flattened, as in the quality comparison.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one forward
and backward pass of a batch. It counts matrix products and convolutions only, so
activations, the loss and the optimiser step are left out and achieved GFLOP/s are
a slight underestimate.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from benchmarks.workload import make_recordings
from grindwatch.config import Config
from grindwatch.io import RecordingSet
from grindwatch.pipeline import Model

logger = logging.getLogger(__name__)

__all__ = [
    "WORKLOAD",
    "matmul_gflops",
    "measure_batch_sweep",
    "measure_wide_training",
    "run_speed",
    "training_flops",
]

# Recordings x samples: 2048 windows of 1024 samples, 32 MiB of float32.
WORKLOAD = {"recordings": 64, "samples": 32_768}
EPOCHS = 5
LATENCY_CALLS = 200
# The wider network of measure_wide_training, trained on the first recordings only.
WIDE_FILTERS = [128, 256]
WIDE_EPOCHS = 3
WIDE_RECORDINGS = 16
# Training batch sizes of measure_batch_sweep; 64 is the default.
SWEEP_BATCHES = [64, 256, 1024]
SWEEP_EPOCHS = 3


def matmul_gflops(size: int = 2048, calls: int = 10) -> float:
    """fp32 matrix-multiply rate of this machine with torch's current threads."""
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times)) / 1e9


def training_flops(net: Any, shape: tuple[int, ...], batch: int = 64) -> dict:
    """FLOPs per window of a forward pass and of a forward plus backward pass."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, *shape)
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            net(x)
    forward = counter.get_total_flops() / batch
    with FlopCounterMode(display=False) as counter:
        loss = ((net(x) - x) ** 2).mean()
        loss.backward()
    net.zero_grad()
    return {"forward": forward, "training": counter.get_total_flops() / batch}


def _config(frontend: str, seed: int, epochs: int = EPOCHS) -> Config:
    return Config().with_overrides(
        {
            "tracking.enabled": False,
            "frontend.kind": frontend,
            "detector.autoencoder.epochs": epochs,
            "detector.autoencoder.patience": epochs,
            "seed": seed,
        }
    )


def measure_wide_training(recordings, seed: int) -> dict:  # noqa: ANN001
    """Measure a wider network's training speed on raw windows, to locate the ceiling.

    Only the filters differ from the default (``WIDE_FILTERS`` instead of 16 and
    32), so the figure shows what the same training loop and kernels reach once
    the convolutions have enough channels to be bound by arithmetic.
    """
    config = _config("raw", seed, WIDE_EPOCHS).with_overrides(
        {"detector.autoencoder.filters": WIDE_FILTERS}
    )
    model, rate = _train_timed(config, recordings)
    features = model.features(model.training_windows_.X[:64])
    flops = training_flops(model.detector_.net_, features.shape[1:])
    return {
        "filters": WIDE_FILTERS,
        "windows": len(model.training_windows_.X),
        "epochs": WIDE_EPOCHS,
        "train_windows_per_s": rate,
        "train_gflops": rate * flops["training"] / 1e9,
    }


def measure_batch_sweep(recordings, seed: int) -> list[dict]:  # noqa: ANN001
    """Measure the default network's training speed at several batch sizes.

    Larger batches spread PyTorch's fixed cost per operation over more windows,
    so the sweep shows how much of the gap to the matmul rate that cost explains.
    Fewer steps per epoch also change what the network learns, so the default
    stays at 64.
    """
    entries = []
    for frontend in ("spectrum", "raw"):
        for batch in SWEEP_BATCHES:
            config = _config(frontend, seed, SWEEP_EPOCHS).with_overrides(
                {"detector.autoencoder.batch_size": batch}
            )
            model, rate = _train_timed(config, recordings)
            features = model.features(model.training_windows_.X[:64])
            flops = training_flops(model.detector_.net_, features.shape[1:])
            # An epoch ends with a partial batch unless the batch size divides
            # the training windows, so a step's time is the epoch's time divided
            # by its steps, not the batch size divided by the rate.
            n_train = _training_windows(model, config)
            steps = math.ceil(n_train / batch)
            entries.append(
                {
                    "frontend": frontend,
                    "batch_size": batch,
                    "steps_per_epoch": steps,
                    "train_windows_per_s": rate,
                    "train_gflops": rate * flops["training"] / 1e9,
                    "ms_per_step": 1e3 * n_train / rate / steps,
                }
            )
    return entries


def _train_timed(config: Config, recordings) -> tuple[Model, float]:  # noqa: ANN001
    """Fit a model; return it and its training windows per second.

    The rate counts the windows trained on (the validation share left out) per
    second between the first and the last epoch's end.
    """
    model = Model(config)
    stamps: list[float] = []
    model.fit(recordings, on_epoch=lambda *_: stamps.append(time.perf_counter()))
    return model, _training_windows(model, config) / _per_epoch(stamps)


def _training_windows(model: Model, config: Config) -> int:
    """Count the windows that one epoch trains on: all but the validation share."""
    n_windows = len(model.training_windows_.X)
    share = config.detector.autoencoder.validation_fraction
    return n_windows - int(round(n_windows * share))


def _per_epoch(stamps: list[float]) -> float:
    """Mean seconds per epoch between the first and the last epoch's end."""
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def _median_seconds(call: Any, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure_grindwatch(recordings, frontend: str, seed: int) -> tuple[Model, dict]:  # noqa: ANN001
    """Train on the workload; return the model and its training and scoring speed."""
    model, train_rate = _train_timed(_config(frontend, seed), recordings)
    windows = model.training_windows_.X
    features = model.features(windows)
    flops = training_flops(model.detector_.net_, features.shape[1:])
    model.detector_.net_.eval()
    score_seconds = _median_seconds(lambda: model.window_scores(windows), 3)
    detector_seconds = _median_seconds(
        lambda: model.detector_.anomaly_score(features), 3
    )
    result = {
        "input_shape": list(features.shape[1:]),
        "train_windows_per_s": train_rate,
        "train_gflops": train_rate * flops["training"] / 1e9,
        "flops_forward": flops["forward"],
        "flops_training": flops["training"],
        "score_windows_per_s": len(windows) / score_seconds,
        "detector_windows_per_s": len(windows) / detector_seconds,
        "latency_ms": 1e3
        * _median_seconds(lambda: model.window_scores(windows[:1]), LATENCY_CALLS),
    }
    for attribution in (False, True):
        seconds = _median_seconds(
            lambda a=attribution: model.score(recordings, attribution=a), 1
        )
        key = "pipeline_windows_per_s" + ("_attribution" if attribution else "")
        result[key] = len(windows) / seconds
    return model, result


def measure_pyod(model: Model, seed: int) -> dict:
    """Train PyOD's default AutoEncoder on the model's features; its speed."""
    from pyod.models.auto_encoder import AutoEncoder

    features = model.features(model.training_windows_.X)
    flat = features.reshape(features.shape[0], -1).astype(np.float32)
    detector = AutoEncoder(verbose=0, random_state=seed)
    stamps: list[float] = []
    epoch_update = detector.epoch_update

    def stamp() -> None:
        stamps.append(time.perf_counter())
        epoch_update()

    detector.epoch_update = stamp  # PyOD calls this after every epoch
    detector.fit(flat)
    # PyOD's training loader drops the last incomplete batch.
    n_train = len(flat) // detector.batch_size * detector.batch_size
    train_rate = n_train / _per_epoch(stamps)
    flops = training_flops(detector.model, flat.shape[1:])
    detector.model.eval()
    score_seconds = _median_seconds(lambda: detector.decision_function(flat), 3)
    return {
        "input_shape": [flat.shape[1]],
        "batch_size": detector.batch_size,
        "epochs": detector.epoch_num,
        "hidden_units": list(detector.hidden_neuron_list),
        "train_windows_per_s": train_rate,
        "train_gflops": train_rate * flops["training"] / 1e9,
        "flops_forward": flops["forward"],
        "flops_training": flops["training"],
        "score_windows_per_s": len(flat) / score_seconds,
        "latency_ms": 1e3
        * _median_seconds(lambda: detector.decision_function(flat[:1]), LATENCY_CALLS),
    }


def _median_dicts(runs: list[dict]) -> dict:
    return {
        key: (
            float(np.median([run[key] for run in runs]))
            if isinstance(runs[0][key], (int, float))
            else runs[0][key]
        )
        for key in runs[0]
    }


def run_speed(repeats: int) -> dict[str, Any]:
    """Every speed figure, as the median of ``repeats`` runs."""
    import torch

    recordings = make_recordings(WORKLOAD["recordings"], WORKLOAD["samples"])
    rates = [matmul_gflops() for _ in range(repeats)]
    results: dict[str, Any] = {
        "workload": dict(WORKLOAD, window=1024, channels=4, epochs=EPOCHS),
        "threads": torch.get_num_threads(),
        "matmul_gflops": float(np.median(rates)),
        "frontends": {},
    }
    for frontend in ("spectrum", "raw"):
        ours, theirs = [], []
        for seed in range(repeats):
            model, measured = measure_grindwatch(recordings, frontend, seed)
            ours.append(measured)
            theirs.append(measure_pyod(model, seed))
            logger.info("speed %s, seed %d done", frontend, seed)
        results["frontends"][frontend] = {
            "grindwatch": _median_dicts(ours),
            "pyod": _median_dicts(theirs),
        }
    wide = [
        measure_wide_training(
            RecordingSet(recordings.recordings[:WIDE_RECORDINGS]), seed
        )
        for seed in range(repeats)
    ]
    results["wide"] = _median_dicts(wide)
    sweeps = [measure_batch_sweep(recordings, seed) for seed in range(repeats)]
    results["batch_sweep"] = [
        _median_dicts(list(runs)) for runs in zip(*sweeps, strict=True)
    ]
    results["memory"] = measure_memory()
    return results


def measure_memory() -> dict[str, float]:
    """Peak resident memory (MiB) of training and scoring, each in a new process."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    peaks = {}
    with tempfile.TemporaryDirectory() as folder:
        for stage in ("baseline", "train", "score"):
            output = subprocess.run(
                [sys.executable, "-m", "benchmarks.memory", stage, folder],
                check=True,
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
            ).stdout
            peaks[stage] = json.loads(output.strip().splitlines()[-1])["peak_mib"]
    return peaks
