"""The interface every detector follows.

A detector is fitted on windows shaped (n_windows, n_channels, k), where k is the
window length for the raw front end, the number of bands for spectra, or the number
of statistics for window features. It returns an **anomaly score, higher is more
anomalous**, one float64 per window. After ``fit`` the scores of the training
windows are in ``training_scores_`` (for nearest-neighbour detectors they leave
each window's own match out), and the threshold is fitted on those.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from grindwatch.exceptions import ConfigError, InputError, NotFittedError

logger = logging.getLogger(__name__)

__all__ = ["BaseDetector", "EpochCallback", "check_windows"]

# Called after each training epoch with (epoch, train_loss, validation_loss).
# It may raise to stop training, which is how tuning prunes a trial.
EpochCallback = Callable[[int, float, float | None], None]


def check_windows(X: Any, name: str = "X") -> np.ndarray:
    """Return ``X`` as a finite float32 array of shape (n, channels, k)."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3:
        raise InputError(
            name,
            f"expected windows shaped (n_windows, n_channels, k), got {X.shape}",
            "window the recordings first",
        )
    if X.shape[0] == 0:
        raise InputError(name, "holds no windows", "pass at least one window")
    if not np.isfinite(X).all():
        raise InputError(name, "holds NaN or infinite values", "clean the input")
    return X


def _as_scores(scores: np.ndarray) -> np.ndarray:
    """Return ``scores`` as float64, the precision of fitted thresholds.

    PCA returns float32 scores. NumPy 2 compares a float32 array with a
    Python float in float32, so a threshold that float32 rounds onto a score
    would leave that score unflagged although it is above the threshold.
    """
    return np.asarray(scores, dtype=np.float64)


class BaseDetector:
    """Base class for detectors: stores its arguments, learns in ``fit``.

    Subclasses implement ``_fit`` and ``_score``. They may override
    ``_explain`` (the default needs ``_fit_spread`` in ``_fit``), and
    ``_score_and_explain`` to compute both in one pass.
    """

    family: str = ""

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    @classmethod
    def _param_names(cls) -> list[str]:
        import inspect

        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def fit(self, X: Any, on_epoch: EpochCallback | None = None) -> BaseDetector:
        """Learn normal behaviour from windows and store their scores."""
        X = check_windows(X)
        if X.shape[0] < 2:
            # One window shows no spread: PCA and the autoencoder then score it 0
            # and flag anything else, and an isolation forest flags nothing.
            raise ConfigError(
                f"{self.family} needs at least 2 training windows, and the data "
                f"gives {X.shape[0]}; train on more or longer recordings, or "
                "shorten the window (--window)"
            )
        self.input_shape_ = tuple(X.shape[1:])
        self._fit(X, on_epoch)
        self.training_scores_ = _as_scores(self._training_scores(X))
        logger.info("%s fitted on %d windows", self.family, X.shape[0])
        return self

    def anomaly_score(self, X: Any) -> np.ndarray:
        """Anomaly score of each window, higher is more anomalous."""
        self._check_fitted(X)
        return _as_scores(self._score(check_windows(X)))

    def explain(self, X: Any) -> np.ndarray:
        """Contribution of each channel and position to each window's score.

        Returns an array shaped like ``X`` of non-negative values; larger means that
        element departs more from normal.
        """
        self._check_fitted(X)
        return self._explain(check_windows(X))

    def score_and_explain(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Anomaly scores and per-element contributions of windows, together.

        Returns what ``anomaly_score`` and ``explain`` return. Detectors whose
        score is the mean of their contributions compute both in one pass.
        """
        self._check_fitted(X)
        X = check_windows(X)
        scores, contributions = self._score_and_explain(X)
        return _as_scores(scores), contributions

    def _score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._score(X), self._explain(X)

    def _check_fitted(self, X: Any) -> None:
        if not hasattr(self, "input_shape_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted; call fit before scoring"
            )
        shape = tuple(np.shape(X)[1:])
        if shape != self.input_shape_:
            raise InputError(
                "X",
                f"windows shaped {shape} do not match the training shape "
                f"{self.input_shape_}",
                "use the same channels, window length and front end as in training",
            )

    def _training_scores(self, X: np.ndarray) -> np.ndarray:
        return self._score(X)

    def _fit(self, X: np.ndarray, on_epoch: EpochCallback | None) -> None:
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _explain(self, X: np.ndarray) -> np.ndarray:
        # Default: standardised distance from the training median, per element.
        return np.abs(X - self.median_) / self.spread_

    def _fit_spread(self, X: np.ndarray) -> None:
        self.median_ = np.median(X, axis=0)
        spread = np.median(np.abs(X - self.median_), axis=0) * 1.4826
        self.spread_ = np.where(spread > 1e-9, spread, 1.0).astype(np.float32)
