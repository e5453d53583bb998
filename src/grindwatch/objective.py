"""The label-free tuning objective and the data each trial reuses.

Part of the training recordings is held out (see ``split_holdout``). A trial fits
its pipeline variant on the rest, then scores the held-out windows and a copy of
each with one synthetic anomaly injected (``grindwatch.signals.injection``).
``injected_auc`` is the AUC-ROC of those scores: the chance that an injected copy
scores above a clean window.

A share of the windows the trial fits on (``tune.recurring_share``) carries
recurring anomalies: one draw of an injection, repeated unchanged, because
unlabeled production data contains faults that happen again and again.
``recurring_auc`` is the AUC-ROC of held-out copies carrying the same patterns, and
``recurring_recall`` the share of them above the trial's threshold. A detector
that absorbs the repeated fault into its model of normal (PCA with many
components does) scores them low.

Objectives:

- ``recurring_f1`` (default): injected AUC x recurring AUC x ``recurring_f1``,
  the F1 that the trial's own threshold would reach on data where the share
  ``tune.recurring_share`` of the windows is faulty, from its recall on the
  recurring copies and its specificity on the clean held-out windows
  (``held_out_specificity``). Faults are rare in production, so a threshold that
  flags 2 % of normal windows where 1 % are faulty makes two false alarms for
  each fault: that F1 is about 0.5 at best. A variant ranks low when it learns the
  repeated fault, or when its threshold flags none of it or too many normal
  windows.
- ``injected_auc_specificity``: injected AUC x held-out specificity.
- ``injected_auc``: the injected AUC alone.
- ``labeled_auc``: the labeled window AUC-ROC; labels drive the search, so it must
  be asked for. Every objective reports labeled metrics where labels exist.

NOTE: the injections are not the real faults, and the ranking of families can
hinge on details. On the grinding tables ``recurring_f1`` chooses isolation forest
(fault F1 0.94) only with copied feature columns left out
(``data.duplicate_channels``). With the copies kept, isolation forest's injected
AUC drops from about 0.78 to 0.71 and nearest neighbours rank first (fault F1
0.61 to 0.65). See benchmarks/BENCHMARKS.md, "Tuning".

Anomalies are injected into raw windows before scaling and the front end, so
trials with other front ends are judged on the same changes. Trials with other
window lengths are not: an injected segment covers a share of its window, so it
lasts longer in seconds in a longer window, while a spike stays 1 to 3 samples.
Longer windows also leave fewer held-out windows, so their AUC is noisier.

Windowing, scaling, the front end and the injections depend only on the window
length, hop, front end and scaling, so they are computed once per distinct setting
and cached for the trials that share it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grindwatch.config import Config
from grindwatch.evaluate import binary_metrics
from grindwatch.exceptions import ConfigError
from grindwatch.io import Recording, RecordingSet
from grindwatch.search_space import (
    check_space,
    limit_window_lengths,
    window_seconds_in_samples,
)
from grindwatch.signals import ChannelScaler, FrontEnd, WindowSet, make_windows
from grindwatch.signals.injection import (
    DEFAULT_RECURRING,
    SIGNAL_INJECTIONS,
    TABLE_INJECTIONS,
    describe_injections,
    inject_recurring,
    inject_windows,
)
from grindwatch.tune_config import Range, SearchSpace

logger = logging.getLogger(__name__)

__all__ = [
    "OBJECTIVE_FACTORS",
    "Holdout",
    "Objective",
    "PreparedData",
    "TrialResult",
    "split_holdout",
]

# Called after each autoencoder epoch with (epoch, step value, train loss,
# validation loss). The step value is the network's injected AUC so far, or its
# labeled AUC under labeled_auc. The call may raise to stop the trial (pruning).
StepReport = Callable[[int, float, float, float | None], None]

# The metrics that each objective (tune.objective) multiplies.
OBJECTIVE_FACTORS: dict[str, tuple[str, ...]] = {
    "recurring_f1": ("injected_auc", "recurring_auc", "recurring_f1"),
    "injected_auc_specificity": ("injected_auc", "held_out_specificity"),
    "injected_auc": ("injected_auc",),
    "labeled_auc": ("labeled_window_auc_roc",),
}

# At least this many recordings make "auto" hold out whole recordings.
MIN_RECORDINGS_TO_HOLD_OUT = 10


@dataclass
class Holdout:
    """Training recordings split into a part to fit and a part to inject into.

    ``mode`` is ``"recordings"`` (whole recordings held out), ``"rows"`` (feature
    table rows) or ``"segments"`` (the last share of each recording held out).
    """

    fit: list[Recording]
    held_out: list[Recording]
    mode: str


def _piece(recording: Recording, start: int, stop: int, part: str) -> Recording:
    labels = recording.sample_labels
    return Recording(
        name=f"{recording.name}[{part}]",
        data=recording.data[:, start:stop],
        channels=list(recording.channels),
        sample_rate=recording.sample_rate,
        source=recording.source,
        label=recording.label,
        sample_labels=None if labels is None else labels[start:stop],
        metadata=dict(recording.metadata),
    )


def split_holdout(
    recordings: RecordingSet, fraction: float, mode: str, seed: int
) -> Holdout:
    """Hold out ``fraction`` of the training data for injection.

    ``mode`` ``"auto"`` holds out whole recordings when there are at least 10,
    else the last ``fraction`` of each recording, so that every operating
    condition in a few long recordings is seen in fitting. Feature tables always
    hold out whole rows, whatever the mode.

    Raises
    ------
    ConfigError
        If too few recordings remain on either side.
    """
    items = recordings.recordings
    whole = (
        recordings.kind == "table"
        or mode == "recordings"
        or (mode == "auto" and len(items) >= MIN_RECORDINGS_TO_HOLD_OUT)
    )
    if whole:
        n_held = int(round(len(items) * fraction))
        if n_held < 1 or n_held >= len(items):
            # A table row is one value per feature, so it cannot be cut in segments.
            if recordings.kind == "table":
                raise ConfigError(
                    f"holding out {fraction:.0%} of {len(items)} table rows leaves "
                    "none on one side; give more rows or change "
                    "tune.holdout_fraction"
                )
            raise ConfigError(
                f"holding out {fraction:.0%} of {len(items)} recordings leaves none "
                "on one side; give more recordings, change tune.holdout_fraction, or "
                "set tune.holdout to segments"
            )
        order = np.random.default_rng(seed).permutation(len(items))
        held_indices = set(order[:n_held].tolist())
        return Holdout(
            fit=[r for i, r in enumerate(items) if i not in held_indices],
            held_out=[r for i, r in enumerate(items) if i in held_indices],
            mode="rows" if recordings.kind == "table" else "recordings",
        )

    fit, held_out = [], []
    for recording in items:
        cut = int(round(recording.n_samples * (1 - fraction)))
        if cut < 1 or cut >= recording.n_samples:
            continue
        fit.append(_piece(recording, 0, cut, "fit"))
        held_out.append(_piece(recording, cut, recording.n_samples, "held out"))
    if not fit:
        raise ConfigError(
            "the recordings are too short to hold out a segment of each; give longer "
            "recordings or set tune.holdout to recordings"
        )
    return Holdout(fit=fit, held_out=held_out, mode="segments")


def _windows(recordings: list[Recording], length: int, hop: int) -> WindowSet | None:
    """Windows of the recordings at least one window long; None if there are none."""
    usable = [r for r in recordings if r.n_samples >= length]
    if not usable:
        return None
    return make_windows(usable, length, hop)


def _recording_label(recording: Recording) -> int | None:
    if recording.sample_labels is not None:
        return int((recording.sample_labels > 0).any())
    return recording.label


def _subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


@dataclass
class LabeledWindows:
    """Front-end output of labeled windows, for evaluation only.

    ``recording`` indexes ``recording_labels``; ``labels`` are the window labels.
    """

    features: np.ndarray
    labels: np.ndarray
    recording: np.ndarray
    recording_labels: np.ndarray


@dataclass
class PreparedData:
    """Everything a trial needs that depends only on windows, scaling and front end.

    Attributes
    ----------
    key : tuple
        (window length, hop, front end, bands, scaling method).
    scaler, frontend : fitted on the fit part's windows
    fit_features : ndarray of shape (n_fit, n_channels, k)
        At most ``tune.max_fit_windows`` windows, drawn at random.
    clean_features, injected_features : ndarray of shape (n_held, n_channels, k)
        Held-out windows and their injected copies, in the same order.
    injected_types : ndarray of shape (n_held,), str
    injections : list of dict
        The injection types with their parameter ranges and counts.
    recurring_features : ndarray of shape (n_held, n_channels, k) or None
        A second copy of each held-out window, carrying a recurring anomaly that
        is also in ``tune.recurring_share`` of ``fit_features``. None when that
        share is 0.
    recurring_types : ndarray of shape (n_held,), str, or None
    recurring : list of dict
        The recurring patterns: type, channel, seed, first parameters and counts.
    labeled : LabeledWindows or None
    """

    key: tuple[Any, ...]
    scaler: ChannelScaler
    frontend: FrontEnd
    fit_features: np.ndarray
    clean_features: np.ndarray
    injected_features: np.ndarray
    injected_types: np.ndarray
    injections: list[dict[str, Any]]
    recurring_features: np.ndarray | None = None
    recurring_types: np.ndarray | None = None
    recurring: list[dict[str, Any]] = field(default_factory=list)
    labeled: LabeledWindows | None = None
    seconds: float = 0.0


@dataclass
class TrialResult:
    """Measurements of one trial, and the model it fitted on the fit part."""

    value: float
    metrics: dict[str, float]
    model: Any  # grindwatch.pipeline.Model
    history: list[dict[str, Any]] = field(default_factory=list)


def _auc(clean: np.ndarray, injected: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(clean.size), np.ones(injected.size)]
    return float(roc_auc_score(labels, np.r_[clean, injected]))


def _f1_at_rate(recall: float, specificity: float, rate: float) -> float:
    """F1 of a threshold on data where a share ``rate`` of the windows is faulty.

    Of n windows, ``recall * rate * n`` faulty ones are flagged and
    ``(1 - specificity) * (1 - rate) * n`` normal ones.
    """
    flagged_faulty = recall * rate
    flagged = flagged_faulty + (1.0 - specificity) * (1.0 - rate)
    if flagged_faulty <= 0.0:
        return 0.0
    precision = flagged_faulty / flagged
    return 2.0 * precision * recall / (precision + recall)


def _finite_scores(detector: Any, features: np.ndarray) -> np.ndarray:
    scores = detector.anomaly_score(features)
    if not np.isfinite(scores).all():
        raise FloatingPointError(
            "the detector returned non-finite scores on held-out windows; a lower "
            "learning rate usually helps an autoencoder that diverged"
        )
    return scores


def _check_labeled_classes(prepared: PreparedData) -> None:
    """Raise unless the labeled windows hold both classes, as labeled_auc needs."""
    labeled = prepared.labeled
    classes = set() if labeled is None else set(np.unique(labeled.labels).tolist())
    if len(classes) < 2:
        found = "none" if not classes else f"only class {classes.pop()}"
        raise ConfigError(
            f"tune.objective labeled_auc needs labeled windows of both classes, but "
            f"the labeled recordings give {found} in windows of {prepared.key[0]} "
            "samples, because the others are shorter; search shorter windows or "
            "label longer recordings"
        )


class Objective:
    """Fit and measure pipeline variants on one data set, reusing prepared data.

    Parameters
    ----------
    recordings : RecordingSet
        The training recordings; their labels are never used for fitting.
    config : Config
        Study settings; ``tune`` sets holdout, injections and limits.
    labeled : list of Recording, optional
        Recordings with labels to report labeled metrics on. None uses the
        training recordings that carry labels.
    cache_size : int
        Distinct window and front-end settings kept prepared at once.

    Attributes
    ----------
    holdout : Holdout
    space : SearchSpace
        ``tune.space`` checked for this data, window lengths capped to fit it.
    """

    def __init__(
        self,
        recordings: RecordingSet,
        config: Config,
        labeled: list[Recording] | None = None,
        cache_size: int = 8,
    ) -> None:
        from grindwatch.pipeline import (
            align_training_recordings,
            drop_duplicate_channels,
        )

        settings = config.tune
        # Recordings built in memory may list their channels in other orders.
        recordings = align_training_recordings(recordings)
        # Keep the channels that the final refit (Model.fit) keeps. Only the refit
        # warns about the left-out channels, because a warning here too would
        # repeat once per worker process.
        recordings, _ = drop_duplicate_channels(
            recordings, config.data.duplicate_channels, level=logging.INFO
        )
        self.kind = recordings.kind
        self.channels = list(recordings.channels)
        self.sample_rate = recordings.sample_rate
        # Trials set windows in samples, so settings in seconds must not stay
        # behind to override them in the final refit.
        self.config = config = config.windows_in_samples(self.sample_rate, self.kind)
        self.holdout = split_holdout(
            recordings, settings.holdout_fraction, settings.holdout, config.seed
        )
        candidates = recordings.recordings if labeled is None else labeled
        # Labels from the training recordings themselves: labeled metrics are
        # then measured on data the models were fitted on (without the labels).
        self.labels_in_training = labeled is None
        # The warning about too few recurring windows is logged once per process.
        self._warned_few_recurring = False
        self.labeled = [
            r if r.channels == self.channels else r.select_channels(self.channels)
            for r in candidates
            if _recording_label(r) is not None
        ]
        self.space = self._fit_space(settings.space)
        registry = TABLE_INJECTIONS if self.kind == "table" else SIGNAL_INJECTIONS
        for setting, names in (
            ("tune.injections", settings.injections),
            ("tune.recurring", settings.recurring),
        ):
            if names is not None and not names:
                raise ConfigError(
                    f"{setting} is an empty list; name at least one injection type "
                    f"of {list(registry)}, or leave it unset for the defaults"
                )
            unknown = sorted(set(names or []) - set(registry))
            if unknown:
                raise ConfigError(
                    f"{setting} names unknown injection types {unknown} for "
                    f"{self.kind} data; use some of {list(registry)}"
                )
        if settings.objective == "recurring_f1" and not (settings.recurring_share > 0):
            raise ConfigError(
                "tune.objective recurring_f1 needs tune.recurring_share "
                "above 0; set a share such as 0.01, or use injected_auc_specificity"
            )
        if labeled is not None and not self.has_labels:
            classes = sorted({_recording_label(r) for r in self.labeled})
            names = {0: "normal", 1: "anomalous"}
            found_classes = (
                "carry no label"
                if not classes
                else f"are all {names[classes[0]]} ({len(self.labeled)} labeled)"
            )
            logger.warning(
                "the labeled recordings (--eval) %s, so trials log no labeled "
                "metrics: they need both classes. Repeat the option for each "
                "file or folder (--eval ok/ --eval nok/), or pass --labels FILE",
                found_classes,
            )
        if settings.objective == "labeled_auc" and not self.has_labels:
            raise ConfigError(
                "tune.objective labeled_auc needs labeled recordings of both classes; "
                "pass --labels, labeled evaluation data, or use injected_auc"
            )
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], PreparedData] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}

    @property
    def has_labels(self) -> bool:
        """True when the labeled recordings hold both classes."""
        return len({_recording_label(r) for r in self.labeled}) == 2

    def _fit_space(self, space: SearchSpace) -> SearchSpace:
        space = check_space(space, self.kind)
        if self.kind == "table":
            return space.model_copy(update={"window_seconds": None})
        seconds = space.window_seconds
        space = window_seconds_in_samples(space, self.sample_rate)
        longest_fit = max(r.n_samples for r in self.holdout.fit)
        longest_held = max(r.n_samples for r in self.holdout.held_out)
        try:
            return limit_window_lengths(space, min(longest_fit, longest_held))
        except ConfigError as error:
            if seconds is None:
                raise
            # The message names window_length, which the user did not set.
            if isinstance(seconds, Range):
                seconds = f"{seconds.low:g} to {seconds.high:g} s"
            raise ConfigError(
                f"{error}. The lengths come from tune.space.window_seconds "
                f"{seconds} at {self.sample_rate:g} samples/s"
            ) from None

    # Prepared data -----------------------------------------------------------------

    def key(self, config: Config) -> tuple[Any, ...]:
        if self.kind == "table":
            return (1, 1, "raw", 0, config.scaling.method)
        kind = config.frontend.kind
        bands = config.frontend.n_bands if kind == "spectrum" else 0
        return (config.windows.length, config.hop, kind, bands, config.scaling.method)

    def prepare(self, config: Config) -> PreparedData:
        """Return the prepared data for the config's windows and front end (cached)."""
        key = self.key(config)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        # One thread prepares a key while others that need it wait.
        with key_lock:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            prepared = self._prepare(key)
            with self._lock:
                self._cache[key] = prepared
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return prepared

    def _prepare(self, key: tuple[Any, ...]) -> PreparedData:
        started = time.perf_counter()
        length, hop, frontend_kind, bands, scaling = key
        settings = self.config.tune
        rng = np.random.default_rng(self.config.seed)

        fit = _windows(self.holdout.fit, length, hop)
        held_out = _windows(self.holdout.held_out, length, hop)
        if fit is None or held_out is None:
            raise ConfigError(
                f"no training or held-out piece is {length} samples long; search "
                "shorter windows"
            )
        scaler = ChannelScaler(scaling).fit(fit.X, self.channels)
        frontend = FrontEnd(frontend_kind, bands or 32)
        frontend.fit(scaler.transform(fit.X))

        def features(X: np.ndarray) -> np.ndarray:
            return frontend.transform(scaler.transform(X))

        fit_rows = _subsample(len(fit), settings.max_fit_windows, rng)
        held_rows = _subsample(len(held_out), settings.max_holdout_windows, rng)
        clean = held_out.X[held_rows]
        injected = inject_windows(clean, self.kind, rng, settings.injections)
        injections = describe_injections(self.kind, settings.injections)
        counts = injected.counts()
        for entry in injections:
            entry["count"] = counts.get(entry["type"], 0)

        fit_windows = fit.X[fit_rows]
        recurring_features = recurring_types = None
        patterns: list[dict[str, Any]] = []
        if settings.recurring_share > 0:
            if len(fit_windows) < 2:
                raise ConfigError(
                    f"only {len(fit_windows)} window of {length} samples to fit on; "
                    "search shorter windows or set tune.recurring_share to 0"
                )
            recurring = inject_recurring(
                fit_windows,
                clean,
                self.kind,
                rng,
                settings.recurring_share,
                settings.recurring,
            )
            fit_windows = recurring.fit
            recurring_features = features(recurring.held_out)
            recurring_types = recurring.types
            patterns = recurring.patterns
            in_fit = np.arange(len(recurring.fit_rows)) % len(patterns)
            n_types = len(settings.recurring or DEFAULT_RECURRING[self.kind])
            if len(recurring.fit_rows) < 2 * n_types:
                logger.log(
                    logging.DEBUG if self._warned_few_recurring else logging.WARNING,
                    "only %d of the %d windows to fit on carry a recurring anomaly "
                    "(tune.recurring_share %.2g), fewer than two per type, so the "
                    "recurring terms of the objective are noisy. Raise "
                    "tune.recurring_share or give more data.",
                    len(recurring.fit_rows),
                    len(fit_windows),
                    settings.recurring_share,
                )
                self._warned_few_recurring = True
            for index, pattern in enumerate(patterns):
                if pattern["channel"] >= 0:
                    pattern["channel_name"] = self.channels[pattern["channel"]]
                pattern["fit_count"] = int((in_fit == index).sum())
                pattern["held_out_count"] = int(
                    (recurring.types == pattern["type"]).sum()
                )

        prepared = PreparedData(
            key=key,
            scaler=scaler,
            frontend=frontend,
            fit_features=features(fit_windows),
            clean_features=features(clean),
            injected_features=features(injected.X),
            injected_types=injected.types,
            injections=injections,
            recurring_features=recurring_features,
            recurring_types=recurring_types,
            recurring=patterns,
            labeled=self._labeled_windows(length, hop, features),
        )
        prepared.seconds = time.perf_counter() - started
        logger.info(
            "prepared windows %s in %.1f s: %d to fit, %d held out",
            key,
            prepared.seconds,
            len(fit_rows),
            len(held_rows),
        )
        return prepared

    def _labeled_windows(
        self, length: int, hop: int, features: Callable[[np.ndarray], np.ndarray]
    ) -> LabeledWindows | None:
        if not self.has_labels:
            return None
        windows = _windows(self.labeled, length, hop)
        if windows is None or windows.labels is None:
            return None
        names = {r.name: _recording_label(r) for r in self.labeled}
        recording_labels = np.array([names[name] for name in windows.names])
        known = windows.labels >= 0
        return LabeledWindows(
            features=features(windows.X[known]),
            labels=windows.labels[known].astype(int),
            recording=windows.recording[known],
            recording_labels=recording_labels,
        )

    # Trials ------------------------------------------------------------------------

    def build_model(self, config: Config, prepared: PreparedData):  # noqa: ANN201
        """Build a Model with the prepared scaling and front end, for fit_features."""
        from grindwatch.pipeline import Model

        model = Model(config)
        model.kind_ = self.kind
        model.channels_ = list(self.channels)
        model.sample_rate_ = self.sample_rate
        model.window_length_, model.hop_ = prepared.key[0], prepared.key[1]
        model.scaler_ = prepared.scaler
        model.frontend_ = prepared.frontend
        return model

    def evaluate(self, config: Config, report: StepReport | None = None) -> TrialResult:
        """Fit the variant ``config`` on the fit part and measure it.

        ``report`` is called after each autoencoder epoch with the network's step
        value at that point (see ``step_metric``); it may raise to stop the trial.

        Raises
        ------
        ConfigError
            If the variant does not fit the data (for example, windows too short
            for the encoder's strides), or, under ``labeled_auc``, the labeled
            windows of its length do not hold both classes.
        FloatingPointError
            If the detector's scores are not finite (a diverged network).
        """
        prepared = self.prepare(config)
        if self._needs_labels:
            _check_labeled_classes(prepared)
        model = self.build_model(config, prepared)

        def on_epoch(epoch: int, train_loss: float, val_loss: float | None) -> None:
            report(epoch, self._step_value(model, prepared), train_loss, val_loss)

        started = time.perf_counter()
        model.fit_features(prepared.fit_features, on_epoch if report else None)
        fit_seconds = time.perf_counter() - started

        metrics = self.measure(model, prepared, labeled=True)
        metrics["fit_seconds"] = fit_seconds
        metrics["prepare_seconds"] = prepared.seconds
        metrics["n_fit_windows"] = float(len(prepared.fit_features))
        metrics["n_held_out_windows"] = float(len(prepared.clean_features))
        metrics["threshold"] = float(model.threshold_.value)
        metrics["threshold_fallback"] = float(
            model.threshold_.fallback_reason is not None
        )
        history = list(getattr(model.detector_, "history_", []) or [])
        if history:
            metrics["epochs_run"] = float(len(history))
        n_parameters = getattr(model.detector_, "n_parameters_", None)
        if n_parameters is not None:
            metrics["n_parameters"] = float(n_parameters)
        return TrialResult(self._value(metrics), metrics, model, history)

    @property
    def _needs_labels(self) -> bool:
        return self.config.tune.objective == "labeled_auc"

    @property
    def factors(self) -> tuple[str, ...]:
        """Names of the trial metrics whose product is the objective."""
        return OBJECTIVE_FACTORS[self.config.tune.objective]

    @property
    def step_metric(self) -> str:
        """Name of the value reported after each epoch, for pruning and tracking.

        It is measured on the network in training, before it has a threshold, so
        it is recorded apart from the objective.
        """
        return "epoch_labeled_auc" if self._needs_labels else "epoch_injected_auc"

    def _step_value(self, model: Any, prepared: PreparedData) -> float:
        """Compute the step value of a network in training, which has no threshold.

        Every label-free objective reports the injected AUC here, so that pruning
        compares trials on one scale.
        """
        if self._needs_labels:
            from sklearn.metrics import roc_auc_score

            scores = model.detector_.anomaly_score(prepared.labeled.features)
            return float(roc_auc_score(prepared.labeled.labels, scores))
        detector = model.detector_
        clean = _finite_scores(detector, prepared.clean_features)
        return _auc(clean, _finite_scores(detector, prepared.injected_features))

    def _value(self, metrics: dict[str, float]) -> float:
        return math.prod(metrics[name] for name in self.factors)

    def measure(
        self, model: Any, prepared: PreparedData, labeled: bool = True
    ) -> dict[str, float]:
        """Injected-anomaly AUC and recall, overall and per type, the recurring
        anomalies' AUC and recall, and labeled metrics if asked."""
        detector = model.detector_
        threshold = getattr(model, "threshold_", None)
        clean = _finite_scores(detector, prepared.clean_features)
        metrics: dict[str, float] = {}
        if threshold is not None:
            # The threshold's decisions on windows it was not fitted on.
            metrics["held_out_specificity"] = float((clean <= threshold.value).mean())
        groups = [("injected", prepared.injected_features, prepared.injected_types)]
        if prepared.recurring_features is not None:
            groups.append(
                ("recurring", prepared.recurring_features, prepared.recurring_types)
            )
        for prefix, features, types in groups:
            scores = _finite_scores(detector, features)
            metrics[f"{prefix}_auc"] = _auc(clean, scores)
            if threshold is not None:
                metrics[f"{prefix}_recall"] = float((scores > threshold.value).mean())
            for name in np.unique(types):
                metrics[f"{prefix}_auc.{name}"] = _auc(clean, scores[types == name])
        if threshold is not None and "recurring_recall" in metrics:
            metrics["recurring_f1"] = _f1_at_rate(
                metrics["recurring_recall"],
                metrics["held_out_specificity"],
                self.config.tune.recurring_share,
            )
        if labeled and prepared.labeled is not None:
            metrics.update(self._labeled_metrics(model, prepared.labeled))
        return metrics

    def _labeled_metrics(self, model: Any, labeled: LabeledWindows) -> dict[str, float]:
        scores = model.detector_.anomaly_score(labeled.features)
        threshold = model.threshold_.value
        window = binary_metrics(labeled.labels, scores, scores > threshold)

        present = np.unique(labeled.recording)
        totals = np.array(
            [model.aggregate(scores[labeled.recording == i]) for i in present]
        )
        recording = binary_metrics(
            labeled.recording_labels[present], totals, totals > threshold
        )
        metrics = {f"labeled_window_{k}": float(v) for k, v in window.items()}
        metrics.update(
            {f"labeled_recording_{k}": float(v) for k, v in recording.items()}
        )
        return metrics
