"""Latency and throughput of the scoring service on one machine, over loopback.

Trains a model with the default configuration (spectrum front end, 1024-sample
windows, convolutional autoencoder) on generated 3-channel, 20 kHz recordings,
starts ``grindwatch serve`` on a free port of 127.0.0.1, and measures:

- single-window latency: POST /score with one 1024-sample window;
- single-recording latency: POST /score with a 1 s recording (20,000 samples per
  channel, 19 windows), with and without the channel attribution;
- the same recording scored in-process (``score_recording``, no HTTP);
- sustained throughput: a bounded load test of 1 s recordings from 2 threads, in
  windows per second and as a multiple of real time.

    python benchmarks/serve_latency.py [--requests 300] [--epochs 30]

Prints a Markdown table for benchmarks/BENCHMARKS.md. Bounded: each case sends at
most ``--requests`` requests, the load test runs at most ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from serve_load import Client, body_windows, percentiles, recording_body, run_load

RATE = 20_000.0
# Requests or calls before each timed case, so first-call costs are left out.
WARMUP = 20
CHANNELS = ["vibration", "acoustic_emission", "spindle_power"]


def generated_recording(seed: int, seconds: float = 1.0) -> np.ndarray:
    """Three channels of tones, harmonics and noise at 20 kHz, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    phase = rng.uniform(0, 2 * np.pi, 6)
    data = np.stack(
        [
            np.sin(2 * np.pi * 180 * t + phase[0])
            + 0.3 * np.sin(2 * np.pi * 2400 * t + phase[1]),
            0.5 * np.sin(2 * np.pi * 6100 * t + phase[2])
            + 0.2 * rng.standard_normal(t.size),
            1.0 + 0.1 * np.sin(2 * np.pi * 25 * t + phase[3]),
        ]
    )
    data += 0.05 * rng.standard_normal(data.shape)
    return data.astype(np.float32)


def train_model(folder: Path, recordings: int, epochs: int | None) -> Path:
    import grindwatch
    from grindwatch.config import Config

    data = folder / "train"
    data.mkdir()
    for seed in range(recordings):
        np.savez(
            data / f"cycle_{seed:03d}.npz",
            data=generated_recording(seed),
            channels=np.array(CHANNELS),
            sample_rate=RATE,
        )
    overrides = {"tracking.enabled": False}
    if epochs is not None:
        overrides["detector.autoencoder.epochs"] = epochs
    config = Config().with_overrides(overrides)
    started = time.perf_counter()
    grindwatch.train(data, config, output=folder / "bundle")
    print(f"trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return folder / "bundle"


def in_process_latency(bundle: Path, repeats: int) -> dict[str, float]:
    """Latency of score_recording with one PyTorch thread, as the service runs."""
    import torch

    from grindwatch.io import Recording
    from grindwatch.online import score_recording
    from grindwatch.pipeline import load_model

    torch.set_num_threads(1)
    model = load_model(bundle)
    recording = Recording("bench", generated_recording(999), CHANNELS, RATE)
    for _ in range(WARMUP):
        score_recording(model, recording)
    latencies = []
    for _ in range(repeats):
        started = time.perf_counter()
        score_recording(model, recording)
        latencies.append(time.perf_counter() - started)
    return percentiles(latencies)


def sequential(client: Client, path: str, body: bytes, repeats: int) -> dict:
    for _ in range(WARMUP):
        client.post(path, body)
    latencies = []
    for _ in range(repeats):
        status, latency = client.post(path, body)
        if status != 200:
            raise RuntimeError(f"{path} returned {status}")
        latencies.append(latency)
    return percentiles(latencies)


def start_service(
    bundle: Path, log: Path, port: int = 0
) -> tuple[subprocess.Popen, int]:
    """Start ``grindwatch serve`` on 127.0.0.1 at ``port``, or a free port if 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "grindwatch.cli",
        "serve",
        "--model",
        str(bundle),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    output = open(log, "wb")  # noqa: SIM115 - the server writes to it until stopped
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            Client("127.0.0.1", port).get("/health")
            return process, port
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise TimeoutError(f"the service did not start; see {log}")


def machine() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import torch

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores visible, load average {load}, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=300,
        help="requests per case, and the maximum for the load test, up to 5000 "
        "(default: 300)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=20.0,
        help="maximum seconds of the load test (default: 20)",
    )
    parser.add_argument(
        "--recordings",
        type=int,
        default=40,
        help="generated 1 s recordings to train on (default: 40)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="autoencoder epochs (default: the configuration's)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="score with this model bundle instead of training one",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port of the service on 127.0.0.1 (default: a free one)",
    )
    arguments = parser.parse_args()
    requests = min(arguments.requests, 5000)

    workdir = Path(tempfile.mkdtemp(prefix="grindwatch-bench-"))
    try:
        bundle = arguments.model or train_model(
            workdir, arguments.recordings, arguments.epochs
        )
        local = in_process_latency(bundle, requests)
        process, port = start_service(bundle, workdir / "serve.log", arguments.port)
        try:
            client = Client("127.0.0.1", port)
            info = client.get("/model")
            # With --model the served rate may differ from the generated data's.
            rate = info["sample_rate"] or RATE
            window = recording_body(info, info["window_length"] / rate, seed=1)
            recording = recording_body(info, 1.0, seed=2)
            results = {
                "window": sequential(client, "/score", window, requests),
                "recording": sequential(client, "/score", recording, requests),
                "recording_plain": sequential(
                    client, "/score?explain=false", recording, requests
                ),
            }
            load = run_load(
                "127.0.0.1", port, recording, 2, requests, arguments.duration
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    n_windows = body_windows(info, 1.0)
    rows = [
        (f"one window ({info['window_length']} samples), HTTP", results["window"]),
        (f"1 s recording ({n_windows} windows), HTTP", results["recording"]),
        ("1 s recording, HTTP, explain=false", results["recording_plain"]),
        ("1 s recording, in-process score_recording", local),
    ]
    print(f"machine at the end: {machine()}")
    print("\n| case | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: |")
    for name, figures in rows:
        print(
            f"| {name} | {figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} | "
            f"{figures['max_ms']:.1f} |"
        )
    windows_per_s = load["requests_per_s"] * n_windows
    print(
        f"\nload, 2 threads, 1 s recordings: {load['requests']} requests in "
        f"{load['elapsed_s']:.1f} s, statuses {load['statuses']}, "
        f"{load['requests_per_s']:.1f} recordings/s = {windows_per_s:.0f} windows/s "
        f"= {load['requests_per_s']:.1f} x real time; p99 {load['p99_ms']:.1f} ms"
    )
    print(json.dumps({"sequential": results, "in_process": local, "load": load}))


if __name__ == "__main__":
    main()
