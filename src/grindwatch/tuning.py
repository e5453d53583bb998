"""Tune the whole pipeline with an Optuna study, label-free, tracked in MLflow.

``tune`` opens (or resumes) a study in an Optuna storage and runs trials until
the study has ``tune.n_trials`` finished ones (see ``grindwatch.trial_runner``).
It then retrains the best trial's variant on all training recordings and
registers it in the MLflow model registry under ``tune.registered_model`` with the
alias ``tune.alias``. Last, it logs a summary on the study's MLflow run.

The study keeps its configuration, data paths and MLflow run id as user
attributes, so ``tune(resume=True)`` continues it with the same settings: only
``tune.n_trials``, ``tune.timeout``, ``tune.jobs``, ``tune.registered_model`` and
``tune.alias`` may change on resume.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from grindwatch._locks import sqlite_setup_lock
from grindwatch.config import Config
from grindwatch.exceptions import ConfigError
from grindwatch.io import Recording, RecordingSet
from grindwatch.trial_runner import TrialEvent, TrialRunner

if TYPE_CHECKING:
    import optuna

    from grindwatch.pipeline import Model

logger = logging.getLogger(__name__)

__all__ = ["TrialEvent", "TuneResult", "resolve_storage", "tune"]

DEFAULT_STORAGE_FILE = "optuna.db"
RESUMABLE_SETTINGS = frozenset(
    {
        "tune.n_trials",
        "tune.timeout",
        "tune.jobs",
        "tune.registered_model",
        "tune.alias",
    }
)
# Settings that locate the study and its runs; on resume the stored ones are used.
LOCATION_SETTINGS = frozenset({"tune.storage", "tune.study_name", "tracking.uri"})
# How long a process that joins a new study waits for its creator to store the
# configuration and the MLflow run id.
JOIN_WAIT_S = 60.0

_CONFIG_ATTR = "grindwatch.config"
_LABELED_ATTR = "grindwatch.labeled_data"
_LABELS_ATTR = "grindwatch.labels"
_TRACKING_ATTR = "grindwatch.tracking_uri"
_PARENT_ATTR = "grindwatch.mlflow_parent_run_id"


def resolve_storage(config: Config) -> str:
    """Return the study's storage URL: ``tune.storage``, else ./optuna.db.

    A value without ``://`` is taken as the path of an SQLite file.
    """
    storage = config.tune.storage
    if not storage:
        return f"sqlite:///{Path.cwd() / DEFAULT_STORAGE_FILE}"
    if "://" not in storage:
        return f"sqlite:///{Path(storage).resolve()}"
    return storage


@dataclass
class TuneResult:
    """Result of ``tune``.

    Attributes
    ----------
    trials : DataFrame
        One row per trial: number, state, value, stopped_step, duration_s, the
        searched parameters (``param.<name>``), the trial's metrics and its MLflow
        run id.
    complete : bool
        The study has ``n_trials`` finished trials and none running.
    finalized : bool
        This call retrained, registered and summarised the best trial. False when
        another process on the same study does that, or the study is incomplete.
    final_metrics : dict
        Labeled metrics of the retrained model, when labeled recordings exist.
    """

    study_name: str
    storage: str
    n_trials: int
    stop_reason: str
    trials: pd.DataFrame
    complete: bool
    finalized: bool = False
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_config: Config | None = None
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    model: Model | None = None
    model_run_id: str | None = None
    model_uri: str | None = None
    registered_model: str | None = None
    registered_version: str | None = None
    alias: str | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)


# Storage and study -----------------------------------------------------------------


def _storage(url: str):  # noqa: ANN202 - an optuna RDBStorage
    from optuna.storages import RDBStorage

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Wait up to a minute for another process's write instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
    with sqlite_setup_lock(url):
        return RDBStorage(url, engine_kwargs=engine_kwargs)


def _sampler(config: Config):  # noqa: ANN202
    import optuna

    if config.tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    startup = max(3, min(10, config.tune.n_trials // 3))
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=startup)


def _pruner(config: Config):  # noqa: ANN202
    import optuna

    if config.tune.pruner == "none":
        return optuna.pruners.NopPruner()
    if config.tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=3)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)


def _open_study(
    config: Config, storage_url: str, resume: bool
) -> tuple[optuna.Study, Any, bool]:
    """Create the study, or load it when it exists and ``resume`` is set.

    Returns the study, its RDB storage and whether this call created it.
    """
    import optuna

    backend = _storage(storage_url)
    name = config.tune.study_name
    sampler, pruner = _sampler(config), _pruner(config)
    try:
        study = optuna.create_study(
            storage=backend,
            study_name=name,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
        )
        return study, backend, True
    except optuna.exceptions.DuplicatedStudyError:
        if not resume:
            raise ConfigError(
                f"study {name!r} already exists in {storage_url}; pass --resume to "
                "continue it or add workers to it, or choose another --study-name"
            ) from None
    study = optuna.load_study(
        study_name=name, storage=backend, sampler=sampler, pruner=pruner
    )
    # A resumed or joined study must not repeat the first process's draws.
    sampler.reseed_rng()
    return study, backend, False


def _wait_for_attr(study: optuna.Study, key: str) -> Any:
    deadline = time.monotonic() + JOIN_WAIT_S
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def _resolved_paths(data: Any) -> list[str]:
    if data is None:
        return []
    if isinstance(data, RecordingSet):
        return [str(Path(p).resolve()) for p in data.files]
    items = [data] if isinstance(data, (str, Path)) else list(data)
    resolved = []
    for item in items:
        text = str(item)
        resolved.append(
            text if any(c in text for c in "*?[") else str(Path(text).resolve())
        )
    return resolved


def _study_config(
    study: optuna.Study,
    caller_settings: dict[str, Any],
    overrides: dict[str, Any],
    data_paths: list[str],
) -> Config:
    """The stored configuration of an existing study, with resumable overrides.

    ``caller_settings`` contains the caller's settings, flattened, to check against the
    stored ones. Every setting outside the resumable and locating ones must match.
    """
    stored = _wait_for_attr(study, _CONFIG_ATTR)
    if stored is None:
        raise ConfigError(
            f"study {study.study_name!r} has no grindwatch configuration; it was not "
            "created by grindwatch tune, or its creator stopped right away. Start a "
            "new study with another --study-name"
        )
    config = Config.model_validate(stored)
    stored_settings = config.flat()
    exempt = RESUMABLE_SETTINGS | LOCATION_SETTINGS | {"data.paths"}
    changed = sorted(
        key
        for key, value in caller_settings.items()
        if key not in exempt and stored_settings.get(key, object()) != value
    )
    if changed:
        raise ConfigError(
            f"cannot change {changed} when resuming study {study.study_name!r}: its "
            "trials would not be comparable. Only "
            f"{sorted(RESUMABLE_SETTINGS)} may change; start a new study for others"
        )
    if data_paths and data_paths != config.data.paths:
        raise ConfigError(
            f"study {study.study_name!r} was tuned on {config.data.paths}, not "
            f"{data_paths}; resume without data arguments or start a new study"
        )
    resumable = {k: v for k, v in overrides.items() if k in RESUMABLE_SETTINGS}
    return config.with_overrides(resumable)


# Data ------------------------------------------------------------------------------


def _apply_labels(recordings: Iterable[Recording], labels: dict[str, int]) -> int:
    """Set ``label`` of recordings named in ``labels``; return how many matched."""
    matched = 0
    for recording in recordings:
        label = labels.get(recording.name, labels.get(Path(recording.name).name))
        if label is not None:
            recording.label = int(label)
            matched += 1
    return matched


def _read_inputs(
    config: Config,
    labeled_paths: list[str],
    labels_path: str | None,
    recordings: RecordingSet | None = None,
) -> tuple[RecordingSet, list[Recording] | None]:
    from grindwatch.io import read_labels_csv
    from grindwatch.pipeline import read_data

    training = recordings if recordings is not None else read_data(None, config)
    labeled = None
    if labeled_paths:
        labeled = read_data(labeled_paths, config).recordings
    if labels_path:
        mapping = read_labels_csv(Path(labels_path))
        matched = _apply_labels(training.recordings, mapping)
        if labeled is not None:
            matched += _apply_labels(labeled, mapping)
        if not matched:
            raise ConfigError(
                f"{labels_path} names none of the recordings; use recording names "
                "as printed by 'grindwatch score'"
            )
    return training, labeled


# Tune ------------------------------------------------------------------------------


def tune(
    data: Any = None,
    config: Config | None = None,
    *,
    labeled_data: Any = None,
    labels: str | Path | None = None,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    on_trial: Callable[[TrialEvent], None] | None = None,
) -> TuneResult:
    """Search the pipeline for the variant that best finds injected anomalies.

    Parameters
    ----------
    data : files, folders, glob patterns or a RecordingSet
        Training recordings, used without labels. None uses ``data.paths``, or on
        resume the study's own data.
    config : Config
        All settings; the ``tune`` section configures the study. Defaults when None.
    labeled_data : files, folders or glob patterns, optional
        Labeled recordings to report labeled metrics on (never fitted). Without
        them, training recordings that carry labels are used.
    labels : path, optional
        CSV with ``recording,label`` columns for training or labeled recordings.
    resume : bool
        Continue the study if it exists (or create it), instead of refusing.
        Several processes share one study this way.
    overrides : dict, optional
        Dotted settings applied on top of ``config`` or, on resume, of the study's
        stored configuration (where only ``tune.n_trials``, ``tune.timeout``,
        ``tune.jobs``, ``tune.registered_model`` and ``tune.alias`` may change).
    on_trial : callable, optional
        Called with a ``TrialEvent`` after each trial this process runs.

    Raises
    ------
    ConfigError
        If the study exists without ``resume``, the settings contradict the
        stored study, or the data cannot be split for tuning.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    caller_config = config
    config = (config or Config()).with_overrides(overrides)
    storage_url = resolve_storage(config)
    data_paths = _resolved_paths(data)
    study, backend, created = _open_study(config, storage_url, resume)

    if created:
        if data_paths:
            config = config.with_overrides({"data.paths": data_paths})
        labeled_paths = _resolved_paths(labeled_data)
        labels_path = str(Path(labels).resolve()) if labels else None
        _store_study_settings(study, config, labeled_paths, labels_path)
    else:
        checked = config.flat() if caller_config is not None else overrides
        config = _study_config(study, checked, overrides, data_paths)
        if "tune.n_trials" in overrides:
            # The new target stays with the study for later resumes.
            study.set_user_attr(_CONFIG_ATTR, config.model_dump(mode="json"))
        labeled_paths = study.user_attrs.get(_LABELED_ATTR) or []
        labels_path = study.user_attrs.get(_LABELS_ATTR)
        stored_uri = study.user_attrs.get(_TRACKING_ATTR)
        if stored_uri and config.tracking.enabled:
            config = config.with_overrides({"tracking.uri": stored_uri})
    recordings = data if isinstance(data, RecordingSet) else None
    if not config.data.paths and recordings is None:
        raise ConfigError("no training data given; pass files or folders to tune")

    training, labeled = _read_inputs(config, labeled_paths, labels_path, recordings)
    from grindwatch.objective import Objective

    objective = Objective(training, config, labeled=labeled)
    tracker = _tracker(config, study, created, objective, training)

    runner = TrialRunner(study, backend, objective, tracker, config, on_trial)
    with _torch_threads(config):
        try:
            runner.run()
        except KeyboardInterrupt:
            _close_incomplete(runner, tracker, "interrupted", "KILLED")
            raise
    return _conclude(runner, tracker, objective, training, storage_url)


