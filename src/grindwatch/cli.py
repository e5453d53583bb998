"""The ``grindwatch`` command. Every subcommand calls the public Python API."""

from __future__ import annotations

import errno
import json
import math
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from grindwatch._nouns import item_noun
from grindwatch._version import __version__

app = typer.Typer(
    name="grindwatch",
    help="Find anomalous process cycles in machine-tool sensor recordings, "
    "without labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataArg = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer needs Optional for nargs arguments
    typer.Argument(help="Files, folders or glob patterns of recordings."),
]
ConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="YAML config file.")  # noqa: UP045
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print results as JSON on stdout.")
]
VerboseOpt = Annotated[
    int,
    typer.Option("--verbose", "-v", count=True, help="More log output (-vv: debug)."),
]
TrackingUriOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)."
    ),
]


def _print_error(message: str) -> None:
    """Print ``error: message`` on stderr."""
    from rich.text import Text

    from grindwatch._console import console

    console().print(
        Text.assemble(("error:", "bold red"), f" {message}"), highlight=False
    )


def _fail(message: str, code: int = 2) -> None:
    _print_error(message)
    raise typer.Exit(code)


def _plain(value: Any) -> Any:
    """Return ``value`` with NaN, infinities and missing values as None.

    JSON has no NaN. Python writes it as a bare ``NaN`` token, which
    JavaScript's JSON.parse and other strict parsers reject. pandas fills an
    unlabeled recording's label with NaN, and metrics that need both classes
    are NaN for one class.
    """
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        # A NumPy scalar, such as a float32 score.
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        # pandas' missing values, found by name to leave pandas unimported here.
        return None
    return value


def _echo_json(payload: Any) -> None:
    """Print ``payload`` on stdout as strict JSON (no NaN or Infinity tokens)."""
    typer.echo(json.dumps(_plain(payload), indent=2, default=str, allow_nan=False))


