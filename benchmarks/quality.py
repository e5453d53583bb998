"""Quality: grindwatch against PyOD's detectors at their defaults, on the same inputs.

Every PyOD detector sees the matrix that grindwatch's classical detectors see: the
windows after the per-channel scaling and front end of the task's grindwatch
configuration (``Model.features``), flattened to one row per window. For feature
tables these are the robust-scaled rows. Each tool flags at its own threshold:
PyOD's ``threshold_`` from its default contamination of 0.1, grindwatch's from its
clustered (GMM) threshold or that threshold's fallback. Recording scores aggregate
window scores with grindwatch's configured aggregate (the same for every tool) and
are flagged at the same threshold.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.datasets import Task
from benchmarks.tuned import find_tuner
from grindwatch.evaluate import binary_metrics
from grindwatch.io import Recording
from grindwatch.pipeline import Model
from grindwatch.signals import WindowSet

logger = logging.getLogger(__name__)

__all__ = [
    "GRINDWATCH",
    "PYOD_MODELS",
    "TUNED",
    "evaluate_scored",
    "fit_grindwatch",
    "fit_pyod",
    "run_quality",
]

GRINDWATCH = "grindwatch defaults"
TUNED = "grindwatch tuned"
# Display name -> (module, class) of each PyOD detector, used with its defaults.
PYOD_MODELS = {
    "PyOD IForest": ("pyod.models.iforest", "IForest"),
    "PyOD ECOD": ("pyod.models.ecod", "ECOD"),
    "PyOD KNN": ("pyod.models.knn", "KNN"),
    "PyOD PCA": ("pyod.models.pca", "PCA"),
    "PyOD AutoEncoder": ("pyod.models.auto_encoder", "AutoEncoder"),
}
METRICS = ("auc_roc", "auc_pr", "f1", "precision", "recall")


@dataclass
class Scored:
    """Window scores of one tool with its threshold and where they came from."""

    scores: np.ndarray
    threshold: float
    windows: WindowSet
    seconds: float


def _recording_label(recording: Recording) -> int:
    if recording.sample_labels is not None:
        return int((recording.sample_labels > 0).any())
    return -1 if recording.label is None else int(recording.label)


def evaluate_scored(
    scored: Scored,
    recordings: dict[str, Recording],
    aggregate: Callable[[np.ndarray], float],
) -> dict[str, dict[str, float]]:
    """Window and recording metrics of one tool at its own threshold."""
    windows = scored.windows
    flags = scored.scores > scored.threshold
    known = windows.labels >= 0
    result = {
        "windows": binary_metrics(
            windows.labels[known], scored.scores[known], flags[known]
        )
    }
    totals = np.array(
        [
            aggregate(scored.scores[windows.recording == i])
            for i in range(len(windows.names))
        ]
    )
    labels = np.array([_recording_label(recordings[name]) for name in windows.names])
    keep = labels >= 0
    result["recordings"] = binary_metrics(
        labels[keep], totals[keep], totals[keep] > scored.threshold
    )
    result["seconds"] = scored.seconds
    return result


def fit_grindwatch(task: Task, config) -> tuple[Model, Scored]:  # noqa: ANN001 - Config
    """Fit a model on the task's training recordings and score its test windows."""
    start = time.perf_counter()
    model = Model(config).fit(task.train)
    if task.test is None:
        windows = model.training_windows_
        scores = np.asarray(model.training_scores_)
    else:
        windows = model.prepare(task.test)
        scores = model.window_scores(windows.X)
    seconds = time.perf_counter() - start
    return model, Scored(scores, model.threshold_.value, windows, seconds)


def make_pyod(name: str, seed: int):  # noqa: ANN201 - a PyOD detector
    """Build a PyOD detector with its defaults; only the seed and display are set."""
    module, class_name = PYOD_MODELS[name]
    detector_class = getattr(importlib.import_module(module), class_name)
    accepted = inspect.signature(detector_class.__init__).parameters
    params = {}
    if "random_state" in accepted:
        params["random_state"] = seed
    if "verbose" in accepted:
        params["verbose"] = 0  # PyOD's AutoEncoder draws a progress bar by default
    return detector_class(**params)


