"""Everything that talks to MLflow: runs, metrics, artifacts and the pyfunc model.

The tracking URI is, in order: the config's ``tracking.uri``, the
``MLFLOW_TRACKING_URI`` environment variable, then an SQLite file ``mlflow.db`` in
the working folder, whose artifacts go to ``mlartifacts/`` beside it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grindwatch._version import __version__
from grindwatch.config import Config
from grindwatch.exceptions import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "GrindwatchPyfunc",
    "PredictInputError",
    "TrainingTracker",
    "absolute_tracking_uri",
    "download_model",
    "log_evaluation",
    "log_scoring",
    "read_study",
    "registered_model_version",
    "resolve_tracking_uri",
]

DEFAULT_DB = "mlflow.db"
MODEL_ARTIFACT = "model"


def resolve_tracking_uri(config: Config | None = None) -> str:
    if config is not None and config.tracking.uri:
        return config.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def absolute_tracking_uri(uri: str) -> str:
    """Return ``uri`` with a relative SQLite file resolved from the working folder.

    ``sqlite:///mlflow.db`` names a file in whichever folder a command runs in.
    A study stores the absolute form, so a resume from another folder logs to the
    same store. Other URIs are returned unchanged.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path, separator, query = uri.removeprefix(prefix).partition("?")
    # SQLite's own URI form (file:...) and in-memory databases are left as they are.
    if not path or path.startswith(("file:", ":memory:")) or Path(path).is_absolute():
        return uri
    return f"{prefix}{Path(path).resolve()}{separator}{query}"


