"""Helpers shared by the service, watcher and browser tests."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import grindwatch
from grindwatch.config import Config
from tests.servers import free_port  # noqa: F401 - re-exported for the service tests

SMALL_MODEL = {
    "windows.length": 256,
    "frontend.kind": "spectrum",
    "frontend.n_bands": 16,
    "detector.autoencoder.epochs": 4,
    "aggregate.method": "max",
}


def small_config(tracking: bool = False) -> Config:
    return Config().with_overrides({**SMALL_MODEL, "tracking.enabled": tracking})


def train_small(folder: Path, output: Path | None = None, tracking: bool = False):  # noqa: ANN201
    """Train a small autoencoder on the 1 kHz cycles in ``folder``."""
    return grindwatch.train(folder, small_config(tracking), output=output)


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    """Poll ``url`` until it returns 200; fail if the process exits or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop_process(process: subprocess.Popen) -> None:
    """Stop a server started by a test: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def running(command: list[str], log: Path, ready_url: str | None = None) -> Iterator:
    """Run ``command`` with output to ``log``; always stop it by pid on exit."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
        try:
            if ready_url is not None:
                wait_for_http(ready_url, process)
            yield process
        finally:
            stop_process(process)


def grindwatch_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "grindwatch.cli", *arguments]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Undo what the CLI's setup_logging does to the logging tree, after a test.

    A CLI command run in-process replaces the root handlers and sets the level of
    the ``grindwatch`` logger, which would hide INFO records from later tests.
    """
    root = logging.getLogger()
    package = logging.getLogger("grindwatch")
    handlers, root_level, package_level = root.handlers[:], root.level, package.level
    yield
    root.handlers[:] = handlers
    root.setLevel(root_level)
    package.setLevel(package_level)
    logging.captureWarnings(False)