def _store_study_settings(
    study: optuna.Study, config: Config, labeled: list[str], labels: str | None
) -> None:
    from grindwatch._version import __version__
    from grindwatch.tracking import resolve_tracking_uri

    if config.tracking.enabled:
        study.set_user_attr(_TRACKING_ATTR, resolve_tracking_uri(config))
    study.set_user_attr(_LABELED_ATTR, labeled)
    study.set_user_attr(_LABELS_ATTR, labels)
    study.set_user_attr("grindwatch.version", __version__)
    # Stored last: a joining process waits for it, and then finds the rest.
    study.set_user_attr(_CONFIG_ATTR, config.model_dump(mode="json"))


def _tracker(
    config: Config,
    study: optuna.Study,
    created: bool,
    objective: Any,
    training: RecordingSet,
) -> Any:
    """Open the study's MLflow run: create it, or reopen the stored one."""
    from grindwatch.mlflow_tuning import NullTracker, StudyTracker

    if not config.tracking.enabled:
        return NullTracker()
    tracker = StudyTracker(config)
    run_id = None if created else _wait_for_attr(study, _PARENT_ATTR)
    if run_id is None and not created:
        logger.warning("study %r has no MLflow run yet; creating one", study.study_name)
    from grindwatch.fingerprint import data_fingerprint
    from grindwatch.signals.injection import describe_injections

    params = {
        k: v for k, v in config.flat().items() if k.startswith(("tune.", "data."))
    }
    params["holdout_mode"] = objective.holdout.mode
    params["n_fit_pieces"] = len(objective.holdout.fit)
    params["n_held_out_pieces"] = len(objective.holdout.held_out)
    tags = {"grindwatch.data_sha256": data_fingerprint(training)["sha256"]}
    parent = tracker.open_parent(
        run_id, study.study_name, config.tune.objective, params, tags
    )
    if run_id is None:
        study.set_user_attr(_PARENT_ATTR, parent)
        tracker.set_tags(
            parent,
            {
                "grindwatch.injections": _short_json(
                    describe_injections(training.kind, config.tune.injections)
                )
            },
        )
    return tracker


