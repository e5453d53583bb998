"""The study section: trials, optimisation history and parameter importances.

A study is read from MLflow (``grindwatch.tracking.read_study``): the parent run of
the model's run and that parent's child runs, one per trial. This module needs
nothing from the tuning code. It finds the objective metric, rebuilds an Optuna
study from the trials, and measures parameter importances with fANOVA
(``optuna.importance.FanovaImportanceEvaluator``, a random forest fitted to the
objective values, then a functional ANOVA of that forest).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["StudySummary", "plot_history", "plot_importances", "summarize_study"]

# Tag or parameter keys of the study run that may name its objective metric and
# direction, checked in this order. Without one, the objective is guessed.
OBJECTIVE_KEYS = ("grindwatch.objective", "objective_metric", "objective", "metric")
DIRECTION_KEYS = ("grindwatch.direction", "direction", "optuna.direction")
# Metric names tried in order when the study names none; then any metric that
# contains "objective" or "auc"; then the metric most trials have.
OBJECTIVE_GUESSES = ("objective", "value", "trial_value")
# Columns of StudySummary.trials before the parameter columns.
TRIAL_COLUMNS = (
    "number",
    "run_id",
    "run_name",
    "status",
    "value",
    "is_model",
    "completed",
    "stopped_step",
)
IMPORTANCE_METHOD = (
    "fANOVA (optuna.importance.FanovaImportanceEvaluator, 64 trees, seed 0) on "
    "the completed trials, over the parameters that vary between them"
)


@dataclass
class StudySummary:
    """The report's view of a study.

    Attributes
    ----------
    study_run_id, study_name : str
    objective : str or None
        Metric of the child runs used as the objective; None when no child run
        logged a metric.
    objective_source : str
        How the objective was found: ``"recorded"`` (named by the study run) or
        ``"guessed"`` (from the metric names).
    direction : {"maximize", "minimize"}
    trials : DataFrame
        One row per trial in start order. Columns: number, run_id, run_name,
        status (the Optuna state where recorded, else the MLflow status), value
        (the objective, NaN when missing and for trials whose recorded state is
        not COMPLETE), is_model (the trial the model came from), completed
        (finished with an objective value) and stopped_step (the last epoch a
        pruned or failed trial reported, from the tag
        ``grindwatch.stopped_step``; NaN when absent). Then follows one column
        per parameter that varies between trials.
    objective_name : str or None
        What the objective measures, where the study run records it in the tag
        ``grindwatch.objective_name`` (for example ``injected_auc``).
    retrained : bool
        Whether the model is the best trial retrained in a run of its own (tag
        ``grindwatch.best_trial``) rather than a trial's own run.
    importances : dict
        Parameter name to importance (summing to 1), largest first; empty when
        fewer than two completed trials or no varying parameter.
    importance_note : str
        The method, or why importances are missing.
    """

    study_run_id: str
    study_name: str
    objective: str | None
    objective_source: str
    direction: str
    trials: pd.DataFrame
    objective_name: str | None = None
    retrained: bool = False
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""

    @property
    def settings(self) -> list[str]:
        """Names of the searched parameters in the table, varying or not."""
        return [c for c in self.trials.columns if c not in TRIAL_COLUMNS]

    @property
    def parameters(self) -> list[str]:
        """Names of the parameters that vary between trials."""
        return _varying(self.trials[self.settings])

    @property
    def best(self) -> pd.Series | None:
        """The completed trial with the best objective value, if any."""
        done = self.trials[self.trials["completed"]]
        if done.empty:
            return None
        values = done["value"]
        best = values.idxmax() if self.direction == "maximize" else values.idxmin()
        return done.loc[best]


def _lookup(record: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for source in ("tags", "params"):
        values = record.get(source, {})
        for key in keys:
            if values.get(key):
                return str(values[key])
    return None


def _direction(record: dict[str, Any], objective: str | None) -> str:
    text = (_lookup(record, DIRECTION_KEYS) or "").lower()
    if "min" in text:
        return "minimize"
    if "max" in text:
        return "maximize"
    # Unrecorded: losses are minimised, anything else (separation AUC) maximised.
    return "minimize" if objective and "loss" in objective.lower() else "maximize"


def _objective(record: dict[str, Any], metrics: pd.DataFrame) -> tuple[str | None, str]:
    named = _lookup(record, OBJECTIVE_KEYS)
    if named and named in metrics.columns:
        return named, "recorded"
    for name in OBJECTIVE_GUESSES:
        if name in metrics.columns:
            return name, "guessed"
    for hint in ("objective", "auc"):
        matches = [c for c in metrics.columns if hint in c.lower()]
        if matches:
            return sorted(matches)[0], "guessed"
    if metrics.columns.empty:
        return None, "guessed"
    counts = metrics.notna().sum()
    return str(counts.sort_values(ascending=False, kind="stable").index[0]), "guessed"


def _parse(text: Any) -> Any:
    """Convert an MLflow parameter string to a number or boolean where it is one."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text in ("True", "False", "true", "false"):
        return text.lower() == "true"
    return text