def _client(uri: str):  # noqa: ANN202
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, uri: str, name: str) -> str:  # noqa: ANN001
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "deleted":
        _raise_deleted_experiment(uri, name, found.experiment_id)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        # Keep artifacts beside the database rather than relative to whichever
        # folder a later command runs in.
        database = Path(uri.removeprefix("sqlite:///"))
        location = (database.parent / "mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - another process may have created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _raise_deleted_experiment(uri: str, name: str, experiment_id: str) -> None:
    """Raise TrackingError for an experiment in the deleted lifecycle stage.

    MLflow keeps a deleted experiment's name until the experiment is purged, and
    rejects new runs in it.
    """
    from grindwatch.exceptions import TrackingError

    # A tracking server's own database, not its URL, is what mlflow gc opens.
    store = "BACKEND_STORE_URI" if uri.startswith(("http:", "https:")) else uri
    raise TrackingError(
        f"the MLflow experiment {name!r} (id {experiment_id}) in {uri} is deleted, "
        "so no run can be logged to it. Restore it with 'mlflow experiments restore "
        f"--experiment-id {experiment_id}', purge it with 'mlflow gc "
        f"--backend-store-uri {store} --experiment-ids {experiment_id}', or log to "
        "another experiment (--experiment or tracking.experiment)"
    )


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Raise TrackingError, naming ``uri``, for a store failure inside the block.

    MLflow raises its own exception for an unreachable server, an unsupported
    URI scheme or a read-only database, and SQLAlchemy raises for a malformed
    database URL.

    MLflow 3.17 retries a server that refuses connections for about 4 minutes
    before it raises (MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, measured with a refused loopback port),
    so an HTTP server is first probed once per process with a short timeout.
    A tracking database (PostgreSQL, MySQL, SQL Server) is connected to once,
    because MLflow retries a refused connection for about 100 s too.
    The CLI also shortens those retries (``grindwatch.cli.MLFLOW_HTTP_DEFAULTS``).
    """
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    _check_server(uri)
    try:
        yield
    except (MlflowException, SQLAlchemyError) as error:
        raise _store_error(uri, error) from error


def _store_error(uri: str, error: Exception) -> Exception:
    """Return a TrackingError that names the store ``uri``, the reason and the fix."""
    from grindwatch.exceptions import TrackingError

    reason = " ".join(str(error).split())[:600].rstrip(". ")
    fix = (
        "Check the tracking URI (--tracking-uri or MLFLOW_TRACKING_URI), that "
        "its server runs and that the store is writable, or run without "
        "tracking (--no-track)"
    )
    # A path without a scheme (a one-letter scheme is a Windows drive)
    # is read by MLflow as a folder of its file store.
    plain = len(urllib.parse.urlparse(uri).scheme) <= 1
    if plain and uri.endswith((".db", ".sqlite", ".sqlite3")):
        fix = f"For a SQLite file, give the URI sqlite:///{Path(uri).resolve()}"
    return TrackingError(f"cannot use the MLflow tracking store {uri}: {reason}. {fix}")


# Seconds the probe of a tracking server waits for a response.
_PROBE_SECONDS = 10.0
_reached_servers: set[str] = set()


def _check_server(uri: str) -> None:
    """Raise TrackingError at once when a tracking server or database cannot be
    reached."""
    from grindwatch.exceptions import TrackingError

    unreachable = _unreachable_server(uri)
    if unreachable is not None:
        address, reason = unreachable
        raise TrackingError(
            f"cannot reach the MLflow tracking server {address}: {reason}. Check "
            "the tracking URI (--tracking-uri or MLFLOW_TRACKING_URI) and that "
            "its server runs, or run without tracking (--no-track)"
        )
    unreachable = _unreachable_database(uri)
    if unreachable is not None:
        address, reason = unreachable
        reason = reason.rstrip(". ")
        if not reason.endswith(("?", "!")):
            reason += "."
        raise TrackingError(
            f"cannot connect to the MLflow tracking database {address}: {reason} "
            "Check the host, port, database name, user and password in the "
            "tracking URI (--tracking-uri or MLFLOW_TRACKING_URI), that the "
            "database exists, that its server runs and that the URI's driver is "
            "installed, or run without tracking (--no-track)"
        )


# URI schemes of the database servers that MLflow's SQL store connects to. SQLite
# has no server, so it is not probed.
_DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")


def _unreachable_database(uri: str) -> tuple[str, str] | None:
    """Return the address and reason when a tracking database refuses a connection.

    MLflow 3.17 retries a failed connection 10 times with growing pauses before
    it raises (``mlflow.store.db.utils.create_sqlalchemy_engine_with_retry``),
    which took 106 s with grindwatch train and a refused loopback port, so the
    database is first connected to once per process. None for a database that
    accepted the connection, for other schemes and for a URI that SQLAlchemy
    cannot parse, which MLflow then reports. The address has no password.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    scheme = uri.partition(":")[0].partition("+")[0]
    if scheme not in _DATABASE_SCHEMES or uri in _reached_servers:
        return None
    try:
        address = make_url(uri).render_as_string(hide_password=True)
        engine = create_engine(uri, poolclass=NullPool)
    except (ArgumentError, NoSuchModuleError):
        return None
    except ImportError as error:
        return address, f"its driver is not installed ({error})"
    try:
        with engine.connect():
            pass
    except DBAPIError as error:
        return address, " ".join(str(error.orig).split())
    finally:
        engine.dispose()
    _reached_servers.add(uri)
    return None


def _unreachable_server(uri: str) -> tuple[str, object] | None:
    """Return the address and reason when an HTTP tracking server cannot be reached.

    None for a server that responded and for URIs of other schemes. Any HTTP
    response counts as reached, even an error status, because hosted servers may
    not have MLflow's ``/health`` page or may require a login. TLS problems are
    left to MLflow, whose settings may accept them. The address has no password.
    """
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request

    if not uri.startswith(("http://", "https://")) or uri in _reached_servers:
        return None
    # urllib reads user:password@ in a URL as part of the host name, while MLflow's
    # HTTP client sends it as basic authentication. The probe needs no login, and
    # error messages must not show the password.
    parts = urllib.parse.urlsplit(uri)
    address = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    try:
        with urllib.request.urlopen(  # noqa: S310 - the scheme is checked above
            address.rstrip("/") + "/health", timeout=_PROBE_SECONDS
        ):
            pass
    except urllib.error.HTTPError:
        pass  # the server responded
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        if not isinstance(reason, ssl.SSLError):
            return address, reason
    _reached_servers.add(uri)
    return None


def run_params(config: Config) -> dict[str, Any]:
    """Return the flat settings of ``config`` without other detector families'.

    Training and trial runs log these, so that a filter or a column of one
    family's setting, such as ``detector.iforest.n_estimators``, lists only runs
    of that family. The run's ``config.yaml`` keeps every setting.
    """
    # NOTE: settings that the data kind or front end ignore are still logged,
    # such as frontend.n_bands on raw windows and frontend.kind on feature tables.
    unused = tuple(
        f"detector.{name}."
        for name in type(config.detector).model_fields
        if name not in ("family", config.detector.family)
    )
    return {k: v for k, v in config.flat().items() if not k.startswith(unused)}


def environment_tags(family: str) -> dict[str, str]:
    """Return tags naming what outside the config changes a fit's scores.

    These are the Python, NumPy, scikit-learn and PyTorch versions and, for the
    autoencoder, PyTorch's thread count, because on CPU another thread count sums
    in another order and changes the last digits of the scores.
    """
    import platform
    from importlib.metadata import version

    tags = {"grindwatch.python_version": platform.python_version()}
    for package in ("numpy", "scikit-learn", "torch"):
        tags[f"grindwatch.{package}_version"] = version(package)
    if family == "autoencoder":
        import torch

        tags["grindwatch.torch_threads"] = str(torch.get_num_threads())
    return tags


def variant_metrics(
    config: Config, kind: str, optuna_params: dict[str, Any] | None = None
) -> dict[str, float]:
    """Return numeric copies of the settings that tell variants apart.

    MLflow stores parameters as text, so its UI sorts "1024" before "256". These
    metrics sort by value. For signal data they are ``window_length`` and
    ``window_hop`` in samples. For a trial, each numeric Optuna parameter is also
    logged under its parameter name (``optuna.autoencoder.filters_0``), because
    those are the settings that the study varies. Text choices (loss, front end)
    stay parameters only. The model's size (``n_parameters``) and its threshold
    are logged with the final metrics.
    """
    metrics: dict[str, float] = {}
    if kind == "signals":
        metrics["window_length"] = float(config.windows.length)
        metrics["window_hop"] = float(config.hop)
    for name, value in (optuna_params or {}).items():
        # bool is an int subclass, but True/False are choices, not quantities.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[f"optuna.{name}"] = float(value)
    return metrics


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text[:6000]


class TrainingTracker:
    """Record one ``train`` as an MLflow run, using explicit run ids throughout."""

    def __init__(self, config: Config, parent_run_id: str | None = None) -> None:
        self.config = config
        self.uri = resolve_tracking_uri(config)
        self.parent_run_id = parent_run_id
        self.run_id: str | None = None
        self.client = None

    @contextlib.contextmanager
    def run(self, kind: str, data_sha256: str) -> Iterator[str]:
        """Open the run; it ends FINISHED, or FAILED on any exception or Ctrl-C.

        Besides the settings as parameters, it logs ``variant_metrics``.

        The run's ``grindwatch.kind`` tag is ``train``, as other runs carry
        ``study``, ``trial``, ``evaluate`` or ``score``; ``kind``, the data kind
        (signals or table), goes to ``grindwatch.data_kind``.
        """
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException

        with store_errors(self.uri):
            self.client = _client(self.uri)
            experiment = _experiment_id(
                self.client, self.uri, self.config.tracking.experiment
            )
        tags = {
            "grindwatch.version": __version__,
            "grindwatch.seed": str(self.config.seed),
            "grindwatch.detector": self.config.detector.family,
            "grindwatch.kind": "train",
            "grindwatch.data_kind": kind,
            "grindwatch.data_sha256": data_sha256,
            **environment_tags(self.config.detector.family),
        }
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        with store_errors(self.uri):
            run = self.client.create_run(
                experiment, run_name=self.config.tracking.run_name, tags=tags
            )
        self.run_id = run.info.run_id
        logger.info("MLflow run %s in %s", self.run_id, self.uri)
        try:
            settings = run_params(self.config)
            params = [Param(k, _param_value(v)) for k, v in settings.items()]
            for begin in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[begin : begin + 100])
            now = int(time.time() * 1000)
            shape = variant_metrics(self.config, kind)
            self.client.log_batch(
                self.run_id, metrics=[Metric(k, v, now, 0) for k, v in shape.items()]
            )
            yield self.run_id
        except MlflowException as error:
            # The store failed mid-run, such as a tracking server that stopped, so
            # ending the run is tried once and the error names the store.
            self._end_failed_run()
            raise _store_error(self.uri, error) from error
        except BaseException:
            self._end_failed_run()
            raise
        with store_errors(self.uri):
            self.client.set_terminated(self.run_id, "FINISHED")

    def _end_failed_run(self) -> None:
        """End the run FAILED, logging instead of raising when the store fails."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.set_terminated(self.run_id, "FAILED")
        except MlflowException as error:
            logger.error(
                "MLflow run %s in %s stays RUNNING, because ending it failed: %s",
                self.run_id,
                self.uri,
                " ".join(str(error).split())[:300],
            )
            return
        logger.error("MLflow run %s marked FAILED", self.run_id)

    def log_epoch(self, epoch: int, train_loss: float, val_loss: float | None) -> None:
        if self.client is None or self.run_id is None:
            return
        self.client.log_metric(self.run_id, "train_loss", train_loss, step=epoch)
        if val_loss is not None:
            self.client.log_metric(self.run_id, "val_loss", val_loss, step=epoch)

    def log_training(self, model, training) -> None:  # noqa: ANN001
        """Log final metrics, threshold, histogram, fingerprint and the model."""
        from mlflow.entities import Metric

        threshold = model.threshold_
        scores = model.training_scores_
        metrics = {
            "n_recordings": len(training.recordings),
            "n_windows": len(scores),
            "threshold": threshold.value,
            "training_share_flagged": threshold.share_flagged,
            "training_score_median": float(np.median(scores)),
            "training_score_p99": float(np.quantile(scores, 0.99)),
            "training_score_max": float(scores.max()),
            "n_flagged_recordings": int(training.recordings["flag"].sum()),
            "threshold_components": len(threshold.components),
        }
        if threshold.separation is not None:
            metrics["threshold_separation"] = threshold.separation
        check = model.cycle_check
        if check is not None:
            metrics["cycle_threshold"] = check.threshold_.value
            metrics["n_cycle_flagged_recordings"] = int(
                training.recordings["cycle_flag"].sum()
            )
        history = getattr(model.detector_, "history_", None)
        if history:
            metrics["epochs_run"] = len(history)
            metrics["best_epoch"] = model.detector_.best_epoch_
        n_parameters = getattr(model.detector_, "n_parameters_", None)
        if n_parameters is not None:
            metrics["n_parameters"] = n_parameters
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        )
        self.client.set_tag(
            self.run_id, "grindwatch.threshold_method", threshold.method
        )
        if threshold.fallback_reason:
            self.client.set_tag(
                self.run_id, "grindwatch.threshold_fallback", threshold.fallback_reason
            )
        self.client.set_tag(
            self.run_id, "grindwatch.cycle_check", "on" if check is not None else "off"
        )
        self._log_files(model, training)
        if self.config.tracking.log_model:
            log_model(
                model,
                self.run_id,
                self.config.tracking.registered_model,
                self.config.tracking.alias,
            )

    def _log_files(self, model, training) -> None:  # noqa: ANN001
        from grindwatch.report import plot_score_histogram

        with tempfile.TemporaryDirectory() as folder:
            folder_path = Path(folder)
            plot_score_histogram(
                model.training_scores_,
                model.threshold_,
                folder_path / "score_histogram.png",
            )
            (folder_path / "threshold.json").write_text(
                json.dumps(model.threshold_.to_dict(), indent=2)
            )
            if model.cycle_check is not None:
                (folder_path / "cycle_check.json").write_text(
                    json.dumps(model.describe()["cycle_check"], indent=2)
                )
            (folder_path / "data_fingerprint.json").write_text(
                json.dumps(model.fingerprint_, indent=2)
            )
            (folder_path / "config.yaml").write_text(self.config.to_yaml())
            training.recordings.to_csv(
                folder_path / "training_recordings.csv", index=False
            )
            history = getattr(model.detector_, "history_", None)
            if history:
                pd.DataFrame(history).to_csv(folder_path / "epochs.csv", index=False)
            self.client.log_artifacts(self.run_id, folder)


import mlflow.exceptions  # noqa: E402 - this module is the only one that imports MLflow
import mlflow.pyfunc  # noqa: E402


class GrindwatchPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper around a grindwatch model bundle.

    ``predict`` accepts raw windows as an array (n_windows, n_channels, length), one
    recording as an array (n_channels, n_samples), or one recording as a DataFrame
    whose columns are the channel names and rows the samples (for feature-table
    models: one row per cycle). Samples must be at the model's rate, because the
    input carries no time to resample by. It returns a DataFrame with ``score``
    and ``flag`` per window (plus ``window`` and ``start_sample`` for recordings).
    NaN and infinite samples in a recording raise, or are interpolated when the
    model's ``data.nan_policy`` is interpolate, as in ``grindwatch score``.
    Input that it cannot score raises ``PredictInputError``, an InputError that
    MLflow's scoring server returns as a 400 response with the message.

    For one recording, each row also carries the recording's verdict, as
    ``grindwatch score`` gives it: ``recording_score`` (the aggregate of the
    window scores), ``recording_flag`` (set by that score or by the cycle check)
    and ``cycle_check`` (the check's reason when it flags, else empty). Windows
    and feature-table rows have scores and flags only.
    """

    def load_context(self, context) -> None:  # noqa: ANN001
        from grindwatch.pipeline import Model

        self.model = Model.load(context.artifacts["bundle"])

    # MLflow reads the DataFrame hint only to skip schema inference and validation;
    # arrays are accepted as well, as the class docstring says.
    def predict(
        self,
        context,
        model_input: pd.DataFrame,
        params: dict | None = None,  # noqa: ANN001
    ) -> pd.DataFrame:
        try:
            return predict_frame(self.model, model_input)
        except InputError as error:
            raise PredictInputError(error) from error