def _parse_set(
    items: list[str], clearable: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Parse ``--set key=value`` items as YAML values.

    ``key=null`` gives None only for the keys in ``clearable``, settings whose
    value may be unset; with_overrides skips None, so callers apply those
    themselves.
    """
    import yaml

    from grindwatch.config import yaml_value

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--set {item!r} needs the form key=value, e.g. windows.length=512")
        try:
            # Read as config files are, so 010 is 10 and on is text.
            parsed = yaml_value(value)
        except yaml.YAMLError:
            # Text YAML cannot parse alone, such as "," or "*", is meant as text.
            parsed = value
        if parsed is None and key.strip() in clearable and value.strip():
            overrides[key.strip()] = None
            continue
        if parsed is None:
            # An empty or null value would be dropped as an option left unset, so
            # the setting would keep its value without a message, typos included.
            _fail(
                f"--set {item!r} has no value; give one, as in windows.length=512, "
                "or leave the setting out to keep its default"
            )
        overrides[key.strip()] = parsed
    return overrides


# The command-line options of train and tune that give one setting each, for
# messages about a --set item that gives the same setting.
_OPTION_FLAGS = {
    "data.kind": "--table",
    "detector.family": "--detector",
    "frontend.kind": "--frontend",
    "windows.length": "--window",
    "windows.hop": "--hop",
    "windows.seconds": "--window-seconds",
    "windows.hop_seconds": "--hop-seconds",
    "data.sample_rate": "--sample-rate",
    "data.channels": "--channels",
    "detector.autoencoder.epochs": "--epochs",
    "threshold.method": "--threshold",
    "aggregate.method": "--aggregate",
    "seed": "--seed",
    "tracking.uri": "--tracking-uri",
    "tracking.experiment": "--experiment",
    "tracking.run_name": "--run-name",
    "tracking.registered_model": "--register",
    "tracking.alias": "--alias",
    "tracking.enabled": "--no-track",
    "tune.n_trials": "--trials",
    "tune.timeout": "--timeout",
    "tune.jobs": "--jobs",
    "tune.storage": "--storage",
    "tune.study_name": "--study-name",
    "tune.objective": "--objective",
    "tune.registered_model": "--register",
    "tune.alias": "--alias",
}


def _with_set(options: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """Add the ``--set`` items to the settings that dedicated options give.

    Exits with an error when a ``--set`` item gives a setting that an option
    also gives (``--detector pca --set detector.family=knn``), directly or inside
    a section (``--set 'windows={length: 128}'``), because one of the two values
    would be dropped without a message.
    """
    from_options = {key: value for key, value in options.items() if value is not None}
    overrides = _parse_set(items)
    for key, value in overrides.items():
        for option_key, option_value in from_options.items():
            from_set = _setting_in(value, key, option_key)
            if from_set is _NOT_SET or from_set == option_value:
                continue
            flag = _OPTION_FLAGS.get(option_key, "a command-line option")
            _fail(
                f"--set {key}={value!r} and {flag} give {option_key} different "
                f"values ({from_set!r} and {option_value!r}); give it once"
            )
    return {**options, **overrides}


# Returned by _setting_in when a --set item does not give the setting. None is a
# value there, because a null from --set would drop the option's value.
_NOT_SET = object()


def _setting_in(value: Any, key: str, setting: str) -> Any:
    """Return the value that ``--set key=value`` gives ``setting``, or _NOT_SET.

    ``key`` is the setting itself, or a section that contains it when ``value``
    is a mapping.
    """
    if key == setting:
        return value
    if not setting.startswith(f"{key}."):
        return _NOT_SET
    for part in setting[len(key) + 1 :].split("."):
        if not isinstance(value, dict) or part not in value:
            return _NOT_SET
        value = value[part]
    return value


def _parse_channels(text: str | None) -> list[str] | None:
    """Split ``--channels`` into names; an empty list or name is an error."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not any(names):
        # Without this check the option would be dropped as unset, so every
        # channel would be used although the user meant to choose some.
        _fail(
            f"--channels {text!r} names no channel; give comma-separated names "
            "such as --channels vib_x,current, or leave the option out to use "
            "all channels"
        )
    if not all(names):
        _fail(
            f"--channels {text!r} contains an empty name (two commas in a row, or "
            "one at the start or end); remove the extra comma"
        )
    return names


def _build_config(config_path: Path | None, overrides: dict[str, Any]):  # noqa: ANN202
    from grindwatch.config import load_config

    return load_config(config_path).with_overrides(overrides)


def _run(function, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    """Call into the library, turning expected errors into one-line messages."""
    from grindwatch.exceptions import (
        ConfigError,
        InputError,
        StorageError,
        TrackingError,
    )

    try:
        return function(*args, **kwargs)
    except (InputError, ConfigError, StorageError, TrackingError) as error:
        _fail(str(error))
    except OSError as error:
        _fail(_describe_os_error(error))


def _describe_os_error(error: OSError) -> str:
    """Describe a failed file operation (no permission, disk full) in one line.

    Other OSErrors, such as a refused network connection, keep their message.
    """
    if not error.filename and error.errno != errno.ENOSPC:
        return str(error)
    reason = error.strerror or str(error)
    where = f"{error.filename}: " if error.filename else ""
    return (
        f"{where}{reason}; check that the path exists, that you may write "
        "there and that the disk has space"
    )


def _check_register(name: str | None, tracking) -> None:  # noqa: ANN001
    """Exit with an error when the model to register would not be logged to MLflow."""
    if not name:
        return
    if not tracking.enabled:
        _fail(
            f"--register {name} needs MLflow tracking, which is off (--no-track or "
            "tracking.enabled: false); drop one of them, and save the model with "
            "--output FOLDER instead"
        )
    if not tracking.log_model:
        _fail(
            f"--register {name} needs the model logged to MLflow, but "
            "tracking.log_model is false; set it to true or drop --register"
        )


def _tracking_config(tracking_uri: str | None):  # noqa: ANN202
    """Build default settings whose ``tracking.uri`` is ``tracking_uri``."""
    from grindwatch.config import Config

    return _run(Config().with_overrides, {"tracking.uri": tracking_uri})


def _load_model(location: str, tracking_uri: str | None):  # noqa: ANN202
    """Load a model for a command with a ``--tracking-uri`` option.

    MLflow model URIs are looked up in ``tracking_uri``, resolved as ``train``
    resolves it. A given ``tracking_uri`` also replaces the store in the model's
    config, so evaluations and reports are logged there. Without it they go to
    the store named in the model's config, else MLFLOW_TRACKING_URI or
    ./mlflow.db.
    """
    from grindwatch.pipeline import load_model

    model = _run(load_model, location, _tracking_config(tracking_uri))
    if tracking_uri is not None:
        # A store named on the command line is where the user wants the runs,
        # also for a model trained with --no-track.
        model.config = model.config.with_overrides(
            {"tracking.uri": tracking_uri, "tracking.enabled": True}
        )
    return model


def _print_untracked() -> None:
    """Print that a run requested with --track was not logged, and why."""
    from grindwatch._console import console

    console().print(
        "Not logged to MLflow: the model was trained with tracking off "
        "(tracking.enabled: false). Pass --tracking-uri URI to log this run there.",
        highlight=False,
    )


# Reading options that may differ between training and scoring: how files are
# parsed and how messy input is handled. The rest of data.* shapes the features.
_SCORING_DATA_SETTINGS = (
    "clipping_policy",
    "chunk_samples",
    "constant_policy",
    "decimal",
    "delimiter",
    "encoding",
    "hdf5_key",
    "id_column",
    "label_columns",
    "mat_variable",
    "match",
    "nan_policy",
    "raw_channels",
    "raw_dtype",
    "resample",
    "sample_rate",
    "strict",
    "tdms_group",
    "timezone",
)

ReadSetOpt = Annotated[
    list[str],
    typer.Option(
        "--set",
        help="A reading option as data.NAME=value, e.g. data.nan_policy=interpolate; "
        "data.NAME=null unsets an optional one, e.g. data.chunk_samples=null scores "
        "files whole. The model's other settings are fixed.",
    ),
]


def _with_reading_options(model, items: list[str]):  # noqa: ANN001, ANN202
    """Apply ``--set data.NAME=value`` reading options to a loaded model's config."""
    from grindwatch.config import Config, DataConfig, validate_config

    allowed = {f"data.{name}" for name in _SCORING_DATA_SETTINGS}
    # Optional settings, such as data.chunk_samples, can be unset with
    # data.NAME=null: a model trained with chunks then scores files whole.
    clearable = frozenset(
        key
        for key in allowed
        if DataConfig.model_fields[key.split(".")[1]].default is None
    )
    overrides = _parse_set(items, clearable)
    # Empty mappings such as data.match leave no key in flat(), so add them.
    known = set(Config().flat()) | allowed | {"data.stream_modes"}
    unknown = sorted(key for key in overrides if key not in known)
    if unknown:
        _fail(
            f"--set {', '.join(unknown)}: unknown setting; reading options that can "
            f"change when scoring: {sorted(allowed)}"
        )
    fixed = sorted(key for key in overrides if key not in allowed)
    if fixed:
        _fail(
            f"--set {', '.join(fixed)} cannot change when scoring: the model was "
            f"trained with them. Settings that can: {sorted(allowed)}"
        )
    if overrides:
        model.config = _run(model.config.with_overrides, overrides)
    cleared = [key for key, value in overrides.items() if value is None]
    if cleared:
        tree = model.config.model_dump()
        for key in cleared:
            tree["data"][key.split(".")[1]] = None
        model.config = _run(validate_config, tree, "--set")
    return model


@app.command()
def train(
    data: DataArg = None,
    config: ConfigOpt = None,
    table: Annotated[
        bool, typer.Option(help="Rows are process cycles (feature table).")
    ] = False,
    detector: Annotated[
        Optional[str], typer.Option(help="autoencoder, iforest, pca or knn.")
    ] = None,  # noqa: UP045, E501
    frontend: Annotated[
        Optional[str], typer.Option(help="raw, spectrum or features.")
    ] = None,  # noqa: UP045, E501
    window: Annotated[
        Optional[int], typer.Option(min=1, help="Window length in samples.")
    ] = None,  # noqa: UP045
    hop: Annotated[
        Optional[int], typer.Option(min=1, help="Hop between windows in samples.")
    ] = None,  # noqa: UP045
    window_seconds: Annotated[
        Optional[float],
        typer.Option(
            help="Window length in seconds, turned into samples at the data's rate."
        ),
    ] = None,  # noqa: UP045
    hop_seconds: Annotated[
        Optional[float], typer.Option(help="Hop between windows in seconds.")
    ] = None,  # noqa: UP045
    sample_rate: Annotated[
        Optional[float],
        typer.Option(help="Samples per second, for files without time."),
    ] = None,  # noqa: UP045, E501
    channels: Annotated[
        Optional[str], typer.Option(help="Comma-separated channel names to use.")
    ] = None,  # noqa: UP045, E501
    epochs: Annotated[
        Optional[int], typer.Option(min=1, help="Autoencoder epochs (maximum).")
    ] = None,  # noqa: UP045
    threshold: Annotated[
        Optional[str], typer.Option(help="gmm, percentile or mad.")
    ] = None,  # noqa: UP045
    aggregate: Annotated[
        Optional[str], typer.Option(help="Recording score: max, mean or quantile.")
    ] = None,  # noqa: UP045, E501
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,  # noqa: UP045
    set_: Annotated[
        list[str],
        typer.Option(
            "--set",
            help="Any setting as key=value, e.g. detector.autoencoder.loss=mae.",
        ),
    ] = [],  # noqa: B006, E501
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Also save the model bundle to this folder."
        ),
    ] = None,  # noqa: UP045, E501
    tracking_uri: TrackingUriOpt = None,
    experiment: Annotated[
        Optional[str], typer.Option(help="MLflow experiment name.")
    ] = None,  # noqa: UP045
    run_name: Annotated[Optional[str], typer.Option(help="MLflow run name.")] = None,  # noqa: UP045
    register: Annotated[
        Optional[str], typer.Option(help="Register the model under this name.")
    ] = None,  # noqa: UP045, E501
    alias: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Point this alias of the --register model at the new version, "
            "for URIs such as models:/NAME@champion."
        ),
    ] = None,
    track: Annotated[bool, typer.Option(help="Record the run in MLflow.")] = True,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Learn normal behaviour from unlabeled recordings and fit the threshold."""
    from grindwatch._console import progress_bar, setup_logging
    from grindwatch.pipeline import train as train_model

    setup_logging(verbose)
    for samples, seconds, name in (
        (window, window_seconds, "window"),
        (hop, hop_seconds, "hop"),
    ):
        if samples is not None and seconds is not None:
            _fail(f"--{name} and --{name}-seconds are both given; give one of them")
    overrides = {
        "data.kind": "table" if table else None,
        "detector.family": detector,
        "frontend.kind": frontend,
        "windows.length": window,
        "windows.hop": hop,
        "windows.seconds": window_seconds,
        "windows.hop_seconds": hop_seconds,
        "data.sample_rate": sample_rate,
        "data.channels": _parse_channels(channels),
        "detector.autoencoder.epochs": epochs,
        "threshold.method": threshold,
        "aggregate.method": aggregate,
        "seed": seed,
        "tracking.uri": tracking_uri,
        "tracking.experiment": experiment,
        "tracking.run_name": run_name,
        "tracking.registered_model": register,
        "tracking.alias": alias,
        "tracking.enabled": False if not track else None,
    }
    overrides = _with_set(overrides, set_)
    settings = _run(_build_config, config, overrides)
    _check_register(settings.tracking.registered_model, settings.tracking)
    if output is not None:
        from grindwatch.results import check_output_folder

        # Checked before training, so a wrong path does not cost the model.
        _run(check_output_folder, output)
    with progress_bar(not json_output) as progress:
        result = _run(
            train_model, data or None, settings, output=output, progress=progress
        )
    _report_training(result, json_output)


def _report_training(result, json_output: bool) -> None:  # noqa: ANN001
    from grindwatch._console import console

    model = result.model
    # With tracking.log_model off, the run contains no model to load by URI.
    logged = bool(result.run_id) and model.config.tracking.log_model
    summary = {
        "run_id": result.run_id,
        "tracking_uri": result.tracking_uri,
        "model_uri": f"runs:/{result.run_id}/model" if logged else None,
        "output": str(result.output) if result.output else None,
        "n_recordings": result.n_trained,
        "n_skipped": len(result.recordings.skipped),
        "skipped": [
            {"path": str(s.path), "reason": s.reason} for s in result.recordings.skipped
        ],
        "threshold": model.threshold_.to_dict(),
        "threshold_description": model.threshold_.describe(),
        "cycle_check": model.describe()["cycle_check"],
        "training": result.training.summary(),
    }
    if json_output:
        _echo_json(summary)
        return
    out = console()
    skipped = result.recordings.skipped
    if model.kind_ == "table":
        # One row is one recording and its only window.
        trained_on = (
            f"{result.n_trained} row{'' if result.n_trained == 1 else 's'} "
            f"({len(model.channels_)} features)"
        )
    else:
        trained_on = (
            f"{result.n_trained} recording{'' if result.n_trained == 1 else 's'} "
            f"({len(model.training_scores_)} windows, channels: "
            f"{len(model.channels_)})"
        )
    out.print(
        f"Trained {model.config.detector.family} on {trained_on}"
        + (f"; skipped {len(skipped)}, listed below." if skipped else "."),
        highlight=False,
    )
    for item in skipped:
        out.print(f"  skipped {item.path}: {item.reason}", highlight=False)
    out.print(model.threshold_.describe(), highlight=False)
    _print_cycle_check(model, result.n_trained)
    trained = result.training.summary()
    if model.kind_ == "signals":
        # The cycle threshold's share above counts each training recording scored
        # against the others, while this count scores it against all of them, as
        # score does. So the two can differ, and the sentence names what it counts.
        rule = "window or cycle score" if model.cycle_check is not None else "score"
        n_flagged = trained["n_flagged_recordings"]
        verb = "is" if n_flagged == 1 else "are"
        out.print(
            f"Scored with this model, {n_flagged} of the "
            f"{trained['n_recordings']} training recordings {verb} flagged ({rule} "
            "above its threshold).",
            highlight=False,
        )
    if result.run_id:
        out.print(
            f"MLflow run {result.run_id} in {result.tracking_uri}", highlight=False
        )
    if logged:
        out.print(
            "Score new data: grindwatch score --model "
            f"runs:/{result.run_id}/model{_store_option(result.tracking_uri)} DATA",
            highlight=False,
        )
    if result.output:
        out.print(f"Model bundle saved to {result.output}", highlight=False)


def _print_cycle_check(model, n_trained: int) -> None:  # noqa: ANN001
    from grindwatch._console import console

    settings = model.config.cycle
    if model.kind_ != "signals" or not settings.enabled:
        return
    if model.cycle_check is not None:
        text = f"Cycle check: {model.cycle_check.describe()}"
    else:
        recordings = "recording" if n_trained == 1 else "recordings"
        text = (
            f"Cycle check off: {n_trained} training {recordings}, fewer than "
            f"cycle.min_recordings={settings.min_recordings}, so recordings are "
            "judged by their windows only."
        )
    console().print(text, highlight=False)


def _store_option(tracking_uri: str | None) -> str:
    """Return `` --tracking-uri URI`` unless ``tracking_uri`` is ./mlflow.db.

    A printed score command without the option finds only runs in ./mlflow.db
    or in MLFLOW_TRACKING_URI. The variable is not compared, because
    ``mlflow.set_tracking_uri`` (MLflow 3.17) sets it in this process, so the
    user's shell may lack it.
    """
    from grindwatch.tracking import DEFAULT_DB

    if tracking_uri is None or tracking_uri == f"sqlite:///{Path.cwd() / DEFAULT_DB}":
        return ""
    return f" --tracking-uri {shlex.quote(tracking_uri)}"


def _signal_rule(model) -> str | None:  # noqa: ANN001
    """Return the aggregation rule of a signal model, or None for feature tables,
    where a recording is one row and its score is that row's."""
    return model.aggregate_rule() if model.kind_ == "signals" else None