def fit_pyod(name: str, seed: int, model: Model, task: Task, train: WindowSet):
    """Fit a PyOD detector on the default model's features; score the test windows."""
    start = time.perf_counter()
    detector = make_pyod(name, seed)
    train_features = _flat(model.features(train.X))
    detector.fit(train_features)
    if task.test is None:
        windows, scores = train, np.asarray(detector.decision_scores_)
    else:
        windows = model.prepare(task.test)
        scores = np.asarray(
            detector.decision_function(_flat(model.features(windows.X)))
        )
    seconds = time.perf_counter() - start
    return Scored(
        scores.astype(np.float64), float(detector.threshold_), windows, seconds
    )


def _flat(features: np.ndarray) -> np.ndarray:
    return features.reshape(features.shape[0], -1).astype(np.float64)


def _recordings_of(task: Task) -> dict[str, Recording]:
    recordings = task.train.recordings if task.test is None else task.test
    return {recording.name: recording for recording in recordings}


def run_task(task: Task, seed: int, tune: bool = True) -> dict[str, dict]:
    """One repeat on one task: every tool, metrics per window and per recording."""
    config = task.config.with_overrides({"seed": seed})
    recordings = _recordings_of(task)
    model, scored = fit_grindwatch(task, config)
    aggregate = model.aggregate
    results = {GRINDWATCH: evaluate_scored(scored, recordings, aggregate)}
    results[GRINDWATCH]["threshold_method"] = model.threshold_.method
    results[GRINDWATCH]["n_windows"] = len(scored.windows)

    for name in PYOD_MODELS:
        pyod_scored = fit_pyod(name, seed, model, task, model.training_windows_)
        results[name] = evaluate_scored(pyod_scored, recordings, aggregate)
        results[name]["n_windows"] = len(pyod_scored.windows)

    tuner, _ = find_tuner()
    if tune and tuner is not None:
        results[TUNED] = _run_tuned(tuner, task, config, seed, recordings)
    return results


def _run_tuned(tuner, task: Task, config, seed: int, recordings) -> dict:  # noqa: ANN001
    """Tune on the training recordings without labels, refit the best, evaluate it."""
    start = time.perf_counter()
    base = config.with_overrides(task.tune_overrides) if task.tune_overrides else config
    tuned_config, description = tuner(task.train, base, seed)
    tune_seconds = time.perf_counter() - start
    model, scored = fit_grindwatch(task, tuned_config)
    scored.seconds += tune_seconds
    result = evaluate_scored(scored, recordings, model.aggregate)
    result["threshold_method"] = model.threshold_.method
    result["n_windows"] = len(scored.windows)
    result["tuned_settings"] = description
    return result


def median_results(repeats: list[dict[str, dict]]) -> dict[str, dict]:
    """Median of each figure over repeats, per tool and level."""
    merged: dict[str, dict] = {}
    for tool in repeats[0]:
        runs = [repeat[tool] for repeat in repeats if tool in repeat]
        entry = {
            "repeats": len(runs),
            "seconds": float(np.median([r["seconds"] for r in runs])),
        }
        for level in ("windows", "recordings"):
            entry[level] = {
                key: _median([run[level][key] for run in runs])
                for key in (*METRICS, "n", "n_anomalous", "n_flagged")
            }
        for key in ("threshold_method", "n_windows", "tuned_settings"):
            if key in runs[0]:
                entry[key] = [run[key] for run in runs]
        merged[tool] = entry
    return merged


def _median(values: list[float]) -> float:
    finite = [value for value in values if value == value]  # drop NaN
    return float(np.median(finite)) if finite else float("nan")


def run_quality(tasks: list[Task], repeats: int, tune: bool = True) -> dict[str, dict]:
    """Every task, ``repeats`` times with seeds 0, 1, ...; medians per figure."""
    summary = {}
    for task in tasks:
        logger.info("quality: %s", task.name)
        runs = [run_task(task, seed, tune) for seed in range(repeats)]
        summary[task.name] = {
            "protocol": task.protocol,
            "changes": task.changes,
            "tools": median_results(runs),
        }
    return summary
