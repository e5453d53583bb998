"""Conclusion of a tuning study: its trials, best model and MLflow summary.

When the study has its finished trials, one process retrains the best trial's
variant on all training recordings, registers it with an alias, and logs the
best parameters and metrics, plots and a trials table on the study's run.

NOTE: the retrained model fits its own threshold on all training scores. On
small or unclustered data it can differ widely from the trial's: on 200
generated rows the trial's threshold flagged no held-out row, while the
retrained one flagged 31 % of the rows. ``tune`` warns when that happens but
keeps the retrained model.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from grindwatch._nouns import item_noun
from grindwatch.config import Config
from grindwatch.io import Recording, RecordingSet
from grindwatch.trial_runner import TrialRunner, describe_error

if TYPE_CHECKING:
    import optuna

    from grindwatch.pipeline import Model

logger = logging.getLogger(__name__)

# A random forest fitted to fewer trials says little about importances.
MIN_TRIALS_FOR_IMPORTANCES = 5

__all__ = ["TuneResult", "conclude", "close_incomplete", "trials_frame"]


@dataclass
class TuneResult:
    """Result of ``tune``.

    Attributes
    ----------
    trials : DataFrame
        One row per trial: number, state, value, stopped_step, duration_s, the
        searched parameters (``param.<name>``), the trial's metrics and its MLflow
        run id. ``n_bands`` is the spectrum bands used, which is
        ``param.n_bands`` capped at half the window length.
    complete : bool
        The study has ``n_trials`` finished trials and none running.
    finalized : bool
        This call retrained (or reused), registered and summarised the best trial.
        False when another process on the same study does that, or the study is
        incomplete.
    reused_model : bool
        The best trial was the same as at the study's last summary, so this call
        kept the model that summary retrained, and its registered version,
        instead of retraining.
    final_metrics : dict
        Labeled metrics of the retrained model, when labeled recordings exist.
    notes : list of str
        Warnings about the choice, such as tied or zero objectives or a
        retrained threshold that flags far more than the trial's. The study's
        run stores them in its ``grindwatch.notes`` tag.
    labels_in_training : bool
        The labeled metrics come from labels of the training recordings, so they
        are measured on data the models were fitted on.
    """

    study_name: str
    storage: str
    n_trials: int
    stop_reason: str
    trials: pd.DataFrame
    complete: bool
    finalized: bool = False
    reused_model: bool = False
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
    labels_in_training: bool = False
    notes: list[str] = field(default_factory=list)


# Columns of every trials table, before the parameters and metrics.
_TRIAL_COLUMNS = (
    "number",
    "state",
    "value",
    "pruned_injected_auc",
    "stopped_step",
    "duration_s",
    "family",
    "frontend",
    "window_length",
    "n_bands",
    "mlflow_run_id",
    "error",
    "baseline",
)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """Tabulate the trials: state, value, step, duration, parameters and metrics.

    ``value`` is the objective, empty for pruned trials; their last per-epoch
    injected AUC is in ``pruned_injected_auc``.
    """
    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = None
        if trial.datetime_start and trial.datetime_complete:
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        pruned = trial.state.name == "PRUNED"
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            # A pruned trial's value is its last per-epoch report, the injected
            # AUC alone, on another scale than the objective.
            "value": None if pruned else trial.value,
            "pruned_injected_auc": trial.value if pruned else None,
            "stopped_step": trial.user_attrs.get("grindwatch.stopped_step"),
            "duration_s": duration,
        }
        chosen = trial.user_attrs.get("grindwatch.overrides", {})
        row["family"] = chosen.get("detector.family")
        row["frontend"] = chosen.get("frontend.kind")
        row["window_length"] = chosen.get("windows.length")
        # The bands used: suggest_overrides caps the drawn n_bands at half the
        # window length, so param.n_bands can be larger.
        row["n_bands"] = chosen.get("frontend.n_bands")
        row.update({f"param.{k}": v for k, v in trial.params.items()})
        row.update(trial.user_attrs.get("grindwatch.metrics", {}))
        row["mlflow_run_id"] = trial.user_attrs.get("grindwatch.mlflow_run_id")
        row["error"] = trial.user_attrs.get("grindwatch.error")
        # Set by the study's first trial when it runs the configured pipeline.
        row["baseline"] = bool(trial.user_attrs.get("baseline", False))
        rows.append(row)
    # A study stopped by its timeout before its first trial still gets the
    # columns that the summary and the report read.
    return pd.DataFrame(rows, columns=None if rows else list(_TRIAL_COLUMNS))


def close_incomplete(
    study: optuna.Study, tracker: Any, state: str, status: str
) -> None:
    """End the study's run, unless trials of other processes still run in it."""
    from optuna.trial import TrialState

    try:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            tracker.close_parent(status, state)
    except Exception as error:  # noqa: BLE001 - do not hide the original interrupt
        logger.error("could not end the study's MLflow run: %s", describe_error(error))


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
    # A worker that ran an earlier trial leaves the study to the last trial's
    # worker, which may still be retraining and has not tagged the summary yet.
    if any(t.user_attrs.get("grindwatch.worker") == runner.token for t in finished):
        return False
    if not tracker.enabled:
        return True
    tags = tracker.run_tags(tracker.parent_run_id)
    return tags.get("grindwatch.finalized_trials") != str(len(finished))


