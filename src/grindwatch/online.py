"""Score one recording at a time, with its channel attribution.

The REST service and the folder watcher both score recordings one by one as they
arrive. They share this module so that both return the same numbers as
``Model.score`` on the same recording.

NOTE: ``Model.score`` runs the detector on the windows of many recordings at once and
this module on one recording's, so a window score can differ by float32 rounding
(relative 1.4e-7 at most in one test with the raw front end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from grindwatch.cycles import CycleVerdict
from grindwatch.exceptions import ConfigError
from grindwatch.explain import attributed_windows
from grindwatch.io import Recording
from grindwatch.pipeline import Model

__all__ = ["CycleScore", "check_signal_model", "score_recording"]


@dataclass
class CycleScore:
    """The scores of one recording and where its departure from normal comes from.

    Attributes
    ----------
    name : str
        Recording name.
    score : float
        Recording score: the model's aggregate of its window scores (anomaly score,
        higher is more anomalous).
    flag : bool
        True when ``score`` is above ``threshold``, or the cycle check flags the
        recording.
    threshold : float
        The model's threshold, shared by windows and recordings.
    max_window_score : float
    flagged_windows : int
    windows : DataFrame
        One row per window: window, start_sample, start_s and end_s (when the
        sample rate is known), score and flag, as in ``ScoreResult.windows``.
    channel_shares : dict of str to float
        Share of each channel in the recording's departure from normal, summed over
        its flagged windows, or its worst window when none is flagged (as
        ``top_channel_share`` in score tables); the shares add up to 1 (all zero
        when nothing departs).
    window_shares : ndarray of shape (n_windows, n_channels)
        The same shares per window, rows adding up to 1. None when attribution was
        not requested.
    channels : list of str
        Channel order of ``window_shares``.
    cycle : CycleVerdict or None
        The cycle check's verdict on the whole recording (``grindwatch.cycles``);
        None when the model has none. ``flag`` is also set when it flags.
    """

    name: str
    score: float
    flag: bool
    threshold: float
    max_window_score: float
    flagged_windows: int
    windows: pd.DataFrame
    channels: list[str]
    channel_shares: dict[str, float] | None
    window_shares: np.ndarray | None
    cycle: CycleVerdict | None = None

    @property
    def n_windows(self) -> int:
        return len(self.windows)

    def top_channel(self) -> str | None:
        """Return the channel with the largest share, or None without attribution."""
        if not self.channel_shares or not any(self.channel_shares.values()):
            return None
        return max(self.channel_shares, key=self.channel_shares.__getitem__)

    def flagged_window_shares(self) -> list[dict[str, Any]]:
        """Window index, score and channel shares of every flagged window."""
        if self.window_shares is None:
            return []
        rows = []
        for position in np.flatnonzero(self.windows["flag"].to_numpy()):
            rows.append(
                {
                    "window": int(self.windows["window"].iloc[position]),
                    "score": float(self.windows["score"].iloc[position]),
                    "channel_shares": _shares(
                        self.channels, self.window_shares[position]
                    ),
                }
            )
        return rows


def check_signal_model(model: Model) -> None:
    """Raise ConfigError unless ``model`` scores signal recordings."""
    if model.kind_ != "signals":
        raise ConfigError(
            "this model was trained on a feature table (one row per cycle); the "
            "service and the watcher score signal recordings, so score tables with "
            "'grindwatch score' or the MLflow pyfunc model"
        )


def score_recording(
    model: Model, recording: Recording, explain: bool = True
) -> CycleScore:
    """Score one recording as ``Model.score`` does, and attribute its score.

    The steps are the ones ``Model.score`` takes (prepare, features, detector
    scores, aggregate, threshold, cycle check), so the numbers are the same. The
    features are computed once and shared by scoring and attribution.

    Raises
    ------
    InputError
        If a channel is missing, the sample rate differs from the model's, or the
        recording is shorter than one window.
    """
    # NOTE: unlike Model.score, this path does not warn when a channel that was
    # constant in training changes, so serve and watch pass such a change silently.
    windows = model.prepare([recording])
    features = model.features(windows.X)
    scores = model.detector_.anomaly_score(features)
    threshold = float(model.threshold_.value)
    flags = scores > threshold
    frame = pd.DataFrame(
        {"window": np.arange(len(scores)), "start_sample": windows.start}
    )
    if model.sample_rate_:
        frame["start_s"] = windows.start / model.sample_rate_
        frame["end_s"] = (windows.start + model.window_length_) / model.sample_rate_
    frame["score"] = scores
    frame["flag"] = flags
    value = model.aggregate(scores)
    cycle = (model.cycle_verdicts(windows) or [None])[0]

    channel_shares = window_shares = None
    if explain:
        contributions = model.departures(model.detector_.explain(features))
        per_channel = contributions.sum(axis=2).astype(np.float64)
        # Channels below their normal level take no share. The recording's shares
        # clip the departures summed over the attributed windows, as the score
        # table and the report do, not each window's before summing.
        window_shares = _normalise_rows(np.maximum(per_channel, 0))
        chosen = attributed_windows(scores, threshold)
        summed = np.maximum(per_channel[chosen].sum(axis=0, keepdims=True), 0)
        overall = _normalise_rows(summed)[0]
        channel_shares = _shares(model.channels_, overall)
    return CycleScore(
        name=recording.name,
        score=value,
        flag=bool(value > threshold) or (cycle is not None and cycle.flag),
        threshold=threshold,
        max_window_score=float(scores.max()),
        flagged_windows=int(flags.sum()),
        windows=frame,
        channels=list(model.channels_),
        channel_shares=channel_shares,
        window_shares=window_shares,
        cycle=cycle,
    )


def _normalise_rows(values: np.ndarray) -> np.ndarray:
    totals = values.sum(axis=1, keepdims=True)
    return np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)


def _shares(channels: list[str], values: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in zip(channels, values, strict=True)}
