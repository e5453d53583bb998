"""Detectors behind one interface; ``make_detector`` builds one by family name."""

from __future__ import annotations

from typing import Any

from grindwatch.detectors.autoencoder import AutoencoderDetector
from grindwatch.detectors.base import BaseDetector, EpochCallback, check_windows
from grindwatch.detectors.classical import (
    IsolationForestDetector,
    KNNDetector,
    PCADetector,
)
from grindwatch.exceptions import ConfigError

DETECTORS: dict[str, type[BaseDetector]] = {
    "autoencoder": AutoencoderDetector,
    "iforest": IsolationForestDetector,
    "pca": PCADetector,
    "knn": KNNDetector,
}


def make_detector(family: str, **params: Any) -> BaseDetector:
    """Build the detector of ``family`` with ``params`` as constructor arguments."""
    if family not in DETECTORS:
        raise ConfigError(
            f"detector family {family!r} is unknown; use one of {sorted(DETECTORS)}"
        )
    cls = DETECTORS[family]
    allowed = set(cls._param_names())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(
            f"{family} takes no parameter {unknown}; it takes {sorted(allowed)}"
        )
    return cls(**params)


__all__ = [
    "DETECTORS",
    "AutoencoderDetector",
    "BaseDetector",
    "EpochCallback",
    "IsolationForestDetector",
    "KNNDetector",
    "PCADetector",
    "check_windows",
    "make_detector",
]