def _varying(params: pd.DataFrame) -> list[str]:
    return [
        name
        for name in params.columns
        if params[name].dropna().astype(str).nunique() > 1
    ]


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    """Return a column of ``runs``, or missing values when it is absent."""
    if name in runs:
        return runs[name]
    return pd.Series([None] * len(runs), index=runs.index, dtype=object)


def _trial_numbers(runs: pd.DataFrame) -> pd.Series:
    for name in ("tags.grindwatch.trial_number", "params.trial_number"):
        numbers = pd.to_numeric(_column(runs, name), errors="coerce")
        if numbers.notna().all():
            return numbers.astype(int)
    return pd.Series(np.arange(len(runs)), index=runs.index)


def _searched_parameters(runs: pd.DataFrame) -> pd.DataFrame:
    """Select the parameters a tuner sampled, named without their prefix.

    Trials that log the sampled values as ``optuna.NAME`` parameters (besides
    their whole configuration) are compared on those alone. Otherwise every
    logged parameter except the trial number is a candidate.
    """
    if _logged_as_sampled(runs):
        searched = runs.filter(like="params.optuna.")
        return searched.rename(columns=lambda c: c.removeprefix("params.optuna."))
    params = runs.filter(like="params.").rename(columns=lambda c: c[7:])
    return params.drop(columns=["trial_number"], errors="ignore")


def _logged_as_sampled(runs: pd.DataFrame) -> bool:
    return not runs.filter(like="params.optuna.").empty


def summarize_study(record: dict[str, Any], model_run_id: str | None) -> StudySummary:
    """Build the report's view of a study read by ``tracking.read_study``.

    ``record`` contains ``study_run_id``, ``study_name``, the study run's ``tags``
    and ``params``, and ``trials``: a DataFrame with run_id, run_name, status,
    start_time and ``params.*``, ``metrics.*`` and ``tags.*`` columns, one row
    per child run.

    When some child runs carry the tag ``grindwatch.kind=trial``, only those are
    trials, and the others (such as the best variant retrained on all data) are
    left out of the table. A ``grindwatch.trial_state`` tag (the Optuna state:
    COMPLETE, PRUNED, FAIL) takes precedence over the MLflow status, because a
    pruned trial's run also ends FINISHED.
    """
    runs = record["trials"].sort_values("start_time", kind="stable")
    runs = runs.reset_index(drop=True)
    model_tags = runs[runs["run_id"] == model_run_id]
    trial_of_model = pd.to_numeric(
        _column(model_tags, "tags.grindwatch.best_trial"), errors="coerce"
    ).dropna()
    kinds = _column(runs, "tags.grindwatch.kind")
    if (kinds == "trial").any():
        runs = runs[kinds == "trial"].reset_index(drop=True)

    metrics = runs.filter(like="metrics.").rename(columns=lambda c: c[8:])
    objective, source = _objective(record, metrics)
    direction = _direction(record, objective)
    value = (
        pd.to_numeric(metrics[objective], errors="coerce")
        if objective
        else pd.Series(np.nan, index=runs.index)
    )
    number = _trial_numbers(runs)
    state = _column(runs, "tags.grindwatch.trial_state")
    status = state.fillna(runs["status"])
    # A failed, pruned or killed run may still carry a metric (its last
    # intermediate value), but only finished runs count as completed trials.
    finished = np.where(
        state.notna(), state == "COMPLETE", runs["status"] == "FINISHED"
    )
    # Older grindwatch versions logged a pruned trial's last per-epoch value as
    # its objective. So where the state is known, only COMPLETE trials show one.
    value = value.where(state.isna() | (state == "COMPLETE"))
    stopped = pd.to_numeric(
        _column(runs, "tags.grindwatch.stopped_step"), errors="coerce"
    )
    if trial_of_model.empty:
        is_model = runs["run_id"] == model_run_id
    else:
        is_model = number == int(trial_of_model.iloc[0])
    params = _searched_parameters(runs)
    varying = _varying(params)
    # Parameters that a tuner logged as sampled (optuna.NAME) are all kept, so that
    # a trial lists its whole architecture, also a setting only it drew or one
    # that every trial drew alike. Other logged parameters are the whole
    # configuration, and only those that vary show how trials differ.
    table_columns = list(params.columns) if _logged_as_sampled(runs) else varying
    trials = pd.DataFrame(
        {
            "number": number,
            "run_id": runs["run_id"],
            "run_name": runs["run_name"].fillna(""),
            "status": status,
            "value": value.astype(np.float64),
            "is_model": is_model,
            "completed": finished & np.isfinite(value.astype(np.float64)),
            "stopped_step": stopped.astype(np.float64),
        }
    )
    trials = pd.concat([trials, params[table_columns]], axis=1)
    summary = StudySummary(
        study_run_id=record["study_run_id"],
        study_name=record.get("study_name") or record["study_run_id"],
        objective=objective,
        objective_source=source,
        direction=direction,
        trials=trials,
        objective_name=record.get("tags", {}).get("grindwatch.objective_name"),
        retrained=not trial_of_model.empty,
    )
    summary.importances, summary.importance_note = parameter_importances(
        trials, varying, direction
    )
    return summary


