"""Attribution: which channel, and which time step, band or feature, made a score high.

Every detector decomposes a window's departure from normal into non-negative
contributions, one per element of its input (``Model.explain``). The autoencoder
uses its per-element reconstruction loss, PCA its squared residual, and k-nearest
neighbours the squared difference to the mean of the nearest training windows.
For the isolation forest it is the distance from the training median in units of
the training spread. ``Model.departures`` then subtracts each element's mean
contribution over the training windows. Some channels are reconstructed worse
than others even in normal windows, and without that step such a channel would
top the attribution of every window. Positive values depart from normal, negative ones
are closer to it than a typical training window. A channel's share counts only
channels whose summed departure is positive.

The elements follow the front end. For ``raw`` they are time steps inside the
window, for ``spectrum`` frequency bands, for ``features`` per-channel statistics.
For feature tables, each channel is one feature with a single element.

This module turns those arrays into what an engineer reads: the top channel and its
share of the departure, the top band, statistic or time step within that channel,
the worst window of a recording, and the margin of the recording's score over the
threshold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from grindwatch.signals.frontends import FEATURE_NAMES, band_edges

if TYPE_CHECKING:
    from grindwatch.cycles import CycleVerdict
    from grindwatch.io import Recording
    from grindwatch.pipeline import Model

__all__ = [
    "ElementAxis",
    "RecordingExplanation",
    "describe_summary",
    "element_axis",
    "explain_recording",
    "feature_groups",
    "format_seconds",
    "leading_channel",
    "recording_summary",
    "window_attribution",
]


@dataclass(frozen=True)
class ElementAxis:
    """The last axis of a model's contributions: what its k elements are.

    Attributes
    ----------
    name : {"time step", "band", "feature", "value"}
        ``value`` is the single element of a feature-table column.
    labels : list of str
        One label per element: the offset in the window, the band's frequency
        range, or the statistic's name.
    column : str or None
        Name of the score-table column that contains the top element: ``top_sample``,
        ``top_band`` or ``top_feature``; None for feature tables.
    band_ranges : ndarray of shape (n_bands, 2) or None
        Lower and upper frequency of each band, in Hz when the sample rate is
        known, else as a fraction of the sample rate (``spectrum`` only).
    unit : str
        ``"Hz"`` or ``"fs"`` (fraction of the sample rate) for bands, else ``""``.
    """

    name: str
    labels: list[str]
    column: str | None
    band_ranges: np.ndarray | None = None
    unit: str = ""


def element_axis(model: Model) -> ElementAxis:
    """Describe the elements of ``model.explain``'s last axis."""
    if model.kind_ == "table":
        return ElementAxis("value", [""], None)
    kind = model.frontend_.kind
    if kind == "features":
        return ElementAxis("feature", list(FEATURE_NAMES), "top_feature")
    if kind == "spectrum":
        ranges, unit = _band_ranges(model)
        # Enough decimals that neighbouring edges differ: whole Hz for audio
        # rates, mHz for a 1 Hz logger.
        width = float(np.min(ranges[:, 1] - ranges[:, 0]))
        digits = 0 if unit == "Hz" and width >= 1 else 3
        if width > 0 and width < 1e-3:
            digits = int(np.ceil(-np.log10(width))) + 1
        labels = [f"{low:.{digits}f}-{high:.{digits}f} {unit}" for low, high in ranges]
        return ElementAxis("band", labels, "top_band", ranges, unit)
    rate = model.sample_rate_
    if rate:
        labels = [f"+{step / rate:.4g} s" for step in range(model.window_length_)]
    else:
        labels = [f"+{step}" for step in range(model.window_length_)]
    return ElementAxis("time step", labels, "top_sample")


def format_seconds(seconds: float) -> str:
    """Format a time in seconds for text, writing out all its whole seconds.

    Uses four significant digits, or more for times of 1,000 s and over, where
    ``:.4g`` would write 12,288 s as ``1.229e+04``, so the number then keeps
    its whole seconds and at most one decimal.
    """
    digits = max(4, len(str(int(abs(seconds)))) + 1)
    return f"{seconds:.{digits}g}"


