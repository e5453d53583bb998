"""The label-free tuning objective and the data each trial reuses.

Part of the training recordings is held out (see ``split_holdout``). A trial fits
its pipeline variant on the rest, then scores the held-out windows and a copy of
each with one synthetic anomaly injected (``grindwatch.signals.injection``). The
objective ``injected_auc`` is the AUC-ROC of those scores: the chance that an
injected copy scores above a clean window. ``injected_auc_specificity`` multiplies
it by the share of clean held-out windows that the trial's own threshold leaves
unflagged, so a variant whose threshold does not carry over to unseen normal data
ranks low however well it orders the windows. Where labeled recordings exist, every
trial also reports labeled metrics at its own threshold; they drive the search only
under the objective ``labeled_auc``.

NOTE: on the grinding tables neither label-free objective chooses a model with
fault F1 >= 0.9. Isolation forest reaches 0.94 to 0.97 there, but its mean AUC over
the two table injection types and three more tried in scripts is 0.70 to 0.74,
against 0.83 to 0.98 for PCA and nearest neighbours. Those rank first yet peak at fault F1 0.61 to 0.85 at any
threshold, except kNN with k >= 20 (0.94), whose clustered threshold flags twice
as many cycles as are faulty. See benchmarks/BENCHMARKS.md, "Tuning".

Windowing, scaling, the front end and the injections depend only on the window
length, hop, front end and scaling, so they are computed once per distinct setting
and cached for the trials that share it.
"""

from __future__ import annotations

import logging
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
from grindwatch.search_space import check_space, limit_window_lengths
from grindwatch.signals import ChannelScaler, FrontEnd, WindowSet, make_windows
from grindwatch.signals.injection import describe_injections, inject_windows
from grindwatch.tune_config import SearchSpace

logger = logging.getLogger(__name__)

__all__ = [
    "Holdout",
    "Objective",
    "PreparedData",
    "TrialResult",
    "split_holdout",
]

# Called after each autoencoder epoch with (epoch, objective value so far,
# train loss, validation loss). It may raise to stop the trial (pruning).
StepReport = Callable[[int, float, float, float | None], None]

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

    ``mode`` ``"auto"`` holds out whole recordings (rows, for tables) when there
    are at least 10, else the last ``fraction`` of each recording, so that every
    operating condition in a few long recordings is seen in fitting.

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
        settings = config.tune
        self.kind = recordings.kind
        self.channels = list(recordings.channels)
        self.sample_rate = recordings.sample_rate
        self.config = config
        self.holdout = split_holdout(
            recordings, settings.holdout_fraction, settings.holdout, config.seed
        )
        candidates = recordings.recordings if labeled is None else labeled
        self.labeled = [r for r in candidates if _recording_label(r) is not None]
        self.space = self._fit_space(settings.space)
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
            return space
        longest_fit = max(r.n_samples for r in self.holdout.fit)
        longest_held = max(r.n_samples for r in self.holdout.held_out)
        return limit_window_lengths(space, min(longest_fit, longest_held))

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

        prepared = PreparedData(
            key=key,
            scaler=scaler,
            frontend=frontend,
            fit_features=features(fit.X[fit_rows]),
            clean_features=features(clean),
            injected_features=features(injected.X),
            injected_types=injected.types,
            injections=injections,
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

        ``report`` is called after each autoencoder epoch with the objective value
        of the network at that point; it may raise to stop the trial.

        Raises
        ------
        ConfigError
            If the variant does not fit the data (for example, windows too short
            for the encoder's strides).
        FloatingPointError
            If the detector's scores are not finite (a diverged network).
        """
        prepared = self.prepare(config)
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
        return TrialResult(self._value(metrics), metrics, model, history)

    @property
    def _needs_labels(self) -> bool:
        return self.config.tune.objective == "labeled_auc"

    def _step_value(self, model: Any, prepared: PreparedData) -> float:
        """Compute the objective of a network in training, which has no threshold.

        Every label-free objective reports the injected AUC here, so that pruning
        compares trials on one scale.
        """
        if self._needs_labels:
            from sklearn.metrics import roc_auc_score

            scores = model.detector_.anomaly_score(prepared.labeled.features)
            return float(roc_auc_score(prepared.labeled.labels, scores))
        return self.measure(model, prepared, labeled=False)["injected_auc"]

    def _value(self, metrics: dict[str, float]) -> float:
        if self._needs_labels:
            return metrics["labeled_window_auc_roc"]
        if self.config.tune.objective == "injected_auc_specificity":
            return metrics["injected_auc"] * metrics["held_out_specificity"]
        return metrics["injected_auc"]

    def measure(
        self, model: Any, prepared: PreparedData, labeled: bool = True
    ) -> dict[str, float]:
        """Injected-anomaly AUC, overall and per type, and labeled metrics if asked."""
        detector = model.detector_
        clean = detector.anomaly_score(prepared.clean_features)
        injected = detector.anomaly_score(prepared.injected_features)
        if not (np.isfinite(clean).all() and np.isfinite(injected).all()):
            raise FloatingPointError(
                "the detector returned non-finite scores on held-out windows; a "
                "lower learning rate usually helps an autoencoder that diverged"
            )
        metrics = {"injected_auc": _auc(clean, injected)}
        for name in np.unique(prepared.injected_types):
            chosen = injected[prepared.injected_types == name]
            metrics[f"injected_auc.{name}"] = _auc(clean, chosen)
        threshold = getattr(model, "threshold_", None)
        if threshold is not None:
            # The threshold's decisions on windows it was not fitted on.
            metrics["held_out_specificity"] = float((clean <= threshold.value).mean())
            metrics["injected_recall"] = float((injected > threshold.value).mean())
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