class PredictInputError(InputError, mlflow.exceptions.MlflowException):
    """An InputError that MLflow's scoring server returns with its message.

    ``mlflow models serve`` (MLflow 3.17) responds to other exceptions from predict
    with a generic message, and puts the real one only at the end of a stack
    trace. An MlflowException's message reaches the client in a 400 response.
    """

    def __init__(self, error: InputError) -> None:
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        mlflow.exceptions.MlflowException.__init__(
            self, str(error), error_code=INVALID_PARAMETER_VALUE
        )
        self.path, self.problem, self.fix = error.path, error.problem, error.fix


def predict_frame(model, model_input) -> pd.DataFrame:  # noqa: ANN001
    """Score input in any of the forms ``GrindwatchPyfunc.predict`` accepts."""
    from grindwatch.exceptions import InputError
    from grindwatch.io import Recording
    from grindwatch.io.frames import finite_or_raise

    threshold = model.threshold_.value
    if isinstance(model_input, np.ndarray) and model_input.ndim == 3:
        scores = model.window_scores(model_input.astype(np.float32))
        return pd.DataFrame({"score": scores, "flag": scores > threshold})
    if isinstance(model_input, pd.DataFrame):
        missing = [c for c in model.channels_ if c not in model_input.columns]
        if missing:
            raise InputError(
                "model_input",
                f"is missing channel columns {missing}",
                f"send columns {model.channels_}",
            )
        repeated = model_input.columns[model_input.columns.duplicated()]
        repeated = sorted(set(repeated) & set(model.channels_))
        if repeated:
            raise InputError(
                "model_input",
                f"has more than one column named {repeated}",
                "send each channel column once",
            )
        data = _channel_values(model_input[model.channels_]).T
    else:
        try:
            data = np.asarray(model_input, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise InputError(
                "model_input",
                f"is a {type(model_input).__name__} that is not numeric ({error})",
                f"send a DataFrame with the columns {model.channels_}, one row per "
                "sample, or a numeric array",
            ) from error
        if data.ndim != 2 or data.shape[0] != len(model.channels_):
            raise InputError(
                "model_input",
                f"has shape {data.shape}; expected windows (n, {len(model.channels_)}, "
                f"{model.window_length_}) or one recording ({len(model.channels_)}, "
                "n_samples)",
            )
    if model.kind_ == "signals":
        # The rule that reading a file applies: NaN and infinite samples raise, or
        # are interpolated when the model's data.nan_policy is interpolate.
        data = finite_or_raise(
            "model_input", data, list(model.channels_), model.config.data.nan_policy
        )
    if model.kind_ == "table":
        windows = data.T[:, :, None]
        scores = model.window_scores(windows)
        return pd.DataFrame({"score": scores, "flag": scores > threshold})
    from grindwatch.online import score_recording

    recording = Recording("input", data, list(model.channels_), model.sample_rate_)
    scored = score_recording(model, recording, explain=False)
    frame = scored.windows[["window", "start_sample", "score", "flag"]].copy()
    # The verdict on the whole recording, as in grindwatch score's recording
    # table, repeated on every window's row.
    frame["recording_score"] = scored.score
    frame["recording_flag"] = scored.flag
    cycle = scored.cycle
    frame["cycle_check"] = cycle.reason if cycle is not None and cycle.flag else ""
    return frame


def _channel_values(frame: pd.DataFrame) -> np.ndarray:
    """Return the channel columns as float32 (samples, channels).

    Raises InputError naming the columns that hold values other than numbers,
    such as text.
    """
    try:
        return frame.to_numpy(dtype=np.float32)
    except (TypeError, ValueError) as error:
        invalid = [
            name
            for name in frame.columns
            if pd.to_numeric(frame[name], errors="coerce").isna().sum()
            > frame[name].isna().sum()
        ]
        raise InputError(
            "model_input",
            f"has channel columns with values that are not numbers: {invalid} "
            f"({error})",
            "send numeric values only",
        ) from error


# Distributions that loading the pyfunc model and scoring with it import, besides
# MLflow and the standard library. tests/test_tracking.py checks this list against
# the modules that a fresh process imports to load and score a logged model.
SCORING_DISTRIBUTIONS = (
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "pyyaml",
    "scikit-learn",
    "scipy",
    "torch",
)


def pinned_requirements() -> list[str]:
    """Return ``NAME==VERSION`` for each of ``SCORING_DISTRIBUTIONS`` as installed."""
    from importlib.metadata import version

    # A local version label such as torch's "+cpu" names a build that PyPI does not
    # host, so the pin keeps only the public version.
    return [f"{name}=={version(name).split('+')[0]}" for name in SCORING_DISTRIBUTIONS]


def copy_package_source(folder: Path) -> Path:
    """Copy grindwatch's Python modules into ``folder/grindwatch``; return that path.

    Static files, examples and caches are left out, because loading and scoring a
    model reads only modules.
    """
    source = Path(__file__).resolve().parent
    target = folder / "grindwatch"
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source)
        if "__pycache__" in relative.parts:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
    return target


