"""The cycle check: does a whole recording look like the training recordings?

Window detectors judge each window on its own, so a recording made only of
windows that look normal passes, even when their mix is wrong. A missing part
leaves a cycle that is idle throughout, and each of its windows looks like the
idle phase of a normal cycle. A cycle at another load can shift a channel's
level by an amount that a log-scaled spectrum barely shows.

The check summarises each recording by a profile. The recording's windows are
cut into blocks, and per channel the profile holds the 10th, 50th and 90th
percentiles over the blocks of the block mean (level) and of the RMS about that
mean (activity), plus the recording's length. Each profile value is compared
with the training recordings' values as a robust z-score (median and a robust
spread), and a recording's cycle score is the largest absolute z-score. The
threshold on cycle scores is fitted with the window threshold's rules to the
training recordings' scores, each computed against the other training
recordings so that a recording does not vouch for itself.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from grindwatch.explain import format_seconds
from grindwatch.signals.windows import WindowSet
from grindwatch.thresholds import fit_threshold

logger = logging.getLogger(__name__)

__all__ = ["CycleCheck", "CycleVerdict", "block_levels"]

# Percentiles of the block values that make up a profile.
QUANTILES = (0.1, 0.5, 0.9)

# Blocks per recording the block length aims at. With a few blocks, the 10th and
# 90th percentiles are single blocks, often ones that straddle a phase change,
# and vary much from cycle to cycle. Blocks are at least 8 samples long, unless
# the window itself is shorter, which then makes one block.
_TARGET_BLOCKS = 64
_MIN_BLOCK_LENGTH = 8

# Profile values closer to the training median than this are never a departure,
# however steady the training cycles were: 5 % of the channel's typical size for
# levels, and a factor of 1.05 for activities and lengths.
_MIN_RELATIVE = 0.05
_MIN_LOG = float(np.log1p(_MIN_RELATIVE))

# The lowest cycle threshold: the z-score of a change of _MIN_RELATIVE at the
# smallest scale. Steady training cycles can fit a lower cut, which would flag
# changes that the scale floor is meant to ignore.
_MIN_THRESHOLD = 1.0

# Samples are clipped to the float32 range before block statistics.
_SAMPLE_LIMIT = float(np.finfo(np.float32).max)

# Above this many training recordings, each one's own influence on the median and
# MAD is negligible, and the scores are computed against all of them at once.
_LEAVE_ONE_OUT_LIMIT = 400


def block_levels(X: np.ndarray, block_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and RMS about the mean of each block of each window, per channel.

    ``X`` is (n_windows, channels, length); each window is cut into blocks of
    ``block_length`` samples, and a remainder shorter than a block is left out.
    Samples beyond the float32 range, infinite ones included, are clipped to
    it. Returns two arrays of shape (n_blocks, channels).
    """
    n_windows, n_channels, length = X.shape
    per_window = length // block_length
    blocks = np.asarray(X[:, :, : per_window * block_length], dtype=np.float64)
    # An infinite sample, or one beyond the float32 range of windows, would make
    # its block's RMS NaN, and NaN percentiles hide every other departure.
    # Clipped, it is a large finite value.
    blocks = np.clip(blocks, -_SAMPLE_LIMIT, _SAMPLE_LIMIT)
    blocks = blocks.reshape(n_windows, n_channels, per_window, block_length)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(-1, n_channels, block_length)
    return blocks.mean(axis=2), blocks.std(axis=2)


@dataclass
class CycleVerdict:
    """The cycle check's result for one recording.

    ``reason`` names the profile value furthest from the training recordings,
    with its value, the training median and the z-score. ``channel`` is that
    value's channel, or None when the value is the recording's length.
    ``threshold`` is the check's threshold that ``flag`` compares with.
    """

    score: float
    flag: bool
    channel: str | None
    reason: str
    threshold: float


