"""Run a study's trials in worker threads, sharing the study with other processes.

Several workers, in threads of one process (``tune.jobs``) or in processes on the
same storage, run one study together and stop at exactly ``tune.n_trials``
finished trials. Finished means COMPLETE or PRUNED: a FAIL trial (an error, an
interrupt, a killed process) does not count, so another trial replaces it. An
interrupted trial's settings are queued again, so that a resume runs them first.
So are those of a trial whose MLflow run could not be created, and the study then
stops, because every later trial would fail on the same tracking store.

- **Claiming.** A worker requests a trial from Optuna only while finished plus running
  trials are fewer than ``n_trials``. Two workers can still ask at the same moment;
  right after asking, each counts the finished trials and the running ones with a
  lower number, and the worker whose trial would exceed the total puts it back
  (state WAITING, no parameters drawn), where the next ``ask`` picks it up.
- **Liveness.** Each process records a heartbeat (user attribute
  ``grindwatch.heartbeat``, seconds since the epoch) on its running trials every
  ``HEARTBEAT_INTERVAL_S``. A RUNNING trial of another worker is dead when its
  process is gone from this host, its heartbeat is older than ``STALE_AFTER_S``,
  or it never got its owner's attributes within ``CLAIM_GRACE_S``; it is marked
  FAIL, and so is its MLflow run. On a server database (PostgreSQL) workers also
  record Optuna heartbeats, stamped by the database's clock, and each trial failed
  either way is queued again with the same parameters
  (``grindwatch.study_storage``).
- **Repeats.** A trial whose settings equal those of a complete earlier trial
  reuses that trial's measurement instead of fitting again, and records
  ``grindwatch.duplicate_of``; it still counts as a finished trial.
- **Ending.** A worker leaves once the study has ``n_trials`` finished trials and
  no running ones, so the last trial of any worker is waited for.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from grindwatch.config import Config
from grindwatch.search_space import suggest_overrides
from grindwatch.study_storage import (
    ask,
    fail_stale_trials,
    record_heartbeat,
    retry_trial,
)

if TYPE_CHECKING:
    import optuna

    from grindwatch.objective import Objective

logger = logging.getLogger(__name__)

__all__ = ["USER_INTERRUPT", "TrialEvent", "TrialInterrupted", "TrialRunner"]

HEARTBEAT_INTERVAL_S = 10.0
# Clocks of different hosts are compared, so this allows for some skew as well as
# for a busy process.
STALE_AFTER_S = 120.0
# A worker stores its owner attributes right after claiming a trial; a RUNNING trial
# still without them after this long lost its worker in between.
CLAIM_GRACE_S = 30.0
POLL_S = 2.0
# Per-epoch metrics go to MLflow in batches at most this often, and when the trial
# ends: one write per epoch would cost more than a small network's epoch.
STEP_FLUSH_S = 5.0
MAX_CONSECUTIVE_FAILURES = 10
HOST = socket.gethostname()
# Study user attribute with the study's configuration, stored by
# ``grindwatch.tuning``. A worker that joins with another --trials updates its
# ``tune.n_trials``.
CONFIG_ATTR = "grindwatch.config"


class TrialInterrupted(Exception):
    """Raised inside a trial when the user interrupts the study."""


class _TrackingStoreFailed(Exception):
    """Raised inside a trial when its MLflow run cannot be created.

    The tracking store failed, not the trial's variant, so the trial is queued
    again and the study stops instead of failing one trial after another.
    """


# The error of a trial that Ctrl-C or SIGTERM stopped. Trials stopped because the
# tracking store failed are INTERRUPTED too, with the store's error instead.
USER_INTERRUPT = "interrupted by the user"


@dataclass
class TrialEvent:
    """A trial this process finished, for progress displays.

    ``value`` is the objective, None for pruned and failed trials. ``n_finished``
    counts COMPLETE and PRUNED trials of the whole study, including those of other
    processes.
    """

    number: int
    state: str
    value: float | None
    best_value: float | None
    n_finished: int
    n_trials: int
    error: str | None = None


def describe_error(caught: BaseException) -> str:
    """Describe ``caught`` as ``Type: message`` for the log and the trial's record.

    Optuna 5.1 raises StorageInternalError for every failed database write, with a
    message that blames invalid data, even when the database server is down. The
    SQLAlchemy error it was raised from names the cause, so that cause is shown.
    """
    from optuna.exceptions import StorageInternalError

    cause = caught.__cause__
    if isinstance(caught, StorageInternalError) and cause is not None:
        reason = " ".join(str(getattr(cause, "orig", None) or cause).split())
        return (
            f"{type(caught).__name__}: writing to the Optuna storage failed: {reason}"
        )
    return f"{type(caught).__name__}: {caught}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TrialRunner:
    """Claim, run and record trials until the study has ``n_trials`` finished ones.

    Parameters
    ----------
    study : optuna.Study
    backend : optuna.storages.RDBStorage
        The storage under ``study``, used to put surplus trials back.
    objective : Objective
    tracker : StudyTracker or NullTracker
    config : Config
        The study's configuration; each trial overrides its searched settings.
    on_trial : callable, optional
        Called with a ``TrialEvent`` after each trial of this process.

    Attributes
    ----------
    token : str
        ``host:pid:random``, stored on each claimed trial as ``grindwatch.worker``.
    stop_reason : str
        ``complete``, ``timeout``, ``failures`` or ``interrupted`` once ``run`` ends.
    last_error : str or None
    """

    def __init__(
        self,
        study: optuna.Study,
        backend: Any,
        objective: Objective,
        tracker: Any,
        config: Config,
        on_trial: Callable[[TrialEvent], None] | None = None,
    ) -> None:
        self.study = study
        self.backend = backend
        self.objective = objective
        self.tracker = tracker
        self.config = config
        self.on_trial = on_trial
        self.n_trials = config.tune.n_trials
        self.token = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stop_reason = "complete"
        self._worker_error: Exception | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._claim_lock = threading.Lock()
        self._mine: dict[int, optuna.Trial] = {}
        self._mine_lock = threading.Lock()
        self._deadline = (
            time.monotonic() + config.tune.timeout if config.tune.timeout else None
        )

    # Counting and liveness -----------------------------------------------------------

    def refresh_target(self) -> int:
        """Take the study's stored ``tune.n_trials``, which a joining worker may
        have changed, as this worker's target, and return it."""
        stored = self.study.user_attrs.get(CONFIG_ATTR) or {}
        target = (stored.get("tune") or {}).get("n_trials")
        if isinstance(target, int) and target > 0 and target != self.n_trials:
            logger.info(
                "study %s now targets %d trials (was %d)",
                self.study.study_name,
                target,
                self.n_trials,
            )
            self.n_trials = target
        return self.n_trials

    def counts(self) -> tuple[int, int]:
        """(finished, running) trials of the whole study."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        finished = sum(
            t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials
        )
        running = sum(t.state == TrialState.RUNNING for t in trials)
        return finished, running

    def _is_dead(self, trial: optuna.trial.FrozenTrial, now: float) -> bool:
        attrs = trial.user_attrs
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        if "grindwatch.worker" not in attrs:
            return now - started > CLAIM_GRACE_S
        if attrs["grindwatch.worker"] == self.token:
            return False
        pid = attrs.get("grindwatch.pid")
        if attrs.get("grindwatch.host") == HOST and pid is not None:
            if pid == os.getpid() or not _pid_alive(int(pid)):
                return True
        beat = float(attrs.get("grindwatch.heartbeat", started))
        return now - beat > STALE_AFTER_S

    def fail_dead_trials(self) -> list[int]:
        """Mark FAIL the RUNNING trials whose worker is gone; return their numbers."""
        from optuna.trial import TrialState

        # Optuna's check: trials without a heartbeat for the grace period (server
        # databases only), found by any host. They are queued again, and their
        # MLflow runs are ended by fail_orphans below.
        fail_stale_trials(self.study)
        now = time.time()
        failed = []
        for trial in self.study.get_trials(
            deepcopy=False, states=(TrialState.RUNNING,)
        ):
            if not self._is_dead(trial, now) or not self._mark_failed(trial):
                continue
            self._end_dead_trial_run(trial)
            failed.append(trial.number)
        if failed:
            logger.warning("marked trials %s FAIL: their process is gone", failed)
        try:
            self.tracker.fail_orphans(
                self.study.study_name, self._is_running, self._finished_outcome
            )
        except Exception as error:  # noqa: BLE001 - the next claim checks again
            logger.warning(
                "ending trial runs left RUNNING in MLflow failed; the next claim "
                "tries again: %s",
                error,
            )
        return failed

    def _end_dead_trial_run(self, trial: optuna.trial.FrozenTrial) -> None:
        """Mark FAILED the MLflow run of a trial just failed for its dead worker.

        When MLflow cannot be reached, the run stays RUNNING, and a later orphan
        check marks it FAILED.
        """
        run_id = trial.user_attrs.get("grindwatch.mlflow_run_id")
        try:
            if run_id:
                self.tracker.finish_trial(
                    run_id, "FAIL", error="its process stopped without ending the trial"
                )
            else:
                # Killed before its run id was stored: the run may not exist.
                # NOTE: when this call fails too, the trial keeps no MLflow run.
                self.tracker.record_lost_trial(
                    self.study.study_name, trial.number, trial.params
                )
        except Exception as error:  # noqa: BLE001 - the trial is failed in the study
            logger.warning(
                "ending the MLflow run %s of dead trial %d failed; a later orphan "
                "check marks it FAILED: %s",
                run_id,
                trial.number,
                error,
            )

    def _mark_failed(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Mark a dead worker's trial FAIL and queue it again, if no other worker has.

        The storage changes the state under a row lock, so of several workers that
        find the same dead trial, exactly one queues its retry.
        """
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        try:
            changed = self.backend.set_trial_state_values(
                trial._trial_id, TrialState.FAIL
            )
        except UpdateFinishedTrialError:
            return False
        if changed:
            retry_trial(self.study, self.backend, trial._trial_id)
        return changed

    def _is_running(self, number: int) -> bool:
        from optuna.trial import TrialState

        for trial in self.study.get_trials(
            deepcopy=False, states=(TrialState.RUNNING,)
        ):
            if trial.number == number:
                return True
        return False

    def _finished_outcome(self, number: int) -> dict[str, Any] | None:
        """Return the ``finish_trial`` arguments of a COMPLETE or PRUNED trial.

        None for a trial in any other state. The metrics, the stopped epoch and the
        configuration come from what the trial stored in the study. Its injections
        are not stored there, so the run gets no ``injections.json``.
        """
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED)
        for trial in self.study.get_trials(deepcopy=False, states=states):
            if trial.number != number:
                continue
            attrs = trial.user_attrs
            overrides = attrs.get("grindwatch.overrides", {})
            config = self.config.with_overrides(overrides)
            return {
                "state": trial.state.name,
                "metrics": dict(attrs.get("grindwatch.metrics", {})),
                "stopped_step": attrs.get("grindwatch.stopped_step"),
                "texts": {"config.yaml": config.to_yaml()},
            }
        return None

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            with self._mine_lock:
                trials = list(self._mine.values())
            for trial in trials:
                try:
                    trial.set_user_attr("grindwatch.heartbeat", time.time())
                    record_heartbeat(self.backend, trial)
                except Exception as error:  # noqa: BLE001 - the trial may have just ended
                    logger.debug("heartbeat of trial %d: %s", trial.number, error)

    # Claiming ------------------------------------------------------------------------

    def _claim(self) -> optuna.Trial | None:
        """Ask for a trial if the study needs one; None when it needs none now."""
        from optuna.trial import TrialState

        with self._claim_lock:
            self.fail_dead_trials()
            self.refresh_target()
            finished, running = self.counts()
            if finished + running >= self.n_trials:
                return None
            trial = ask(self.study)
            trials = self.study.get_trials(deepcopy=False)
            ahead = sum(
                t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                or (t.state == TrialState.RUNNING and t.number < trial.number)
                for t in trials
            )
            if ahead >= self.n_trials:
                # Optuna has no public call that returns a trial to the queue.
                self.backend.set_trial_state_values(trial._trial_id, TrialState.WAITING)
                logger.info("trial %d not needed; returned to the queue", trial.number)
                return None
            # The worker token goes last: a trial that has it has the others too.
            for key, value in {
                "grindwatch.host": HOST,
                "grindwatch.pid": os.getpid(),
                "grindwatch.heartbeat": time.time(),
                "grindwatch.worker": self.token,
            }.items():
                trial.set_user_attr(key, value)
            record_heartbeat(self.backend, trial)
            with self._mine_lock:
                self._mine[trial.number] = trial
            return trial

    # Running -------------------------------------------------------------------------

    def run(self) -> str:
        """Run workers until the study is complete, time is up or the user stops.

        Returns the stop reason. On KeyboardInterrupt, running trials end as FAIL
        with their MLflow runs KILLED, and the interrupt is raised again.
        """
        jobs = self.config.tune.jobs
        heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        finished = [threading.Event() for _ in range(jobs)]
        workers = [
            threading.Thread(
                target=self._work, args=(done,), name=f"trial-worker-{i}", daemon=True
            )
            for i, done in enumerate(finished)
        ]
        heartbeat.start()
        for worker in workers:
            worker.start()
        # Wait on events, not Thread.join: in Python 3.11 a join interrupted by
        # Ctrl-C can mark a thread stopped while it still runs.
        try:
            _wait_all(finished)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            self._stop.set()
            logger.warning("interrupted; stopping the running trials")
            _wait_all(finished)
            raise
        finally:
            self._stop.set()
        if self._worker_error is not None:
            raise self._worker_error
        return self.stop_reason

    def _work(self, done: threading.Event) -> None:
        try:
            self._work_loop()
        except Exception as error:  # noqa: BLE001 - raised again by run()
            # An error outside a trial's objective, such as Optuna failing to
            # store the trial's end because the database stopped. The trial stays
            # RUNNING until another worker or a resume finds this process gone.
            logger.error("stopping this worker: %s", describe_error(error))
            self._worker_error = error
            self._stop.set()
        finally:
            done.set()

    def _work_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if self._deadline is not None and time.monotonic() > self._deadline:
                self.stop_reason = "timeout"
                return
            try:
                trial = self._claim()
            except Exception as error:  # noqa: BLE001 - see below
                # A lost database or tracking server connection. Raised, it would
                # end this thread with a traceback while the study looked complete.
                # Counted as a failed trial, an outage that lasts stops the worker.
                self.last_error = f"claiming a trial failed: {describe_error(error)}"
                logger.warning("%s", self.last_error)
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    self._stop_after_failures(failures)
                    return
                self._stop.wait(POLL_S)
                continue
            if trial is None:
                finished, running = self.counts()
                if finished >= self.refresh_target() and running == 0:
                    return
                self._stop.wait(POLL_S)
                continue
            state = self._run_trial(trial)
            failures = failures + 1 if state == "FAIL" else 0
            if failures >= MAX_CONSECUTIVE_FAILURES:
                self._stop_after_failures(failures)
                return

    def _stop_after_failures(self, failures: int) -> None:
        logger.error(
            "%d trials failed in a row; stopping. Last error: %s",
            failures,
            self.last_error,
        )
        self.stop_reason = "failures"
        self._stop.set()

    def _run_trial(self, trial: optuna.Trial) -> str:
        import optuna

        number = trial.number
        run_id = None
        state, value, metrics, error, step = "FAIL", None, {}, None, None
        store_error: BaseException | None = None
        texts: dict[str, str] = {}
        steps = _StepBuffer(self.tracker)
        step_metric = self.objective.step_metric

        def report(
            epoch: int, step_value: float, train: float, val: float | None
        ) -> None:
            nonlocal step
            step = epoch
            trial.report(step_value, epoch)
            # The step value gets its own metric name. Logged as "objective", the
            # last epoch, at the highest step, would hide the final objective in
            # MLflow, which shows a metric's value at its highest step.
            steps.add(
                run_id,
                epoch,
                {step_metric: step_value, "train_loss": train, "val_loss": val},
            )
            if self._stop.is_set():
                raise TrialInterrupted(f"interrupted after epoch {epoch}")
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        try:
            overrides = suggest_overrides(
                trial, self.objective.space, self.objective.kind
            )
            trial.set_user_attr("grindwatch.overrides", overrides)
            config = self.config.with_overrides(overrides)
            run_id = self._start_trial_run(number, config, trial.params)
            if run_id:
                trial.set_user_attr("grindwatch.mlflow_run_id", run_id)
            # The whole configuration, so any trial, not only the best, can be
            # trained again with grindwatch train -c config.yaml.
            texts["config.yaml"] = config.to_yaml()
            prepared = self.objective.prepare(config)
            texts["injections.json"] = _json(prepared.injections)
            if prepared.recurring:
                texts["recurring.json"] = _json(prepared.recurring)
            earlier = self._same_variant(overrides, number)
            if earlier is not None:
                # Same settings and seed give the same model: reuse the measurement.
                value = earlier.value
                metrics = dict(earlier.user_attrs.get("grindwatch.metrics", {}))
                trial.set_user_attr("grindwatch.duplicate_of", earlier.number)
                texts["duplicate_of.txt"] = f"trial {earlier.number}\n"
                # Copy the per-epoch values too, so that this run shows the curve
                # that pruning compared. The losses stay on the earlier trial's run.
                for epoch, step_value in sorted(earlier.intermediate_values.items()):
                    steps.add(run_id, epoch, {step_metric: step_value})
            else:
                result = self.objective.evaluate(config, report=report)
                value, metrics = result.value, result.metrics
                # The threshold's rule and reason (such as a fallback from the
                # mixture) explain the trial's recall and specificity factors.
                threshold = result.model.threshold_
                texts["threshold.json"] = _json(
                    {"description": threshold.describe(), **threshold.to_dict()}
                )
            state = "COMPLETE"
            metrics["objective"] = value
        except optuna.TrialPruned:
            # A pruned trial has no objective. Optuna stores its last step value as
            # the trial's value, and MLflow has it in the step metric's history.
            state, value, metrics = "PRUNED", None, {}
        except TrialInterrupted:
            state, error = "INTERRUPTED", USER_INTERRUPT
        except _TrackingStoreFailed as failed:
            store_error = failed.__cause__
            state, error = "INTERRUPTED", describe_error(store_error)
            self.last_error = error
        except Exception as caught:  # noqa: BLE001 - one broken variant ends one trial
            error = describe_error(caught)
            self.last_error = error
            logger.warning("trial %d failed: %s", number, error)
        steps.flush()
        self._record(trial, run_id, state, value, metrics, step, error, texts)
        if store_error is not None:
            # _work then stops every worker, and run() raises the error again.
            raise store_error
        return "FAIL" if state == "INTERRUPTED" else state

    def _start_trial_run(
        self, number: int, config: Config, params: dict[str, Any]
    ) -> str | None:
        """Create the trial's MLflow run, raising _TrackingStoreFailed on failure."""
        from mlflow.exceptions import MlflowException

        try:
            return self.tracker.start_trial(
                self.study.study_name, number, config, params
            )
        except MlflowException as error:
            raise _TrackingStoreFailed from error

    def _same_variant(
        self, overrides: dict[str, Any], number: int
    ) -> optuna.trial.FrozenTrial | None:
        """Return a complete earlier trial with the same settings, or None.

        Samplers repeat settings, most often in small search spaces such as the
        table families'.
        """
        from optuna.trial import TrialState

        for trial in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE,)
        ):
            if (
                trial.number != number
                and trial.user_attrs.get("grindwatch.overrides") == overrides
                and "grindwatch.metrics" in trial.user_attrs
            ):
                return trial
        return None

    def _record(
        self,
        trial: optuna.Trial,
        run_id: str | None,
        state: str,
        value: float | None,
        metrics: dict[str, float],
        step: int | None,
        error: str | None,
        texts: dict[str, str],
    ) -> None:
        """End the MLflow run first, then tell Optuna, so that a run is left
        RUNNING under a trial that has ended only when MLflow could not be reached.
        The orphan check then ends that run with the result stored in the study."""
        from optuna.trial import TrialState

        try:
            if step is not None and state != "COMPLETE":
                trial.set_user_attr("grindwatch.stopped_step", step)
            if metrics:
                trial.set_user_attr(
                    "grindwatch.metrics",
                    {k: float(v) for k, v in metrics.items() if v is not None},
                )
            if error:
                trial.set_user_attr("grindwatch.error", error[:2000])
            if run_id:
                stopped = None if state == "COMPLETE" else step
                try:
                    self.tracker.finish_trial(
                        run_id,
                        state,
                        metrics,
                        stopped_step=stopped,
                        error=error,
                        texts=texts,
                    )
                except Exception as caught:  # noqa: BLE001 - still tell Optuna below
                    # The study keeps the result. The next orphan check of any
                    # worker, or a resume, logs it on the run and ends the run.
                    logger.error(
                        "recording trial %d in MLflow failed; its result is kept "
                        "in the study and logged on run %s later: %s",
                        trial.number,
                        run_id,
                        caught,
                    )
        finally:
            optuna_state = {
                "COMPLETE": TrialState.COMPLETE,
                "PRUNED": TrialState.PRUNED,
            }.get(state, TrialState.FAIL)
            self.study.tell(
                trial, value if state == "COMPLETE" else None, state=optuna_state
            )
            with self._mine_lock:
                self._mine.pop(trial.number, None)
        if state == "INTERRUPTED":
            self._queue_again(trial)
        self._notify(trial.number, state, value, error)

    def _queue_again(self, trial: optuna.Trial) -> None:
        """Queue an interrupted trial's settings, so that a resume runs them first.

        The interrupt is no measurement of the variant, and the sampler would
        not draw the same settings again.
        """
        attrs = {"grindwatch.copy_of": trial.number}
        if trial.user_attrs.get("baseline"):
            attrs["baseline"] = True
        try:
            self.study.enqueue_trial(trial.params, user_attrs=attrs)
        except Exception as caught:  # noqa: BLE001 - the interrupt matters more
            logger.warning(
                "could not queue interrupted trial %d again, so a resume draws "
                "other settings in its place: %s",
                trial.number,
                caught,
            )

    def _notify(
        self, number: int, state: str, value: float | None, error: str | None
    ) -> None:
        if self.on_trial is None:
            return
        finished, _ = self.counts()
        try:
            best = self.study.best_value
        except ValueError:
            best = None
        self.on_trial(
            TrialEvent(number, state, value, best, finished, self.n_trials, error)
        )


def _wait_all(events: list[threading.Event]) -> None:
    for event in events:
        while not event.wait(0.2):
            pass


class _StepBuffer:
    """Collect one trial's per-epoch metrics and log them to MLflow in batches."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.run_id: str | None = None
        self.pending: list[tuple[int, dict[str, float | None]]] = []
        self.flushed = time.monotonic()

    def add(
        self, run_id: str | None, step: int, metrics: dict[str, float | None]
    ) -> None:
        if run_id is None:
            return
        self.run_id = run_id
        self.pending.append((step, metrics))
        if time.monotonic() - self.flushed > STEP_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self.run_id is not None and self.pending:
            try:
                self.tracker.log_steps(self.run_id, self.pending)
            except Exception as error:  # noqa: BLE001 - losing loss curves ends no trial
                logger.warning("could not log epoch metrics: %s", error)
        self.pending = []
        self.flushed = time.monotonic()


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, default=str)