def log_model(  # noqa: ANN201
    model,  # noqa: ANN001
    run_id: str,
    registered_model: str | None = None,
    alias: str | None = None,
) -> str:
    """Log the bundle as a pyfunc model in ``run_id``; return its model URI.

    With ``registered_model`` the model is registered as a new version of that
    name, and ``alias`` then moves to that version.

    The model carries grindwatch's modules (``code_paths``) and lists the pinned
    ``SCORING_DISTRIBUTIONS`` as requirements, because grindwatch is not on PyPI.
    So it loads where those distributions and MLflow are installed but grindwatch
    is not.
    """
    import mlflow

    # MLflow warns that it cannot infer a signature. That is by design: predict
    # accepts windows, recordings and tables, which one fixed schema would reject.
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    previous_level = pyfunc_logger.level
    pyfunc_logger.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as folder:
            bundle = model.save(Path(folder) / "bundle")
            # No other save shares this temporary folder, so the logged bundle
            # can go without the lock file that save leaves.
            (bundle / ".save.lock").unlink(missing_ok=True)
            code = copy_package_source(Path(folder) / "code")
            nested = mlflow.active_run() is not None
            with mlflow.start_run(run_id=run_id, nested=nested):
                info = mlflow.pyfunc.log_model(
                    name=MODEL_ARTIFACT,
                    # Models from code: MLflow imports this file instead of
                    # unpickling an object, so the logged model does not depend
                    # on pickle details.
                    python_model=str(Path(__file__).with_name("_pyfunc_model.py")),
                    artifacts={"bundle": str(bundle)},
                    # MLflow puts the folder holding this copy first on sys.path
                    # when it loads the model. A process that has already imported
                    # grindwatch keeps that one, because Python finds submodules
                    # through the imported package's own path.
                    code_paths=[str(code)],
                    pip_requirements=pinned_requirements(),
                    registered_model_name=registered_model,
                )
    finally:
        pyfunc_logger.setLevel(previous_level)
    client = _client(mlflow.get_tracking_uri())
    # Leaving start_run's block ended the run FINISHED, but training still logs
    # to it and ends it itself, FAILED if what follows fails.
    client.update_run(run_id, status="RUNNING")
    # MLflow 3's models:/m-... URI; runs:/RUN_ID/model resolves to the same model.
    client.set_tag(run_id, "grindwatch.model_uri", info.model_uri)
    logger.info("logged model %s", info.model_uri)
    if registered_model is not None and alias is not None:
        version = info.registered_model_version
        client.set_registered_model_alias(registered_model, alias, version)
        client.set_tag(run_id, "grindwatch.registered_alias", alias)
        logger.info(
            "registered model %s version %s has the alias %s (models:/%s@%s)",
            registered_model,
            version,
            alias,
            registered_model,
            alias,
        )
    return info.model_uri