def _short_json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)[:5000]


class _torch_threads:  # noqa: N801 - used as a context manager
    """Set PyTorch's threads per trial while a study runs, then restore them.

    ``tune.torch_threads`` when set, else the CPU cores shared among ``tune.jobs``.
    """

    def __init__(self, config: Config) -> None:
        self.jobs = config.tune.jobs
        self.threads = config.tune.torch_threads
        self.previous: int | None = None

    def __enter__(self) -> None:
        if self.jobs <= 1 and self.threads is None:
            return
        import os

        import torch

        self.previous = torch.get_num_threads()
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.jobs)
        torch.set_num_threads(threads)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            import torch

            torch.set_num_threads(self.previous)


# Conclusion ------------------------------------------------------------------------


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """Tabulate the trials: state, value, step, duration, parameters and metrics."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = None
        if trial.datetime_start and trial.datetime_complete:
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "stopped_step": trial.user_attrs.get("grindwatch.stopped_step"),
            "duration_s": duration,
        }
        chosen = trial.user_attrs.get("grindwatch.overrides", {})
        row["family"] = chosen.get("detector.family")
        row["frontend"] = chosen.get("frontend.kind")
        row["window_length"] = chosen.get("windows.length")
        row.update({f"param.{k}": v for k, v in trial.params.items()})
        row.update(trial.user_attrs.get("grindwatch.metrics", {}))
        row["mlflow_run_id"] = trial.user_attrs.get("grindwatch.mlflow_run_id")
        row["error"] = trial.user_attrs.get("grindwatch.error")
        rows.append(row)
    return pd.DataFrame(rows)


def _close_incomplete(
    runner: TrialRunner, tracker: Any, state: str, status: str
) -> None:
    """End the study's run, unless trials of other processes still run in it."""
    try:
        _, running = runner.counts()
        if running == 0:
            tracker.close_parent(status, state)
    except Exception as error:  # noqa: BLE001 - do not hide the original interrupt
        logger.error("could not end the study's MLflow run: %s", error)


