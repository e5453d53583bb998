"""The ``grindwatch tune`` command: an Optuna study over the pipeline.

Heavy imports (Optuna, MLflow, torch) happen inside the command, so ``--help`` stays
fast.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from grindwatch.cli import (
    ConfigOpt,
    DataArg,
    JsonOpt,
    VerboseOpt,
    _check_register,
    _echo_json,
    _fail,
    _plain,
    _run,
    _store_option,
    _with_set,
)

__all__ = ["register"]

# Objectives are printed with four significant digits. recurring_f1 objectives
# are often below 0.01, where four decimals print distinct values alike
# (0.004977 and 0.004975 both as 0.0050) and the best trial looks tied.
_OBJECTIVE_FORM = "{:.4g}"


@contextlib.contextmanager
def _trial_bar(enabled: bool, total: int) -> Iterator[Any]:
    """Yield a callback for TrialEvents that draws a bar with the best value."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from grindwatch._console import console

    show = enabled and sys.stderr.isatty()
    # Without a terminal (a log file, nohup, a service) the bar is hidden, so each
    # finished trial prints one line instead. Otherwise a long study shows nothing
    # until its end.
    print_lines = enabled and not show
    with Progress(
        TextColumn("trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best {task.fields[best]}"),
        TimeElapsedColumn(),
        console=console(),
        disable=not show,
        transient=True,
    ) as progress:
        task = progress.add_task("trials", total=total, best="-")

        def update(event: Any) -> None:
            best = (
                "-"
                if event.best_value is None
                else _number(event.best_value, _OBJECTIVE_FORM)
            )
            progress.update(
                task, completed=event.n_finished, total=event.n_trials, best=best
            )
            if print_lines:
                console().print(_trial_line(event, best), highlight=False)

        yield update


def _trial_line(event: Any, best: str) -> str:
    """Describe one finished trial and the study's progress in one line."""
    from grindwatch.trial_runner import USER_INTERRUPT

    state = {"FAIL": "failed"}.get(event.state, event.state.lower())
    error = getattr(event, "error", None)
    if event.state == "INTERRUPTED" and error and error != USER_INTERRUPT:
        state = "stopped because the tracking store failed"
    if event.value is not None:
        state += f", objective {_number(event.value, _OBJECTIVE_FORM)}"
    return (
        f"trial {event.number} {state}; {event.n_finished} of {event.n_trials} "
        f"trials finished, best objective {best}"
    )