# Below this recurring-fault F1, the best trial's threshold catches too few faults
# for its objective to rank the trials. NOTE: a judgement, not a measured
# cut-off. On the CNC mill example (most held-out cycles worn) every trial scored
# 0.02 or less, against medians of 0.30 and 0.32 for the front ends chosen on the
# gearbox and NAB data (benchmarks/BENCHMARKS.md, "Front ends").
WEAK_RECURRING_F1 = 0.05


def conclude(
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
        labels_in_training=objective.has_labels and objective.labels_in_training,
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
    if not _is_finalizer(runner, tracker):
        _copy_final(result, tracker)
        if _summarised(tracker, finished):
            _register_requested(result, tracker, config)
            # Resuming reopened the run; the process that summarised it is done.
            tracker.close_parent("FINISHED", "complete")
        return result
    if best is None:
        # Every finished trial was pruned, so there is no variant to retrain.
        _summarise(result, study, tracker, objective)
        tracker.close_parent("FINISHED", "complete")
        return result

    if best.value is not None and best.value > 0:
        weak = _warn_weak_threshold(best, objective.factors, training.kind)
        if weak:
            result.notes.append(weak)
    undecided = _warn_undecided(study, best)
    if undecided:
        result.notes.append(undecided)
    tracker.fail_unfinished_retrains()
    if not _reuse_champion(result, tracker, objective):
        _finalize(result, tracker, training, objective)
    _check_refitted_threshold(result, best.user_attrs.get("grindwatch.metrics", {}))
    result.finalized = True
    _summarise(result, study, tracker, objective)
    tracker.close_parent("FINISHED", "complete")
    return result


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def _summarised(tracker: Any, finished: int) -> bool:
    """Return whether the study's run has the summary of ``finished`` trials."""
    if not tracker.enabled or tracker.parent_run_id is None:
        return False
    tags = tracker.run_tags(tracker.parent_run_id)
    return tags.get("grindwatch.finalized_trials") == str(finished)


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


def _register_requested(result: TuneResult, tracker: Any, config: Config) -> None:
    """Register the retrained model under a name or alias that a resume of the
    summarised study requested, and record it on the study's run."""
    name = config.tune.registered_model or config.tracking.registered_model
    alias = config.tune.alias
    if not name or result.model_run_id is None or result.model_uri is None:
        return
    if (name, alias) == (result.registered_model, result.alias):
        return
    version = tracker.register_logged_model(result.model_run_id, name, alias)
    result.registered_model, result.registered_version = name, version
    result.alias = alias
    tracker.set_tags(
        tracker.parent_run_id,
        {
            "grindwatch.registered_model": name,
            "grindwatch.registered_version": version,
            "grindwatch.alias": alias,
        },
    )


def _warn_undecided(study: optuna.Study, best: optuna.trial.FrozenTrial) -> str | None:
    """Warn when the objective did not choose: other variants have the best value,
    or the best value is 0, so the kept variant is the first, not the best.

    Returns the warning, or None when the objective chose.
    """
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    values = [trial.value for trial in complete if trial.value is not None]
    # A trial that repeated an earlier variant's settings ties with it by design.
    tied = [
        trial.number
        for trial in complete
        if trial.value == best.value
        and "grindwatch.duplicate_of" not in trial.user_attrs
    ]
    if best.value is not None and best.value <= 0:
        message = (
            f"the best objective is {best.value:g}: no trial found the injected "
            "anomalies and flagged them at its threshold, so trial "
            f"{best.number} is kept only as the first. Widen tune.space, give more "
            "trials, or check the training data"
        )
    elif len(values) > 1 and len(set(values)) == 1:
        message = (
            f"all {len(values)} complete trials have the objective {best.value:g}, "
            f"so the study did not rank them and trial {best.number} is kept as "
            "the first"
        )
    elif len(tied) > 1:
        numbers = ", ".join(str(number) for number in tied)
        message = (
            f"trials {numbers} have the best objective {best.value:g}, so the "
            f"study did not rank them and trial {best.number} is kept"
        )
    else:
        return None
    logger.warning("%s", message)
    return message


def _warn_weak_threshold(
    best: optuna.trial.FrozenTrial, factors: tuple[str, ...], kind: str = "signals"
) -> str | None:
    """Warn when even the best trial's threshold barely catches the recurring
    faults of an objective that multiplies by their F1, because the ranking then
    rests on a few windows.

    ``kind`` is the data kind ("signals" or "table"), which names the items.
    Returns the warning, or None when the threshold catches enough of them.
    """
    metrics = best.user_attrs.get("grindwatch.metrics", {})
    f1 = metrics.get("recurring_f1")
    if "recurring_f1" not in factors or f1 is None or f1 >= WEAK_RECURRING_F1:
        return None
    recall = metrics.get("recurring_recall", float("nan"))
    specificity = metrics.get("held_out_specificity", float("nan"))
    items = item_noun(kind)
    # A table row is its own single window.
    windows = "windows" if kind == "signals" else "rows"
    # Labeled recordings only rank the trials under the labeled_auc objective.
    if "labeled_window_auc_roc" in metrics:
        advice = f"rank the trials on the --eval {items} with --objective labeled_auc"
    else:
        advice = (
            f"give labelled {items} with --eval and rank the trials on them with "
            "--objective labeled_auc"
        )
    message = (
        f"the best trial ({best.number}) reaches only F1 {f1:.3f} on the recurring "
        f"faults at its threshold (recall {recall:.2f}, held-out specificity "
        f"{specificity:.3f}), so the objective hardly separated the variants and "
        f"the choice may be no better than the others. Held-out {windows} that are "
        "not normal (worn tools or faults in the training data) can cause this. "
        f"Check the training data, or {advice}"
    )
    logger.warning("%s", message)
    return message


def _finalize(
    result: TuneResult, tracker: Any, training: RecordingSet, objective: Any
) -> None:
    """Retrain the best variant on all training recordings, evaluate, register."""
    from grindwatch.pipeline import train

    config = result.best_config
    tune_settings = config.tune
    name = tune_settings.registered_model or config.tracking.registered_model
    # The trial saw only the fit part; the model to keep learns from all of it.
    # The run is named and registered afterwards, not through the config, so that
    # grindwatch train -c on the model's config.yaml neither registers another
    # version nor names its run after this one. The tracking section's name and
    # alias would make train register too, so they are left out.
    tracking = config.tracking.model_copy(
        update={"registered_model": None, "alias": None}
    )
    config = config.model_copy(update={"tracking": tracking})
    trained = train(training, config, parent_run_id=tracker.parent_run_id)
    result.model = trained.model
    result.model_run_id = trained.run_id
    logger.info("retrained trial %d on all training recordings", result.best_trial)

    if objective.has_labels:
        result.final_metrics = _final_metrics(trained.model, objective.labeled)

    if trained.run_id is None:
        return
    tracker.name_run(
        trained.run_id, f"{result.study_name} trial {result.best_trial} retrained"
    )
    if config.tracking.log_model:
        result.model_uri = f"runs:/{trained.run_id}/model"
    tags = {
        "grindwatch.study": result.study_name,
        "grindwatch.best_trial": str(result.best_trial),
    }
    if name and config.tracking.log_model:
        result.registered_version = tracker.register_logged_model(
            trained.run_id, name, tune_settings.alias
        )
        result.registered_model, result.alias = name, tune_settings.alias
    tracker.set_tags(trained.run_id, tags)


def _reuse_champion(result: TuneResult, tracker: Any, objective: Any) -> bool:
    """Keep the model that the study's last summary retrained from the same best
    trial, and register it under the requested name; return False to retrain.

    A resume that adds trials without a new best would otherwise train the same
    variant again and register an identical version. The earlier model is found
    by the study run's ``grindwatch.best_trial`` and ``grindwatch.model_run_id``
    tags. Its run must have ended FINISHED with its model logged, and carry the
    study's name and trial number in its own tags.
    """
    from mlflow.exceptions import MlflowException

    from grindwatch.exceptions import InputError, TrackingError
    from grindwatch.pipeline import load_model

    if not tracker.enabled or tracker.parent_run_id is None:
        return False
    tags = tracker.run_tags(tracker.parent_run_id)
    run_id = tags.get("grindwatch.model_run_id")
    model_uri = tags.get("grindwatch.model_uri")
    if tags.get("grindwatch.best_trial") != str(result.best_trial) or not model_uri:
        return False
    if not tracker.is_finished_retraining(run_id, result.study_name, result.best_trial):
        return False
    config = result.best_config
    try:
        # Loaded for the threshold, the labeled metrics and --output.
        model = load_model(model_uri, config)
    except (MlflowException, TrackingError, InputError, OSError) as error:
        logger.warning(
            "retraining trial %d: its earlier model %s could not be loaded (%s)",
            result.best_trial,
            model_uri,
            error,
        )
        return False
    logger.info(
        "best trial %d is unchanged; reusing its model from run %s",
        result.best_trial,
        run_id,
    )
    result.model, result.model_run_id, result.model_uri = model, run_id, model_uri
    result.reused_model = True
    if objective.has_labels:
        result.final_metrics = _final_metrics(model, objective.labeled)
    name = config.tune.registered_model or config.tracking.registered_model
    if name and config.tracking.log_model:
        # Finds the version that this run registered before, if any.
        result.registered_version = tracker.register_logged_model(
            run_id, name, config.tune.alias
        )
        result.registered_model, result.alias = name, config.tune.alias
    return True


def _check_refitted_threshold(result: TuneResult, trial: dict[str, float]) -> None:
    """Warn when the retrained threshold flags far more than the trial's did.

    The retrained model fits its threshold on all training scores, which can
    cut elsewhere than the trial's. The study measured the trial's false-alarm
    rate on clean held-out windows. The retrained share also counts real
    anomalies in the training data, so it gets a 5-point allowance.
    """
    if result.model is None or "held_out_specificity" not in trial:
        return
    measured = 1.0 - trial["held_out_specificity"]
    refitted = result.model.threshold_.share_flagged
    if refitted > max(3.0 * measured, measured + 0.05):
        message = (
            f"the retrained model's threshold flags {100 * refitted:.1f}% of its "
            f"training windows, but trial {result.best_trial} flagged "
            f"{100 * measured:.1f}% of clean held-out windows: refitted on all "
            "data, the threshold cut elsewhere. Check it with grindwatch report, "
            "or set the threshold settings (threshold.method, threshold.margin) "
            "and tune again."
        )
        logger.warning("%s", message)
        result.notes.append(message)


def _final_metrics(model: Model, recordings: list[Recording]) -> dict[str, float]:
    """Measure the retrained model on the labeled recordings.

    ``n_eval_trained_on`` counts those whose file the model was trained on.
    """
    from grindwatch.evaluate import evaluate_scores, training_recordings

    scored = model.score(RecordingSet(recordings, kind=model.kind_), attribution=False)
    try:
        evaluated = evaluate_scores(scored)
    except Exception as error:  # noqa: BLE001 - metrics are a report, not a result
        logger.warning("could not evaluate the retrained model: %s", error)
        return {}
    metrics = {k: float(v) for k, v in evaluated.flat().items()}
    metrics["n_eval_trained_on"] = float(
        len(training_recordings(model, scored.recordings))
    )
    return metrics


def _summarise(
    result: TuneResult, study: optuna.Study, tracker: Any, objective: Any
) -> None:
    """Log the study summary on its MLflow run: best trial, plots, trials table."""
    if not tracker.enabled or tracker.parent_run_id is None:
        return
    import tempfile

    from grindwatch.tuning_plots import plot_importances, plot_optimization_history

    trials = result.trials
    metrics = _summary_metrics(result, objective.factors)
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
    # Set on every summary, so that a later summary of a resumed study replaces
    # an earlier note.
    tags["grindwatch.notes"] = "\n".join(result.notes) or "none"

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


def _summary_metrics(result: TuneResult, factors: tuple[str, ...]) -> dict[str, float]:
    """Count the trials by state and collect the best trial's metrics.

    The best trial's injected, specificity and labeled metrics and every factor of
    the objective (``factors``) that it measured become ``best.<name>``.
    """
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
    prefixes = ("injected_", "held_out_specificity", "labeled_")
    for column, value in row.items():
        included = column.startswith(prefixes) or column in factors
        if included and _is_number(value):
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
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCES:
        return {}, (
            f"needs at least {MIN_TRIALS_FOR_IMPORTANCES} complete trials; the study "
            f"has {len(complete)}"
        )
    # fANOVA over the parameters every complete trial has (front end, windows,
    # family). Optuna's default, PED-ANOVA, ranks within the best trials only, and
    # there a family's own setting can hide that the front end decided the rest.
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        with warnings.catch_warnings():
            # fANOVA warns about small samples; the note names the trial count.
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(
                study, evaluator=evaluator
            )
    except (ValueError, RuntimeError) as error:
        return {}, f"not computed: {error}"
    note = (
        f"fANOVA on {len(complete)} complete trials, over the parameters they all have"
    )
    return dict(importances), note
