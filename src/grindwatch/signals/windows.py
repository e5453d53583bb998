"""Cut recordings into fixed-length windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grindwatch.exceptions import InputError
from grindwatch.io.recording import Recording

__all__ = ["WindowSet", "make_windows", "window_starts"]


@dataclass
class WindowSet:
    """Windows cut from several recordings, with where each came from.

    Attributes
    ----------
    X : ndarray of shape (n_windows, n_channels, length), float32
    recording : ndarray of shape (n_windows,), int
        Index of each window's recording in ``names``; ascending, so each
        recording's windows are contiguous.
    start : ndarray of shape (n_windows,), int
        First sample of each window in its recording.
    names : list of str
        Recording names.
    labels : ndarray of shape (n_windows,) or None
        1 where a window overlaps a labelled anomalous sample or belongs to an
        anomalous recording, 0 where known normal, -1 where unknown. None when no
        recording carries any label. Evaluation only.
    n_samples : ndarray of shape (n_recordings,), int, or None
        Length of each recording, tail included.
    """

    X: np.ndarray
    recording: np.ndarray
    start: np.ndarray
    names: list[str]
    labels: np.ndarray | None = None
    n_samples: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])


def window_starts(n_samples: int, length: int, hop: int) -> np.ndarray:
    """Start index of every window: ``hop`` apart, plus one that ends the recording.

    When the hop grid leaves a tail shorter than a window, one more window ends at
    the last sample and overlaps the one before it. Without it, a fault in the
    last samples of every cycle would never be scored.
    """
    if n_samples < length:
        return np.empty(0, dtype=np.int64)
    starts = np.arange(0, n_samples - length + 1, hop, dtype=np.int64)
    if starts[-1] + length < n_samples:
        starts = np.append(starts, np.int64(n_samples - length))
    return starts


def _window_labels(recording: Recording, starts: np.ndarray, length: int):
    if recording.sample_labels is not None:
        # A window is anomalous when any of its samples is labelled anomalous.
        cumulative = np.concatenate([[0], np.cumsum(recording.sample_labels > 0)])
        return (cumulative[starts + length] - cumulative[starts] > 0).astype(np.int8)
    value = -1 if recording.label is None else recording.label
    return np.full(len(starts), value, dtype=np.int8)


def make_windows(recordings: list[Recording], length: int, hop: int) -> WindowSet:
    """Cut every recording into windows of ``length`` samples, ``hop`` apart.

    A recording whose tail falls off the hop grid gets one more window that ends
    at its last sample (see ``window_starts``).

    Raises
    ------
    InputError
        If a recording is shorter than one window.
    """
    blocks, recording_index, starts_all, labels = [], [], [], []
    for index, recording in enumerate(recordings):
        starts = window_starts(recording.n_samples, length, hop)
        if len(starts) == 0:
            raise InputError(
                recording.source or recording.name,
                f"has {recording.n_samples} samples, fewer than one window of {length}",
                "leave this recording out, or use shorter windows (when scoring, "
                "a model trained on shorter windows)",
            )
        view = np.lib.stride_tricks.sliding_window_view(recording.data, length, axis=1)
        blocks.append(np.ascontiguousarray(view[:, starts].transpose(1, 0, 2)))
        recording_index.append(np.full(len(starts), index, dtype=np.int64))
        starts_all.append(starts)
        labels.append(_window_labels(recording, starts, length))

    label_array = np.concatenate(labels)
    return WindowSet(
        X=np.concatenate(blocks).astype(np.float32, copy=False),
        recording=np.concatenate(recording_index),
        start=np.concatenate(starts_all),
        names=[recording.name for recording in recordings],
        labels=None if (label_array < 0).all() else label_array,
        n_samples=np.array([r.n_samples for r in recordings], dtype=np.int64),
    )