def _digits_apart(scores, threshold: float) -> int:  # noqa: ANN001
    """Return the significant digits, 4 or more, that print every score apart
    from the threshold, so that no flagged score reads equal to it."""
    for digits in range(4, 10):
        if all(
            score == threshold or f"{score:.{digits}g}" != f"{threshold:.{digits}g}"
            for score in scores
        ):
            return digits
    return 10


def _top_channel_cell(row, threshold: float, cycle: bool) -> str:  # noqa: ANN001
    """Name the channel behind a recording's flag, or nothing for a normal one.

    When only the cycle check flagged the recording, the windows' top channel
    comes from windows below the threshold and may be another channel, so the
    cycle check's channel is named instead ("length" for the recording length).
    """
    if not row.flag:
        return ""
    if cycle and row.cycle_flag and not row.score > threshold:
        channel = row.cycle_channel if isinstance(row.cycle_channel, str) else "length"
        return f"{channel} (cycle check)"
    if isinstance(row.top_channel, str):
        return f"{row.top_channel} ({row.top_channel_share:.0%})"
    return ""


def _print_recordings(  # noqa: ANN202
    frame,  # noqa: ANN001
    threshold: float,
    limit: int,
    more_hint: str = "use --output to save all",
    cycle_threshold: float | None = None,
    rule: str | None = None,
):
    import pandas as pd
    from rich.table import Table
    from rich.text import Text

    from grindwatch._console import console

    # rule is None for a feature table, whose rows are scored as one window each.
    items = "rows" if rule is None else "recordings"
    cycle = "cycle_score" in frame and cycle_threshold is not None
    # With the cycle check, a recording can be flagged with a low window score:
    # flagged ones come first.
    order = ["flag", "score"] if cycle else ["score"]
    shown = frame.sort_values(order, ascending=False).head(limit)
    digits = _digits_apart(shown["score"].to_numpy(), threshold)
    if cycle_threshold is None:
        title = f"{items.capitalize()} by score (threshold {threshold:.{digits}g})"
    else:
        cycle_scores = shown["cycle_score"].to_numpy() if cycle else []
        cycle_digits = _digits_apart(cycle_scores, cycle_threshold)
        title = (
            f"{items.capitalize()}, flagged first, by score "
            f"(threshold {threshold:.{digits}g}; "
            f"cycle threshold {cycle_threshold:.{cycle_digits}g})"
        )
    caption = None if rule is None else f"A recording's score is {rule}."
    table = Table(title=title, caption=caption)
    # The header names the item, but the frame's column stays "recording".
    columns = [items[:-1], "score"]
    if rule is not None:
        columns.append("flagged windows")
    columns += ["cycle score", "verdict"] if cycle else ["verdict"]
    # The channel (a table's feature) that departs most, named for flagged rows.
    top = "top_channel" in frame and "top_channel_share" in frame
    if top:
        columns.append("top channel" if rule is not None else "top feature")
    columns.append("label")
    text_columns = ("recording", "row", "top channel", "top feature")
    for column in columns:
        if column != "label" or "label" in frame:
            table.add_column(
                column, justify="left" if column in text_columns else "right"
            )
    for row in shown.itertuples():
        cells = [row.recording, f"{row.score:.{digits}g}"]
        if rule is not None:
            cells.append(f"{row.flagged_windows}/{row.n_windows}")
        if cycle:
            cycle_cell = f"{row.cycle_score:.{cycle_digits}g}"
            cells.append(cycle_cell + (" *" if row.cycle_flag else ""))
        cells.append(Text("ANOMALOUS", style="bold red") if row.flag else "normal")
        if top:
            cells.append(_top_channel_cell(row, threshold, cycle))
        if "label" in frame:
            # Recordings without a label (a folder that names no class, a file
            # without a label column) come as NaN or <NA> next to labeled ones.
            cells.append(
                ""
                if pd.isna(row.label) or int(row.label) < 0
                else ("anomalous" if int(row.label) else "normal")
            )
        table.add_row(*cells)
    console().print(table)
    if cycle and shown["cycle_flag"].any():
        console().print(
            "* flagged by the cycle check, which compares the whole recording with "
            "the training recordings:",
            highlight=False,
        )
        for row in shown[shown["cycle_flag"]].itertuples():
            console().print(f"  {row.recording}: {row.cycle_reason}", highlight=False)
    if len(frame) > limit:
        console().print(
            f"... {len(frame) - limit} more {items}; {more_hint}", highlight=False
        )


