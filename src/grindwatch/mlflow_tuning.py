"""MLflow glue for tuning studies: a parent run per study, a nested run per trial.

Every run is created and ended through ``MlflowClient`` with explicit run ids, never
through MLflow's global active run, so trials running in parallel threads or
processes cannot log into each other's runs. Runs carry these tags:

- ``grindwatch.kind``: ``study`` for the parent, ``trial`` for each trial;
- ``grindwatch.study`` and, on trial runs, ``grindwatch.trial_number``;
- ``grindwatch.trial_state``: the Optuna state (COMPLETE, PRUNED, FAIL);
- ``grindwatch.stopped_step``: the last epoch a pruned or failed trial reported;
- on trial runs, ``grindwatch.<package>_version`` for Python, NumPy, scikit-learn
  and PyTorch, and ``grindwatch.torch_threads`` for autoencoder trials.

A complete trial's run logs ``objective`` once, at step 0, with the trial's other
final metrics. Autoencoder trials also log, per epoch (step = epoch), the value
that pruning compares (``epoch_injected_auc``, or ``epoch_labeled_auc`` under the
``labeled_auc`` objective) and the losses. A trial that repeats an earlier
trial's settings copies its per-epoch value but not its losses. Pruned and failed
trials have no ``objective``. The study's run logs the best trial's metrics as
``best.<name>``, among them every factor of the objective.

A trial run ends FINISHED when the trial completed or was pruned, FAILED when it
raised, and KILLED when the user interrupted it. Runs that a killed process left
RUNNING are found by those tags and marked FAILED when the study resumes. A run
left RUNNING because the tracking server was unreachable when its trial ended
gets the result that the trial stored in the study, and ends FINISHED.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grindwatch._locks import sqlite_setup_lock
from grindwatch._version import __version__
from grindwatch.config import Config
from grindwatch.tracking import (
    _client,
    _experiment_id,
    _param_value,
    environment_tags,
    resolve_tracking_uri,
    run_params,
    store_errors,
    variant_metrics,
)

logger = logging.getLogger(__name__)

__all__ = ["StudyTracker", "run_status"]

# Keys of the flattened trial config that describe the study, not the trial; they
# are logged once, on the parent run.
_STUDY_KEYS = ("tune.", "tracking.", "data.paths")
_LOCK_RETRIES = 8


def run_status(state: str) -> str:
    """Map an Optuna trial state (or ``INTERRUPTED``) to an MLflow run status."""
    return {
        "COMPLETE": "FINISHED",
        "PRUNED": "FINISHED",
        "INTERRUPTED": "KILLED",
    }.get(state, "FAILED")


# Errors after which the same call succeeds when made again: a lock held by
# another process, and a row that another process inserted between this
# process's check and its insert (two workers tagging the study's run at once).
_TRANSIENT = (
    "database is locked",
    "UNIQUE constraint failed",
    "duplicate key value violates unique constraint",
)


def _retry(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an MLflow client method, retrying after a transient store error.

    MLflow's SQLite store waits 20 s for a lock before it gives up; several
    processes writing trial metrics at once can still exceed that. MLflow sets
    a tag by looking for it and then inserting it, so two processes that set the
    same tag at once can collide. The retry then finds the row and updates it.
    """
    for attempt in range(_LOCK_RETRIES):
        try:
            return call(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - MLflow wraps the SQLAlchemy error
            text = str(error)
            transient = any(marker in text for marker in _TRANSIENT)
            if not transient or attempt == _LOCK_RETRIES - 1:
                raise
            logger.info("MLflow store busy; retrying (%s)", call.__name__)
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _now_ms() -> int:
    return int(time.time() * 1000)


class StudyTracker:
    """Record a study and its trials in MLflow.

    Parameters
    ----------
    config : Config
        ``tracking`` sets the store and experiment.

    Attributes
    ----------
    uri : str
        The tracking URI.
    parent_run_id : str or None
        The study's run, once ``open_parent`` has run.
    """

    enabled = True

    def __init__(self, config: Config) -> None:
        self.config = config
        self.uri = resolve_tracking_uri(config)
        with sqlite_setup_lock(self.uri), store_errors(self.uri):
            self.client = _client(self.uri)
            self.experiment_id = _experiment_id(
                self.client, self.uri, config.tracking.experiment
            )
        self.parent_run_id: str | None = None

    # Parent run --------------------------------------------------------------------

    def open_parent(
        self,
        run_id: str | None,
        study_name: str,
        objective: str,
        params: dict[str, Any],
        tags: dict[str, str],
    ) -> str:
        """Create the study's run, or set an existing one RUNNING again on resume."""
        from mlflow.entities import Param

        if run_id is not None:
            with store_errors(self.uri):
                self._check_parent(run_id, study_name)
                _retry(self.client.update_run, run_id, status="RUNNING")
            self.parent_run_id = run_id
            logger.info("resumed MLflow study run %s", run_id)
            return run_id

        all_tags = {
            "grindwatch.kind": "study",
            "grindwatch.study": study_name,
            "grindwatch.version": __version__,
            # Read by the report to find the objective among the trials' metrics.
            "grindwatch.objective": "objective",
            "grindwatch.objective_name": objective,
            "grindwatch.direction": "maximize",
            **tags,
        }
        with store_errors(self.uri):
            run = _retry(
                self.client.create_run,
                self.experiment_id,
                run_name=study_name,
                tags=all_tags,
            )
        self.parent_run_id = run.info.run_id
        entries = [Param(k, _param_value(v)) for k, v in params.items()]
        for begin in range(0, len(entries), 100):
            _retry(
                self.client.log_batch,
                self.parent_run_id,
                params=entries[begin : begin + 100],
            )
        logger.info("MLflow study run %s in %s", self.parent_run_id, self.uri)
        return self.parent_run_id

    def _check_parent(self, run_id: str, study_name: str) -> None:
        """Raise TrackingError when the study's run is deleted or not in the store."""
        from mlflow.exceptions import MlflowException

        from grindwatch.exceptions import TrackingError

        try:
            run = self.client.get_run(run_id)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise TrackingError(
                f"the MLflow run {run_id} of study {study_name!r} is not in "
                f"{self.uri}: it was purged, or the store was replaced. Start a new "
                "study with another --study-name"
            ) from None
        if run.info.lifecycle_stage == "deleted":
            raise TrackingError(
                f"the MLflow run {run_id} of study {study_name!r} in {self.uri} is "
                "deleted, so the study's trials cannot be logged under it. Restore "
                f"it with 'mlflow runs restore --run-id {run_id}' (with "
                f"MLFLOW_TRACKING_URI={self.uri}), or start a new study with "
                "another --study-name"
            )

    def close_parent(self, status: str, state: str) -> None:
        """End the study's run with ``status`` and tag it with the study's state."""
        if self.parent_run_id is None:
            return
        _retry(self.client.set_tag, self.parent_run_id, "grindwatch.study_state", state)
        _retry(self.client.set_terminated, self.parent_run_id, status)

    def log_summary(
        self,
        best: dict[str, Any],
        metrics: dict[str, float],
        files: dict[str, Path],
        tags: dict[str, str],
    ) -> None:
        """Log the best trial's parameters and metrics, plots and the trials table.

        Best parameters are logged as ``best.<name>`` parameters. MLflow parameters
        cannot change, so when a resumed study finds a new best trial, its values go
        to ``best.<name>`` tags instead, which always hold the latest best: tags of
        settings the latest best lacks are deleted.
        """
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException

        run_id = self.parent_run_id
        now = _now_ms()
        finite = {k: float(v) for k, v in metrics.items() if _finite(v)}
        _retry(
            self.client.log_batch,
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in finite.items()],
        )
        params = [Param(f"best.{k}", _param_value(v)) for k, v in best.items()]
        try:
            _retry(self.client.log_batch, run_id, params=params)
        except MlflowException:
            logger.info("best parameters changed since the last summary; kept as tags")
        best_tags = {f"best.{k}": str(v) for k, v in best.items()}
        # A new best of another family lacks some of the old best's settings.
        stale = [
            key
            for key in _retry(self.client.get_run, run_id).data.tags
            if key.startswith("best.") and key not in best_tags
        ]
        for key in stale:
            _retry(self.client.delete_tag, run_id, key)
        for key, value in {**tags, **best_tags}.items():
            _retry(self.client.set_tag, run_id, key, str(value)[:5000])
        with tempfile.TemporaryDirectory() as folder:
            for name, path in files.items():
                Path(folder, name).write_bytes(Path(path).read_bytes())
            _retry(self.client.log_artifacts, run_id, folder)

    # Trial runs --------------------------------------------------------------------

    def start_trial(
        self, study_name: str, number: int, config: Config, params: dict[str, Any]
    ) -> str:
        """Create the nested run of trial ``number`` and log its configuration
        and ``variant_metrics``."""
        from mlflow.entities import Metric

        tags = {
            "mlflow.parentRunId": self.parent_run_id or "",
            "grindwatch.kind": "trial",
            "grindwatch.study": study_name,
            "grindwatch.trial_number": str(number),
            "grindwatch.trial_state": "RUNNING",
            "grindwatch.version": __version__,
            "grindwatch.seed": str(config.seed),
            "grindwatch.detector": config.detector.family,
            **environment_tags(config.detector.family),
        }
        if not self.parent_run_id:
            del tags["mlflow.parentRunId"]
        flat = {
            k: v for k, v in run_params(config).items() if not k.startswith(_STUDY_KEYS)
        }
        run_id = self._create_trial_run(study_name, number, tags, flat, params)
        # Logged at the start, so that pruned and failed trials sort by them too.
        shape = variant_metrics(config, config.data.kind, params)
        now = _now_ms()
        _retry(
            self.client.log_batch,
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in shape.items()],
        )
        return run_id

    def _create_trial_run(
        self,
        study_name: str,
        number: int,
        tags: dict[str, str],
        settings: dict[str, Any],
        params: dict[str, Any],
    ) -> str:
        """Create a trial's run with its settings and Optuna parameters logged."""
        from mlflow.entities import Param

        run = _retry(
            self.client.create_run,
            self.experiment_id,
            run_name=f"{study_name} trial {number}",
            tags=tags,
        )
        run_id = run.info.run_id
        logged = {**settings, "trial_number": number}
        logged.update({f"optuna.{k}": v for k, v in params.items()})
        entries = [Param(k, _param_value(v)) for k, v in logged.items()]
        for begin in range(0, len(entries), 100):
            _retry(self.client.log_batch, run_id, params=entries[begin : begin + 100])
        return run_id

    def log_steps(
        self, run_id: str, steps: list[tuple[int, dict[str, float | None]]]
    ) -> None:
        """Log per-epoch metrics (losses, the step value), one entry per step."""
        from mlflow.entities import Metric

        now = _now_ms()
        batch = [
            Metric(k, float(v), now, step)
            for step, metrics in steps
            for k, v in metrics.items()
            if _finite(v)
        ]
        # MLflow accepts at most 1000 metrics per batch.
        for begin in range(0, len(batch), 1000):
            _retry(self.client.log_batch, run_id, metrics=batch[begin : begin + 1000])

    def finish_trial(
        self,
        run_id: str,
        state: str,
        metrics: dict[str, float] | None = None,
        stopped_step: int | None = None,
        error: str | None = None,
        texts: dict[str, str] | None = None,
    ) -> None:
        """Log a trial's outcome and end its run with the matching status.

        ``state`` is the Optuna state (COMPLETE, PRUNED, FAIL) or INTERRUPTED.
        """
        from mlflow.entities import Metric

        try:
            if metrics:
                now = _now_ms()
                finite = {k: float(v) for k, v in metrics.items() if _finite(v)}
                _retry(
                    self.client.log_batch,
                    run_id,
                    metrics=[Metric(k, v, now, 0) for k, v in finite.items()],
                )
            for name, text in (texts or {}).items():
                _retry(self.client.log_text, run_id, text, name)
            tags = {
                "grindwatch.trial_state": "FAIL" if state == "INTERRUPTED" else state
            }
            if state == "INTERRUPTED":
                tags["grindwatch.fail_reason"] = "interrupted"
            if stopped_step is not None:
                tags["grindwatch.stopped_step"] = str(stopped_step)
            if error:
                tags["grindwatch.error"] = error[:5000]
            for key, value in tags.items():
                _retry(self.client.set_tag, run_id, key, value)
        finally:
            _retry(self.client.set_terminated, run_id, run_status(state))

    def record_lost_trial(
        self, study_name: str, number: int, params: dict[str, Any]
    ) -> str | None:
        """Create a FAILED run for a trial whose process died before creating one.

        A process killed between Optuna's start of the trial and ``start_trial``
        leaves a FAIL trial with no run. Returns the new run's id, or None when a
        run of that trial exists (``fail_orphans`` ends it if it still runs).
        """

        found = _retry(
            self.client.search_runs,
            [self.experiment_id],
            filter_string=(
                f"tags.`grindwatch.study` = '{study_name}' and "
                "tags.`grindwatch.kind` = 'trial' and "
                f"tags.`grindwatch.trial_number` = '{number}'"
            ),
            max_results=1,
        )
        if found:
            return None
        tags = {
            "grindwatch.kind": "trial",
            "grindwatch.study": study_name,
            "grindwatch.trial_number": str(number),
            "grindwatch.trial_state": "FAIL",
            "grindwatch.fail_reason": "its process stopped before the trial's run "
            "was created",
            "grindwatch.version": __version__,
        }
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        run_id = self._create_trial_run(study_name, number, tags, {}, params)
        _retry(self.client.set_terminated, run_id, "FAILED")
        return run_id

    def fail_orphans(
        self,
        study_name: str,
        is_running: Callable[[int], bool],
        finished_outcome: Callable[[int], dict[str, Any] | None] | None = None,
    ) -> int:
        """End the RUNNING trial runs whose Optuna trial no longer runs.

        Such runs belong to a process that was killed (SIGKILL, power loss) before
        it could end them, or that could not reach the tracking server when its
        trial ended. ``finished_outcome`` returns the ``finish_trial`` arguments of
        a trial that Optuna stored as COMPLETE or PRUNED, or None for other trials.
        The run of such a trial gets that outcome and ends FINISHED; any other
        orphan is marked FAILED. Returns how many runs were ended.
        """
        found = _retry(
            self.client.search_runs,
            [self.experiment_id],
            filter_string=(
                f"tags.`grindwatch.study` = '{study_name}' and "
                "tags.`grindwatch.kind` = 'trial' and attributes.status = 'RUNNING'"
            ),
            max_results=10000,
        )
        marked = recovered = 0
        for run in found:
            number = int(run.data.tags.get("grindwatch.trial_number", "-1"))
            if is_running(number):
                continue
            # The search may predate the trial's end. A worker ends its run before it
            # calls study.tell, so a run still RUNNING after its trial ended is an
            # orphan.
            if _retry(self.client.get_run, run.info.run_id).info.status != "RUNNING":
                continue
            outcome = finished_outcome(number) if finished_outcome else None
            if outcome is not None:
                # The study has the trial's result, so the run gets it, not FAILED.
                self.finish_trial(run.info.run_id, **outcome)
                recovered += 1
                continue
            _retry(
                self.client.set_tag, run.info.run_id, "grindwatch.trial_state", "FAIL"
            )
            _retry(
                self.client.set_tag,
                run.info.run_id,
                "grindwatch.fail_reason",
                "its process stopped without ending the run",
            )
            _retry(self.client.set_terminated, run.info.run_id, "FAILED")
            marked += 1
        if marked:
            logger.warning("marked %d trial runs left RUNNING as FAILED", marked)
        if recovered:
            logger.warning(
                "logged the stored results of %d finished trials whose runs were "
                "left RUNNING, and ended those runs",
                recovered,
            )
        return marked + recovered

    def fail_unfinished_retrains(self) -> int:
        """Mark FAILED the study's retraining runs that a killed process left RUNNING.

        Called by the process that concludes the study, before it retrains. Returns
        how many runs were marked.
        """
        if self.parent_run_id is None:
            return 0
        found = _retry(
            self.client.search_runs,
            [self.experiment_id],
            filter_string=(
                f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' and "
                "tags.`grindwatch.kind` = 'train' and attributes.status = 'RUNNING'"
            ),
            max_results=1000,
        )
        # NOTE: a process that joins a complete study while its last worker still
        # retrains concludes the study too, and marks that retraining FAILED here.
        # The retraining's own end sets its run FINISHED again.
        for run in found:
            _retry(
                self.client.set_tag,
                run.info.run_id,
                "grindwatch.fail_reason",
                "its process stopped before the retraining ended",
            )
            _retry(self.client.set_terminated, run.info.run_id, "FAILED")
        if found:
            logger.warning(
                "marked %d retraining runs left RUNNING by a stopped process as "
                "FAILED: %s",
                len(found),
                [run.info.run_id for run in found],
            )
        return len(found)

    # Model registry ----------------------------------------------------------------

    def log_texts(self, run_id: str, texts: dict[str, str]) -> None:
        """Log each text as an artifact of run ``run_id``, named by its key."""
        for name, text in texts.items():
            _retry(self.client.log_text, run_id, text, name)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            _retry(self.client.set_tag, run_id, key, value)

    def alias_version(self, run_id: str, name: str, alias: str) -> str:
        """Point ``alias`` of model ``name`` at the version registered by ``run_id``."""
        versions = _retry(
            self.client.search_model_versions,
            f"name = '{name}' and run_id = '{run_id}'",
        )
        if not versions:
            raise RuntimeError(
                f"run {run_id} registered no version of model {name!r}; check that "
                "the model was logged with tracking.log_model enabled"
            )
        version = str(max(int(v.version) for v in versions))
        previous = self._alias_holder(name, alias)
        _retry(self.client.set_registered_model_alias, name, alias, version)
        if previous is not None and previous != version:
            # Scoring jobs that load models:/NAME@alias switch models at their
            # next load, so the move is worth a line of its own.
            logger.warning(
                "models:/%s@%s moved from version %s to version %s",
                name,
                alias,
                previous,
                version,
            )
        else:
            logger.info("models:/%s@%s is version %s", name, alias, version)
        return version

    def name_run(self, run_id: str, name: str) -> None:
        _retry(self.client.update_run, run_id, name=name)

    def register_logged_model(self, run_id: str, name: str, alias: str) -> str:
        """Register the model that ``run_id`` logged as a version of ``name``,
        unless that run already has a version there, and point ``alias`` at it."""
        from mlflow.exceptions import MlflowException

        versions = _retry(
            self.client.search_model_versions,
            f"name = '{name}' and run_id = '{run_id}'",
        )
        if not versions:
            tags = _retry(self.client.get_run, run_id).data.tags
            source = tags.get("grindwatch.model_uri", f"runs:/{run_id}/model")
            try:
                _retry(self.client.create_registered_model, name)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            # MLflow 3 links a version to its logged model (models:/m-...) by id.
            model_id = None
            if source.startswith("models:/m-"):
                model_id = source.removeprefix("models:/")
            _retry(
                self.client.create_model_version,
                name,
                source,
                run_id,
                model_id=model_id,
            )
        return self.alias_version(run_id, name, alias)

    def _alias_holder(self, name: str, alias: str) -> str | None:
        """Return the version that ``alias`` names now, or None."""
        from mlflow.exceptions import MlflowException

        try:
            current = _retry(self.client.get_model_version_by_alias, name, alias)
        except MlflowException:
            return None
        return str(current.version)

    def is_finished_retraining(
        self, run_id: str | None, study_name: str, trial: int
    ) -> bool:
        """Return whether ``run_id`` is a FINISHED, not deleted run that retrained
        trial ``trial`` of study ``study_name``."""
        from mlflow.exceptions import MlflowException

        if not run_id:
            return False
        try:
            run = _retry(self.client.get_run, run_id)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return False
        tags = run.data.tags
        return (
            run.info.status == "FINISHED"
            and run.info.lifecycle_stage == "active"
            and tags.get("grindwatch.kind") == "train"
            and tags.get("grindwatch.study") == study_name
            and tags.get("grindwatch.best_trial") == str(trial)
        )

    def run_status(self, run_id: str) -> str:
        return _retry(self.client.get_run, run_id).info.status

    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(_retry(self.client.get_run, run_id).data.tags)


def _finite(value: Any) -> bool:
    import math

    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class NullTracker:
    """Stands in for ``StudyTracker`` when tracking is disabled; records nothing."""

    enabled = False
    uri = None
    parent_run_id = None

    def __getattr__(self, name: str) -> Callable[..., None]:
        def ignore(*args: Any, **kwargs: Any) -> None:
            return None

        return ignore
