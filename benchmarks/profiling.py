"""Profile: where training and scoring spend their time, with cProfile.

Runs ``Model.fit`` and ``Model.score`` once each on the speed workload with the
default configuration (30 epochs at most, early stopping on), and reports the
cumulative time of the functions that implement each pipeline stage, plus the top
functions by own time.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import time
from typing import Any

from benchmarks.speed import WORKLOAD
from benchmarks.workload import make_recordings
from grindwatch.config import Config
from grindwatch.pipeline import Model

__all__ = ["run_profile"]

# Stage name -> (path suffix, function name) pairs whose cumulative times add up.
FIT_STAGES = {
    "windowing": [("signals/windows.py", "make_windows")],
    "scaling": [("signals/scaling.py", "fit"), ("signals/scaling.py", "transform")],
    "front end": [
        ("signals/frontends.py", "fit"),
        ("signals/frontends.py", "transform"),
    ],
    "autoencoder training epochs": [("detectors/autoencoder.py", "_train_epoch")],
    "validation loss": [("detectors/autoencoder.py", "_mean_loss")],
    "training-window scores": [("detectors/base.py", "_training_scores")],
    "threshold": [("grindwatch/thresholds.py", "fit_threshold")],
}
SCORE_STAGES = {
    "windowing": [("signals/windows.py", "make_windows")],
    "scaling and front end": [("grindwatch/pipeline.py", "features")],
    # With attribution on, one detector pass returns scores and contributions.
    "detector (scores and contributions)": [
        ("detectors/base.py", "anomaly_score"),
        ("detectors/base.py", "score_and_explain"),
    ],
    "attribution tables": [
        ("grindwatch/explain.py", "window_attribution"),
        ("grindwatch/explain.py", "recording_summary"),
    ],
}
TOP_FUNCTIONS = 12


def _stage_seconds(stats: pstats.Stats, stages: dict[str, list]) -> dict[str, float]:
    seconds = dict.fromkeys(stages, 0.0)
    for (path, _, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        for stage, functions in stages.items():
            if any(
                path.endswith(suffix) and function == name for suffix, name in functions
            ):
                seconds[stage] += entry[3]  # cumulative time
    return seconds


def _top(stats: pstats.Stats) -> str:
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(TOP_FUNCTIONS)
    text = buffer.getvalue()
    text = re.sub(r"\S*/site-packages/", "", text)
    text = re.sub(r"\S*/src/grindwatch/", "grindwatch/", text)
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
    return "\n".join(lines[first:])


def _profile(call: Any, stages: dict[str, list]) -> dict[str, Any]:
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(call)
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    return {"total": total, "stages": _stage_seconds(stats, stages), "top": _top(stats)}


def run_profile() -> dict[str, Any]:
    """Profile one fit and one score of the default model on the speed workload."""
    recordings = make_recordings(WORKLOAD["recordings"], WORKLOAD["samples"])
    model = Model(Config().with_overrides({"tracking.enabled": False}))
    fit = _profile(lambda: model.fit(recordings), FIT_STAGES)
    score = _profile(lambda: model.score(recordings), SCORE_STAGES)
    return {
        "epochs": len(model.detector_.history_),
        "max_epochs": model.config.detector.autoencoder.epochs,
        "stages": {"Model.fit": fit, "Model.score (with attribution)": score},
    }