def _is_finalizer(runner: TrialRunner, tracker: Any) -> bool:
    """True when this process should retrain and summarise the complete study.

    The process that finished the study's last trial does it. A process that ran
    no trial does it only when no summary exists yet for this trial count (the
    finalizing process died, or a finished study is resumed).
    """
    from optuna.trial import TrialState

    finished = [
        t
        for t in runner.study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]
    last = max(finished, key=lambda t: (t.datetime_complete, t.number))
    if last.user_attrs.get("grindwatch.worker") == runner.token:
        return True
    if not tracker.enabled:
        return not any(
            t.user_attrs.get("grindwatch.worker") == runner.token for t in finished
        )
    tags = tracker.run_tags(tracker.parent_run_id)
    return tags.get("grindwatch.finalized_trials") != str(len(finished))


def _conclude(
    runner: TrialRunner,
    tracker: Any,
    objective: Any,
    training: RecordingSet,
    storage_url: str,
) -> TuneResult:
    study, config = runner.study, runner.config
    finished, running = runner.counts()
    complete = finished >= config.tune.n_trials and running == 0
    result = TuneResult(
        study_name=study.study_name,
        storage=storage_url,
        n_trials=config.tune.n_trials,
        stop_reason=runner.stop_reason,
        trials=trials_frame(study),
        complete=complete,
        parent_run_id=tracker.parent_run_id,
        tracking_uri=tracker.uri,
    )
    best = _best_trial(study)
    if best is not None:
        result.best_trial, result.best_value = best.number, best.value
        result.best_params = dict(best.params)
        result.best_config = config.with_overrides(
            best.user_attrs.get("grindwatch.overrides", {})
        )

    if not complete:
        if running == 0:
            _summarise(result, study, tracker, objective)
            tracker.close_parent("FINISHED", f"incomplete ({runner.stop_reason})")
        return result
    if best is None or not _is_finalizer(runner, tracker):
        _copy_final(result, tracker)
        return result

    _finalize(result, tracker, training, objective)
    result.finalized = True
    _summarise(result, study, tracker, objective)
    tracker.close_parent("FINISHED", "complete")
    return result


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def _copy_final(result: TuneResult, tracker: Any) -> None:
    """Fill the registered model from the summary another process logged."""
    if not tracker.enabled or tracker.parent_run_id is None:
        return
    tags = tracker.run_tags(tracker.parent_run_id)
    result.model_run_id = tags.get("grindwatch.model_run_id")
    result.model_uri = tags.get("grindwatch.model_uri")
    result.registered_model = tags.get("grindwatch.registered_model")
    result.registered_version = tags.get("grindwatch.registered_version")
    result.alias = tags.get("grindwatch.alias")


