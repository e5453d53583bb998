"""Session fixtures that run PostgreSQL and an MLflow server on loopback for tests.

Both start through the development scripts in ``scripts/`` on free ports of
127.0.0.1 and stop at the end of the session. Tests that use them skip when the
PostgreSQL server programs or the psycopg driver are missing.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
START_TIMEOUT_S = 240
STOP_TIMEOUT_S = 120


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    ``GRINDWATCH_TEST_PORTS=LOW-HIGH`` limits the choice to that range, for
    machines where each user may take only some ports.
    """
    allowed = os.environ.get("GRINDWATCH_TEST_PORTS")
    if not allowed:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    low, high = (int(bound) for bound in allowed.split("-"))
    for port in range(low, high + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in GRINDWATCH_TEST_PORTS={allowed}")


def _missing_postgres() -> str | None:
    """Return why PostgreSQL cannot run here, or None when it can."""
    if importlib.util.find_spec("psycopg") is None:
        return "the psycopg driver is not installed (extra 'postgres')"
    programs = os.environ.get("PG_BIN")
    if programs and Path(programs, "initdb").exists():
        return None
    if glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb"):
        return None
    return "PostgreSQL server programs not found (Debian: apt-get install postgresql)"


def _run_script(*arguments: str, timeout: float) -> dict[str, str]:
    """Run a script from scripts/ and return the KEY=VALUE lines it prints."""
    done = subprocess.run(
        [str(SCRIPTS / arguments[0]), *arguments[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MLFLOW": str(Path(sys.executable).with_name("mlflow"))},
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{arguments[0]} {arguments[1]} failed ({done.returncode}): {done.stderr}"
        )
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def create_database(url: str) -> str:
    """Create a new, empty database on the server of ``url``; return its URL."""
    import psycopg

    name = f"fresh_{uuid.uuid4().hex[:12]}"
    server, _ = url.rsplit("/", 1)
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


@pytest.fixture(scope="session", name="postgres")
def postgres_server() -> Iterator[dict[str, str]]:
    """A PostgreSQL server with databases optuna and mlflow; yields their URLs."""
    reason = _missing_postgres()
    if reason:
        pytest.skip(reason)
    # A folder directly under /tmp: as root the server runs as another user, who
    # cannot enter pytest's own temporary folders (mode 0700).
    folder = tempfile.mkdtemp(prefix="grindwatch-pg-")
    try:
        port = str(free_port())
        urls = _run_script("dev-postgres.sh", "start", folder, port, timeout=240)
        yield urls
    finally:
        try:
            _run_script("dev-postgres.sh", "stop", folder, timeout=STOP_TIMEOUT_S)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _mlflow_server(folder: str, store_uri: str, workers: int) -> Iterator[str]:
    """Run the development MLflow server on ``store_uri``; yield its tracking URI."""
    try:
        started = _run_script(
            "dev-mlflow-server.sh",
            "start",
            folder,
            store_uri,
            str(free_port()),
            str(workers),
            timeout=START_TIMEOUT_S,
        )
        yield started["MLFLOW_TRACKING_URI"]
    finally:
        try:
            # The script fails when any process of the server's group survives.
            _run_script("dev-mlflow-server.sh", "stop", folder, timeout=STOP_TIMEOUT_S)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", name="mlflow_server")
def tracking_server(postgres: dict[str, str]) -> Iterator[str]:
    """An MLflow tracking server on PostgreSQL; yields its tracking URI."""
    folder = tempfile.mkdtemp(prefix="grindwatch-mlflow-")
    yield from _mlflow_server(folder, postgres["MLFLOW_BACKEND_STORE_URI"], 2)


@pytest.fixture(scope="session", name="sqlite_mlflow_server")
def sqlite_tracking_server() -> Iterator[str]:
    """An MLflow tracking server on an SQLite store; yields its tracking URI.

    For tests of what clients see from a server (REST store), without PostgreSQL.
    """
    folder = tempfile.mkdtemp(prefix="grindwatch-mlflow-sqlite-")
    yield from _mlflow_server(folder, f"sqlite:///{Path(folder) / 'mlflow.db'}", 1)
