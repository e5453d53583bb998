"""The labelled data sets of the quality comparison, and how each one is split.

Each loader returns a ``Task``: grindwatch's settings for the data, the unlabeled
training recordings and the recordings to score. Labels travel with the recordings
(folder names, label columns, label files) and are read only when metrics are
computed. A loader returns None, with the reason, when its data is absent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grindwatch.config import Config, load_config
from grindwatch.exceptions import InputError
from grindwatch.io import ReadOptions, Recording, RecordingSet, read_file
from grindwatch.pipeline import read_data
from grindwatch.signals import window_starts

logger = logging.getLogger(__name__)

__all__ = ["LOADERS", "Task", "load_tasks", "slice_recording"]

# The SKAB authors fit each run's model on its first 400 rows (1 s each).
SKAB_TRAINING_ROWS = 400
# Tuned column on short recordings (a few hundred to a few thousand samples): the
# default search space starts at 256-sample windows.
SHORT_WINDOWS = {"tune.space.window_length": [16, 32, 64]}


@dataclass
class Task:
    """One data set prepared for the comparison.

    Attributes
    ----------
    name : str
        Short name used in tables.
    protocol : str
        What is trained on and what is scored, in one or two sentences.
    config : Config
        grindwatch's settings: the defaults plus ``changes``.
    changes : dict
        Settings changed from ``Config()``, each with the reason, so the page can
        list them.
    train : RecordingSet
        Unlabeled training recordings.
    test : list of Recording or None
        Recordings to score; None scores the training recordings themselves
        (transductive, as in PyOD's own benchmarks).
    tune_overrides : dict
        Search-space settings of the tuned column, where the default window lengths
        (256 to 2048 samples) do not fit the recordings.
    """

    name: str
    protocol: str
    config: Config
    changes: dict[str, str]
    train: RecordingSet
    test: list[Recording] | None = None
    tune_overrides: dict[str, Any] = field(default_factory=dict)


def base_config(overrides: dict[str, Any] | None = None) -> Config:
    settings = {"tracking.enabled": False}
    settings.update(overrides or {})
    return Config().with_overrides(settings)


def slice_recording(
    recording: Recording, start: int, stop: int | None, suffix: str
) -> Recording:
    """Return samples ``start:stop`` of a recording as a new recording."""
    labels = recording.sample_labels
    return Recording(
        name=f"{recording.name}{suffix}",
        data=np.ascontiguousarray(recording.data[:, start:stop]),
        channels=list(recording.channels),
        sample_rate=recording.sample_rate,
        source=recording.source,
        label=recording.label,
        sample_labels=None if labels is None else labels[start:stop].copy(),
        metadata=dict(recording.metadata),
    )


def gearbox(root: Path) -> Task:
    """Train on the first half of each healthy recording, score every second half."""
    config = base_config()
    recordings = read_data(root, config).recordings
    heads, tails = [], []
    for recording in recordings:
        middle = recording.n_samples // 2
        if recording.label == 0:
            heads.append(slice_recording(recording, 0, middle, ":first-half"))
        tails.append(slice_recording(recording, middle, None, ":second-half"))
    return Task(
        name="gearbox",
        protocol=(
            f"Train on the first half of each of the {len(heads)} healthy recordings; "
            f"score the second half of all {len(tails)} recordings (healthy and broken "
            "tooth). Labels: folder names."
        ),
        config=config,
        changes={},
        train=RecordingSet(heads),
        test=tails,
    )


def grinding(root: Path) -> Task:
    """Train on all OK and NOK rows together, unlabeled, and score the same rows."""
    changes = {
        "data.kind": "table (one row per grinding cycle)",
        "detector.family": (
            "iforest, because the default autoencoder needs signal windows and "
            "rejects feature tables"
        ),
    }
    config = base_config({"data.kind": "table", "detector.family": "iforest"})
    files = [root / "ok_features.parquet", root / "nok_features.parquet"]
    train = read_data(files, config)
    n_bad = sum(recording.label == 1 for recording in train.recordings)
    return Task(
        name="grinding",
        protocol=(
            f"Train on all {len(train)} cycles (OK and NOK together, {n_bad} NOK, "
            "no labels, no contamination rate) and score the same cycles. Labels: "
            "the `anomaly` column. Each cycle is one row, so per-recording figures "
            "equal per-window ones."
        ),
        config=config,
        changes=changes,
        train=train,
        test=None,
    )


def cnc_mill(root: Path) -> Task:
    """Train on all twelve milling cycles, unlabeled, and score the same cycles."""
    from grindwatch.demo import DEMO_FOLDER

    config = load_config(DEMO_FOLDER / "grindwatch.yaml").with_overrides(
        {"tracking.enabled": False}
    )
    files = sorted(root.glob("experiment_*.csv"))
    train = read_data(files, config)
    labels = _cnc_labels(root / "train.csv")
    for recording in train.recordings:
        recording.label = labels[int(recording.name.split("_")[-1])]
    return Task(
        name="cnc_mill",
        protocol=(
            f"Train on all {len(train)} milling cycles without labels and score the "
            f"same cycles, as `grindwatch demo` does. Labels: worn tool, aborted or "
            f"failed part ({sum(labels.values())} of {len(labels)} cycles)."
        ),
        config=config,
        changes={
            "all": (
                "the configuration shipped for this data "
                "(src/grindwatch/examples/cnc_mill/grindwatch.yaml): 39 channels, "
                "10 Hz, windows of 32 samples with hop 16, standard scaling "
                "(the axes stand still for much of a cycle), raw front end, mean "
                "aggregate, and a tune.space of windows of 16 to 128 samples"
            )
        },
        train=train,
        test=None,
        tune_overrides=SHORT_WINDOWS,
    )


def _cnc_labels(path: Path) -> dict[int, int]:
    """Anomalous (1) when the tool was worn, the part not finalized or rejected."""
    table = pd.read_csv(path, dtype=str).fillna("")
    anomalous = (
        (table["tool_condition"] == "worn")
        | (table["machining_finalized"] == "no")
        | (table["passed_visual_inspection"] == "no")
    )
    return dict(zip(table["No"].astype(int), anomalous.astype(int), strict=True))


def skab(root: Path) -> Task:
    """Train on anomaly-free.csv plus each run's first rows, score the rest."""
    changes = {
        "windows.length": (
            "64 s, because the default 1024-sample window is longer than the scored "
            "part of every run"
        ),
        "cycle.enabled": (
            "false, because the recordings are slices of runs, not process cycles: "
            "the training slices are 400 rows long and the scored ones the rest of "
            "each run, so the cycle check would flag every scored slice for its "
            "length"
        ),
    }
    config = base_config({"windows.length": 64, "cycle.enabled": False})
    run_files = [
        path
        for path in sorted(root.glob("*/*.csv"))
        if path.parent.name != "anomaly-free"
    ]
    runs = read_data(run_files, config).recordings
    free = read_data(root / "anomaly-free" / "anomaly-free.csv", config).recordings
    heads = [slice_recording(run, 0, SKAB_TRAINING_ROWS, ":train") for run in runs]
    tails = [slice_recording(run, SKAB_TRAINING_ROWS, None, ":test") for run in runs]
    return Task(
        name="skab",
        protocol=(
            f"One model for the test rig: train on anomaly-free.csv plus the first "
            f"{SKAB_TRAINING_ROWS} rows of each of the {len(runs)} runs (unlabeled; "
            f"run other/2 has labelled anomalies in them); score the rest of each "
            "run. Labels: the per-row `anomaly` column. Every run holds an anomaly, "
            "so per-recording AUCs are undefined."
        ),
        config=config,
        changes=changes,
        train=RecordingSet([*free, *heads]),
        test=tails,
        tune_overrides=SHORT_WINDOWS,
    )


def nab_machine_temperature(root: Path) -> Task:
    """Train on the whole series, unlabeled, and score the same windows."""
    config = base_config({"windows.length": 64})
    path = root / "machine_temperature_system_failure.csv"
    # The file repeats one hour of timestamps at data row 10149, which the CSV
    # reader rejects as time going backwards, so the rows are read in file order.
    options = ReadOptions(ignore_time=True, sample_rate=1 / 300, channels=("value",))
    recording = read_file(path, options)[0]
    default_length = Config().windows.length
    n_default = len(window_starts(recording.n_samples, default_length, default_length))
    changes = {
        "windows.length": (
            f"64 samples (5.3 h at one sample per 5 min); the default "
            f"{default_length} would cut the series into only {n_default} windows"
        )
    }
    times = pd.to_datetime(pd.read_csv(path, usecols=["timestamp"])["timestamp"])
    times = times.to_numpy()
    recording.sample_labels = _nab_labels(root, times)
    return Task(
        name="nab_temperature",
        protocol=(
            "Train on the whole series without labels and score the same windows. "
            "Labels: a window is anomalous when it overlaps one of the four NAB "
            "anomaly windows. One recording, so no per-recording figures. The "
            "rows are read in file order (data.ignore_time) at one sample per "
            "5 min, because the file repeats one hour of timestamps."
        ),
        config=config,
        changes=changes,
        train=RecordingSet([recording]),
        test=None,
        tune_overrides={"tune.space.window_length": [32, 64, 128]},
    )


def _nab_labels(root: Path, times: np.ndarray) -> np.ndarray:
    windows = json.loads((root / "labels.json").read_text())["anomaly_windows"]
    labels = np.zeros(times.size, dtype=np.int8)
    for start, end in windows:
        inside = (times >= np.datetime64(pd.Timestamp(start))) & (
            times <= np.datetime64(pd.Timestamp(end))
        )
        labels[inside] = 1
    return labels


# Folder under the data root, and the loader that prepares it.
LOADERS: dict[str, tuple[str, Callable[[Path], Task]]] = {
    "gearbox": ("gearbox_spectraquest", gearbox),
    "grinding": ("grinding_kellenberger_features", grinding),
    "cnc_mill": ("cnc_mill_tool_wear_umich", cnc_mill),
    "skab": ("skab", skab),
    "nab_temperature": ("nab_machine_temperature", nab_machine_temperature),
}


def load_tasks(
    data: Path, names: list[str] | None = None
) -> tuple[list[Task], dict[str, str]]:
    """Prepare every task whose folder exists under ``data``.

    Returns the tasks and, for each one left out, the reason.
    """
    tasks, skipped = [], {}
    for name, (folder, loader) in LOADERS.items():
        if names and name not in names:
            continue
        root = data / folder
        if not root.is_dir():
            skipped[name] = f"{root} not found"
            logger.warning(
                "skipped %s: %s not found; pass --data with the folder of the "
                "shared data sets",
                name,
                root,
            )
            continue
        try:
            tasks.append(loader(root))
        except InputError as error:
            skipped[name] = f"it could not be read ({error})"
            logger.warning("skipped %s: %s", name, error)
    return tasks, skipped