def _band_ranges(model: Model) -> tuple[np.ndarray, str]:
    # The spectrum front end sums rfft bins. Bin j of a window of L samples sits at
    # j / L cycles per sample and collects the frequencies nearest to it, those
    # within half a bin. So a band of bins first to past-the-end spans
    # (first - 1/2) / L to (past-the-end - 1/2) / L, clipped to 0 and to the
    # Nyquist frequency, 0.5 cycles per sample, which the last bin (L / 2) holds.
    length = model.window_length_
    edges = band_edges(length // 2 + 1, model.frontend_.n_bands) - 0.5
    ranges = np.clip(np.stack([edges[:-1], edges[1:]], axis=1) / length, 0, 0.5)
    if model.sample_rate_:
        return ranges * model.sample_rate_, "Hz"
    return ranges, "fs"


def feature_groups(names: list[str]) -> dict[str, list[int]]:
    """Group feature names by the prefix before their first underscore.

    Returns a mapping prefix -> indices, in first-seen order. Names without an
    underscore form a group of their own name. When every name would be its own
    group, or all share one, the grouping tells nothing, so one group ``""``
    contains everything.
    """
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        prefix = name.split("_", 1)[0] if "_" in name else name
        groups.setdefault(prefix, []).append(index)
    if len(groups) in (1, len(names)):
        return {"": list(range(len(names)))}
    return groups


def _shares(per_channel: np.ndarray) -> np.ndarray:
    per_channel = np.maximum(per_channel, 0)
    totals = per_channel.sum(axis=-1, keepdims=True)
    return np.divide(
        per_channel, totals, out=np.zeros_like(per_channel), where=totals > 0
    )


def window_attribution(
    model: Model, contributions: np.ndarray, starts: np.ndarray
) -> dict[str, np.ndarray]:
    """Columns naming each window's top channel and its top element.

    Parameters
    ----------
    contributions : array of shape (n_windows, n_channels, k)
        From ``Model.explain``.
    starts : array of shape (n_windows,)
        First sample of each window in its recording.

    Returns
    -------
    dict
        ``top_channel``, ``top_channel_share`` (the channel's share of the window's
        summed contributions, in [0, 1]) and, except for feature tables, the
        axis column: ``top_sample`` (sample index in the recording), ``top_band``
        (frequency range) or ``top_feature`` (statistic), taken within the top
        channel.
    """
    per_channel = contributions.sum(axis=2)
    top = per_channel.argmax(axis=1)
    rows = np.arange(len(top))
    columns: dict[str, np.ndarray] = {
        "top_channel": np.asarray(model.channels_, dtype=object)[top],
        "top_channel_share": _shares(per_channel)[rows, top].astype(np.float64),
    }
    axis = element_axis(model)
    if axis.column is None:
        return columns
    element = contributions[rows, top].argmax(axis=1)
    if axis.column == "top_sample":
        columns["top_sample"] = np.asarray(starts) + element
    else:
        columns[axis.column] = np.asarray(axis.labels, dtype=object)[element]
    return columns


def leading_channel(channels: Iterable[str | None]) -> tuple[str, int, int] | None:
    """Return the channel named most often, if it tops at least half of the list.

    ``channels`` are top channels of windows or recordings, None where one has no
    attribution; those count in the total. Returns the channel, its count and the
    total, or None when no channel reaches half or two channels tie.
    """
    names = list(channels)
    counts = Counter(name for name in names if name is not None).most_common(2)
    if not counts or 2 * counts[0][1] < len(names):
        return None
    if len(counts) == 2 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0], counts[0][1], len(names)