@app.command()
def score(
    data: DataArg = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Model folder or MLflow model URI (runs:/ID/model, "
            "models:/NAME@alias).",
        ),
    ] = ...,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Write recording scores here (.csv or .parquet); window scores "
            "go beside it as NAME.windows.csv (NAME.windows.parquet for Parquet).",
        ),
    ] = None,  # noqa: UP045
    strict: Annotated[
        bool, typer.Option(help="Stop at the first file that cannot be scored.")
    ] = False,  # noqa: E501
    show: Annotated[
        int, typer.Option(min=0, help="Recordings listed in the summary table.")
    ] = 20,
    set_: ReadSetOpt = [],  # noqa: B006
    tracking_uri: TrackingUriOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Score recordings with a trained model and flag anomalous ones."""
    from grindwatch._console import progress_bar, setup_logging
    from grindwatch.io import list_files
    from grindwatch.pipeline import score as score_data
    from grindwatch.results import (
        check_not_input,
        check_table_path,
        window_table_path,
        write_table,
    )

    setup_logging(verbose)
    if not data:
        _fail("no data given; pass the files or folders to score")
    if output is not None:
        # Both table paths are checked before scoring, so that a bad window
        # table path fails before the recording table replaces earlier results.
        _run(check_table_path, output)
        _run(check_table_path, window_table_path(output))
        _run(check_not_input, output, _run(list_files, data))
    loaded = _with_reading_options(_load_model(model, tracking_uri), set_)
    with progress_bar(not json_output) as progress:
        result = _run(
            score_data, loaded, data, progress=progress, strict=strict or None
        )
    if output is not None:
        _run(write_table, result.recordings, output)
        _run(write_table, result.windows, window_table_path(output))
    if json_output:
        payload = {
            "summary": result.summary(),
            "recordings": result.recordings.to_dict(orient="records"),
            # The files written, as the human output names them.
            "output": str(output) if output is not None else None,
            "windows_output": (
                str(window_table_path(output)) if output is not None else None
            ),
        }
        _echo_json(payload)
        return
    _print_recordings(
        result.recordings,
        result.threshold,
        show,
        f"all are in {output}" if output is not None else "use --output to save all",
        result.cycle_threshold,
        _signal_rule(loaded),
    )
    summary = result.summary()
    from grindwatch._console import console

    by_cycle = (
        f" ({summary['n_cycle_flagged_recordings']} by the cycle check)"
        if "n_cycle_flagged_recordings" in summary
        else ""
    )
    windows = (
        f" and {summary['n_flagged_windows']} of {summary['n_windows']} windows"
        if loaded.kind_ == "signals"
        else ""
    )
    # "1 of 1 row", and "0 of 2 rows": the noun agrees with the total.
    items = item_noun(loaded.kind_, summary["n_recordings"])
    console().print(
        f"{summary['n_flagged_recordings']} of {summary['n_recordings']} "
        f"{items}{by_cycle}{windows} flagged.",
        highlight=False,
    )
    for skipped in result.skipped:
        console().print(
            f"  skipped {skipped['path']}: {skipped['reason']}", highlight=False
        )
    if output is not None:
        console().print(
            f"Wrote {output} and {window_table_path(output)}", highlight=False
        )


def _count(n: int, singular: str, plural: str) -> str:
    """Return ``n`` with the singular or plural noun, e.g. "1 recording"."""
    return f"{n} {singular if n == 1 else plural}"


def _describe_label_sources(sources: dict[str, dict[str, int]]) -> str:
    """E.g. ``folder broken: 5 anomalous; folder healthy: 5 normal``."""
    parts = []
    for source, counts in sources.items():
        found = [f"{n} {kind}" for kind, n in counts.items() if n]
        parts.append(f"{source or 'unknown'}: {', '.join(found)}")
    listed = parts[:8]
    if len(parts) > len(listed):
        listed.append(f"{len(parts) - len(listed)} more sources")
    return "; ".join(listed)


def _print_metrics(
    result,  # noqa: ANN001
    labels: Path | None = None,
    feature_table: bool = False,
) -> None:
    from rich.table import Table

    from grindwatch._console import console

    items = "rows" if feature_table else "recordings"
    table = Table(title="Evaluation at the model's own threshold")
    table.add_column("level", no_wrap=True, min_width=10)
    for name in ("AUC-ROC", "AUC-PR", "prec.", "recall", "F1", "anom.", "flagged", "n"):
        table.add_column(name, justify="right")
    if feature_table:
        # A row is one recording and its only window, so a windows level would
        # only repeat the same metrics.
        levels = [("rows", result.recordings)]
    else:
        levels = [("windows", result.windows), ("recordings", result.recordings)]
    for level, metrics in levels:
        table.add_row(
            level,
            *(
                f"{metrics[k]:.3f}"
                for k in ("auc_roc", "auc_pr", "precision", "recall", "f1")
            ),
            str(metrics["n_anomalous"]),
            str(metrics["n_flagged"]),
            str(metrics["n"]),
        )
    console().print(table)
    out = console()
    sources = result.label_sources()
    if sources:
        out.print(f"Labels: {_describe_label_sources(sources)}.", highlight=False)
    if result.trained_on:
        n_trained_on = len(result.trained_on)
        if feature_table:
            seen = "is a row" if n_trained_on == 1 else "are rows"
        else:
            seen = "is a file" if n_trained_on == 1 else "are files"
        out.print(
            f"{n_trained_on} of the labeled {items} {seen} the model was trained "
            f"on (first: {result.trained_on[0]}), so these metrics are "
            f"optimistic: evaluate on {items} left out of training.",
            highlight=False,
        )
    if result.window_labels == "recordings":
        out.print(
            "Window labels are their recordings' labels (no per-sample labels), so "
            "every window of an anomalous recording counts as anomalous, also "
            "where the fault is absent: window recall is low when a fault spans "
            "part of a cycle. Judge cycles by the recordings row, or label the "
            "anomalous samples with a label column.",
            highlight=False,
        )
    if result.unlabeled:
        listed = ", ".join(result.unlabeled[:5])
        more = (
            f" and {len(result.unlabeled) - 5} more"
            if len(result.unlabeled) > 5
            else ""
        )
        if labels is not None:
            # A labels file replaces folder and column labels, so only it can help.
            fix = f"Add them to {labels}."
        else:
            fix = (
                "Label them with --labels FILE, a label column, or class-named "
                "folders (OK/NOK, good/bad, healthy/broken)."
            )
        out.print(
            _count(
                len(result.unlabeled),
                f"{items[:-1]} carries no label and is",
                f"{items} carry no label and are",
            )
            + f" left out of the metrics: {listed}{more}. {fix}",
            highlight=False,
        )
    if result.scored.cycle_threshold is not None:
        out.print(
            "AUC-ROC and AUC-PR rank recordings by their window score only; the "
            "cycle check counts in the verdicts, so in precision, recall and F1.",
            highlight=False,
        )
    recordings = result.recordings
    if recordings["n"] and recordings["n_anomalous"] in (0, recordings["n"]):
        present = "normal" if recordings["n_anomalous"] == 0 else "anomalous"
        out.print(
            f"AUC-ROC and AUC-PR need both classes; the labeled {items} are all "
            f"{present}.",
            highlight=False,
        )
    skipped = result.skipped
    if not skipped:
        return
    counts = result.skipped_counts()
    entries = _count(len(skipped), "recording or file", "recordings or files")
    console().print(
        f"Not evaluated: {entries} ({counts['normal']} "
        f"normal, {counts['anomalous']} anomalous, {counts['unlabeled']} without "
        "a label):",
        highlight=False,
    )
    names = {0: "normal", 1: "anomalous", None: "no label"}
    for item in skipped:
        console().print(
            f"  skipped {item['path']} ({names[item['label']]}): {item['reason']}",
            highlight=False,
        )


@app.command()
def evaluate(
    data: DataArg = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model folder or MLflow model URI.")
    ] = ...,  # noqa: E501
    labels: Annotated[
        Optional[Path],
        typer.Option(help="CSV with columns recording,label (1/0 or OK/NOK...)."),
    ] = None,  # noqa: UP045, E501
    track: Annotated[bool, typer.Option(help="Record the metrics in MLflow.")] = True,
    set_: ReadSetOpt = [],  # noqa: B006
    tracking_uri: TrackingUriOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Compare scores with labels: AUC-ROC, AUC-PR, precision, recall and F1."""
    from grindwatch._console import progress_bar, setup_logging
    from grindwatch.evaluate import evaluate as evaluate_data

    setup_logging(verbose)
    if not data:
        _fail("no data given; pass the labeled files or folders")
    loaded = _with_reading_options(_load_model(model, tracking_uri), set_)
    with progress_bar(not json_output) as progress:
        result = _run(
            evaluate_data, loaded, data, labels=labels, track=track, progress=progress
        )
    run_id = getattr(result, "run_id", None)
    if json_output:
        from grindwatch.tracking import resolve_tracking_uri

        _echo_json(
            {
                "windows": result.windows,
                "recordings": result.recordings,
                "unlabeled": result.unlabeled,
                "window_labels": result.window_labels,
                "label_sources": result.label_sources(),
                "trained_on": result.trained_on,
                "not_evaluated": result.skipped_counts(),
                "skipped": result.skipped,
                "run_id": run_id,
                "tracking_uri": resolve_tracking_uri(loaded.config) if run_id else None,
                "threshold": result.scored.threshold,
                "cycle_threshold": result.scored.cycle_threshold,
                "scores": result.scored.recordings.to_dict(orient="records"),
            }
        )
        return
    _print_recordings(
        result.scored.recordings,
        result.scored.threshold,
        20,
        "grindwatch score --output FILE saves them all",
        result.scored.cycle_threshold,
        _signal_rule(loaded),
    )
    _print_metrics(result, labels, feature_table=loaded.kind_ == "table")
    if run_id:
        from grindwatch._console import console
        from grindwatch.tracking import resolve_tracking_uri

        console().print(
            f"Logged to MLflow run {run_id} in {resolve_tracking_uri(loaded.config)}",
            highlight=False,
        )
    elif track and not loaded.config.tracking.enabled:
        _print_untracked()


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Folder for the MLflow store and the model.")
    ] = Path("grindwatch-demo"),  # noqa: E501
    verbose: VerboseOpt = 0,
) -> None:
    """Train and evaluate on the bundled CNC mill recordings (CC0)."""
    from grindwatch._console import console, progress_bar, setup_logging
    from grindwatch.demo import run_demo

    setup_logging(verbose)
    with progress_bar() as progress:
        outcome = _run(run_demo, workdir, progress=progress)
    out = console()
    out.print(outcome.description, highlight=False)
    _print_recordings(
        outcome.evaluation.scored.recordings,
        outcome.evaluation.scored.threshold,
        20,
        "grindwatch score --output FILE saves them all",
        outcome.evaluation.scored.cycle_threshold,
        _signal_rule(outcome.training.model),
    )
    _print_metrics(outcome.evaluation)
    out.print(outcome.training.model.threshold_.describe(), highlight=False)
    _print_cycle_check(outcome.training.model, outcome.training.n_trained)
    out.print(f"MLflow store: {outcome.training.tracking_uri}", highlight=False)
    # Quoted, so that the command runs as pasted when the path has a space.
    store = shlex.quote(outcome.training.tracking_uri)
    out.print(f"Browse it:    mlflow ui --backend-store-uri {store}", highlight=False)
    out.print(f"Model bundle: {outcome.training.output}", highlight=False)


