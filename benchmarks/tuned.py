"""The "grindwatch tuned" column: a fixed-budget, label-free tune per data set.

``find_tuner`` returns an adapter ``(training recordings, config, seed) -> (tuned
Config, description)`` around ``grindwatch.tuning.tune``, or None and the reason
when this checkout has no tuning module. The adapter strips every label from the
recordings it passes on, so the tune cannot see them even as a report, and keeps
its Optuna storage in a temporary folder.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grindwatch.io import Recording, RecordingSet

logger = logging.getLogger(__name__)

__all__ = ["TUNING_TRIALS", "find_tuner", "tune_unlabeled", "without_labels"]

# Finished trials per tune. A trial count rather than a time limit keeps the tuned
# result the same on faster or slower machines; it bounds the run time too.
TUNING_TRIALS = 20

Tuner = Callable[[RecordingSet, Any, int], tuple[Any, str]]


def without_labels(recordings: RecordingSet) -> RecordingSet:
    """Copies of the recordings with recording and sample labels removed."""
    stripped = [
        Recording(
            name=recording.name,
            data=recording.data,
            channels=list(recording.channels),
            sample_rate=recording.sample_rate,
            source=recording.source,
            metadata=dict(recording.metadata),
        )
        for recording in recordings.recordings
    ]
    return RecordingSet(stripped, kind=recordings.kind)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def tune_unlabeled(
    recordings: RecordingSet,
    config: Any,
    seed: int,
    study_name: str,
    trials: int = TUNING_TRIALS,
) -> Any:
    """Run ``grindwatch.tuning.tune`` on copies of the recordings without labels,
    untracked, with its Optuna storage in a temporary folder; return its result."""
    from grindwatch.tuning import tune

    with tempfile.TemporaryDirectory() as folder:
        settings = {
            "seed": seed,
            "tracking.enabled": False,
            "tune.n_trials": trials,
            "tune.storage": str(Path(folder) / "optuna.db"),
            "tune.study_name": study_name,
        }
        return tune(without_labels(recordings), config, overrides=settings)


def find_tuner() -> tuple[Tuner | None, str]:
    """Return the tuning adapter, or None and why there is none."""
    try:
        from grindwatch.tuning import tune  # noqa: F401 - checks that it imports
    except ImportError as error:
        return None, f"grindwatch.tuning cannot be imported ({error})"

    def run_tune(recordings: RecordingSet, config: Any, seed: int) -> tuple[Any, str]:
        result = tune_unlabeled(recordings, config, seed, f"benchmark-seed-{seed}")
        if result.best_config is None:
            raise RuntimeError(f"the tune finished no trial ({result.stop_reason})")
        params = dict(result.best_params)
        if "n_bands" in params:
            # The bands used: the tune caps the drawn count at half the window.
            params["n_bands"] = result.best_config.frontend.n_bands
        chosen = ", ".join(f"{key}={_short(value)}" for key, value in params.items())
        logger.info("tuned (objective %.3f): %s", result.best_value, chosen)
        return result.best_config, chosen

    return run_tune, ""
