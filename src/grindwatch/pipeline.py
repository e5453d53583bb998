"""Train and score: ties data, scaling, front end, detector and threshold together."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grindwatch._nouns import item_noun
from grindwatch._version import __version__
from grindwatch.config import Config, as_config
from grindwatch.cycles import CycleCheck, CycleVerdict
from grindwatch.detectors import BaseDetector, make_detector
from grindwatch.exceptions import ConfigError, InputError, shorten_list
from grindwatch.io import ReadOptions, Recording, RecordingSet, load_recordings
from grindwatch.io.dataset import paths_or_raise, source_path
from grindwatch.results import atomic_write_bytes
from grindwatch.signals import ChannelScaler, FrontEnd, WindowSet, make_windows
from grindwatch.thresholds import fit_threshold

logger = logging.getLogger(__name__)

__all__ = ["Model", "ScoreResult", "TrainResult", "read_options", "read_data", "train"]

BUNDLE_FILE = "model.pkl"
# Called with (stage, done, total) while work runs, so a caller can draw progress.
ProgressCallback = Callable[[str, int, int], None]
DataSource = str | Path | Iterable[str | Path] | RecordingSet


def read_options(config: Config) -> ReadOptions:
    data = config.data
    return ReadOptions(
        kind=data.kind,
        delimiter=data.delimiter,
        decimal=data.decimal,
        encoding=data.encoding,
        hdf5_key=data.hdf5_key,
        channels=tuple(data.channels) if data.channels else None,
        label_columns=tuple(data.label_columns),
        time_column=data.time_column,
        date_column=data.date_column,
        timezone=data.timezone,
        ignore_time=data.ignore_time,
        sample_rate=data.sample_rate,
        id_column=data.id_column,
        nan_policy=data.nan_policy,
        constant_policy=data.constant_policy,
        clipping_policy=data.clipping_policy,
        resample=data.resample,
        resample_rate=data.resample_rate,
        cycle_mode=data.cycle_mode,
        stream_modes=tuple(data.stream_modes.items()),
        frame_seconds=data.frame_seconds,
        frame_hop_seconds=data.frame_hop_seconds,
        frame_bands=data.frame_bands,
        tdms_group=data.tdms_group,
        mat_variable=data.mat_variable,
        raw_dtype=data.raw_dtype,
        raw_channels=data.raw_channels,
        match=tuple((key, str(value)) for key, value in data.match.items()),
        chunk_samples=data.chunk_samples,
    )


def scoring_options(model: Model, config: Config | None = None) -> ReadOptions:
    """Return the options that ``model`` reads files with when it scores them.

    They are the options of ``config`` (default: the model's training config),
    with the model's channels, and the copies it left out, as ``known_channels``.
    So a column that the model was trained on as a channel stays one, even where
    this version would take it as time by its name.
    """
    options = read_options(config if config is not None else model.config)
    channels = [*model.channels_, *getattr(model, "duplicate_channels_", {})]
    return replace(options, known_channels=tuple(channels))


def read_data(
    source: DataSource | None, config: Config, model: Model | None = None
) -> RecordingSet:
    """Read ``source`` (or the config's ``data.paths``) with the config's options.

    Without ``model`` the recordings are matched to the channels and rate most
    files have. With a ``model``, scoring matches each recording to the model
    instead, and a signal recording without a sample rate gets the model's.
    A RecordingSet is used as given, apart from the settings that
    ``_in_memory`` applies.
    """
    if isinstance(source, RecordingSet):
        return _in_memory(source, config, model)
    source = paths_or_raise(source)
    if source is None or (isinstance(source, (list, tuple)) and not source):
        source = config.data.paths
    if not source:
        raise ConfigError("no data given; pass files or folders, or set data.paths")
    if model is None:
        return load_recordings(source, read_options(config), strict=config.data.strict)
    options = scoring_options(model, config)
    return load_recordings(
        source,
        options,
        strict=config.data.strict,
        match_files=False,
        fill_rate=model.sample_rate_ if model.kind_ == "signals" else None,
    )


def _in_memory(
    recordings: RecordingSet, config: Config, model: Model | None
) -> RecordingSet:
    """Check a RecordingSet built in Python and apply the reading settings it needs.

    Names must be unique, as the readers make them, so that each window row
    joins one recording row. As for files, ``data.match`` picks recordings by
    their metadata, and ``data.constant_policy`` and ``data.clipping_policy``
    apply to signal recordings. In training, ``data.channels`` selects
    channels, ``data.sample_rate`` fills missing rates, ``data.nan_policy``
    applies to NaN and infinite samples, and ``data.resample`` and
    ``data.resample_rate`` resample as they do files.

    Raises
    ------
    InputError
        If the set is empty, names repeat, no recording matches ``data.match``,
        a recording lacks a channel of ``data.channels``, a sample is not finite
        under ``data.nan_policy: raise``, or a channel is constant or clipped
        under policy ``raise`` (with ``data.strict``, else the recording is
        skipped).
    """
    if not recordings.recordings:
        raise InputError(
            "data",
            "the RecordingSet contains no recordings",
            "add Recording objects to it, or pass files or folders",
        )
    counts = Counter(recording.name for recording in recordings)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        raise InputError(
            "data",
            f"recordings named {shorten_list(repeated)} appear more than once in "
            "the RecordingSet, so their windows could not be told apart",
            "give each Recording its own name",
        )
    recordings = _matching(recordings, config)
    if model is None and config.data.channels:
        recordings = recordings.select_channels(list(config.data.channels))
    if recordings.kind != "signals":
        return recordings
    if model is None:
        recordings = RecordingSet(
            [_as_read(recording, config) for recording in recordings],
            list(recordings.skipped),
            recordings.kind,
        )
        recordings = _resampled(recordings, config)
    return _quality_checked(recordings, config, model)


def _resampled(recordings: RecordingSet, config: Config) -> RecordingSet:
    """Resample training recordings as the readers resample files.

    With ``data.resample_rate`` every recording is resampled to that rate. With
    ``data.resample``, those at another rate than most recordings (ties: the
    earlier one's) are resampled to it. Scoring resamples to the model's rate
    (``Model.matched``).

    Raises
    ------
    InputError
        If a recording to resample has no sample rate.
    """
    from grindwatch.io.samples import resample

    target = config.data.resample_rate
    if target is None and config.data.resample:
        rates = Counter(r.sample_rate for r in recordings if r.sample_rate is not None)
        if rates:
            # most_common keeps the first-counted rate among equal counts.
            target = rates.most_common(1)[0][0]
    if target is None:
        return recordings
    changed = []
    for recording in recordings:
        rate = recording.sample_rate
        if rate is None or not np.isclose(rate, target):
            recording = resample(recording, target)
        changed.append(recording)
    return RecordingSet(changed, list(recordings.skipped), recordings.kind)


def _matching(recordings: RecordingSet, config: Config) -> RecordingSet:
    """Keep the recordings whose metadata equals ``data.match``, as for files.

    Raises
    ------
    InputError
        If no recording matches.
    """
    from grindwatch.io.dataset import matches_metadata

    if not config.data.match:
        return recordings
    pairs = tuple((key, str(value)) for key, value in config.data.match.items())
    kept = [recording for recording in recordings if matches_metadata(recording, pairs)]
    if not kept:
        raise InputError(
            "data",
            f"none of the {len(recordings)} recordings in the RecordingSet has "
            f"metadata that equals data.match {dict(pairs)}",
            "set the values in each Recording's metadata (or metadata['meta']), "
            "or change data.match",
        )
    return RecordingSet(kept, list(recordings.skipped), recordings.kind)


def _quality_checked(
    recordings: RecordingSet, config: Config, model: Model | None
) -> RecordingSet:
    """Apply ``data.constant_policy`` and ``data.clipping_policy``, as for files.

    Each recording's metadata is copied, so the caller's Recording objects keep
    theirs; the checked copies list their constant and clipped channels. As a
    file is, a recording that policy ``raise`` rejects is skipped and listed,
    unless ``data.strict`` is set.

    Raises
    ------
    InputError
        With policy ``raise`` and ``data.strict``, for a constant or clipped
        channel, or when every recording is rejected.
    """
    from grindwatch.io import SkippedFile
    from grindwatch.io.dataset import warn_quality
    from grindwatch.io.samples import check_quality

    named = set(config.data.channels or ())
    checked = []
    skipped = list(recordings.skipped)
    for recording in recordings:
        among = set(model.channels_) if model is not None else set(recording.channels)
        copy = replace(recording, metadata=dict(recording.metadata))
        try:
            checked.append(
                check_quality(
                    copy,
                    config.data.constant_policy,
                    config.data.clipping_policy,
                    among - named,
                )
            )
        except InputError as error:
            if config.data.strict:
                raise
            logger.warning("skipped %s", error)
            reason = f"{error.problem}; {error.fix}" if error.fix else error.problem
            skipped.append(
                SkippedFile(Path(recording.source or recording.name), reason)
            )
    if not checked:
        raise InputError(
            "data",
            f"every one of the {len(recordings)} recordings in the RecordingSet "
            "has a constant or clipped channel under policy raise (see the "
            "skipped recordings above)",
            "set data.constant_policy and data.clipping_policy to warn, or fix "
            "the channels",
        )
    warn_quality(checked)
    return RecordingSet(checked, skipped, recordings.kind)


def _as_read(recording: Recording, config: Config) -> Recording:
    """Apply to a training recording the rate and NaN rules that file readers apply.

    Raises
    ------
    InputError
        If a sample is NaN or infinite and ``data.nan_policy`` is ``raise``.
    """
    from grindwatch.io.frames import finite_or_raise

    values = finite_or_raise(
        recording.source or recording.name,
        recording.data,
        recording.channels,
        config.data.nan_policy,
    )
    rate = recording.sample_rate
    if rate is None:
        rate = config.data.sample_rate
    if values is recording.data and rate == recording.sample_rate:
        return recording
    return replace(recording, data=values, sample_rate=rate)


@dataclass
class ScoreResult:
    """Scores of a data set.

    ``windows`` has one row per window: recording, window, start_sample, start_s and
    end_s (when the sample rate is known), score, flag and, where known, label.
    start_sample counts samples at the model's rate: after resampling
    (``data.resample``) it differs from the row number in the file.
    ``recordings`` has one row per recording: recording, source, n_windows, score
    (the aggregate), flag, max_window_score, flagged_windows and, where known, label
    and label_source (``label column``, ``folder NAME``, ``labels file`` or, where
    ``evaluate`` labels a recording whose windows a label column labels, ``labels
    file (windows: label column)``).
    When the model has a cycle check (``grindwatch.cycles``), recordings also have
    cycle_score, cycle_flag, cycle_channel (empty when the length departs most)
    and cycle_reason, and flag is set when the score or the cycle check is above
    its threshold.
    When scored with attribution, both tables end with the columns described in
    ``grindwatch.explain``: top_channel, top_channel_share and top_sample, top_band
    or top_feature (by front end; none for feature tables), and for recordings the
    worst window's position and the margin of the score over the threshold.
    For a feature table (``data.kind: table``) each row of the input is both a
    window and a recording, so the ``recording`` column and the ``n_recordings``
    keys of ``summary()`` name and count input rows. They keep these names so
    that saved tables and JSON read the same for both kinds. Messages and the
    report say "rows" instead.
    """

    windows: pd.DataFrame
    recordings: pd.DataFrame
    threshold: float
    skipped: list[dict[str, str]] = field(default_factory=list)
    # The cycle check's threshold on cycle_score; None without a cycle check.
    cycle_threshold: float | None = None

    def summary(self) -> dict[str, Any]:
        """Count recordings and windows, flagged and all, as ``score --json`` does."""
        summary = {
            "n_recordings": int(len(self.recordings)),
            "n_flagged_recordings": int(self.recordings["flag"].sum()),
            "n_windows": int(len(self.windows)),
            "n_flagged_windows": int(self.windows["flag"].sum()),
            "threshold": self.threshold,
            "skipped": self.skipped,
        }
        if self.cycle_threshold is not None:
            summary["cycle_threshold"] = self.cycle_threshold
            summary["n_cycle_flagged_recordings"] = int(
                self.recordings["cycle_flag"].sum()
            )
        return summary


class Model:
    """The model bundle: everything needed to score new recordings.

    Attributes
    ----------
    config : Config
        The resolved configuration it was trained with.
    kind_ : {"signals", "table"}
    channels_ : list of str
        Channel (or feature) names, in the order the detector expects.
    duplicate_channels_ : dict of str to str
        Channels of the training data left out because they repeat an earlier
        channel exactly (``data.duplicate_channels``), each mapped to that channel.
    sample_rate_ : float or None
    window_length_, hop_ : int
    scaler_ : ChannelScaler
    frontend_ : FrontEnd
    detector_ : BaseDetector
    threshold_ : Threshold
        Fitted on the training windows' scores; recordings are flagged when their
        aggregate score exceeds the same value.
    fingerprint_ : dict
        Files, sizes and hashes of the training data.
    version_ : str
        grindwatch version that trained it.
    run_id_ : str or None
        The MLflow run that recorded its training.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.run_id_: str | None = None

    # Fitting ---------------------------------------------------------------------

    def fit(
        self,
        recordings: RecordingSet,
        on_epoch: Callable[[int, float, float | None], None] | None = None,
    ) -> Model:
        """Fit scaling, front end, detector and threshold on unlabeled recordings."""
        self.kind_ = recordings.kind
        recordings = align_training_recordings(recordings)
        self.config = config = self.config.windows_in_samples(
            recordings.sample_rate, self.kind_
        )
        recordings, self.duplicate_channels_ = drop_duplicate_channels(
            recordings, config.data.duplicate_channels
        )
        self.channels_ = list(recordings.channels)
        self.sample_rate_ = recordings.sample_rate
        self.window_length_, self.hop_ = self._window_shape()

        usable = _long_enough(recordings, self.window_length_, config.data.strict)
        windows = make_windows(usable, self.window_length_, self.hop_)
        _warn_few_windows(self, len(windows), len(usable))
        self.scaler_ = ChannelScaler(config.scaling.method)
        self.scaler_.fit(windows.X, self.channels_)
        scaled = self.scaler_.transform(windows.X)
        # Feature tables are features already: the front end applies to signals only.
        frontend_kind = "raw" if self.kind_ == "table" else config.frontend.kind
        self.frontend_ = FrontEnd(frontend_kind, config.frontend.n_bands)
        features = self.frontend_.fit(scaled).transform(scaled)

        self.fit_features(features, on_epoch=on_epoch)
        # Only attribution needs the baseline, and the cycle check does not depend
        # on the detector, so tuning trials, which call fit_features directly,
        # skip both.
        self.contribution_baseline_ = self._contribution_baseline(features)
        self.cycle_check_ = self._fit_cycle_check(windows)
        self.training_windows_ = windows
        _warn_dominant_channel(self, features)
        return self

    def fit_features(
        self,
        features: np.ndarray,
        on_epoch: Callable[[int, float, float | None], None] | None = None,
    ) -> Model:
        """Fit detector and threshold on front-end output of training windows.

        ``fit`` calls this once scaling and front end are fitted. Tuning calls it
        directly, with features prepared once for many trials, after setting
        ``kind_``, ``channels_``, ``sample_rate_``, ``window_length_``, ``hop_``,
        ``scaler_`` and ``frontend_`` itself. It drops the attribution baseline
        of an earlier fit, which belongs to the earlier detector.
        """
        self.__dict__.pop("contribution_baseline_", None)
        self.detector_ = self._make_detector()
        self.detector_.fit(features, on_epoch=on_epoch)
        self.training_scores_ = np.asarray(self.detector_.training_scores_)
        # A feature table's windows are its rows, one per cycle.
        unit = "rows" if getattr(self, "kind_", "signals") == "table" else "windows"
        self.threshold_ = fit_threshold(
            self.training_scores_, **self._threshold_settings(), unit=unit
        )
        self.version_ = __version__
        return self

    def _threshold_settings(self) -> dict[str, Any]:
        settings = self.config.threshold
        return {
            "method": settings.method,
            "max_components": settings.max_components,
            "min_separation": settings.min_separation,
            "percentile": settings.percentile,
            "mad_k": settings.mad_k,
            "margin": settings.margin,
            "log_scores": settings.log_scores,
            "random_state": self.config.seed,
        }

    def _fit_cycle_check(self, windows: WindowSet) -> CycleCheck | None:
        """Fit the cycle check on the training recordings, when it applies."""
        settings = self.config.cycle
        if self.kind_ != "signals" or not settings.enabled:
            return None
        n_recordings = len(windows.names)
        if n_recordings < settings.min_recordings:
            logger.info(
                "cycle check off: %d training recordings, fewer than "
                "cycle.min_recordings=%d",
                n_recordings,
                settings.min_recordings,
            )
            return None
        check = CycleCheck(self.channels_, self.sample_rate_)
        return check.fit(windows, **self._threshold_settings())

    @property
    def cycle_check(self) -> CycleCheck | None:
        """The fitted cycle check; None when off or for older bundles."""
        return getattr(self, "cycle_check_", None)

    def cycle_verdicts(self, windows: WindowSet) -> list[CycleVerdict] | None:
        """Return the cycle check's verdict per recording in ``windows``, or None."""
        check = self.cycle_check
        if check is None:
            return None
        return check.verdicts(windows)

    def _contribution_baseline(self, features: np.ndarray) -> np.ndarray:
        """Mean contribution of each channel and element over training windows.

        Detectors reconstruct some channels worse than others even in normal
        windows. Attribution counts what a window adds above this baseline, so a
        channel that is always hard to reconstruct does not top every window. The
        mean, unlike the median, leaves noise with no net departure when summed
        over a channel's elements.
        """
        rows = np.linspace(0, len(features) - 1, min(len(features), _BASELINE_SAMPLE))
        contributions = self.detector_.explain(features[rows.astype(int)])
        return contributions.mean(axis=0, dtype=np.float64).astype(np.float32)

    def departures(self, contributions: np.ndarray) -> np.ndarray:
        """Turn detector contributions into departures from normal, (n, channels, k).

        Each element's contribution minus its mean over the training windows
        (``contribution_baseline_``): positive above normal, negative below.
        Shares of a departure count the channels whose sum is positive. Bundles
        trained before the baseline existed return the contributions unchanged.
        """
        baseline = getattr(self, "contribution_baseline_", None)
        if baseline is None:
            return contributions
        return contributions - baseline

    def _window_shape(self) -> tuple[int, int]:
        if self.kind_ == "table":
            return 1, 1
        length, hop = self.config.windows.length, self.config.hop
        if hop > length:
            logger.warning(
                "windows.hop %d is longer than windows.length %d, so %.0f%% of the "
                "samples fall between windows and are never seen; set a hop of at "
                "most the window length",
                hop,
                length,
                100 * (1 - length / hop),
            )
        return length, hop

    def _make_detector(self) -> BaseDetector:
        family = self.config.detector.family
        params = self.config.detector.params()
        if family == "autoencoder" and self.kind_ == "table":
            raise ConfigError(
                "the convolutional autoencoder needs signal windows, and a feature "
                "table has one value per feature; use detector iforest, pca or knn "
                "for tables"
            )
        if family != "knn":
            params["random_state"] = self.config.seed
        return make_detector(family, **params)

    # Scoring ---------------------------------------------------------------------

    def prepare(self, recordings: list[Recording]) -> WindowSet:
        """Match channels and rate to the model and cut windows."""
        matched = self.match_recordings(recordings)
        return make_windows(matched, self.window_length_, self.hop_)

    def match_recordings(self, recordings: list[Recording]) -> list[Recording]:
        """Return the recordings as the model reads them (see ``matched``).

        Raises
        ------
        InputError
            If a channel is missing, a sample rate differs from the model's, or
            a recording contains NaN.
        """
        matched = []
        diverged: list[str] = []
        for recording in recordings:
            diverged += self._diverged_copies(recording)
            matched.append(self._match_one(recording))
        _warn_diverged(diverged)
        return matched

    def _match_one(self, recording: Recording) -> Recording:
        """Return ``matched(recording)``.

        Raises InputError if its sample rate differs from the model's, or if it
        contains NaN, which the detectors reject. Infinite values are kept,
        because scaling clips them to a large finite departure.
        """
        recording = self.matched(recording)
        gaps = np.isnan(recording.data).any(axis=1)
        if gaps.any():
            names = [recording.channels[index] for index in np.flatnonzero(gaps)]
            # Transposed, so that the first match is the earliest sample.
            sample, channel = np.argwhere(np.isnan(recording.data.T))[0]
            raise InputError(
                recording.source or recording.name,
                f"contains NaN in channels {names}, first in "
                f"{recording.channels[channel]!r} at sample {sample}",
                "fill or cut out the gaps before scoring",
            )
        if (
            self.kind_ == "signals"
            and self.sample_rate_ is not None
            and recording.sample_rate is not None
            and not np.isclose(recording.sample_rate, self.sample_rate_)
        ):
            raise InputError(
                recording.source or recording.name,
                f"sample rate {recording.sample_rate:g} differs from the model's "
                f"{self.sample_rate_:g}",
                "resample the recording, score it with --set data.resample=true "
                "(grindwatch then resamples it to the model's rate), or train a "
                "model at this rate",
            )
        return recording

    def matched(self, recording: Recording) -> Recording:
        """Return ``recording`` as the model reads it: its channels, in its order,
        resampled to its rate when ``data.resample`` is set.

        Window positions (``start_sample``) count samples of this recording, so
        plots of flagged windows must draw it rather than the file as read.
        """
        if recording.channels != self.channels_:
            recording = recording.select_channels(self.channels_)
        if self._needs_resampling(recording):
            from grindwatch.io.samples import resample

            recording = resample(recording, self.sample_rate_)
        return recording

    def _diverged_copies(self, recording: Recording) -> list[str]:
        """Name the left-out copies in ``recording`` that differ from their source."""
        found = []
        for copied, source in getattr(self, "duplicate_channels_", {}).items():
            if copied in recording.channels and source in recording.channels:
                values = recording.data[recording.channels.index(copied)]
                original = recording.data[recording.channels.index(source)]
                if not np.array_equal(values, original, equal_nan=True):
                    found.append(f"{recording.name} ({copied} != {source})")
        return found

    def _needs_resampling(self, recording: Recording) -> bool:
        return (
            self.config.data.resample
            and self.kind_ == "signals"
            and self.sample_rate_ is not None
            and recording.sample_rate is not None
            and not np.isclose(recording.sample_rate, self.sample_rate_)
        )

    def features(self, X: np.ndarray) -> np.ndarray:
        """Scale raw windows (n, channels, length) and apply the front end.

        Raises
        ------
        InputError
            If the windows are not shaped (n, channels, window length) of this
            model. The spectrum and features front ends give the same output
            shape for any window length, so the detector cannot check it.
        """
        expected = (len(self.channels_), self.window_length_)
        if np.ndim(X) != 3 or tuple(np.shape(X)[1:]) != expected:
            raise InputError(
                "X",
                f"windows shaped {np.shape(X)} do not match the model's "
                f"(n_windows, {expected[0]} channels, {expected[1]} samples)",
                f"cut windows of {expected[1]} samples from the channels "
                f"{self.channels_}, in that order",
            )
        return self.frontend_.transform(self.scaler_.transform(X))

    def window_scores(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores of raw windows shaped (n, channels, length)."""
        return self.detector_.anomaly_score(self.features(X))

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Departure of each channel and position of each raw window from normal.

        Returns an array (n, channels, k) in the front end's space: k is the time step
        for ``raw``, the frequency band for ``spectrum`` and the statistic for
        ``features``. Each value is the detector's contribution minus its mean over
        the training windows (see ``departures``); larger values depart more from
        normal.
        """
        return self.departures(self.detector_.explain(self.features(X)))

    def channel_contributions(self, X: np.ndarray) -> np.ndarray:
        """Share of each channel in each window's departure from normal, (n, channels).

        Channels below their normal level count as 0. Rows sum to 1 (rows of all
        zeros stay zero).
        """
        per_channel = np.maximum(self.explain(X).sum(axis=2), 0)
        totals = per_channel.sum(axis=1, keepdims=True)
        return np.divide(
            per_channel, totals, out=np.zeros_like(per_channel), where=totals > 0
        )

    def aggregate(self, scores: np.ndarray) -> float:
        method = self.config.aggregate.method
        if method == "max":
            return float(scores.max())
        if method == "mean":
            return float(scores.mean())
        return float(np.quantile(scores, self.config.aggregate.quantile))

    def score(
        self,
        data: RecordingSet | list[Recording],
        progress: ProgressCallback | None = None,
        batch_recordings: int = 64,
        attribution: bool = True,
    ) -> ScoreResult:
        """Score every window and recording of ``data``.

        With ``attribution``, the tables also name each window's and recording's top
        channel and top band, feature or time step (see ``grindwatch.explain``).

        Recordings that cannot be matched to the model (missing channels, other
        sample rate, NaN samples, shorter than a window) are skipped and listed,
        unless the config's ``data.strict`` is set.
        """
        recordings = data.recordings if isinstance(data, RecordingSet) else list(data)
        skipped = [
            {"path": str(s.path), "reason": s.reason}
            for s in getattr(data, "skipped", [])
        ]
        # The rows of one table file fail alike, so each file and reason is
        # listed once.
        listed = {(entry["path"], entry["reason"]) for entry in skipped}
        window_frames, recording_rows, departed = [], [], []
        for begin in range(0, len(recordings), batch_recordings):
            batch = recordings[begin : begin + batch_recordings]
            # Each recording is matched (and resampled) once, here, and its
            # left-out copies are checked once per batch.
            usable, matched, diverged = [], [], []
            for recording in batch:
                try:
                    model_input = self._match_one(recording)
                    self.prepare([model_input])  # raises when shorter than a window
                except InputError as error:
                    if self.config.data.strict:
                        raise
                    if (error.path, error.problem) not in listed:
                        listed.add((error.path, error.problem))
                        logger.warning("skipped %s", error)
                        skipped.append({"path": error.path, "reason": error.problem})
                    continue
                usable.append(recording)
                matched.append(model_input)
                diverged += self._diverged_copies(recording)
            _warn_diverged(diverged)
            if usable:
                frame, rows, unseen = self._score_batch(usable, matched, attribution)
                window_frames.append(frame)
                recording_rows.extend(rows)
                departed += unseen
            if progress is not None:
                progress(
                    "score",
                    min(begin + batch_recordings, len(recordings)),
                    len(recordings),
                )

        _warn_constant_departures(self, departed)
        if not recording_rows:
            paths = sorted({entry["path"] for entry in skipped})
            where = ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else "")
            raise InputError(
                where or "data",
                "no recording could be scored",
                "see the skipped files above",
            )
        return ScoreResult(
            windows=pd.concat(window_frames, ignore_index=True),
            recordings=pd.DataFrame(recording_rows),
            threshold=self.threshold_.value,
            skipped=skipped,
            cycle_threshold=(
                None if self.cycle_check is None else self.cycle_check.threshold_.value
            ),
        )

    def _score_batch(  # noqa: ANN202
        self,
        recordings: list[Recording],
        matched: list[Recording],
        attribution: bool = False,
    ):
        """Score ``matched``, the ``recordings`` as ``match_recordings`` returns
        them. The recording rows take names, labels and metadata from
        ``recordings``, as read.

        Returns the window table, the recording rows, and one
        ``(recording, channel, value)`` for each recording judged normal whose
        channel departs from its constant value in training.
        """
        windows = make_windows(matched, self.window_length_, self.hop_)
        features = self.features(windows.X)
        if attribution:
            scores, contributions = self.detector_.score_and_explain(features)
            contributions = self.departures(contributions)
        else:
            scores = self.detector_.anomaly_score(features)
        flags = scores > self.threshold_.value
        frame = pd.DataFrame(
            {
                "recording": np.asarray(windows.names, dtype=object)[windows.recording],
                "window": _index_within(windows.recording),
                "start_sample": windows.start,
                "score": scores,
                "flag": flags,
            }
        )
        if self.kind_ == "signals" and self.sample_rate_:
            frame.insert(3, "start_s", windows.start / self.sample_rate_)
            frame.insert(
                4, "end_s", (windows.start + self.window_length_) / self.sample_rate_
            )
        if windows.labels is not None:
            frame["label"] = windows.labels
        if attribution:
            from grindwatch.explain import recording_summary, window_attribution

            for name, values in window_attribution(
                self, contributions, windows.start
            ).items():
                frame[name] = values

        verdicts = self.cycle_verdicts(windows)
        rows = []
        for index, recording in enumerate(recordings):
            mask = windows.recording == index
            own = scores[mask]
            value = self.aggregate(own)
            row = {
                "recording": recording.name,
                "source": source_path(recording.source),
                "n_windows": int(mask.sum()),
                "score": value,
                "flag": bool(value > self.threshold_.value),
                "max_window_score": float(own.max()),
                "flagged_windows": int(flags[mask].sum()),
            }
            if verdicts is not None:
                verdict = verdicts[index]
                row["flag"] = row["flag"] or verdict.flag
                row["cycle_score"] = verdict.score
                row["cycle_flag"] = verdict.flag
                row["cycle_channel"] = verdict.channel
                row["cycle_reason"] = verdict.reason
            row.update(_metadata_columns(recording))
            label = _recording_label(recording)
            if label is not None:
                row["label"] = label
                row["label_source"] = recording.metadata.get("label_source", "")
            if attribution:
                row.update(
                    recording_summary(
                        self, contributions[mask], own, windows.start[mask], value
                    )
                )
            rows.append(row)
        return frame, rows, self._constant_departures(windows, rows)

    def _constant_departures(
        self, windows: WindowSet, rows: list[dict[str, Any]]
    ) -> list[tuple[str, str, float]]:
        """List unflagged recordings whose training-constant channels changed.

        A channel that was constant in every training window carries no
        information for the detector. An isolation forest never splits on it, so any new
        value scores as normal. The other detectors see a change only by its
        size in the channel's own units (scale 1). Each entry is the
        recording's name, the channel and the value furthest from the training
        value.
        """
        constant = getattr(self.scaler_, "constant_channels_", [])
        if not constant:
            return []
        values = windows.X[:, constant, :].astype(np.float64)
        centers = self.scaler_.center_[constant].astype(np.float64)
        distance = np.abs(values - centers[None, :, None])
        # Per window and channel: the largest distance and the sample value there.
        furthest_index = distance.argmax(axis=2)
        window_distance = np.take_along_axis(distance, furthest_index[..., None], 2)
        window_value = np.take_along_axis(values, furthest_index[..., None], 2)
        window_distance, window_value = window_distance[..., 0], window_value[..., 0]
        # float32 rounding of the stored centre is far below this limit.
        limit = 1e-6 * np.maximum(1.0, np.abs(centers))
        flagged = np.array([row["flag"] for row in rows], dtype=bool)
        departures = []
        for column, channel in enumerate(constant):
            # The window of each recording furthest from the value: the last
            # one of its recording when sorted by recording, then distance.
            order = np.lexsort((window_distance[:, column], windows.recording))
            recording = windows.recording[order]
            last = order[np.append(recording[1:] != recording[:-1], True)]
            for window in last:
                index = int(windows.recording[window])
                if (
                    window_distance[window, column] > limit[column]
                    and not (flagged[index])
                ):
                    value = float(window_value[window, column])
                    departures.append((index, column, channel, value))
        departures.sort()
        return [
            (rows[index]["recording"], self.channels_[channel], value)
            for index, _, channel, value in departures
        ]

    # Persistence -----------------------------------------------------------------

    def aggregate_rule(self) -> str:
        """Name how a recording's score comes from its window scores, e.g. "the
        0.9 quantile of its window scores"."""
        aggregate = self.config.aggregate
        if aggregate.method == "quantile":
            return f"the {aggregate.quantile:g} quantile of its window scores"
        return f"the {aggregate.method} of its window scores"

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: channels, rate, window, threshold, data, version."""
        return {
            "grindwatch_version": self.version_,
            "kind": self.kind_,
            "channels": self.channels_,
            "duplicate_channels": getattr(self, "duplicate_channels_", {}),
            "sample_rate": self.sample_rate_,
            "window_length": self.window_length_,
            "hop": self.hop_,
            "frontend": self.frontend_.kind,
            "detector": self.config.detector.family,
            "threshold": self.threshold_.to_dict(),
            "threshold_description": self.threshold_.describe(),
            "aggregate": self.config.aggregate.model_dump(),
            "cycle_check": (
                None
                if self.cycle_check is None
                else {
                    "threshold": self.cycle_check.threshold_.to_dict(),
                    "description": self.cycle_check.describe(),
                }
            ),
            "run_id": self.run_id_,
            "training_data": {
                k: v
                for k, v in getattr(self, "fingerprint_", {}).items()
                if k != "files"
            },
        }

    def save(self, folder: str | Path) -> Path:
        """Write the bundle to ``folder``: model.pkl, model.json, config.yaml and
        training_files.json (path, bytes and SHA-256 of each training file).

        model.json records the size and SHA-256 of model.pkl under ``model_pkl``,
        which ``load`` checks. model.pkl and model.json are replaced as a pair,
        so a ``load`` that runs meanwhile, or after a crash mid-save, returns the
        old model or the new one.
        """
        import hashlib
        import json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        training_windows = self.__dict__.pop("training_windows_", None)
        try:
            content = pickle.dumps(self, protocol=5)
        finally:
            if training_windows is not None:
                self.training_windows_ = training_windows
        sha256 = hashlib.sha256(content).hexdigest()
        description = {
            **self.describe(),
            "model_pkl": {"bytes": len(content), "sha256": sha256},
        }
        # JSON, not CSV: a model folder inside a data folder must not add a file
        # that reading the data would take for a recording.
        files = getattr(self, "fingerprint_", {}).get("files", [])
        with _save_lock(folder):
            _replace_pair(folder, content, description)
            atomic_write_bytes(folder / "config.yaml", self.config.to_yaml().encode())
            atomic_write_bytes(
                folder / "training_files.json", json.dumps(files, indent=1).encode()
            )
        return folder

    @staticmethod
    def load(folder: str | Path) -> Model:
        """Read a bundle written by ``save``.

        The bundle is a pickle: load only bundles you or your tracking server wrote.
        """
        path = Path(folder) / BUNDLE_FILE
        if not path.is_file():
            raise InputError(
                folder,
                f"is not a grindwatch model folder (no {BUNDLE_FILE})",
                "pass the folder written by 'grindwatch train --output' or an MLflow "
                "model URI such as runs:/<run id>/model",
            )
        fix = (
            "retrain with 'grindwatch train --output FOLDER', or pass the folder "
            "that 'grindwatch train --output' wrote"
        )
        path, content, record = _read_pair(Path(folder))
        if not content:
            raise InputError(
                path,
                "is empty, so it is not a readable grindwatch model (truncated, "
                "or its writing was interrupted)",
                fix,
            )
        _check_saved_file(path, content, record, fix)
        try:
            model = pickle.loads(content)
        # Non-pickle data, a truncated file, and a pickle of classes that this
        # grindwatch version lacks raise these. Other errors propagate.
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            ImportError,
            AttributeError,
        ) as error:
            raise InputError(
                path,
                "is not a readable grindwatch model: it is damaged, truncated, "
                "or written by another program or grindwatch version "
                f"({type(error).__name__}: {error})",
                fix,
            ) from error
        if not isinstance(model, Model):
            raise InputError(
                path,
                f"contains a pickled {type(model).__name__}, not a grindwatch model",
                fix,
            )
        model.config = _current_config(model.config, path, fix)
        _check_description(Path(folder))
        return model


def _section_values(section: Any) -> Any:
    """Return the values a pickled config section holds, as plain data.

    A section pickled by an older grindwatch lacks the settings added since,
    and may keep some that were removed: read only its stored attributes, and
    leave out the names that the current section does not define.
    """
    from pydantic import BaseModel

    if isinstance(section, BaseModel):
        fields = type(section).model_fields
        return {
            name: _section_values(value)
            for name, value in vars(section).items()
            if name in fields
        }
    if isinstance(section, (list, tuple)):
        return type(section)(_section_values(item) for item in section)
    if isinstance(section, dict):
        return {key: _section_values(value) for key, value in section.items()}
    return section


def _current_config(config: Config, path: Path, fix: str) -> Config:
    """Rebuild a loaded model's config so settings added since it was saved
    take their defaults, which is what the older version did."""
    import pydantic

    values = _section_values(config)
    # Before empty lists were rejected, data.channels: [] was saved and meant
    # every channel, so such a bundle keeps that meaning.
    if values.get("data", {}).get("channels") == []:
        values["data"]["channels"] = None
    try:
        return Config.model_validate(values)
    except pydantic.ValidationError as error:
        raise InputError(
            path,
            "holds a configuration this grindwatch version cannot read "
            f"({error.error_count()} invalid settings, first: "
            f"{error.errors()[0]['loc']}: {error.errors()[0]['msg']})",
            fix,
        ) from error


# How often ``_read_pair`` reads again when a save replaced the pair meanwhile,
# and the pause in seconds between two reads.
_PAIR_READ_ATTEMPTS = 50
_PAIR_READ_PAUSE_S = 0.01


# How long a save waits for another process's save into the same folder.
_SAVE_LOCK_TIMEOUT_S = 120


@contextlib.contextmanager
def _save_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.save.lock`` while one save writes the bundle's files.

    Saves into one folder from several processes (or threads) then run one after
    the other: each leaves a whole bundle, and none removes the pickle another
    has staged but not yet renamed.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / ".save.lock"), timeout=_SAVE_LOCK_TIMEOUT_S)
    try:
        with lock:
            yield
    except Timeout as error:
        raise InputError(
            folder,
            f"is locked by another save for over {_SAVE_LOCK_TIMEOUT_S} s "
            "(.save.lock held)",
            "wait for the other 'grindwatch train' or save to finish, or save "
            "into another folder",
        ) from error


def _replace_pair(folder: Path, content: bytes, description: dict[str, Any]) -> None:
    """Replace model.pkl and model.json in ``folder`` so that every moment has a
    pair that ``_read_pair`` reads as one.

    The pickle is first written beside model.pkl under a hidden name of its own.
    model.json is then replaced, naming that file under ``model_pkl.file``, which
    is the moment the new pair counts. The file is then renamed to model.pkl and
    model.json written again without the name, so a finished bundle has the layout
    that older grindwatch versions read. A reader finds the named file, or, once it
    is renamed, model.pkl with the recorded size and SHA-256.
    """
    import json

    def write_description(record: dict[str, Any]) -> None:
        text = json.dumps({**description, "model_pkl": record}, indent=2, default=str)
        atomic_write_bytes(folder / "model.json", text.encode())

    record = description["model_pkl"]
    staged = folder / f".model-{record['sha256'][:16]}.pkl"
    atomic_write_bytes(staged, content)
    write_description({**record, "file": staged.name})
    try:
        os.replace(staged, folder / BUNDLE_FILE)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(folder / BUNDLE_FILE)) from error
    write_description(record)
    # Saves hold _save_lock, so a staged file here is one a stopped save left.
    for stale in folder.glob(".model-*.pkl"):
        stale.unlink(missing_ok=True)


def _pair_record(folder: Path) -> dict[str, Any] | None:
    """Return model.json's ``model_pkl`` record, or None when there is none
    (bundles of older versions, a missing or damaged model.json)."""
    import json

    try:
        record = json.loads((folder / "model.json").read_bytes())["model_pkl"]
        return {
            "bytes": int(record["bytes"]),
            "sha256": str(record["sha256"]),
            "file": record.get("file"),
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # _check_description warns when model.json is damaged


def _identity(record: dict[str, Any] | None) -> tuple[int, str] | None:
    """Return the size and SHA-256 that a record names, without the file name."""
    return None if record is None else (record["bytes"], record["sha256"])


def _matches(content: bytes, record: dict[str, Any] | None) -> bool:
    import hashlib

    if record is None:
        return True
    return (
        len(content) == record["bytes"]
        and hashlib.sha256(content).hexdigest() == record["sha256"]
    )


def _read_pair(folder: Path) -> tuple[Path, bytes, dict[str, Any] | None]:
    """Read the pickle of a bundle with the model.json record it matches.

    Returns the file read, its bytes and the record. A save that replaces the
    pair between the two reads shows as a mismatch together with a changed
    model.json, and the pair is read again. A mismatch with an unchanged
    model.json is damage, and is returned for ``_check_saved_file`` to report.
    Saves that follow each other for longer than the attempts last (about 0.5 s
    plus the reads) make the last mismatch count as damage too.
    """
    for _ in range(_PAIR_READ_ATTEMPTS):
        record = _pair_record(folder)
        path = folder / BUNDLE_FILE
        if record is not None and record["file"]:
            named = folder / Path(record["file"]).name
            if named.is_file():
                path = named
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            if path.name == BUNDLE_FILE:
                raise InputError(
                    folder,
                    f"is not a grindwatch model folder (no {BUNDLE_FILE})",
                    "pass the folder written by 'grindwatch train --output'",
                ) from None
            continue  # renamed to model.pkl since model.json was read
        except OSError as error:
            raise InputError(
                path, f"cannot be read ({error.strerror})", "check its permissions"
            ) from error
        if _matches(content, record):
            return path, content, record
        if _identity(_pair_record(folder)) == _identity(record):
            return path, content, record
        time.sleep(_PAIR_READ_PAUSE_S)
    return path, content, record


def _check_saved_file(
    path: Path, content: bytes, record: dict[str, Any] | None, fix: str
) -> None:
    """Raise InputError when model.pkl differs from the file that ``save`` wrote.

    ``save`` records the size and SHA-256 of model.pkl in model.json beside it.
    A pickle with a few changed bytes can still load and then give other scores,
    so only this check notices such damage. Bundles without the record, written
    by older versions or without model.json, are not checked.
    """
    import hashlib

    if record is None:
        return
    size, sha256 = record["bytes"], record["sha256"]
    if len(content) != size:
        raise InputError(
            path,
            f"has {len(content)} bytes, but had {size} when it was saved (as "
            "model.json records), so it was truncated, damaged or replaced since",
            fix,
        )
    if hashlib.sha256(content).hexdigest() != sha256:
        raise InputError(
            path,
            "differs from the file that was saved (its SHA-256 is not the one "
            "model.json records), so it was damaged or edited since",
            f"{fix}. To change a model on purpose, write it with Model.save, which "
            "updates model.json",
        )


def _check_description(folder: Path) -> None:
    """Warn when the bundle's model.json is not JSON.

    ``load`` reads only model.pkl, so the model stays usable, but a damaged
    description can mean that the whole folder was damaged or overwritten.
    """
    import json

    description = folder / "model.json"
    try:
        json.loads(description.read_bytes())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as error:
        logger.warning(
            "%s is not valid JSON (%s); the model was loaded from %s, but check "
            "that the folder was not damaged",
            description,
            error,
            BUNDLE_FILE,
        )


def _warn_diverged(diverged: list[str]) -> None:
    """Log the left-out copies that no longer equal their source, if any.

    Each entry of ``diverged`` names one recording and one copied channel.
    """
    if diverged:
        logger.warning(
            "Left-out channels that no longer equal the channel they copied in "
            "training (%d, as recording (copy != source)): %s%s. The model does "
            "not read them; retrain with data.duplicate_channels set to keep to "
            "score them.",
            len(diverged),
            ", ".join(diverged[:3]),
            " and more" if len(diverged) > 3 else "",
        )


def _warn_constant_departures(
    model: Model, departed: list[tuple[str, str, float]]
) -> None:
    """Warn about recordings judged normal although a channel that was constant
    in training changed in them, since the score may not show that change."""
    if not departed:
        return
    channels = sorted({channel for _, channel, _ in departed})
    centers = {
        model.channels_[index]: float(model.scaler_.center_[index])
        for index in model.scaler_.constant_channels_
    }
    training_values = ", ".join(f"{name!r} at {centers[name]:g}" for name in channels)
    examples = ", ".join(
        f"{name} ({channel} = {value:g})" for name, channel, value in departed[:3]
    )
    more = f" and {len(departed) - 3} more" if len(departed) > 3 else ""
    logger.warning(
        "%d scored recordings are not flagged, although channels that were "
        "constant in every training window differ from that value: %s. "
        "Changed in: %s%s. The model cannot judge such a change, because an "
        "isolation forest ignores it and the other detectors weigh it by its "
        "size in the channel's units. "
        "Check these recordings, train on data in which the channels vary, or "
        "leave the channels out with --channels.",
        len({name for name, _, _ in departed}),
        training_values,
        examples,
        more,
    )


def _index_within(groups: np.ndarray) -> np.ndarray:
    """Running index of each element within its group (groups are contiguous)."""
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, lengths)


def _recording_label(recording: Recording) -> int | None:
    if recording.sample_labels is not None:
        return int((recording.sample_labels > 0).any())
    return recording.label


@dataclass
class TrainResult:
    """What ``train`` returns: the fitted model and where it was recorded."""

    model: Model
    recordings: RecordingSet
    training: ScoreResult
    run_id: str | None = None
    tracking_uri: str | None = None
    output: Path | None = None

    @property
    def n_trained(self) -> int:
        """Recordings the model was fitted on, without those shorter than a window.

        ``recordings`` still contains the short ones and lists them in ``skipped``.
        """
        return len(self.training.recordings)

    def __repr__(self) -> str:
        # The default would print every recording's samples and result table.
        flagged = int(self.training.recordings["flag"].sum())
        return (
            f"TrainResult(family={self.model.config.detector.family!r}, "
            f"n_trained={self.n_trained}, n_flagged={flagged}, "
            f"threshold={self.model.threshold_.value:.6g}, run_id={self.run_id!r}, "
            f"output={None if self.output is None else str(self.output)!r})"
        )


def train(
    data: DataSource | None = None,
    config: Config | dict[str, Any] | str | Path | None = None,
    *,
    output: str | Path | None = None,
    progress: ProgressCallback | None = None,
    parent_run_id: str | None = None,
) -> TrainResult:
    """Read unlabeled recordings, fit a model, and record the run in MLflow.

    Parameters
    ----------
    data : files, folders, glob patterns, or a RecordingSet
        Training recordings; None uses the config's ``data.paths``. Of the
        ``data`` settings, only ``channels``, ``sample_rate`` and
        ``nan_policy`` apply to a RecordingSet, whose recordings need unique
        names.
    config : Config, dict or path, optional
        All settings: a Config, a dict of dotted overrides of the defaults such
        as ``{"windows.length": 512}``, or a YAML file. Defaults when None.
    output : path, optional
        Also save the model bundle to this folder.
    progress : callable, optional
        Called with (stage, done, total) as training runs.
    parent_run_id : str, optional
        Nest the MLflow run under this run, as tuning does under its study's run.
    """
    from grindwatch.fingerprint import data_fingerprint

    config = as_config(config)
    saved = _output_or_raise(output)
    if config.tracking.enabled:
        from grindwatch.tracking import _check_server, resolve_tracking_uri

        # Before reading data, so that a stopped tracking server fails at once.
        _check_server(resolve_tracking_uri(config))
    recordings = read_data(data, config)
    # Resolved before the MLflow run logs the settings, so that the run shows the
    # window in samples that the model uses.
    config = config.windows_in_samples(recordings.sample_rate, recordings.kind)
    model = Model(config)
    model.fingerprint_ = data_fingerprint(recordings)

    tracker = None
    if config.tracking.enabled:
        from grindwatch.tracking import TrainingTracker

        tracker = TrainingTracker(config, parent_run_id=parent_run_id)
    epochs = config.detector.autoencoder.epochs

    def on_epoch(epoch: int, train_loss: float, val_loss: float | None) -> None:
        if tracker is not None:
            tracker.log_epoch(epoch, train_loss, val_loss)
        if progress is not None:
            progress("train", epoch + 1, epochs)

    if tracker is None:
        model.fit(recordings, on_epoch=on_epoch)
        training = model.score(_fitted(model, recordings), progress=progress)
        _note_fitted(model, recordings, training)
    else:
        with tracker.run(recordings.kind, model.fingerprint_["sha256"]):
            model.fit(recordings, on_epoch=on_epoch)
            model.run_id_ = tracker.run_id
            training = model.score(_fitted(model, recordings), progress=progress)
            _note_fitted(model, recordings, training)
            tracker.log_training(model, training)
    del model.training_windows_
    _warn_many_recordings_flagged(model, training)

    if saved is not None:
        model.save(saved)
    return TrainResult(
        model=model,
        recordings=recordings,
        training=training,
        run_id=tracker.run_id if tracker else None,
        tracking_uri=tracker.uri if tracker else None,
        output=saved,
    )


def _output_or_raise(output: str | Path | None) -> Path | None:
    """Check ``output`` before training, so that a bad path fails at once."""
    from grindwatch.results import check_output_folder

    if output is None:
        return None
    if not str(output).strip():
        # Path("") is the working folder, which would get the bundle's files.
        raise ConfigError(
            "output is empty; pass the folder to save the model bundle in, or None"
        )
    return check_output_folder(output)


def _fitted(model: Model, recordings: RecordingSet) -> list[Recording]:
    """Return the recordings that ``fit`` used: those at least one window long.

    Scoring the short ones again would only repeat their skip warnings.
    """
    return [r for r in recordings.recordings if r.n_samples >= model.window_length_]


# Fewer training windows than this give a threshold from a handful of scores
# and an autoencoder trained on few examples (an estimate, not a measured limit).
FEW_TRAINING_WINDOWS = 50


def _warn_few_windows(model: Model, n_windows: int, n_recordings: int) -> None:
    """Warn when the training windows are too few, and name the options for more."""
    if model.kind_ != "signals" or n_windows >= FEW_TRAINING_WINDOWS:
        return
    shorter = max(16, model.window_length_ // 4)
    # A per-cycle feature table read without --table looks like this: one long
    # recording without a time column, so without a sample rate.
    table_hint = (
        ". If each row of the files is one process cycle with its features in "
        "the columns, train with --table (data.kind: table)"
        if model.sample_rate_ is None
        else ""
    )
    logger.warning(
        "only %d training windows of %d samples from %d recordings: the "
        "detector and its threshold learn from few examples. Shorter windows "
        "(for example --window %d) or overlapping ones (--hop %d) give more; "
        "a window should still span the events that mark a fault%s",
        n_windows,
        model.window_length_,
        n_recordings,
        shorter,
        max(1, model.window_length_ // 2),
        table_hint,
    )


# Share of the training recordings above which the threshold is suspect: faults
# in production data are rare, so a cut that flags one in four cycles it learned
# from has likely split normal variation.
SUSPECT_TRAINING_SHARE = 0.25


def _warn_many_recordings_flagged(model: Model, training: ScoreResult) -> None:
    """Warn when the threshold flags a large share of its training recordings.

    Training assumes most recordings are normal. When the threshold still flags
    more than ``SUSPECT_TRAINING_SHARE`` of them, the high-score group is often
    a phase every cycle has, such as its start, or an operating point, rather
    than a fault. The warning names the window positions flagged in four in
    five of the recordings that reach them.
    """
    recordings = training.recordings
    # The window threshold only: the cycle check's flags have their own rule.
    n_flagged = int((recordings["score"] > model.threshold_.value).sum())
    if len(recordings) < 2 or n_flagged <= SUSPECT_TRAINING_SHARE * len(recordings):
        return
    if model.kind_ == "table":
        logger.warning(
            "the threshold flags %d of the %d training rows, while training assumes "
            "most process cycles are normal. If most of these rows are normal, "
            "look at their top features with grindwatch report. Cycles of several "
            "operating points (tools, materials, part types) can form score "
            "clusters of their own; then one model per operating point "
            "helps, and so may threshold.method percentile. If most "
            "are faulty, train on cycles known to be good.",
            n_flagged,
            len(recordings),
        )
        return
    rule = model.aggregate_rule()
    # Grouped by start, because a recording's last window ends at its last sample
    # and so starts off the hop grid.
    per_position = training.windows.groupby("start_sample")["flag"].agg(
        ["sum", "count"]
    )
    # A position that only a few recordings reach is no sign of a common phase.
    common = per_position[
        (per_position["count"] >= 5)
        & (per_position["sum"] >= 0.8 * per_position["count"])
    ].index
    where = ""
    if model.kind_ == "signals" and len(common):
        from grindwatch.explain import format_seconds

        rate = model.sample_rate_
        starts = [
            f"{format_seconds(start / rate)} s" if rate else f"sample {start}"
            for start in common
        ]
        listed = ", ".join(starts[:8]) + (
            f" and {len(starts) - 8} more" if len(starts) > 8 else ""
        )
        where = (
            f" The windows starting at {listed} from a recording's start are "
            "flagged in at least four in five of the recordings that reach them, so "
            "the threshold may be cutting off a phase that every cycle has."
        )
    logger.warning(
        "the threshold flags %d of the %d training recordings (a recording's "
        "score is %s), "
        "while training assumes most of them are normal.%s If most of these "
        "recordings are normal, look at their flagged windows with grindwatch "
        "report. Recordings from several operating points (loads, speeds) can "
        "form score clusters of their own; then one model per operating point "
        "helps, and so may %slonger windows or threshold.method percentile. If "
        "most are faulty, train on recordings known to be good.",
        n_flagged,
        len(recordings),
        rule,
        where,
        "cutting that phase from the recordings, " if where else "",
    )


def _note_fitted(model: Model, recordings: RecordingSet, training: ScoreResult):
    """Add to the fingerprint, taken before fitting, what fitting skipped."""
    model.fingerprint_["n_trained"] = len(training.recordings)
    model.fingerprint_["skipped"] = [
        {"path": str(s.path), "reason": s.reason} for s in recordings.skipped
    ]


def load_model(
    location: str | Path, config: Config | dict[str, Any] | str | Path | None = None
) -> Model:
    """Load a model from a bundle folder, an MLflow model folder, or an MLflow URI.

    URIs such as ``runs:/<run id>/model`` or ``models:/NAME@alias`` are resolved
    against the tracking store (``tracking.uri`` of ``config``, given as for
    ``train``, then MLFLOW_TRACKING_URI, then ./mlflow.db).
    """
    if config is not None:
        config = as_config(config)
    if not isinstance(location, (str, os.PathLike)):
        raise TypeError(
            "model must be a grindwatch.Model, the folder written by 'grindwatch "
            f"train --output' or an MLflow model URI, not {type(location).__name__}"
        )
    if not str(location).strip():
        # Path("") is the working folder, which would be searched for a bundle.
        raise InputError(
            repr(str(location)),
            "is not a model location (empty)",
            "pass the folder written by 'grindwatch train --output' or an MLflow "
            "model URI",
        )
    path = Path(location)
    if path.is_dir():
        for candidate in (path, path / "artifacts" / "bundle"):
            if (candidate / BUNDLE_FILE).is_file():
                return Model.load(candidate)
        return Model.load(path)  # raises with a message naming the folder
    if path.is_file():
        raise InputError(
            location,
            "is a file, not a model folder",
            f"pass the folder that contains {BUNDLE_FILE} and model.json",
        )
    text = str(location)
    if ":" in text or text.startswith("m-"):
        from grindwatch.tracking import download_model

        # The bundle is read whole into memory, so its download can go at once.
        with tempfile.TemporaryDirectory(prefix="grindwatch-model-") as folder:
            bundle = download_model(text, config, Path(folder))
            try:
                return Model.load(bundle)
            except InputError as error:
                stored = _stored_model_error(text, bundle, folder, error, config)
                raise stored from error
    raise InputError(
        location,
        "no such model folder",
        "pass the folder written by 'grindwatch train --output' or an MLflow model URI",
    )


def _stored_model_error(
    uri: str, bundle: Path, download: str, error: InputError, config: Config | None
) -> InputError:
    """Build the error for a downloaded bundle that cannot be loaded, naming ``uri``.

    The downloaded copy is deleted when loading fails, so its path would point
    nowhere. The message names the URI, the damaged file inside the logged model
    and the tracking store instead.
    """
    from grindwatch.tracking import resolve_tracking_uri

    file = (bundle / BUNDLE_FILE).relative_to(download)
    return InputError(
        uri,
        f"its file {file.as_posix()} in the MLflow tracking store "
        f"{resolve_tracking_uri(config)} {error.problem}",
        "log the model again with 'grindwatch train' (--register NAME to register "
        "it), or pass another model version or run",
    )


def score(
    model: Model | str | Path,
    data: DataSource,
    *,
    progress: ProgressCallback | None = None,
    strict: bool | None = None,
    attribution: bool = True,
) -> ScoreResult:
    """Score recordings with a model, read with the model's own reading options.

    ``model`` is a Model or anything ``load_model`` accepts, and ``data`` is
    what ``train`` accepts. ``progress`` is called as in ``train``. With
    ``strict`` True, the first file or recording that cannot be read or
    scored (missing channel, other sample rate, NaN, shorter than a window)
    raises InputError. By default (the model's ``data.strict``) it is skipped
    and listed in ``ScoreResult.skipped``.

    ``attribution`` adds the top channel and band, feature or time step to the
    tables (see ``grindwatch.explain``); turn it off to score faster.
    """
    if not isinstance(model, Model):
        model = load_model(model)
    config = model.config
    if strict is not None:
        config = config.with_overrides({"data.strict": strict})
    chunkable = _chunkable_file(data, config)
    if chunkable is not None:
        from grindwatch.streaming import score_chunked

        result = score_chunked(model, chunkable, progress=progress)
        _warn_most_scored_flagged(model, result)
        return result
    recordings = read_data(data, config, model)
    scorer = model
    if config is not model.config:
        scorer = _with_config(model, config)
    result = scorer.score(recordings, progress=progress, attribution=attribution)
    _warn_most_scored_flagged(model, result)
    return result


# The scored batch must have at least this many times the training windows' share
# of flagged windows before the operating-point warning is logged.
_SHIFT_RATIO = 5.0


def _warn_most_scored_flagged(model: Model, result: ScoreResult) -> None:
    """Warn when most scored recordings are flagged along most of their length.

    A fault usually raises the score of some windows of a cycle. A change of
    operating point (another load, speed, part type, sensor gain or position)
    raises all of them, in every recording scored after the change. The warning
    names that cause and the channel that leads the flagged windows, so that an
    engineer checks the operating point before looking for a fault.
    """
    recordings, windows = result.recordings, result.windows
    n_flagged = int(recordings["flag"].sum())
    if len(recordings) < 3 or n_flagged <= len(recordings) / 2:
        return
    window_share = float(windows["flag"].mean())
    training = getattr(model, "training_scores_", None)
    if training is None or not len(training):
        return
    training_share = float(np.mean(np.asarray(training) > model.threshold_.value))
    if window_share <= 0.5 or window_share < _SHIFT_RATIO * training_share:
        return
    table = model.kind_ == "table"
    unit = "feature" if table else "channel"
    leader = ""
    if "top_channel" in windows:
        from grindwatch.explain import leading_channel

        found = leading_channel(windows.loc[windows["flag"], "top_channel"])
        if found is not None:
            name, count, total = found
            leader = (
                f" {unit.capitalize()} '{name}' is the top {unit} of "
                f"{count / total:.0%} of the flagged {'rows' if table else 'windows'}."
            )
    if table:
        # A row is one whole cycle, so there is no share of windows to compare.
        logger.warning(
            "%d of the %d scored rows are flagged, while the threshold flagged "
            "%.1f%% of the training rows.%s A batch flagged this widely is what a "
            "change of operating point (tool, material, part type, sensor gain or "
            "position) looks like, unless the batch holds mostly faulty cycles. If "
            "the machine ran differently from the training cycles, train a model "
            "on cycles of this operating point; one model per operating point "
            "keeps each one's threshold meaningful.",
            n_flagged,
            len(recordings),
            100 * training_share,
            leader,
        )
        return
    logger.warning(
        "%d of the %d scored recordings are flagged, and %.0f%% of all scored "
        "windows, while the threshold flagged %.1f%% of the training windows.%s "
        "Flags along whole recordings, in most of a batch, are what a change of "
        "operating point (load, speed, part type, sensor gain or position) looks "
        "like, as does a fault that lasts the whole cycle. If the machine ran "
        "differently from the training recordings, train a model on recordings of "
        "this operating point; one model per operating point keeps each one's "
        "threshold meaningful.",
        n_flagged,
        len(recordings),
        100 * window_share,
        100 * training_share,
        leader,
    )


def _with_config(model: Model, config: Config) -> Model:
    clone = Model.__new__(Model)
    clone.__dict__.update(model.__dict__)
    clone.config = config
    return clone


def drop_duplicate_channels(
    recordings: RecordingSet, policy: str = "drop", level: int = logging.WARNING
) -> tuple[RecordingSet, dict[str, str]]:
    """Leave out channels that repeat an earlier channel exactly.

    A copied feature column carries no new information, but it counts twice in
    distances and reconstructions, and an injected change to one copy alone is a
    pattern normal data never shows. ``policy`` ``"keep"`` returns the recordings
    unchanged. ``level`` is the logging level of the message that names the
    left-out channels.

    Returns
    -------
    recordings : RecordingSet
    repeats : dict of str to str
        Each left-out channel, mapped to the earlier channel it repeats.
    """
    if policy != "drop" or len(recordings.channels) < 2:
        return recordings, {}
    repeats = recordings.duplicate_channels()
    if not repeats:
        return recordings, {}
    kept_channels = [name for name in recordings.channels if name not in repeats]
    noun = "feature columns" if recordings.kind == "table" else "channels"
    examples = ", ".join(f"{name} = {same}" for name, same in list(repeats.items())[:4])
    more = f" and {len(repeats) - 4} more" if len(repeats) > 4 else ""
    logger.log(
        level,
        "%d of the %d %s repeat an earlier one exactly in every training "
        "%s and are left out (%s%s); the model uses the other %d. Set "
        "data.duplicate_channels to keep to use them all.",
        len(repeats),
        len(recordings.channels),
        noun,
        item_noun(recordings.kind, 1),
        examples,
        more,
        len(kept_channels),
    )
    selected = recordings.select_channels(kept_channels)
    # Shared, so that recordings skipped later (shorter than a window) are
    # listed in the caller's set too.
    selected.skipped = recordings.skipped
    return selected, repeats


# Families whose score sums squared deviations in the scaled space, where one
# channel with a tiny scale can outweigh the rest. Isolation forest splits each
# feature on its own range; kNN explains training windows by their own match.
_SUMMED_FAMILIES = ("autoencoder", "pca")
_DOMINANCE_SAMPLE = 512
# Training windows whose contributions give the attribution baseline.
_BASELINE_SAMPLE = 2048


def _warn_dominant_channel(model: Model, features: np.ndarray) -> None:
    """Warn when one channel carries most of nearly every training window's score.

    A channel that is idle most of the time gets a tiny robust scale (its
    interquartile range), so its moves in the busy phases outweigh all other
    channels: it then tops the attribution of every window, normal or not.
    """
    n_channels = len(model.channels_)
    if model.config.detector.family not in _SUMMED_FAMILIES or n_channels < 10:
        return
    rows = np.linspace(0, len(features) - 1, min(len(features), _DOMINANCE_SAMPLE))
    contributions = model.detector_.explain(features[rows.astype(int)])
    per_channel = contributions.sum(axis=2)
    totals = per_channel.sum(axis=1, keepdims=True)
    shares = np.divide(
        per_channel, totals, out=np.zeros_like(per_channel), where=totals > 0
    )
    typical = np.median(shares, axis=0)
    top = int(typical.argmax())
    if typical[top] <= 0.5:
        return
    noun = "feature" if model.kind_ == "table" else "channel"
    logger.warning(
        "%s %s carries %.0f%% of a typical training window's score (median over "
        "windows) among %d %ss, so it will top the attribution of nearly every "
        "window. Its scale from training is %.3g; a %s that is idle most of the "
        "time gets a small robust scale. Check it, leave it out with "
        "data.channels, or set scaling.method to standard.",
        noun,
        model.channels_[top],
        100 * typical[top],
        n_channels,
        noun,
        float(model.scaler_.scale_[top]),
        noun,
    )


def align_training_recordings(recordings: RecordingSet) -> RecordingSet:
    """Return ``recordings`` in one channel order, checked for one sample rate.

    ``Model.fit`` and tuning both cut windows that stack channels by position.

    Raises
    ------
    InputError
        If a recording lacks a channel of the first recording, or has another
        sample rate.
    """
    recordings = _in_first_channel_order(recordings)
    _check_one_rate(recordings)
    return recordings


def _in_first_channel_order(recordings: RecordingSet) -> RecordingSet:
    """Return ``recordings`` with each one's channels in the first one's order.

    Windows stack channels by position. The readers give every file the same
    order, but recordings built in memory may list their channels differently.

    Raises
    ------
    InputError
        If a recording lacks a channel of the first recording.
    """
    channels = recordings.channels
    if all(recording.channels == channels for recording in recordings.recordings):
        return recordings
    ordered = recordings.select_channels(channels)
    # Shared, so that recordings skipped later are listed in the caller's set.
    ordered.skipped = recordings.skipped
    return ordered


def _check_one_rate(recordings: RecordingSet) -> None:
    """Raise InputError if a signal recording's sample rate differs from the first's.

    The readers skip or resample such files, but recordings built in memory
    reach ``fit`` as they are, and windows of another rate would be mixed in.
    """
    rate = recordings.sample_rate
    if recordings.kind != "signals" or rate is None:
        return
    for recording in recordings.recordings:
        other = recording.sample_rate
        if other is not None and not np.isclose(other, rate):
            raise InputError(
                recording.source or recording.name,
                f"sample rate {other:g} differs from {rate:g}, the rate of the "
                "first recording",
                "resample the recordings to one rate before training, or set "
                "data.resample: true to have grindwatch resample them to the "
                "rate most of them have",
            )


def _long_enough(
    recordings: RecordingSet, length: int, strict: bool
) -> list[Recording]:
    """Drop recordings shorter than one window, listing them as skipped (or raise)."""
    from grindwatch.io import SkippedFile

    usable = []
    for recording in recordings.recordings:
        if recording.n_samples >= length:
            usable.append(recording)
            continue
        problem = (
            f"has {recording.n_samples} samples, fewer than one window of {length}"
        )
        fix = "leave this recording out, or use shorter windows (windows.length)"
        if strict:
            raise InputError(recording.source or recording.name, problem, fix)
        logger.warning("skipped %s: %s; %s", recording.name, problem, fix)
        recordings.skipped.append(
            SkippedFile(Path(recording.source or recording.name), f"{problem}; {fix}")
        )
    if not usable:
        fix = "use shorter windows (windows.length)"
        from_files = any(r.source is not None for r in recordings.recordings)
        if not from_files and all(
            r.n_channels > r.n_samples for r in recordings.recordings
        ):
            # A (n_samples, n_channels) array given with one name per row.
            fix += (
                ". Every recording has more channels than samples, so its data "
                "may be transposed: a Recording's data has shape (n_channels, "
                "n_samples)"
            )
        elif from_files and all(r.sample_rate is None for r in recordings.recordings):
            # A per-cycle feature table read without --table: each file becomes
            # one short recording of rows, without a time column.
            fix += (
                ". If each row of the files is one process cycle with its "
                "features in the columns, train with --table (data.kind: table)"
            )
        raise InputError(
            "data",
            f"every recording has fewer than one window of {length} samples",
            fix,
        )
    return usable


def _metadata_columns(recording: Recording) -> dict[str, Any]:
    """Columns ``meta.<key>`` from a cycle folder's meta.json, for grouping."""
    meta = recording.metadata.get("meta", {})
    return {
        f"meta.{key}": value
        for key, value in meta.items()
        if isinstance(value, (str, int, float, bool))
    }


def _chunkable_file(data: DataSource, config: Config) -> Path | None:
    """The one file to stream when ``data.chunk_samples`` is set, else None."""
    from grindwatch.io.chunks import CHUNKED_SUFFIXES

    if not config.data.chunk_samples or config.data.kind != "signals":
        return None
    if isinstance(data, (list, tuple)) and len(data) == 1:
        data = data[0]  # the command line passes a list
    path = Path(data) if isinstance(data, (str, Path)) else None
    if path is not None and path.is_file() and path.suffix.lower() in CHUNKED_SUFFIXES:
        return path
    logger.warning(
        "data.chunk_samples is set, but the data is read whole: chunked reading "
        "takes one file of type %s, not %s",
        ", ".join(CHUNKED_SUFFIXES),
        path if path is not None else "the data given",
    )
    return None