def _setup_optuna_logging() -> None:
    """Route Optuna's log records through the CLI's handler instead of its own."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _top_trials(result: Any, limit: int) -> None:
    from rich.table import Table

    from grindwatch._console import console

    trials = result.trials
    if trials.empty:
        console().print("No trials ran.")
        return
    ranked = trials[trials["state"].isin(["COMPLETE", "PRUNED"])].copy()
    ranked["complete"] = ranked["state"] == "COMPLETE"
    ranked = ranked.sort_values(["complete", "value"], ascending=False).head(limit)
    labeled = "labeled_window_auc_roc" in trials
    table = Table(title=f"Top trials of study {result.study_name!r}")
    # Feature-table studies have no front end or window to show.
    signals = "window_length" in trials and trials["window_length"].notna().any()
    columns = ["trial", "state", "objective", "family"]
    # Units in the headers: a window can be set in seconds, and a bare "seconds"
    # column next to it read as the window's length.
    columns += ["front end", "window (samples)"] if signals else []
    for name in columns:
        table.add_column(name, justify="right" if name != "family" else "left")
    in_training = getattr(result, "labels_in_training", False)
    if labeled:
        # The trial's window AUC-ROC on the labeled recordings (never fitted).
        unit = "window" if signals else "row"
        table.add_column(
            f"labeled {unit} AUC" + ("*" if in_training else ""), justify="right"
        )
    table.add_column("duration (s)", justify="right")
    for row in ranked.to_dict(orient="records"):
        pruned = row["state"] == "PRUNED"
        cells = [
            f"{row['number']}" + (" *" if row["number"] == result.best_trial else ""),
            row["state"].lower(),
            # A pruned trial's value is its last per-epoch report, the injected
            # AUC alone, which is not comparable with the objective.
            "-" if pruned else _number(row.get("value"), _OBJECTIVE_FORM),
            str(row.get("family") or ""),
        ]
        if signals:
            cells += [
                str(row.get("frontend") or ""),
                _number(row.get("window_length"), "{:.0f}"),
            ]
        if labeled:
            cells.append(_number(row.get("labeled_window_auc_roc")))
        cells.append(_number(row.get("duration_s"), "{:.1f}"))
        table.add_row(*cells)
    console().print(table)
    # On their own lines, the settings stay readable in a narrow terminal.
    settings = [(row["number"], _settings(row)) for row in ranked.to_dict("records")]
    if any(text for _, text in settings):
        console().print("Searched settings of these trials:", highlight=False)
        for number, text in settings:
            console().print(f"  {number}: {text}", highlight=False)
    if labeled and in_training:
        items = "recordings" if signals else "rows"
        console().print(
            f"* measured on labels of the training {items}, which the trials "
            "were fitted on (without the labels).",
            highlight=False,
        )
    if ranked["state"].eq("PRUNED").any():
        console().print(
            "Pruned trials stopped early, when their injected AUC fell behind "
            "other trials at the same epoch; they have no objective value.",
            highlight=False,
        )
    baseline = trials[trials["baseline"]] if "baseline" in trials else trials.iloc[:0]
    if not baseline.empty:
        row = baseline.iloc[0]
        outcome = (
            "pruned, no objective value"
            if row["state"] == "PRUNED"
            else f"{row['state'].lower()}, objective "
            f"{_number(row['value'], _OBJECTIVE_FORM) or 'none'}"
        )
        console().print(
            f"Trial {row['number']} ran the configured pipeline: {outcome}.",
            highlight=False,
        )


# Short names of searched autoencoder settings in the list after the trial table.
_AUTOENCODER_NAMES = {
    "stride": "stride",
    "latent_size": "latent",
    "loss": "loss",
    "learning_rate": "lr",
    "batch_size": "batch",
    "epochs": "epochs",
}


def _settings(row: dict[str, Any]) -> str:
    """Summarise a trial's searched settings beyond family, front end and window.

    For example ``hop 0.5 x window, bands 32, layers 2, filters 16-32, kernels 7-5, loss
    mse`` for an autoencoder, or ``n_components 0.9`` for PCA. Settings the
    search space fixes are not trial parameters and are left out.
    """
    parts = []
    spectrum = row.get("frontend") == "spectrum"
    if _present(row.get("param.hop_fraction")):
        # A fraction of the window, not samples: "hop 1" would read as 1 sample.
        parts.append(f"hop {_short(row['param.hop_fraction'])} x window")
    if spectrum and _present(row.get("param.n_bands")):
        used = row.get("n_bands")
        bands = used if _present(used) else row["param.n_bands"]
        parts.append(f"bands {_short(bands)}")
    family = row.get("family")
    prefix = f"param.{family}."
    own = {
        key[len(prefix) :]: value
        for key, value in row.items()
        if key.startswith(prefix) and _present(value)
    }
    if family == "autoencoder":
        layers = int(own.pop("n_layers", 0) or 0)
        if layers:
            parts.append(f"layers {layers}")
        for name, label in (("filters", "filters"), ("kernel_size", "kernels")):
            values = [own.pop(f"{name}_{i}", None) for i in range(8)]
            drawn = [_short(v) for v in values[: layers or 8] if _present(v)]
            if drawn:
                parts.append(f"{label} {'-'.join(drawn)}")
        parts += [
            f"{label} {_short(own[name])}"
            for name, label in _AUTOENCODER_NAMES.items()
            if name in own
        ]
    else:
        parts += [f"{name} {_short(value)}" for name, value in own.items()]
    return ", ".join(parts)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _number(value: Any, form: str = "{:.4f}") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    return "" if number != number else form.format(number)


def _report(result: Any, show: int, output: Path | None = None) -> None:
    from grindwatch._console import console

    out = console()
    _top_trials(result, show)
    states = result.trials["state"].value_counts() if not result.trials.empty else {}
    out.print(
        f"Study {result.study_name!r} in {result.storage}: "
        f"{states.get('COMPLETE', 0)} complete, {states.get('PRUNED', 0)} pruned, "
        f"{states.get('FAIL', 0)} failed trials (target {result.n_trials}).",
        highlight=False,
    )
    if result.best_trial is not None:
        out.print(
            f"Best trial {result.best_trial}: objective "
            f"{_number(result.best_value, _OBJECTIVE_FORM)}.",
            highlight=False,
        )
    if result.reused_model:
        out.print(
            f"Best trial {result.best_trial} is unchanged since the last summary, so "
            f"its model from run {result.model_run_id} was kept and not retrained"
            + (
                f"; models:/{result.registered_model}@{result.alias} is version "
                f"{result.registered_version}."
                if result.registered_model
                else "."
            ),
            highlight=False,
        )
    if result.final_metrics:
        metrics = result.final_metrics
        table = result.model is not None and result.model.kind_ == "table"
        items = "rows" if table else "recordings"
        source = (
            f"its own training {items}, which it was fitted on without their "
            f"labels (pass --eval DATA to measure on other {items})"
            if result.labels_in_training
            else f"the --eval {items}"
        )
        overlap = int(metrics.get("n_eval_trained_on", 0))
        if overlap and not result.labels_in_training:
            source += (
                f", {overlap} of which are training {items}, so the figures "
                "are optimistic"
            )
        auc = metrics.get("window_auc_roc", float("nan"))
        f1 = metrics.get("recording_f1", float("nan"))
        if table:
            # A table row is both the window and the recording.
            figures = f"row AUC-ROC {auc:.3f}, row F1 {f1:.3f}"
        else:
            figures = f"window AUC-ROC {auc:.3f}, recording F1 {f1:.3f}"
        out.print(f"Retrained model: {figures}, measured on {source}.", highlight=False)
    if result.model is not None:
        from grindwatch.cli import _print_cycle_check

        # train() drops the training windows, so the count comes from the
        # fingerprint that it completes.
        model = result.model
        out.print(model.threshold_.describe(), highlight=False)
        _print_cycle_check(model, int(model.fingerprint_.get("n_trained", 0)))
    if not result.complete:
        out.print(
            f"The study stopped early ({result.stop_reason}). Continue it with: "
            f"grindwatch tune --resume --study-name {result.study_name} "
            f"--storage {result.storage}",
            highlight=False,
        )
    elif not result.finalized and result.best_trial is not None:
        if result.parent_run_id and result.model_run_id is None:
            # The worker that finished the last trial has not logged its summary.
            out.print(
                "Another process on this study finished the last trial and "
                "retrains the best one; its model and the study summary appear on "
                "the study's MLflow run below when it is done.",
                highlight=False,
            )
        else:
            out.print(
                "The best trial had already been retrained, by an earlier run or by "
                "another process on this study; this run trained no new model.",
                highlight=False,
            )
    if result.parent_run_id:
        out.print(
            f"MLflow study run {result.parent_run_id} in {result.tracking_uri}",
            highlight=False,
        )
    if output is not None:
        out.print(f"Model bundle saved to {output}", highlight=False)
    elif result.model is not None and result.model_uri is None:
        out.print(
            "The retrained model was not kept, because MLflow tracking is off or "
            "tracking.log_model is false; pass --output FOLDER to save it.",
            highlight=False,
        )
    store = _store_option(result.tracking_uri)
    pending = _pending_registration(result)
    if pending:
        out.print(
            "Score new data once it is registered: grindwatch score --model "
            f"{pending}{store} DATA",
            highlight=False,
        )
    elif result.registered_model:
        out.print(
            "Score new data: grindwatch score --model "
            f"models:/{result.registered_model}@{result.alias}{store} DATA",
            highlight=False,
        )
    elif result.model_uri:
        out.print(
            f"Score new data: grindwatch score --model {result.model_uri}{store} DATA "
            "(pass --register NAME to register the model under an alias)",
            highlight=False,
        )


def _pending_registration(result: Any) -> str | None:
    """Return ``models:/NAME@alias`` that another process is about to register.

    None unless the study is complete, another process concludes it and has not
    logged its summary yet, and the study's settings name a registered model.
    """
    concluding_elsewhere = (
        result.complete
        and not result.finalized
        and result.parent_run_id is not None
        and result.model_run_id is None
    )
    config = result.best_config
    if not concluding_elsewhere or config is None or not config.tune.registered_model:
        return None
    return f"models:/{config.tune.registered_model}@{config.tune.alias}"


def _summary(result: Any) -> dict[str, Any]:
    return {
        "study_name": result.study_name,
        "storage": result.storage,
        "n_trials": result.n_trials,
        "complete": result.complete,
        "finalized": result.finalized,
        "reused_model": result.reused_model,
        "stop_reason": result.stop_reason,
        "best_trial": result.best_trial,
        "best_value": result.best_value,
        "best_params": result.best_params,
        "parent_run_id": result.parent_run_id,
        "tracking_uri": result.tracking_uri,
        "model_run_id": result.model_run_id,
        "model_uri": result.model_uri,
        "registered_model": result.registered_model,
        "registered_version": result.registered_version,
        "alias": result.alias,
        "final_metrics": result.final_metrics,
        "notes": result.notes,
        "trials": _trial_records(result.trials),
    }


# Trial columns that count samples, bands or epochs, besides the searched
# parameters.
_COUNT_COLUMNS = ("window_length", "n_bands", "stopped_step")


def _trial_records(trials: Any) -> list[dict[str, Any]]:
    """Return the trials table as JSON-ready rows, missing values as None.

    A column whose values are missing for some trials (a parameter of one detector
    family) is stored as floats, so whole numbers among the searched parameters,
    window lengths and steps are turned back into ints. Floats keep every digit,
    so a learning rate or objective matches the Optuna study and MLflow.
    """
    # DataFrame.to_json would round every float to 10 decimal places.
    records = _plain(trials.to_dict(orient="records"))
    for record in records:
        for key, value in record.items():
            counted = key.startswith("param.") or key in _COUNT_COLUMNS
            if counted and isinstance(value, float) and value.is_integer():
                record[key] = int(value)
    return records


def tune(
    data: DataArg = None,
    config: ConfigOpt = None,
    table: Annotated[
        bool, typer.Option(help="Rows are process cycles (feature table).")
    ] = False,
    trials: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--trials", "-n", help="Finished trials to reach (default 30)."),
    ] = None,
    timeout: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="Stop starting trials after this many seconds."),
    ] = None,
    jobs: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--jobs", "-j", help="Trials run in parallel threads."),
    ] = None,
    storage: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Optuna storage: SQLAlchemy URL or SQLite file (default ./optuna.db)."
        ),
    ] = None,
    study_name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Study name in the storage (default grindwatch)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the study if it exists (or create it); also adds a worker "
            "to a study that another process runs."
        ),
    ] = False,
    objective: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="recurring_f1 (label-free, default: injected-anomaly AUC "
            "times recurring-anomaly AUC times the F1 of the trial's threshold "
            "at the recurring share's fault rate), injected_auc_specificity "
            "(label-free: injected AUC times the share of clean held-out windows "
            "left unflagged), injected_auc (label-free, AUC alone) or labeled_auc "
            "(labels drive the search)."
        ),
    ] = None,
    labeled: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--eval",
            help="Labeled recordings to report labeled metrics on; never fitted. "
            "Repeat the option for each file or folder.",
        ),
    ] = None,
    labels: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="CSV with columns recording,label for those metrics."),
    ] = None,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--output",
            "-o",
            help="Also save the retrained best model's bundle to this folder.",
        ),
    ] = None,
    register_name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--register", help="Register the best model under this name."),
    ] = None,
    alias: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help=(
                "Alias of the registered version (default champion; on --resume, "
                "the alias that the study stored)."
            ),
        ),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,  # noqa: UP045
    set_: Annotated[
        list[str],
        typer.Option(
            "--set",
            help="Any setting as key=value, e.g. tune.pruner=none.",
        ),
    ] = [],  # noqa: B006
    tracking_uri: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)."
        ),
    ] = None,
    experiment: Annotated[
        Optional[str], typer.Option(help="MLflow experiment name.")  # noqa: UP045
    ] = None,
    track: Annotated[bool, typer.Option(help="Record the study in MLflow.")] = True,
    show: Annotated[
        int, typer.Option(min=0, help="Trials listed in the final table.")
    ] = 10,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Search front end, windows, detector and its settings with Optuna.

    Without labels: each trial is scored on how well it separates synthetic
    anomalies injected into held-out training windows.
    """
    from grindwatch._console import setup_logging
    from grindwatch.config import Config, load_config
    from grindwatch.tuning import tune as tune_pipeline

    setup_logging(verbose)
    _setup_optuna_logging()
    if verbose == 0:
        # Every trial fits a threshold and may warn that it fell back to MAD; the
        # trial's metrics record that, and one warning per trial buries the results.
        logging.getLogger("grindwatch.thresholds").setLevel(logging.ERROR)
    overrides = {
        "data.kind": "table" if table else None,
        "tune.n_trials": trials,
        "tune.timeout": timeout,
        "tune.jobs": jobs,
        "tune.storage": storage,
        "tune.study_name": study_name,
        "tune.objective": objective,
        "tune.registered_model": register_name,
        "tune.alias": alias,
        "seed": seed,
        "tracking.uri": tracking_uri,
        "tracking.experiment": experiment,
        "tracking.enabled": False if not track else None,
    }
    overrides = _with_set(overrides, set_)
    overrides = {key: value for key, value in overrides.items() if value is not None}
    settings = _run(load_config, config) if config is not None else None
    if not data and not resume and not (settings and settings.data.paths):
        _fail("no data given; pass the training recordings, or --resume a study")
    resolved = _run((settings or Config()).with_overrides, overrides)
    _check_register(
        resolved.tune.registered_model or resolved.tracking.registered_model,
        resolved.tracking,
    )
    if output is not None:
        from grindwatch.results import check_output_folder

        # Checked before the study, so a wrong path does not cost the trials.
        _run(check_output_folder, output)
    total = overrides.get("tune.n_trials") or (
        settings.tune.n_trials if settings else 30
    )

    with _trial_bar(not json_output, total) as progress:
        result = _run(
            tune_pipeline,
            data or None,
            settings,
            labeled_data=labeled or None,
            labels=labels,
            resume=resume,
            overrides=overrides,
            on_trial=progress,
        )
    saved = _save_model(result, output) if output is not None else None
    if json_output:
        summary = _summary(result)
        summary["output"] = str(saved) if saved is not None else None
        _echo_json(summary)
    else:
        _report(result, show, saved)
    if result.stop_reason == "failures":
        _fail("too many trials failed in a row; see the errors above", code=1)
    if output is not None and saved is None:
        _fail(
            f"no model saved to {output}: the study has no retrained model yet, "
            "because it stopped before its last trial, every trial was pruned, or "
            "another process is still retraining the best trial. Rerun with "
            "--resume to save the model once there is one",
            code=1,
        )


def _save_model(result: Any, output: Path) -> Path | None:
    """Save the study's retrained model to ``output``, or return None without one.

    A study whose best trial another process retrained has no model in this
    process, so that model is loaded from its MLflow run.
    """
    from grindwatch.cli import _tracking_config
    from grindwatch.pipeline import load_model

    model = result.model
    if model is None and result.model_uri:
        model = _run(
            load_model, result.model_uri, _tracking_config(result.tracking_uri)
        )
    if model is None:
        return None
    return _run(model.save, output)


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to the grindwatch CLI."""
    app.command("tune")(tune)