def _distribution(values: list[Any]):  # noqa: ANN202 - an optuna distribution
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    numbers = [
        v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    if len(numbers) == len(values):
        low, high = min(numbers), max(numbers)
        if all(isinstance(v, int) for v in numbers):
            return IntDistribution(int(low), int(high))
        # Ranges over two decades or more are sampled on a log scale by tuners,
        # so fANOVA splits them there too.
        log = low > 0 and high / low >= 100
        return FloatDistribution(float(low), float(high), log=log)
    choices = sorted({json.dumps(v) if not isinstance(v, str) else v for v in values})
    return CategoricalDistribution(choices)


def _encode(value: Any, distribution) -> Any:  # noqa: ANN001
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        return value if isinstance(value, str) else json.dumps(value)
    return value


def parameter_importances(
    trials: pd.DataFrame, names: list[str], direction: str
) -> tuple[dict[str, float], str]:
    """fANOVA importances of ``names`` for the objective ``trials["value"]``.

    Returns the importances (largest first, summing to 1) and a sentence naming
    the method or saying why there are none.
    """
    done = trials[trials["completed"]]
    if len(done) < 2:
        return {}, (
            f"Parameter importances need at least two completed trials with an "
            f"objective value; this study has {len(done)}."
        )
    usable = [name for name in names if done[name].notna().all()]
    usable = [name for name in usable if done[name].astype(str).nunique() > 1]
    if not usable:
        return {}, "No parameter varied between the completed trials."
    if done["value"].nunique() < 2:
        return {}, (
            f"Every completed trial has the objective {done['value'].iloc[0]:.4g}, "
            "so no parameter explains a difference."
        )

    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    parsed = {name: [_parse(v) for v in done[name]] for name in usable}
    distributions = {name: _distribution(parsed[name]) for name in usable}
    # Optuna logs "A new study created in memory" through its own handler; this
    # rebuilt study is an internal step, so keep its logger quiet meanwhile.
    optuna_logger = logging.getLogger("optuna")
    level = optuna_logger.level
    optuna_logger.setLevel(logging.WARNING)
    try:
        study = optuna.create_study(direction=direction)
        for row in range(len(done)):
            params = {
                name: _encode(parsed[name][row], distributions[name]) for name in usable
            }
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=distributions,
                    value=float(done["value"].iloc[row]),
                )
            )
        importances = optuna.importance.get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(n_trees=64, seed=0)
        )
    except (ValueError, RuntimeError) as error:
        # fANOVA fails on degenerate studies that the checks above do not catch.
        return {}, f"Parameter importances could not be computed ({error})."
    finally:
        optuna_logger.setLevel(level)
    note = f"Importances by {IMPORTANCE_METHOD} ({len(done)} completed trials)."
    return dict(importances), note


def plot_history(summary: StudySummary):  # noqa: ANN201 - a matplotlib Figure
    """Objective value of each trial in order, with the best value so far."""
    from grindwatch.report.figures import pyplot

    plt = pyplot()
    trials = summary.trials
    figure, axis = plt.subplots(figsize=(5.6, 3.0))
    done = trials[trials["completed"]]
    axis.plot(done["number"], done["value"], "o", color="#4d4d4d", ms=4, label="trial")
    best = (
        done["value"].cummax()
        if summary.direction == "maximize"
        else done["value"].cummin()
    )
    axis.step(
        done["number"], best, where="post", color="#b2182b", lw=1.4, label="best so far"
    )
    model = done[done["is_model"]]
    if not model.empty:
        axis.plot(
            model["number"],
            model["value"],
            "*",
            color="#2166ac",
            ms=11,
            label="this model's trial" if summary.retrained else "this model",
        )
    axis.set_xlabel("trial")
    axis.set_ylabel(summary.objective or "objective")
    axis.set_title(f"Optimisation history ({summary.direction})")
    # A fixed place: loc="best" searches the plotted data for room, and matplotlib
    # warns when that search takes over a second, as it can on a busy machine.
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure


def plot_importances(summary: StudySummary):  # noqa: ANN201
    """Horizontal bars of the parameter importances, largest on top."""
    from grindwatch.report.figures import pyplot

    plt = pyplot()
    names = list(summary.importances)[::-1]
    figure, axis = plt.subplots(figsize=(5.6, 0.8 + 0.28 * len(names)))
    axis.barh(names, [summary.importances[n] for n in names], color="#4d4d4d")
    axis.set_xlabel("importance (fANOVA, sums to 1)")
    axis.set_title("Parameter importances")
    figure.tight_layout()
    return figure