def download_model(
    uri: str, config: Config | None = None, destination: Path | None = None
) -> Path:
    """Fetch an MLflow model (runs:/, models:/, m-..., or a server URI) to disk.

    The files go to ``destination`` (an existing folder); without it, MLflow
    picks a new temporary folder that is never removed, so callers that only read
    the model should pass a folder they delete afterwards.

    Returns the local folder of the grindwatch bundle inside it. Raises
    InputError, naming the URI and the tracking store, when the store does not
    exist or MLflow cannot resolve the URI in it. A missing SQLite store is not
    created.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from grindwatch.exceptions import InputError

    tracking_uri = resolve_tracking_uri(config)
    store_fix = (
        "pass --tracking-uri or set MLFLOW_TRACKING_URI to the store that "
        "contains the model"
    )
    if _missing_sqlite_store(tracking_uri):
        raise InputError(
            uri,
            f"cannot be looked up: the MLflow tracking store {tracking_uri} does "
            "not exist",
            store_fix,
        )
    # MLflow retries a server that refuses connections for minutes before it
    # raises, so an unreachable server is reported at once.
    unreachable = _unreachable_server(tracking_uri)
    if unreachable is not None:
        address, reason = unreachable
        raise InputError(
            uri,
            f"cannot be looked up: the MLflow tracking server {address} cannot be "
            f"reached ({reason})",
            f"start the server, or {store_fix}",
        )
    unreachable = _unreachable_database(tracking_uri)
    if unreachable is not None:
        address, reason = unreachable
        raise InputError(
            uri,
            f"cannot be looked up: connecting to the MLflow tracking database "
            f"{address} failed ({reason.rstrip('. ')})",
            "check the host, port, database name, user and password and that "
            f"the database server runs, or {store_fix}",
        )
    mlflow.set_tracking_uri(tracking_uri)
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=_artifact_uri(uri),
                dst_path=None if destination is None else str(destination),
            )
        )
    except MlflowException as error:
        reason = " ".join(error.message.split())
        # NOTE: MLflow 3.17 also raises RESOURCE_DOES_NOT_EXIST ("No such
        # artifact") for a registered model whose files are missing, so that
        # case reads "not found" too, with MLflow's reason beside it.
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            problem = f"not found in the MLflow tracking store {tracking_uri}"
            fix = _trial_run_fix(uri, tracking_uri) or _uri_fix(uri) or store_fix
        else:
            problem = f"cannot be loaded from the MLflow tracking store {tracking_uri}"
            fix = _uri_fix(uri) or f"check the model URI, or {store_fix}"
        raise InputError(uri, f"{problem} ({reason})", fix) from error
    for candidate in (local, local / "artifacts" / "bundle", local / "bundle"):
        if (candidate / "model.pkl").is_file():
            return candidate
    found = list(local.rglob("model.pkl"))
    if found:
        return found[0].parent
    raise InputError(
        uri,
        f"resolves in the MLflow tracking store {tracking_uri}, but its files "
        "contain no grindwatch model bundle (model.pkl)",
        _uri_fix(uri)
        or "check the model URI, and that the store's artifact folder was not moved",
    )


def _artifact_uri(uri: str) -> str:
    """Return ``uri`` as MLflow's artifact download accepts it.

    MLflow 3 names a logged model by an id such as ``m-0a1b...`` and resolves it
    only as ``models:/m-0a1b...``, so a bare id gets that prefix.
    """
    if uri.startswith("m-") and ":" not in uri and "/" not in uri:
        return f"models:/{uri}"
    return uri


def _uri_fix(uri: str) -> str | None:
    """Return the corrected form of a model URI that lacks its last part, or None.

    ``runs:/RUN_ID`` names a run, not the model logged in it, and MLflow 3 reads
    ``models:/NAME`` as the id of a logged model, not as a registered model.
    """
    if uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").strip("/")
        if run_id and "/" not in run_id:
            return f"name the model logged in the run: runs:/{run_id}/{MODEL_ARTIFACT}"
    if uri.startswith("models:/"):
        name = uri.removeprefix("models:/").strip("/")
        if name and not name.startswith("m-") and "/" not in name and "@" not in name:
            return (
                "name a version or an alias of the registered model: "
                f"models:/{name}/VERSION or models:/{name}@ALIAS"
            )
    return None


def _trial_run_fix(uri: str, tracking_uri: str) -> str | None:
    """Return how to get a model when ``uri`` is ``runs:/`` of a tuning trial.

    Trial runs log their settings but no model, so their ``runs:/ID/model``
    is never found. Returns None for any other URI.
    """
    from mlflow.exceptions import MlflowException

    if not uri.startswith("runs:/"):
        return None
    run_id = uri.removeprefix("runs:/").split("/")[0]
    try:
        tags = _client(tracking_uri).get_run(run_id).data.tags
    except MlflowException:
        return None
    if tags.get("grindwatch.kind") != "trial":
        return None
    return (
        f"run {run_id} is a tuning trial, and trials log no model. Train its "
        "variant with 'grindwatch train DATA -c config.yaml', using the run's "
        "config.yaml artifact, or score with the study's retrained best model "
        "(tag grindwatch.model_uri of the study's run)"
    )


def _missing_sqlite_store(uri: str) -> bool:
    """Check whether ``uri`` names an SQLite store whose database file is missing."""
    if not uri.startswith("sqlite:///"):
        return False
    return not Path(uri.removeprefix("sqlite:///")).exists()


def log_evaluation(
    config: Config,
    metrics: dict[str, float],
    model_run_id: str | None,
    artifacts: dict[str, str] | None = None,
) -> str:
    """Record an evaluation as its own run, nested under the model's training run."""
    import time

    from mlflow.entities import Metric

    uri = resolve_tracking_uri(config)
    with store_errors(uri):
        client = _client(uri)
        experiment = _experiment_id(client, uri, config.tracking.experiment)
    tags = {"grindwatch.version": __version__, "grindwatch.kind": "evaluate"}
    if model_run_id:
        try:
            client.get_run(model_run_id)
            tags["mlflow.parentRunId"] = model_run_id
        except Exception:  # noqa: BLE001 - the model came from another store
            tags["grindwatch.model_run_id"] = model_run_id
    with store_errors(uri):
        run = client.create_run(experiment, run_name="evaluate", tags=tags)
    try:
        now = int(time.time() * 1000)
        finite = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
        client.log_batch(
            run.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in finite.items()]
        )
        for name, text in (artifacts or {}).items():
            client.log_text(run.info.run_id, text, name)
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def registered_model_version(
    name: str, alias: str, config: Config | None = None
) -> str:
    """Version number that ``alias`` of the registered model ``name`` points at."""
    client = _client(resolve_tracking_uri(config))
    return str(client.get_model_version_by_alias(name, alias).version)


