"""Load test of a running grindwatch service, on this machine only.

Sends recordings shaped as the served model expects (its channels, its sample
rate, ``--seconds`` long) to ``POST /score`` from ``--concurrency`` threads, and
stops after ``--requests`` requests or ``--duration`` seconds, whichever comes
first. Only loopback addresses (127.0.0.0/8, ::1, localhost) are accepted as
targets, and both bounds have hard ceilings.

    grindwatch serve --model MODEL --port 8000 &
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --concurrency 4

Prints status counts, latency percentiles and throughput in recordings and
windows per second.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import threading
import time
from urllib.parse import urlsplit

import numpy as np

MAX_REQUESTS = 100_000
MAX_DURATION_S = 600.0


def loopback_target(url: str) -> tuple[str, int]:
    """Host and port of ``url``; raise ValueError unless it is a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url!r}: expected http://HOST:PORT")
    host = parts.hostname
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host} is not a loopback address; load only this machine")
    return host, parts.port or 80


class Client:
    """One keep-alive HTTP connection to the service."""

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=60)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> dict:
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        return json.loads(response.read())

    def post(self, path: str, body: bytes) -> tuple[int, float]:
        """Send ``body``; return the status and the latency in seconds."""
        start = time.perf_counter()
        self.connection.request("POST", path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - start


def body_samples(info: dict, seconds: float) -> int:
    """Samples per channel of a body ``seconds`` long, at least one window."""
    rate = info["sample_rate"] or 1000.0
    return max(int(round(seconds * rate)), info["window_length"])


def body_windows(info: dict, seconds: float) -> int:
    """Windows the model that ``info`` describes cuts from a body ``seconds`` long."""
    return (body_samples(info, seconds) - info["window_length"]) // info["hop"] + 1


def recording_body(info: dict, seconds: float, seed: int = 0) -> bytes:
    """Build a JSON recording shaped for the model that ``info`` (/model) describes."""
    rate = info["sample_rate"] or 1000.0
    n_samples = body_samples(info, seconds)
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / rate
    channels = {}
    for index, name in enumerate(info["channels"]):
        tone = np.sin(2 * np.pi * (50 + 40 * index) * t + rng.uniform(0, 6.28))
        signal = tone + 0.1 * rng.standard_normal(n_samples)
        channels[name] = signal.astype(np.float32).astype(float).tolist()
    return json.dumps({"sample_rate": rate, "channels": channels}).encode()


def percentiles(latencies: list[float]) -> dict[str, float]:
    values = np.asarray(latencies) * 1000
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
    }


def run_load(
    host: str,
    port: int,
    body: bytes,
    concurrency: int,
    requests: int,
    duration: float,
    token: str | None = None,
    path: str = "/score",
) -> dict:
    """Send up to ``requests`` requests for at most ``duration`` seconds."""
    requests = min(requests, MAX_REQUESTS)
    duration = min(duration, MAX_DURATION_S)
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sent = 0
    deadline = time.monotonic() + duration

    def worker() -> None:
        nonlocal sent
        client = Client(host, port, token)
        while time.monotonic() < deadline:
            with lock:
                if sent >= requests:
                    return
                sent += 1
            status, latency = client.post(path, body)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(latency)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "statuses": statuses,
        "elapsed_s": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        **percentiles(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="service on a loopback address (default: http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="client threads, one connection each (default: 4)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=500,
        help=f"maximum requests to send, up to {MAX_REQUESTS} (default: 500)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=30.0,
        help=f"maximum seconds to send for, up to {MAX_DURATION_S:.0f} (default: 30)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=1.0,
        help="length of each recording sent, in seconds (default: 1)",
    )
    parser.add_argument("--token", default=None, help="bearer token, if required")
    arguments = parser.parse_args()

    try:
        host, port = loopback_target(arguments.url)
    except ValueError as error:
        parser.error(str(error))
    info = Client(host, port, arguments.token).get("/model")
    body = recording_body(info, arguments.seconds)
    result = run_load(
        host,
        port,
        body,
        arguments.concurrency,
        arguments.requests,
        arguments.duration,
        arguments.token,
    )
    windows = body_windows(info, arguments.seconds)
    result["windows_per_s"] = result["requests_per_s"] * windows
    result["real_time_factor"] = result["requests_per_s"] * arguments.seconds
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