@app.command("config")
def show_config(config: ConfigOpt = None) -> None:
    """Print the resolved configuration as YAML (defaults when no file is given)."""
    settings = _run(_build_config, config, {})
    typer.echo(settings.to_yaml())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"grindwatch {__version__}")
        raise typer.Exit()


# MLflow HTTP client settings that the CLI sets unless the environment sets them.
# MLflow 3.17's own defaults (7 retries, backoff factor 2, 120 s per request)
# keep a call to a stopped tracking server waiting for about 4 minutes, which
# makes train and tune look hung. With these, a call to a refused port fails
# after 3 attempts, in about 3 s. A server that does not respond at all costs up
# to 3 x 60 s per call. The 60 s leave time to upload a model over a slow link.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


def _set_mlflow_http_defaults() -> None:
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version."
        ),
    ] = False,  # noqa: E501
) -> None:
    _set_mlflow_http_defaults()


# Modules that add subcommands: each defines register(app). They import their heavy
# dependencies inside the command functions, so --help stays fast.
_EXTENSIONS: tuple[str, ...] = (
    "grindwatch.cli_serve",
    "grindwatch.cli_report",
    "grindwatch.cli_tune",
    "grindwatch.cli_spark",
)


def _register_extensions() -> None:
    import importlib

    for name in _EXTENSIONS:
        importlib.import_module(name).register(app)


def _terminate(signum: int, frame) -> None:  # noqa: ANN001
    # Turn SIGTERM into KeyboardInterrupt so open MLflow runs are marked FAILED.
    raise KeyboardInterrupt(f"signal {signum}")


def _interrupted(error: BaseException) -> bool:
    """Return whether ``error`` comes from a KeyboardInterrupt (Ctrl-C, SIGTERM).

    Typer turns KeyboardInterrupt into exit code 130 without a message, so the
    interrupt is found in the exception's chain.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        if current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    return False


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    _register_extensions()
    try:
        app()
    except SystemExit as done:
        if done.code == 130 and _interrupted(done):
            _print_error("interrupted")
        raise
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except OSError as error:
        # Errors of file operations outside _run.
        _print_error(_describe_os_error(error))
        sys.exit(2)


if __name__ == "__main__":
    main()