def log_scoring(
    config: Config,
    metrics: dict[str, float],
    model_run_id: str | None,
    files: dict[str, str | Path] | None = None,
) -> str:
    """Record a scoring as its own run, nested under the model's training run.

    ``files`` maps artifact names to local files, for example the HTML report and
    the recording scores. The run ends FINISHED, or FAILED if logging fails.
    """
    import shutil
    import time

    from mlflow.entities import Metric

    uri = resolve_tracking_uri(config)
    with store_errors(uri):
        client = _client(uri)
        experiment = _experiment_id(client, uri, config.tracking.experiment)
    tags = {"grindwatch.version": __version__, "grindwatch.kind": "score"}
    if model_run_id:
        try:
            client.get_run(model_run_id)
            tags["mlflow.parentRunId"] = model_run_id
        except Exception:  # noqa: BLE001 - the model came from another store
            tags["grindwatch.model_run_id"] = model_run_id
    with store_errors(uri):
        run = client.create_run(experiment, run_name="score", tags=tags)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        finite = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
        client.log_batch(
            run_id, metrics=[Metric(k, v, now, 0) for k, v in finite.items()]
        )
        with tempfile.TemporaryDirectory() as folder:
            for name, path in (files or {}).items():
                # Copy under the artifact name, so the stored file carries it.
                shutil.copyfile(path, Path(folder) / name)
            client.log_artifacts(run_id, folder)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        logger.error("MLflow run %s marked FAILED", run_id)
        raise
    client.set_terminated(run_id, "FINISHED")
    logger.info("scoring recorded as MLflow run %s in %s", run_id, uri)
    return run_id