def attributed_windows(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the windows a recording's attribution sums over.

    These are its flagged windows, or its worst window when none is flagged,
    so a channel's share shows why the recording departs, not where its normal
    windows carry the most score.
    """
    chosen = scores > threshold
    if not chosen.any():
        chosen = np.arange(len(scores)) == int(np.argmax(scores))
    return chosen


def recording_summary(
    model: Model,
    contributions: np.ndarray,
    scores: np.ndarray,
    starts: np.ndarray,
    score: float,
) -> dict[str, Any]:
    """Summarise one recording's attribution for its row in the score table.

    The channel and element come from the contributions summed over the windows
    above the threshold, or from the worst window when none is above it.

    Parameters
    ----------
    contributions : array of shape (n_windows, n_channels, k)
    scores : array of shape (n_windows,)
        The recording's window scores.
    starts : array of shape (n_windows,)
    score : float
        The recording's aggregate score.

    Returns
    -------
    dict
        ``top_channel``, ``top_channel_share``, the axis column (see
        ``window_attribution``), then for signals ``worst_window``,
        ``worst_start_sample`` and, when the sample rate is known,
        ``worst_start_s`` and ``worst_end_s``, and last ``margin``: the score
        minus the threshold, positive when the window threshold flags the
        recording. A recording that only the cycle check flags has a margin
        of 0 or below.
    """
    threshold = model.threshold_.value
    worst = int(np.argmax(scores))
    chosen = attributed_windows(scores, threshold)
    per_element = contributions[chosen].sum(axis=0)
    per_channel = per_element.sum(axis=1)
    top = int(per_channel.argmax())
    summary: dict[str, Any] = {
        "top_channel": model.channels_[top],
        "top_channel_share": float(_shares(per_channel)[top]),
    }
    axis = element_axis(model)
    if axis.column == "top_sample":
        # Time steps of different windows are different moments, so the top one is
        # the largest single contribution of the top channel, not a sum.
        window, step = np.unravel_index(
            contributions[chosen, top].argmax(), contributions[chosen, top].shape
        )
        summary["top_sample"] = int(starts[chosen][window] + step)
    elif axis.column is not None:
        summary[axis.column] = axis.labels[int(per_element[top].argmax())]
    if model.kind_ == "signals":
        start = int(starts[worst])
        summary["worst_window"] = worst
        summary["worst_start_sample"] = start
        if model.sample_rate_:
            summary["worst_start_s"] = start / model.sample_rate_
            summary["worst_end_s"] = (start + model.window_length_) / model.sample_rate_
    summary["margin"] = float(score - threshold)
    return summary


@dataclass
class RecordingExplanation:
    """Window scores and contributions of one recording, for reports and notebooks.

    Attributes
    ----------
    recording : Recording
        The recording, with its channels in the model's order.
    axis : ElementAxis
    starts : ndarray of shape (n_windows,)
        First sample of each window.
    window_length : int
    scores : ndarray of shape (n_windows,)
        Window anomaly scores, higher is more anomalous.
    contributions : ndarray of shape (n_windows, n_channels, k)
        Departures from normal (``Model.departures``): negative where an element
        is closer to normal than a typical training window.
    features : ndarray of shape (n_windows, n_channels, k)
        What the detector saw: the standardised front-end output.
    threshold : float
    score : float
        The recording's aggregate score.
    summary : dict
        As returned by ``recording_summary``.
    cycle : CycleVerdict or None
        The cycle check's verdict on the whole recording; None when the model
        has no cycle check.
    """

    recording: Recording
    axis: ElementAxis
    starts: np.ndarray
    window_length: int
    scores: np.ndarray
    contributions: np.ndarray
    features: np.ndarray
    threshold: float
    score: float
    summary: dict[str, Any]
    cycle: CycleVerdict | None = None

    @property
    def flags(self) -> np.ndarray:
        return self.scores > self.threshold

    @property
    def flag(self) -> bool:
        """True when the score, or the cycle check, is above its threshold."""
        cycle_flag = self.cycle is not None and self.cycle.flag
        return bool(self.score > self.threshold) or cycle_flag

    def cycle_only(self) -> bool:
        """True when the cycle check flags the recording and its score does not."""
        cycle_flag = self.cycle is not None and self.cycle.flag
        return cycle_flag and not self.score > self.threshold

    def describe(self) -> str:
        """Two sentences on the score's margin and where the departure sits, and
        one with the cycle check's reason when it flags the recording: first
        when the cycle check alone flags it, else last."""
        chosen = attributed_windows(self.scores, self.threshold)
        worst = int(np.argmax(self.scores))
        worst_shares = _shares(self.contributions[worst].sum(axis=1))
        top = int(worst_shares.argmax())
        text = describe_summary(
            self.summary,
            self.score,
            self.threshold,
            self.axis,
            self.recording,
            n_summed=int(chosen.sum()),
            worst_channel=(self.recording.channels[top], float(worst_shares[top])),
            second_channel=self._second_channel(chosen),
            window_length=self.window_length,
        )
        if self.cycle is None or not self.cycle.flag:
            return text
        cycle_text = f"The cycle check flags the whole recording: {self.cycle.reason}."
        if self.cycle_only():
            # The window sentences then describe windows below the threshold, so
            # the reason for the flag comes first.
            return f"{cycle_text} {text}"
        return f"{text} {cycle_text}"

    def _second_channel(self, chosen: np.ndarray) -> tuple[str, float] | None:
        """Return the channel with the second largest share over the ``chosen``
        windows and its share, or None when that share is below half of the
        top channel's.

        A fault in two channels at once splits the departure between them, and
        naming only the top one would hide the other.
        """
        shares = _shares(self.contributions[chosen].sum(axis=(0, 2)))
        if shares.size < 2:
            return None
        order = np.argsort(-shares, kind="stable")
        first, second = int(order[0]), int(order[1])
        if not shares[second] > 0 or shares[second] < 0.5 * shares[first]:
            return None
        return self.recording.channels[second], float(shares[second])

    def channel_by_window(self) -> np.ndarray:
        """Departure of each channel summed per window, (n_channels, n_windows).

        Channels below their normal level show as 0.
        """
        return np.maximum(self.contributions.sum(axis=2).T, 0)

    def channel_by_time(self) -> np.ndarray:
        """Departure of each channel at each sample, (n_channels, n_samples).

        Only for the ``raw`` front end, where elements are time steps. Where
        windows overlap, their contributions are averaged. Samples that no
        window covers are NaN: those between windows when the hop is longer
        than the window. The last window ends at the last sample, so the tail
        is always covered.

        Raises
        ------
        ValueError
            For other front ends, whose elements are not time steps.
        """
        if self.axis.name != "time step":
            raise ValueError(
                f"contributions over time need the raw front end; this model's "
                f"elements are {self.axis.name}s, so use channel_by_window instead"
            )
        n_channels, n_samples = self.recording.data.shape
        total = np.zeros((n_channels, n_samples))
        count = np.zeros(n_samples)
        for start, values in zip(self.starts, self.contributions, strict=True):
            total[:, start : start + self.window_length] += values
            count[start : start + self.window_length] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            averaged = np.where(count > 0, total / count, np.nan)
        # Below normal shows as 0; NaN marks samples no window covers.
        return np.where(averaged < 0, 0.0, averaged)


def explain_recording(model: Model, recording: Recording) -> RecordingExplanation:
    """Score one recording window by window and attribute each window's score.

    Raises
    ------
    InputError
        When the recording cannot be matched to the model (missing channels, other
        sample rate, NaN samples, shorter than one window).
    """
    (recording,) = model.match_recordings([recording])
    windows = model.prepare([recording])
    features = model.features(windows.X)
    scores, contributions = model.detector_.score_and_explain(features)
    contributions = model.departures(contributions)
    score = model.aggregate(scores)
    return RecordingExplanation(
        recording=recording,
        axis=element_axis(model),
        starts=windows.start,
        window_length=model.window_length_,
        scores=scores,
        contributions=contributions,
        features=features,
        threshold=model.threshold_.value,
        score=score,
        summary=recording_summary(model, contributions, scores, windows.start, score),
        cycle=(model.cycle_verdicts(windows) or [None])[0],
    )


def describe_summary(
    summary: dict[str, Any],
    score: float,
    threshold: float,
    axis: ElementAxis,
    recording: Recording | None = None,
    *,
    n_summed: int | None = None,
    worst_channel: tuple[str, float] | None = None,
    second_channel: tuple[str, float] | None = None,
    window_length: int | None = None,
) -> str:
    """Put a ``recording_summary`` into words, for reports.

    For example (two sentences): "Score 5.42 is 3.59 above the threshold 1.83.
    Over its 4 windows above the threshold, channel vib_x carries 83% of the
    departure from normal, most of it in band 156-187 Hz; the worst window spans
    1.024-1.28 s."
    ``n_summed`` is the number of windows the shares sum over (see
    ``attributed_windows``). ``worst_channel`` is the worst window's own top
    channel and share, named when another channel leads the sum.
    ``second_channel`` is the channel with the next largest share of that sum,
    and its share, named when given. ``window_length`` gives the worst
    window's last sample when the recording has no sample rate.
    """
    relation = "above" if score > threshold else "below"
    text = (
        f"Score {score:.4g} is {abs(score - threshold):.3g} {relation} the "
        f"threshold {threshold:.4g}."
    )
    if axis.name == "value":
        return (
            f"{text} Feature {summary['top_channel']} carries "
            f"{summary['top_channel_share']:.0%} of the departure from normal."
        )
    where = ""
    if axis.column == "top_sample":
        sample = int(summary["top_sample"])
        rate = recording.sample_rate if recording is not None else None
        at = f"{format_seconds(sample / rate)} s" if rate else f"sample {sample}"
        where = f", peaking at {at}"
    elif axis.column is not None:
        where = f", most of it in {axis.name} {summary[axis.column]}"
    if n_summed is not None and n_summed > 1:
        lead = f" Over its {n_summed} windows above the threshold, channel"
    elif n_summed is not None:
        lead = " In its worst window, channel"
    else:
        lead = " Channel"
    text += (
        f"{lead} {summary['top_channel']} carries "
        f"{summary['top_channel_share']:.0%} of the departure from normal{where}"
    )
    if second_channel is not None:
        name, share = second_channel
        text += f", and channel {name} carries {share:.0%}"
    if "worst_start_s" in summary:
        start = format_seconds(summary["worst_start_s"])
        span = f"{start}-{format_seconds(summary['worst_end_s'])} s"
    elif "worst_start_sample" in summary and window_length is not None:
        first = summary["worst_start_sample"]
        span = f"samples {first} to {first + window_length - 1}"
    elif "worst_start_sample" in summary:
        span = f"from sample {summary['worst_start_sample']}"
    else:
        return text + "."
    text = f"{text}; the worst window spans {span}"
    if (
        worst_channel is not None
        and (n_summed or 0) > 1
        and worst_channel[0] != summary["top_channel"]
    ):
        name, share = worst_channel
        text += f", where channel {name} leads with {share:.0%}"
    return text + "."