def _finalize(
    result: TuneResult, tracker: Any, training: RecordingSet, objective: Any
) -> None:
    """Retrain the best variant on all training recordings, evaluate, register."""
    from grindwatch.pipeline import train

    config = result.best_config
    tune_settings = config.tune
    name = tune_settings.registered_model or config.tracking.registered_model
    config = config.with_overrides(
        {
            "tracking.registered_model": name,
            "tracking.run_name": f"{result.study_name} trial {result.best_trial} "
            "retrained",
        }
    )
    # The trial saw only the fit part; the model to keep learns from all of it.
    trained = train(training, config, parent_run_id=tracker.parent_run_id)
    result.model = trained.model
    result.model_run_id = trained.run_id
    logger.info("retrained trial %d on all training recordings", result.best_trial)

    if objective.has_labels:
        result.final_metrics = _final_metrics(trained.model, objective.labeled)

    if trained.run_id is None:
        return
    result.model_uri = f"runs:/{trained.run_id}/model"
    tags = {
        "grindwatch.study": result.study_name,
        "grindwatch.best_trial": str(result.best_trial),
    }
    if name and config.tracking.log_model:
        result.registered_version = tracker.alias_version(
            trained.run_id, name, tune_settings.alias
        )
        result.registered_model, result.alias = name, tune_settings.alias
    tracker.set_tags(trained.run_id, tags)


