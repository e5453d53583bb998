"""Tune the whole pipeline with an Optuna study, label-free, tracked in MLflow.

``tune`` opens (or resumes) a study in an Optuna storage and runs trials until
the study has ``tune.n_trials`` finished ones (see ``grindwatch.trial_runner``).
It then retrains the best trial's variant on all training recordings and
registers it in the MLflow model registry under ``tune.registered_model`` with the
alias ``tune.alias``. Last, it logs a summary on the study's MLflow run (see
``grindwatch.tuning_results``).

The study keeps its configuration, data paths, data fingerprint and MLflow run
id as user attributes, so ``tune(resume=True)`` continues it with the same
settings and data: only
``tune.n_trials``, ``tune.timeout``, ``tune.jobs``, ``tune.registered_model`` and
``tune.alias`` may change on resume.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grindwatch._locks import sqlite_path, sqlite_setup_lock
from grindwatch.config import Config, as_config, validate_config
from grindwatch.exceptions import ConfigError
from grindwatch.io import Recording, RecordingSet
from grindwatch.io.dataset import paths_or_raise
from grindwatch.trial_runner import CONFIG_ATTR, TrialEvent, TrialRunner
from grindwatch.tuning_results import TuneResult, close_incomplete, conclude

if TYPE_CHECKING:
    import optuna

    from grindwatch.objective import Holdout


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
# Resumable settings that apply to the whole study, so a worker that sets them
# stores them in the study. The worker that concludes the study registers the
# model under the stored name and alias, whichever worker requested them.
SHARED_SETTINGS = frozenset({"tune.n_trials", "tune.registered_model", "tune.alias"})
# Settings that locate the study and its runs; on resume the stored ones are used.
LOCATION_SETTINGS = frozenset(
    {"tune.storage", "tune.study_name", "tracking.uri", "tracking.experiment"}
)
# How long a process that joins a new study waits for its creator to store the
# configuration and the MLflow run id.
JOIN_WAIT_S = 60.0

_CONFIG_ATTR = CONFIG_ATTR
_LABELED_ATTR = "grindwatch.labeled_data"
_LABELS_ATTR = "grindwatch.labels"
_TRACKING_ATTR = "grindwatch.tracking_uri"
_PARENT_ATTR = "grindwatch.mlflow_parent_run_id"
_DATA_ATTR = "grindwatch.data_sha256"
# The fingerprint that earlier versions stored for recordings without files.
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Set by the creator once it has queued the configured pipeline, or decided not to.
_BASELINE_ATTR = "grindwatch.baseline_decided"


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


# Storage and study -----------------------------------------------------------------


def _storage(url: str):  # noqa: ANN202 - an optuna RDBStorage
    from grindwatch.study_storage import rdb_storage

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Wait up to a minute for another process's write instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
    # Server databases get Optuna heartbeats and retries of stale trials, so that
    # workers on other hosts find a dead worker's trial (grindwatch.study_storage).
    with sqlite_setup_lock(url), _storage_errors(url):
        return rdb_storage(url, engine_kwargs)


@contextlib.contextmanager
def _storage_errors(url: str) -> Iterator[None]:
    """Raise ConfigError, naming the storage, when its database cannot be opened.

    SQLAlchemy raises OperationalError for an unreachable server, a missing
    database or a rejected login, and ArgumentError or NoSuchModuleError for a
    malformed URL or an unknown dialect. Optuna raises ImportError when the URL's
    driver is not installed, and StorageInternalError when it cannot write the
    study, as in a read-only database.
    """
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    try:
        yield
    except StorageInternalError as error:
        cause = error.__cause__ or error
        cause = getattr(cause, "orig", None) or cause
        reason = " ".join(str(cause).split())[:600].rstrip(". ")
        raise ConfigError(
            f"opening the Optuna storage {_hide_password(url)} failed, because "
            f"writing to it failed: {reason}. A study stores every trial in its "
            "storage, so check that this user may write to the database and that "
            "it is not opened read-only (mode=ro)"
        ) from None
    except (OperationalError, ArgumentError, NoSuchModuleError, ImportError) as error:
        cause = getattr(error, "orig", None) or error
        reason = " ".join(str(cause).split())[:600].rstrip(". ")
        if not reason.endswith(("?", "!")):
            reason += "."
        if url.startswith(("postgres://", "postgres+")):
            # SQLAlchemy 1.4 dropped the postgres:// alias that Heroku and
            # libpq-style tools still write.
            reason += (
                " Start the URL with postgresql+psycopg://, because SQLAlchemy "
                "names the dialect postgresql, not postgres."
            )
        raise ConfigError(
            f"opening the Optuna storage {_hide_password(url)} failed: {reason} "
            "Check the host, port, database name, user and password in --storage "
            "(or tune.storage and ~/.pgpass), that the database exists, that its "
            "server accepts connections from this host and that the URL's driver "
            "is installed (postgresql+psycopg needs the postgres extra)"
        ) from None


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
    with _storage_errors(storage_url):
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
                    f"study {name!r} already exists in "
                    f"{_hide_password(storage_url)}; pass --resume to continue it "
                    "or add workers to it, or choose another --study-name"
                ) from None
        study = optuna.load_study(
            study_name=name, storage=backend, sampler=sampler, pruner=pruner
        )
    # A resumed or joined study must not repeat the first process's draws.
    sampler.reseed_rng()
    return study, backend, False


def _check_storage_file(url: str, study_name: str) -> None:
    """Raise ConfigError when a study without data names a missing SQLite file.

    Such a call can only continue an existing study, and opening the file would
    leave an empty database where a mistyped --storage points.
    """
    path = sqlite_path(url)
    # An SQLite URI filename (file:...) is left to SQLite.
    if path is None or str(path).startswith("file:") or path.exists():
        return
    raise ConfigError(
        f"study {study_name!r} does not exist, because the Optuna storage file "
        f"{path} does not exist. Pass the study's database file with --storage, "
        "or pass the training recordings to start a new study"
    )


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
    data = paths_or_raise(data)
    items = [data] if isinstance(data, (str, os.PathLike)) else data
    resolved = []
    for item in items:
        text = os.path.expanduser(str(item))
        if any(c in text for c in "*?["):
            # Anchor a relative pattern at the working folder, so that a resume
            # from another folder or host reads the same files.
            resolved.append(os.path.normpath(os.path.join(os.getcwd(), text)))
        else:
            resolved.append(str(Path(text).resolve()))
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
            "new study with another --study-name, or delete this one with "
            f"'optuna delete-study --study-name {study.study_name} --storage URL' "
            "(the URL given to --storage) and start it again"
        )
    resumable = {k: v for k, v in overrides.items() if k in RESUMABLE_SETTINGS}
    config = _stored_config(study, resumable)
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
    return config


def _stored_config(study: optuna.Study, overrides: dict[str, Any]) -> Config:
    """Validate the study's stored configuration with resumable ``overrides`` set.

    They are set before validation, so that a resume can replace a registered
    model name or alias that an earlier grindwatch stored without checking it.
    """
    tree = copy.deepcopy(study.user_attrs[_CONFIG_ATTR])
    for dotted, value in overrides.items():
        section, setting = dotted.split(".")
        tree[section][setting] = value
    source = f"the stored settings of study {study.study_name!r}"
    try:
        return validate_config(tree, source)
    except ConfigError as error:
        raise ConfigError(
            f"{error}. On resume, --register NAME and --alias NAME replace a stored "
            "registered model name and alias"
        ) from None


# Data ------------------------------------------------------------------------------


def _apply_labels(recordings: Iterable[Recording], labels: dict[str, int]) -> int:
    """Set ``label`` of recordings named in ``labels``; return how many matched."""
    from grindwatch.io.labels import label_key_for

    matched = 0
    for recording in recordings:
        key = label_key_for(recording.name, labels)
        if key is not None:
            recording.label = int(labels[key])
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

    training = read_data(recordings, config)
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
    config: Config | dict[str, Any] | str | Path | None = None,
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
    config : Config, dict or path, optional
        All settings, given as for ``train``; the ``tune`` section configures the
        study. Defaults when None.
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
        stored study, its recordings changed since it started, or the data
        cannot be split for tuning.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    caller_config = config
    config = as_config(config).with_overrides(overrides)
    storage_url = resolve_storage(config)
    data_paths = _resolved_paths(data)
    recordings = data if isinstance(data, RecordingSet) else None
    if isinstance(labeled_data, RecordingSet) and any(
        recording.source is None for recording in labeled_data
    ):
        # The study stores the labeled files' paths for every worker to read.
        raise TypeError(
            "labeled_data must be files, folders or glob patterns; recordings "
            "built in Python have no path to store with the study; write them "
            "to files and pass the paths"
        )
    if recordings is None and not (data_paths or config.data.paths):
        _check_storage_file(storage_url, config.tune.study_name)
    study, backend, created = _open_study(config, storage_url, resume)
    # The study is open, so from here on the URL is only shown, stored in the
    # study and logged to MLflow, and none of them may contain its password.
    storage_url = _hide_password(storage_url)
    config = _hide_storage_password(config)
    if created and recordings is None and not (data_paths or config.data.paths):
        import optuna

        optuna.delete_study(study_name=study.study_name, storage=backend)
        where = f"study {study.study_name!r} does not exist in {storage_url}; "
        raise ConfigError(
            (where if resume else "") + "pass the training recordings to start a study"
        )

    if created:
        if data_paths:
            config = config.with_overrides({"data.paths": data_paths})
        labeled_paths = _resolved_paths(labeled_data)
        labels_path = str(Path(labels).resolve()) if labels else None
        _store_study_settings(study, config, labeled_paths, labels_path)
    else:
        checked = config.flat() if caller_config is not None else overrides
        requested_uri = config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI")
        if requested_uri:
            from grindwatch.tracking import absolute_tracking_uri

            requested_uri = absolute_tracking_uri(requested_uri)
        # A joining worker started without a config file or --experiment gets
        # the default experiment name, which it did not request.
        named = caller_config is not None or "tracking.experiment" in overrides
        requested_experiment = config.tracking.experiment if named else None
        # Studies of grindwatch versions before the password was hidden stored it.
        config = _hide_storage_password(
            _study_config(study, checked, overrides, data_paths)
        )
        if requested_experiment not in (None, config.tracking.experiment):
            logger.warning(
                "study %r logs to the MLflow experiment %r that its first worker "
                "stored, not to %r; this worker uses %r too",
                study.study_name,
                config.tracking.experiment,
                requested_experiment,
                config.tracking.experiment,
            )
        shared = {k: v for k, v in overrides.items() if k in SHARED_SETTINGS}
        if shared:
            # The new target and registration stay with the study, for later
            # resumes and for whichever worker finishes the last trial.
            updated = _stored_config(study, shared)
            study.set_user_attr(_CONFIG_ATTR, updated.model_dump(mode="json"))
        labeled_paths = study.user_attrs.get(_LABELED_ATTR) or []
        labels_path = study.user_attrs.get(_LABELS_ATTR)
        stored_uri = study.user_attrs.get(_TRACKING_ATTR)
        if stored_uri and config.tracking.enabled:
            _warn_other_tracking_uri(study.study_name, requested_uri, stored_uri)
            config = config.with_overrides({"tracking.uri": stored_uri})
    if not created:
        if config.tracking.enabled:
            from grindwatch.tracking import _check_server, resolve_tracking_uri

            # Before reading data, so that a stopped tracking server fails at once.
            _check_server(resolve_tracking_uri(config))
        # Checked before the study's run is reopened, so that a rejected resume
        # leaves the run as it was.
        training, labeled = _read_inputs(config, labeled_paths, labels_path, recordings)
        data_sha256 = _check_data(study, training, config.data.paths)
    try:
        tracker = _open_tracker(config, study, created)
    except BaseException:
        if created and not study.get_trials(deepcopy=False):
            # Nothing ran: free the name, so the same command works once fixed.
            import optuna

            optuna.delete_study(study_name=study.study_name, storage=backend)
        raise
    with _storage_failures(storage_url, study.study_name):
        # From here on, the study's MLflow run must not stay RUNNING when this fails.
        try:
            if created:
                training, labeled = _read_inputs(
                    config, labeled_paths, labels_path, recordings
                )
                data_sha256 = _check_data(study, training, config.data.paths)
            from grindwatch.objective import Objective

            objective = Objective(training, config, labeled=labeled)
            # The trials and the final refit read the windows in samples.
            config = objective.config
            if created:
                if config.tune.baseline:
                    _enqueue_baseline(study, config, objective)
                study.set_user_attr(_BASELINE_ATTR, True)
            elif not study.get_trials(deepcopy=False):
                # A joiner that starts a trial while the creator queues the baseline
                # leaves that queued trial waiting once the study has its trials.
                _wait_for_attr(study, _BASELINE_ATTR)
            _describe_data(tracker, config, objective, training, data_sha256)
            runner = TrialRunner(study, backend, objective, tracker, config, on_trial)
            with (
                _torch_threads(config),
                _tracking_failures(tracker, study, storage_url),
            ):
                runner.run()
            return _conclude(runner, tracker, objective, training, storage_url)
        except KeyboardInterrupt:
            close_incomplete(study, tracker, "interrupted", "KILLED")
            logger.warning(
                "study %r stopped; continue it with: grindwatch tune --resume "
                "--study-name %s --storage %s",
                study.study_name,
                study.study_name,
                storage_url,
            )
            raise
        except BaseException:
            close_incomplete(study, tracker, "failed", "FAILED")
            if created and not study.get_trials(deepcopy=False):
                # Nothing ran: free the name, so the same command works once fixed.
                import optuna

                optuna.delete_study(study_name=study.study_name, storage=backend)
            raise


def _conclude(
    runner: TrialRunner,
    tracker: Any,
    objective: Any,
    training: RecordingSet,
    storage_url: str,
) -> TuneResult:
    """Conclude the study, raising TrackingError when MLflow cannot be written."""
    # Another worker may have requested a registration or another number of
    # trials since this one started.
    stored = _stored_config(runner.study, {}).tune
    runner.config = runner.config.with_overrides(
        {
            "tune.n_trials": stored.n_trials,
            "tune.registered_model": stored.registered_model,
            "tune.alias": stored.alias,
        }
    )
    with _tracking_failures(tracker, runner.study, storage_url):
        return conclude(runner, tracker, objective, training, storage_url)


@contextlib.contextmanager
def _tracking_failures(
    tracker: Any, study: optuna.Study, storage_url: str
) -> Iterator[None]:
    """Raise TrackingError, naming the store and the resume, when MLflow fails.

    The trial runner raises MlflowException when a trial's run cannot be created,
    after it queued that trial's settings again. train() turns a store failure
    during the retraining into TrackingError.
    """
    from mlflow.exceptions import MlflowException

    from grindwatch.exceptions import TrackingError

    try:
        yield
    except (MlflowException, TrackingError) as error:
        cause = error.__cause__ if isinstance(error, TrackingError) else error
        if not isinstance(cause, MlflowException):
            raise
        name = study.study_name
        storage = _hide_password(storage_url)
        reason = " ".join(str(cause).split())[:600].rstrip(". ")
        raise TrackingError(
            f"recording study {name!r} in the MLflow tracking store {tracker.uri} "
            f"failed: {reason}. The trials are kept in {storage}. Once the "
            f"tracking server runs, 'grindwatch tune --resume --study-name {name} "
            f"--storage {storage}' continues the study and records it"
        ) from error


@contextlib.contextmanager
def _storage_failures(url: str, study_name: str) -> Iterator[None]:
    """Raise StorageError, naming the storage, when its database fails mid-study.

    Optuna raises StorageInternalError for a failed write and SQLAlchemy raises
    OperationalError for a failed read, such as when the database server stops.
    """
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import OperationalError

    from grindwatch.exceptions import StorageError

    try:
        yield
    except (StorageInternalError, OperationalError) as error:
        cause = error.__cause__ if isinstance(error, StorageInternalError) else error
        cause = getattr(cause, "orig", None) or cause
        reason = " ".join(str(cause).split())[:600].rstrip(". ")
        raise StorageError(
            f"the Optuna storage {url} of study {study_name!r} failed: {reason}. "
            "Finished trials are kept in it. Once the database accepts "
            f"connections, 'grindwatch tune --resume --study-name {study_name} "
            f"--storage {url}' continues the study and marks FAIL any trial that "
            "this worker left RUNNING"
        ) from error


def _hide_storage_password(config: Config) -> Config:
    """Return ``config`` with any password in ``tune.storage`` replaced by ``***``."""
    if not config.tune.storage:
        return config
    return config.with_overrides({"tune.storage": _hide_password(config.tune.storage)})


def _hide_password(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.password is None:
        # Rendering would escape the colon of an SQLite URI filename (file:...).
        return url
    return parsed.render_as_string(hide_password=True)


def _warn_other_tracking_uri(
    study_name: str, requested: str | None, stored: str
) -> None:
    """Warn when the caller named a tracking URI other than the study's own.

    A joining worker logs to the URI that the study's first worker stored, so that
    all trials of the study land in one place.
    """
    if requested and requested != stored:
        logger.warning(
            "study %r logs to the tracking URI %s that its first worker stored, not "
            "to %s; this worker uses %s too",
            study_name,
            stored,
            requested,
            stored,
        )


def _enqueue_baseline(study: optuna.Study, config: Config, objective: Any) -> None:
    """Queue the configured pipeline as the first trial, if the space can draw it."""
    from grindwatch.search_space import baseline_params

    params, reason = baseline_params(config, objective.space, objective.kind)
    if (
        params is None
        and objective.kind == "table"
        and config.detector.family == "autoencoder"
    ):
        # The default autoencoder reads signal windows only, so with tables the
        # configured pipeline is one that cannot run unless a table family is set.
        logger.info("not trying the configured pipeline first: %s", reason)
        return
    if params is None:
        logger.warning(
            "not trying the configured pipeline first: %s. Widen tune.space to "
            "include it, or set tune.baseline to false",
            reason,
        )
        return
    if study.get_trials(deepcopy=False):
        # Another worker joined while this one read the data. A trial queued now
        # could stay WAITING once the workers reach the trial count.
        logger.info(
            "not trying the configured pipeline first: another worker has "
            "already started trials"
        )
        return
    study.enqueue_trial(params, user_attrs={"baseline": True}, skip_if_exists=True)
    logger.info("trying the configured pipeline first: %s", params)


def _store_study_settings(
    study: optuna.Study, config: Config, labeled: list[str], labels: str | None
) -> None:
    from grindwatch._version import __version__
    from grindwatch.tracking import absolute_tracking_uri, resolve_tracking_uri

    if config.tracking.enabled:
        # Absolute, so that a resume from another folder logs to the same store.
        uri = absolute_tracking_uri(resolve_tracking_uri(config))
        study.set_user_attr(_TRACKING_ATTR, uri)
    study.set_user_attr(_LABELED_ATTR, labeled)
    study.set_user_attr(_LABELS_ATTR, labels)
    study.set_user_attr("grindwatch.version", __version__)
    # Stored last: a joining process waits for it, and then finds the rest.
    study.set_user_attr(_CONFIG_ATTR, config.model_dump(mode="json"))


def _open_tracker(config: Config, study: optuna.Study, created: bool) -> Any:
    """Open the study's MLflow run: create it, or reopen the stored one.

    The creator opens the run before it reads any data, so that processes joining
    the study find the run id within ``JOIN_WAIT_S``.
    """
    from grindwatch.mlflow_tuning import NullTracker, StudyTracker

    if not config.tracking.enabled:
        return NullTracker()
    tracker = StudyTracker(config)
    run_id = None if created else _wait_for_attr(study, _PARENT_ATTR)
    if run_id is None and not created:
        logger.warning("study %r has no MLflow run yet; creating one", study.study_name)
    # The seed drives the sampler and every trial's holdout, injections and fit.
    params = {
        k: v
        for k, v in config.flat().items()
        if k.startswith(("tune.", "data.")) or k == "seed"
    }
    parent = tracker.open_parent(
        run_id, study.study_name, config.tune.objective, params, {}
    )
    if run_id is None:
        study.set_user_attr(_PARENT_ATTR, parent)
    return tracker


def _check_data(study: optuna.Study, training: RecordingSet, paths: list[str]) -> str:
    """Fingerprint the training data and raise if the study's data changed.

    The first process that reads the study's data stores the fingerprint. Trials
    fitted on other data would not be comparable with the earlier ones.
    """
    from grindwatch.fingerprint import data_fingerprint

    sha256 = data_fingerprint(training)["sha256"]
    stored = study.user_attrs.get(_DATA_ATTR)
    # NOTE: studies of grindwatch versions that stored no fingerprint get the
    # one read at their next resume, so a change before that goes unnoticed.
    # Earlier versions stored the hash of nothing for in-memory recordings.
    if stored in (None, _EMPTY_SHA256):
        study.set_user_attr(_DATA_ATTR, sha256)
    elif stored != sha256:
        # A RecordingSet passed to tune() has no paths.
        recordings = f"the recordings {paths}" if paths else "the in-memory recordings"
        raise ConfigError(
            f"{recordings} of study {study.study_name!r} changed since "
            f"the study started (data fingerprint {sha256[:12]}, stored "
            f"{stored[:12]}): files were added, removed or edited, and trials "
            "fitted on them would not be comparable with the earlier ones. "
            "Restore the recordings, or start a new study with another --study-name"
        )
    return sha256


def _describe_data(
    tracker: Any,
    config: Config,
    objective: Any,
    training: RecordingSet,
    data_sha256: str,
) -> None:
    """Tag the study's run with its data, holdout and injections (first run only)."""
    from grindwatch.signals.injection import DEFAULT_RECURRING, describe_injections

    if not tracker.enabled or "grindwatch.data_sha256" in tracker.run_tags(
        tracker.parent_run_id
    ):
        return
    injections = describe_injections(training.kind, config.tune.injections)
    recurring = config.tune.recurring or DEFAULT_RECURRING[training.kind]
    tracker.set_tags(
        tracker.parent_run_id,
        {
            "grindwatch.data_sha256": data_sha256,
            "grindwatch.holdout": (
                f"{objective.holdout.mode}: {len(objective.holdout.fit)} pieces "
                f"fitted, {len(objective.holdout.held_out)} held out"
            ),
            "grindwatch.injections": _short_json(injections),
            "grindwatch.recurring": (
                f"{config.tune.recurring_share:.2%} of fitted windows carry "
                f"recurring {', '.join(recurring)}"
                if config.tune.recurring_share > 0
                else "none"
            ),
        },
    )
    # The tag only counts the pieces. This file names them, so that an engineer
    # can see which windows every trial was judged on.
    tracker.log_texts(
        tracker.parent_run_id, {"holdout.json": _holdout_json(objective.holdout)}
    )


def _holdout_json(holdout: Holdout) -> str:
    """Describe the fitted and held-out pieces of a ``Holdout`` as JSON."""

    def pieces(recordings: list[Recording]) -> list[dict[str, Any]]:
        return [
            {
                "name": recording.name,
                "source": recording.source,
                "n_samples": recording.n_samples,
            }
            for recording in recordings
        ]

    return json.dumps(
        {
            "mode": holdout.mode,
            "fit": pieces(holdout.fit),
            "held_out": pieces(holdout.held_out),
        },
        indent=2,
        default=str,
    )


def _short_json(value: Any) -> str:
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