def read_study(  # noqa: ANN201 - a dict, see below
    model_run_id: str | None, config: Config | None = None
):
    """Read the study a model's training run belongs to, or None.

    A model tuned by a study was trained in a child run of the study's run (tag
    ``mlflow.parentRunId``). Returns a dict with ``study_run_id``, ``study_name``,
    the study run's ``tags`` and ``params``, and ``trials``: a DataFrame with one
    row per child run (run_id, run_name, status, start_time, then ``params.NAME``,
    ``metrics.NAME`` and ``tags.NAME`` columns, leaving out MLflow's own
    ``mlflow.*`` tags). Metrics are each run's latest values, except the
    objective that the study run names in its ``grindwatch.objective`` tag: that
    one is the value logged last in time. Returns None when the run has no
    parent, or the tracking store does not exist or does not contain the run. A
    missing SQLite store is not created.
    """
    from mlflow.exceptions import MlflowException

    if not model_run_id:
        return None
    uri = resolve_tracking_uri(config)
    if _missing_sqlite_store(uri):
        return None
    client = _client(uri)
    try:
        run = client.get_run(model_run_id)
    except MlflowException:
        logger.info("run %s is not in %s; no study to read", model_run_id, uri)
        return None
    parent_id = run.data.tags.get("mlflow.parentRunId")
    if not parent_id:
        return None
    parent = client.get_run(parent_id)
    rows = []
    token = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
            max_results=1000,
            page_token=token,
        )
        rows.extend(_run_row(child) for child in page)
        token = page.token
        if not token:
            break
    objective = parent.data.tags.get("grindwatch.objective")
    if objective:
        # Trial runs of older grindwatch versions, and of other tuners, may log
        # the objective per epoch and its final value afterwards at step 0.
        # MLflow's latest value is the one at the highest step, so it would return
        # the last epoch's value instead of the final one.
        # NOTE: values logged in the same millisecond keep MLflow's order, which
        # sorts them by step, so such a tie may still pick an epoch's value.
        for row in rows:
            history = client.get_metric_history(row["run_id"], objective)
            if history:
                last = max(enumerate(history), key=lambda m: (m[1].timestamp, m[0]))
                row[f"metrics.{objective}"] = last[1].value
    columns = ["run_id", "run_name", "status", "start_time"]
    return {
        "study_run_id": parent_id,
        "study_name": parent.info.run_name,
        "tags": dict(parent.data.tags),
        "params": dict(parent.data.params),
        "trials": pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns),
    }


def _run_row(run) -> dict[str, Any]:  # noqa: ANN001 - an mlflow Run
    row = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "start_time": pd.to_datetime(run.info.start_time, unit="ms"),
    }
    row.update({f"params.{k}": v for k, v in run.data.params.items()})
    row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
    row.update(
        {
            f"tags.{k}": v
            for k, v in run.data.tags.items()
            if not k.startswith("mlflow.")
        }
    )
    return row
