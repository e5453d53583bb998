"""Shared fixtures: isolated MLflow stores and small generated recordings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# pytest-xdist's workers inherit COLUMNS=80, and Rich would then cut table cells
# that the CLI tests read ("acoustic_emi…"). Tests that depend on the width set
# COLUMNS themselves.
os.environ.pop("COLUMNS", None)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def restore_logging():  # noqa: ANN201
    """Undo the handlers, levels and warning format an in-process CLI run installs."""
    import logging
    import warnings

    format_warning = warnings.formatwarning
    root = logging.getLogger()
    package = logging.getLogger("grindwatch")
    root_handlers, root_level = root.handlers[:], root.level
    package_handlers, package_level = package.handlers[:], package.level
    yield
    root.handlers[:] = root_handlers
    root.setLevel(root_level)
    package.handlers[:] = package_handlers
    package.setLevel(package_level)
    logging.captureWarnings(False)
    warnings.formatwarning = format_warning


# Settings the CLI puts in os.environ with setdefault: MLflow's HTTP retries and
# its logging. A CLI test run in this process must not pass them to later tests.
_CLI_ENVIRONMENT = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_LOGGING_LEVEL",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
)


@pytest.fixture(autouse=True)
def restore_cli_environment():  # noqa: ANN201
    """Put back the environment variables an in-process CLI run sets."""
    saved = {name: os.environ.get(name) for name in _CLI_ENVIRONMENT}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def empty_tracking_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite MLflow store with its tables made and no runs, made once per process.

    MLflow takes 3 to 6 seconds to make the tables of a new store, which hundreds
    of tests would otherwise each pay.
    """
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def isolated_tracking(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """Run every test in its own folder with its own SQLite MLflow store.

    The store is a copy of ``empty_tracking_store``, except for tests marked
    ``new_tracking_store``, which start with no file.
    """
    monkeypatch.chdir(tmp_path)
    if request.node.get_closest_marker("new_tracking_store") is None:
        template = request.getfixturevalue("empty_tracking_store")
        shutil.copyfile(template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return uri


def make_cycle(
    seed: int, n_samples: int = 2048, rate: float = 1000.0, anomaly: str | None = None
) -> np.ndarray:
    """One 3-channel cycle: two sines plus noise; optionally with an injected fault.

    ``anomaly`` is ``"spike"`` (a burst of large samples in channel 1), ``"tone"`` (an
    added 180 Hz tone in channel 0) or ``"level"`` (a level shift in channel 2).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / rate
    phase = rng.uniform(0, 2 * np.pi, 3)
    data = np.stack(
        [
            np.sin(2 * np.pi * 50 * t + phase[0]),
            0.5 * np.sin(2 * np.pi * 120 * t + phase[1]),
            np.sin(2 * np.pi * 20 * t + phase[2]) + 0.2 * np.sin(2 * np.pi * 70 * t),
        ]
    )
    data += 0.1 * rng.standard_normal(data.shape)
    middle = slice(n_samples // 2, n_samples // 2 + n_samples // 4)
    if anomaly == "spike":
        data[1, middle] += 3.0 * rng.standard_normal(n_samples // 4)
    elif anomaly == "tone":
        data[0, middle] += 0.8 * np.sin(2 * np.pi * 180 * t[middle])
    elif anomaly == "level":
        data[2, middle] += 2.5
    return data.astype(np.float32)


def write_cycles(
    folder: Path, count: int, start_seed: int = 0, anomaly=None
) -> list[Path]:  # noqa: ANN001
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        data = make_cycle(start_seed + i, anomaly=anomaly)
        frame = pd.DataFrame(data.T, columns=["vib_x", "vib_y", "current"])
        frame.insert(0, "time", np.arange(data.shape[1]) / 1000.0)
        path = folder / f"cycle_{start_seed + i:03d}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def write_cycle_folders(root: Path) -> dict[str, Path]:
    """Write good/ with 8 normal cycles and bad/ with 3 faulty ones, CSV at 1 kHz."""
    write_cycles(root / "good", 8, start_seed=0)
    for seed, fault in ((100, "spike"), (101, "tone"), (102, "level")):
        write_cycles(root / "bad", 1, start_seed=seed, anomaly=fault)
    return {"root": root, "good": root / "good", "bad": root / "bad"}


@pytest.fixture
def cycle_folders(tmp_path: Path) -> dict[str, Path]:
    """good/ with 8 normal cycles and bad/ with 3 faulty ones, as CSV at 1 kHz."""
    return write_cycle_folders(tmp_path / "cycles")


@pytest.fixture
def feature_table(tmp_path: Path) -> Path:
    """A per-cycle feature table: 300 normal rows, 4 outliers and a label column."""
    rng = np.random.default_rng(7)
    normal = rng.normal(size=(300, 6))
    normal[:, 1] = normal[:, 0] * 0.8 + 0.2 * normal[:, 1]
    outliers = rng.normal(size=(4, 6)) + np.array([6, -6, 5, 0, 0, 7])
    frame = pd.DataFrame(
        np.vstack([normal, outliers]), columns=[f"f{i}" for i in range(6)]
    )
    frame["anomaly"] = [False] * 300 + [True] * 4
    path = tmp_path / "features.parquet"
    frame.to_parquet(path)
    return path


def shared_dataset(name: str) -> Path:
    """Path of a dataset under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path
