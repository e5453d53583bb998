"""grindwatch: label-free anomaly detection for machine-tool sensor recordings.

The public API mirrors the command line::

    import grindwatch
    result = grindwatch.train("recordings/healthy", grindwatch.load_config("gw.yaml"))
    scores = grindwatch.score(result.model, "recordings/new")

Heavy dependencies (torch, MLflow, Optuna) load only when used.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from grindwatch._version import __version__

if TYPE_CHECKING:
    from grindwatch.config import Config, load_config
    from grindwatch.evaluate import evaluate
    from grindwatch.io import Recording, RecordingSet, load_recordings
    from grindwatch.pipeline import Model, load_model, score, train
    from grindwatch.tuning import tune

_EXPORTS = {
    "Config": "grindwatch.config",
    "load_config": "grindwatch.config",
    "evaluate": "grindwatch.evaluate",
    "Recording": "grindwatch.io",
    "RecordingSet": "grindwatch.io",
    "load_recordings": "grindwatch.io",
    "Model": "grindwatch.pipeline",
    "load_model": "grindwatch.pipeline",
    "score": "grindwatch.pipeline",
    "train": "grindwatch.pipeline",
    "tune": "grindwatch.tuning",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'grindwatch' has no attribute {name!r}")


class _Package(types.ModuleType):
    """The grindwatch package, whose exported functions win over same-named modules."""

    def __setattr__(self, name: str, value: Any) -> None:
        # The first import of the module grindwatch.evaluate sets the package
        # attribute "evaluate" to that module, which would hide the function
        # evaluate for the rest of the process. Leaving it unset sends the
        # lookup to __getattr__, which returns the function.
        if isinstance(value, types.ModuleType) and name in _EXPORTS:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
