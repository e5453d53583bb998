"""The nearest normal recording to each flagged one, for side-by-side plots."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from grindwatch.io import Recording
    from grindwatch.pipeline import Model

__all__ = ["nearest_normal", "recording_profiles"]


def _profile_transform(model: Model, scaled: np.ndarray):  # noqa: ANN202
    """Choose the features that recordings are compared by.

    That is the model's own front-end output, or log band energies for the raw
    front end, because raw samples do not align between recordings.
    """
    from grindwatch.signals import FrontEnd

    if model.kind_ == "table" or model.frontend_.kind != "raw":
        return model.frontend_
    return FrontEnd("spectrum", min(16, scaled.shape[-1] // 2)).fit(scaled)


def recording_profiles(
    model: Model, recordings: list[Recording], batch: int = 64
) -> np.ndarray:
    """Mean feature vector of each recording, (n_recordings, n_features)."""
    transform = None
    parts = []
    for begin in range(0, len(recordings), batch):
        windows = model.prepare(recordings[begin : begin + batch])
        scaled = model.scaler_.transform(windows.X)
        if transform is None:
            transform = _profile_transform(model, scaled)
        flat = transform.transform(scaled).reshape(len(windows), -1)
        counts = np.bincount(windows.recording)
        sums = np.zeros((len(counts), flat.shape[1]))
        np.add.at(sums, windows.recording, flat)
        parts.append(sums / counts[:, None])
    return np.concatenate(parts)


def nearest_normal(
    model: Model, targets: list[Recording], candidates: list[Recording]
) -> dict[str, tuple[Recording, float] | None]:
    """For each target, the candidate nearest in feature space, and the distance.

    Distances are Euclidean between the mean standardised front-end outputs of
    the two recordings (log band energies for the raw front end). A target gets
    None when there is no candidate.
    """
    if not targets:
        return {}
    if not candidates:
        return {target.name: None for target in targets}
    profiles = recording_profiles(model, candidates + targets)
    pool, wanted = profiles[: len(candidates)], profiles[len(candidates) :]
    found: dict[str, tuple[Recording, float] | None] = {}
    for target, profile in zip(targets, wanted, strict=True):
        distances = np.linalg.norm(pool - profile, axis=1)
        best = int(np.argmin(distances))
        found[target.name] = (candidates[best], float(distances[best]))
    return found