class CycleCheck:
    """Compare whole recordings with the training recordings' profiles.

    Parameters
    ----------
    channels : list of str
    sample_rate : float or None
        Used to give lengths in seconds.

    Attributes
    ----------
    block_length_ : int
        Samples per block: the window length divided by the whole number that
        gives the median training recording about 64 blocks (at least 8
        samples each, or one block per window shorter than that).
    center_, scale_ : ndarray of shape (n_values,)
        Median and robust spread (the larger of the scaled MAD and the scaled
        mean absolute deviation, floored) of the training profiles, after the
        log of activities and lengths.
    training_scores_ : ndarray of shape (n_recordings,)
        Each training recording's cycle score against the others.
    threshold_ : Threshold
        At least 1, the z-score of a 5 % change at the smallest scale.
    fitted_threshold_ : Threshold or None
        The cut the threshold rules fitted, when it was below 1 and raised.
    """

    def __init__(self, channels: list[str], sample_rate: float | None) -> None:
        self.channels = list(channels)
        self.sample_rate = sample_rate

    # Profiles -------------------------------------------------------------------

    def raw_profiles(self, windows: WindowSet) -> np.ndarray:
        """Untransformed profiles of the recordings in ``windows``.

        Each row holds, per channel, the three activity percentiles and then the
        three level percentiles, followed by the recording's length in samples.
        """
        rows = []
        # make_windows keeps each recording's windows together, in order.
        bounds = np.searchsorted(windows.recording, np.arange(len(windows.names) + 1))
        for index in range(len(windows.names)):
            own = windows.X[bounds[index] : bounds[index + 1]]
            means, rms = block_levels(own, self.block_length_)
            activity = np.quantile(rms, QUANTILES, axis=0).T
            level = np.quantile(means, QUANTILES, axis=0).T
            per_channel = np.concatenate([activity, level], axis=1)
            rows.append(np.append(per_channel.ravel(), float(windows.n_samples[index])))
        return np.array(rows)

    def _features(self, raw: np.ndarray) -> np.ndarray:
        """Log activities and lengths, so that their changes are ratios."""
        raw = np.atleast_2d(raw)
        per_channel = raw[:, :-1].reshape(len(raw), len(self.channels), 6)
        activity = np.log(per_channel[:, :, :3] + self.floor_[None, :, None])
        level = per_channel[:, :, 3:]
        length = np.log(raw[:, -1:])
        return np.concatenate(
            [np.concatenate([activity, level], axis=2).reshape(len(raw), -1), length],
            axis=1,
        )

    # Fitting --------------------------------------------------------------------

    def fit(self, windows: WindowSet, **threshold_settings) -> CycleCheck:  # noqa: ANN003
        """Fit block length, centre, scale and threshold on training recordings.

        ``threshold_settings`` go to ``fit_threshold``, as the window
        threshold's do.
        """
        length = windows.X.shape[2]
        per_recording = np.bincount(windows.recording, minlength=len(windows.names))
        splits = math.ceil(_TARGET_BLOCKS / max(float(np.median(per_recording)), 1.0))
        max_splits = max(length // _MIN_BLOCK_LENGTH, 1)
        self.block_length_ = length // min(splits, max_splits)

        raw = self.raw_profiles(windows)
        _warn_uneven_lengths(raw[:, -1])
        per_channel = raw[:, :-1].reshape(len(raw), len(self.channels), 6)
        # A channel's typical size: its median level's magnitude plus its median
        # activity. Both are 0 for a channel at exactly 0 in most blocks, such as
        # a gated signal. Its size is then that of its busy blocks: the larger
        # magnitude of its 10th and 90th percentile levels plus its 90th
        # percentile activity. Channels that are zero throughout count in units
        # of 1.
        medians = np.median(per_channel, axis=0)
        typical = np.abs(medians[:, 4]) + medians[:, 1]
        busy_size = np.maximum(np.abs(medians[:, 3]), np.abs(medians[:, 5]))
        busy_size = busy_size + medians[:, 2]
        typical = np.where(typical > 0, typical, busy_size)
        self.typical_ = np.where(typical > 0, typical, 1.0)
        # Added before the log so that channels at rest stay finite: 0.1 % of the
        # median 90th-percentile activity, which, unlike the typical size, a large
        # constant offset of the channel does not raise.
        busy = medians[:, 2]
        self.floor_ = 1e-3 * np.where(busy > 0, busy, self.typical_)
        features = self._features(raw)
        self.center_ = np.median(features, axis=0)
        self.scale_ = _spread(features, self.center_, self._min_scale())
        self.training_scores_ = self._leave_one_out_scores(features)
        # A mixture needs about 10 scores per component; with fewer, single
        # recordings become components of no width and the cut lands among them.
        settings = dict(threshold_settings)
        settings["max_components"] = max(
            1, min(settings.get("max_components", 6), len(raw) // 10)
        )
        fitted = fit_threshold(self.training_scores_, unit="recordings", **settings)
        self.threshold_, self.fitted_threshold_ = fitted, None
        if fitted.value < _MIN_THRESHOLD:
            self.fitted_threshold_ = fitted
            self.threshold_ = replace(
                fitted,
                value=_MIN_THRESHOLD,
                share_flagged=float((self.training_scores_ > _MIN_THRESHOLD).mean()),
            )
        return self

    def _min_scale(self) -> np.ndarray:
        activity = np.full((len(self.channels), 3), _MIN_LOG)
        level = np.repeat((_MIN_RELATIVE * self.typical_)[:, None], 3, axis=1)
        return np.append(np.concatenate([activity, level], axis=1).ravel(), _MIN_LOG)

    def _leave_one_out_scores(self, features: np.ndarray) -> np.ndarray:
        if len(features) > _LEAVE_ONE_OUT_LIMIT:
            return np.abs((features - self.center_) / self.scale_).max(axis=1)
        floor = self._min_scale()
        scores = np.empty(len(features))
        for index in range(len(features)):
            others = np.delete(features, index, axis=0)
            center = np.median(others, axis=0)
            scale = _spread(others, center, floor)
            scores[index] = np.abs((features[index] - center) / scale).max()
        return scores

    # Scoring --------------------------------------------------------------------

    def verdicts(self, windows: WindowSet) -> list[CycleVerdict]:
        """Score each recording of ``windows`` and name its largest departure."""
        raw = self.raw_profiles(windows)
        z_scores = (self._features(raw) - self.center_) / self.scale_
        verdicts = []
        for row, z in zip(raw, z_scores, strict=True):
            leading = int(np.argmax(np.abs(z)))
            score = float(abs(z[leading]))
            channel, reason = self._describe(leading, row, z[leading])
            verdicts.append(
                CycleVerdict(
                    score=score,
                    flag=bool(score > self.threshold_.value),
                    channel=channel,
                    reason=reason,
                    threshold=float(self.threshold_.value),
                )
            )
        return verdicts

    def _describe(
        self, feature: int, raw: np.ndarray, z: float
    ) -> tuple[str | None, str]:
        if feature == len(self.center_) - 1:
            usual = float(np.exp(self.center_[-1]))
            return None, (
                f"length {self._length(raw[-1])} (training recordings "
                f"{self._length(usual)}), z = {z:+.1f}"
            )
        channel_index, slot = divmod(feature, 6)
        channel = self.channels[channel_index]
        percentile = (
            f"{100 * QUANTILES[slot % 3]:.0f}th percentile of "
            f"{self.block_length_}-sample blocks"
        )
        if slot < 3:
            floor = self.floor_[channel_index]
            usual = float(np.exp(self.center_[feature]) - floor)
            # Rounding in exp(log(x + floor)) - floor leaves traces such as
            # -7e-18 where the training activity is 0.
            usual = 0.0 if usual < 1e-9 * floor else usual
            statistic = f"RMS about the mean, {percentile}"
        else:
            usual = float(self.center_[feature])
            statistic = f"mean, {percentile}"
        return channel, (
            f"{channel}: {statistic}, {raw[feature]:.4g} (training recordings "
            f"{usual:.4g}), z = {z:+.1f}"
        )

    def _length(self, n_samples: float) -> str:
        if self.sample_rate:
            return f"{format_seconds(n_samples / self.sample_rate)} s"
        return f"{n_samples:.0f} samples"

    def describe(self) -> str:
        """Say what the check compares and where its threshold sits."""
        text = (
            f"Each recording's profile (per channel, percentiles of the mean and "
            f"RMS of its {self.block_length_}-sample blocks, and its length) is "
            f"compared with those of {len(self.training_scores_)} training "
            "recordings as robust z-scores; the cycle score is the largest. The "
            "threshold comes from the training recordings' scores, each against "
            "the others. "
        )
        fitted = getattr(self, "fitted_threshold_", None)
        if fitted is None:
            return text + self.threshold_.describe()
        return text + (
            f"{fitted.describe()} The training recordings are so alike that this "
            f"cut is raised to {self.threshold_.value:g}, the score of a 5 % change, "
            "because smaller changes never count."
        )


def _warn_uneven_lengths(lengths: np.ndarray) -> None:
    """Warn when training recordings differ in length by more than a factor of 2.

    Block counts, and with them the percentiles, then differ between recordings,
    which widens the cycle threshold until real departures pass.
    """
    short, long = np.quantile(lengths, [0.1, 0.9])
    if long > 2 * short:
        logger.warning(
            "cycle check: the training recordings' lengths range from %d samples "
            "(10th percentile) to %d (90th), so normal profiles vary much and the "
            "cycle threshold is wide; train on recordings of one process cycle "
            "each, cut the same way, or set cycle.enabled=false",
            short,
            long,
        )


def _spread(values: np.ndarray, center: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Estimate each column's standard deviation robustly, at least ``floor``.

    The scaled MAD alone is 0 for a value that most recordings share, such as
    the activity of a channel that is at rest in most cycles. The few
    recordings where that channel moves would then score as far from normal as
    a fault.
    The scaled mean absolute deviation, which counts those few, is the second
    lower bound; both estimate the standard deviation of normal data.
    """
    deviations = np.abs(values - center)
    mad = 1.4826 * np.median(deviations, axis=0)
    mean_deviation = 1.2533 * deviations.mean(axis=0)
    return np.maximum(np.maximum(mad, mean_deviation), floor)