def _final_metrics(model: Model, recordings: list[Recording]) -> dict[str, float]:
    from grindwatch.evaluate import evaluate_scores

    scored = model.score(RecordingSet(recordings, kind=model.kind_), attribution=False)
    try:
        evaluated = evaluate_scores(scored)
    except Exception as error:  # noqa: BLE001 - metrics are a report, not a result
        logger.warning("could not evaluate the retrained model: %s", error)
        return {}
    return {k: float(v) for k, v in evaluated.flat().items()}


def _summarise(
    result: TuneResult, study: optuna.Study, tracker: Any, objective: Any
) -> None:
    """Log the study summary on its MLflow run: best trial, plots, trials table."""
    if not tracker.enabled or tracker.parent_run_id is None:
        return
    import tempfile

    from grindwatch.tuning_plots import plot_importances, plot_optimization_history

    trials = result.trials
    metrics = _summary_metrics(result)
    best_params = dict(result.best_params)
    tags = (
        {
            "grindwatch.finalized_trials": str(
                int(trials["state"].isin(["COMPLETE", "PRUNED"]).sum())
            )
        }
        if result.complete
        else {}
    )
    for key, value in (
        ("grindwatch.model_run_id", result.model_run_id),
        ("grindwatch.model_uri", result.model_uri),
        ("grindwatch.registered_model", result.registered_model),
        ("grindwatch.registered_version", result.registered_version),
        ("grindwatch.alias", result.alias),
        ("grindwatch.best_trial", result.best_trial),
    ):
        if value is not None:
            tags[key] = str(value)

    importances, note = _importances(study)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        files = {
            "trials.csv": base / "trials.csv",
            "optimization_history.png": base / "optimization_history.png",
            "param_importances.png": base / "param_importances.png",
            "study_config.yaml": base / "study_config.yaml",
        }
        trials.to_csv(files["trials.csv"], index=False)
        plot_optimization_history(
            trials, files["optimization_history.png"], objective.config.tune.objective
        )
        plot_importances(importances, files["param_importances.png"], note)
        files["study_config.yaml"].write_text(objective.config.to_yaml())
        tracker.log_summary(best_params, metrics, files, tags)


def _summary_metrics(result: TuneResult) -> dict[str, float]:
    trials = result.trials
    states = trials["state"].value_counts()
    metrics: dict[str, float] = {
        "n_complete": float(states.get("COMPLETE", 0)),
        "n_pruned": float(states.get("PRUNED", 0)),
        "n_failed": float(states.get("FAIL", 0)),
    }
    if result.best_trial is None:
        return metrics
    metrics["best_value"] = float(result.best_value)
    metrics["best_trial"] = float(result.best_trial)
    row = trials[trials["number"] == result.best_trial].iloc[0]
    for column, value in row.items():
        if column.startswith(("injected_auc", "labeled_")) and _is_number(value):
            metrics[f"best.{column}"] = float(value)
    if "labeled_window_auc_roc" in trials:
        complete = trials[trials["state"] == "COMPLETE"]
        top = pd.to_numeric(complete["labeled_window_auc_roc"], errors="coerce").max()
        chosen = metrics.get("best.labeled_window_auc_roc")
        if _is_number(top) and chosen is not None:
            # How far the label-free choice is from the best labeled trial.
            metrics["labeled_window_auc_roc_max_over_trials"] = float(top)
            metrics["labeled_window_auc_roc_gap"] = float(top) - chosen
    metrics.update({f"final.{k}": v for k, v in result.final_metrics.items()})
    return metrics


def _is_number(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    import optuna

    complete = study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
    )
    if len(complete) < 2:
        return {}, f"needs at least 2 complete trials; the study has {len(complete)}"
    try:
        with warnings.catch_warnings():
            # PED-ANOVA warns about small samples; the note names the trial count.
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as error:
        return {}, f"not computed: {error}"
    note = f"PED-ANOVA (Optuna default) on {len(complete)} complete trials"
    return dict(importances), note
