"""Optuna storages that tune workers on many hosts share: creation and liveness.

Several workers that start at once on a new server database all create Optuna's
tables, and PostgreSQL rejects all but the first (a duplicate type or key).
``rdb_storage`` retries, and the retry finds the tables in place.

On a server database (PostgreSQL, MySQL) a study's workers may run on different
hosts, so a dead worker cannot be found by its process id. Each worker records an
Optuna heartbeat for its running trials every ``HEARTBEAT_INTERVAL_S`` seconds.
The database stamps heartbeats with its own clock, so hosts whose clocks disagree
still agree on which trial is stale: one without a heartbeat for
``GRACE_PERIOD_S`` seconds. Any worker that finds a stale trial marks it FAIL and
queues a copy with the same parameters (``RetryStaleTrial``), which the next free
worker runs. The failed trial does not count towards ``tune.n_trials``, and its
copy counts once, when it finishes.

SQLite studies stay on one host, where ``grindwatch.trial_runner`` finds dead
workers by process id, so they get neither heartbeats nor retries.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

__all__ = [
    "GRACE_PERIOD_S",
    "HEARTBEAT_INTERVAL_S",
    "MAX_RETRY",
    "RetryStaleTrial",
    "ask",
    "fail_stale_trials",
    "heartbeat_options",
    "quiet_experimental",
    "rdb_storage",
    "record_heartbeat",
    "retry_trial",
    "uses_heartbeats",
]

HEARTBEAT_INTERVAL_S = 10
# Six missed heartbeats: long enough for a busy host or a slow database, short
# enough that a killed worker's trial is retried within about a minute.
GRACE_PERIOD_S = 60
# Tries at opening a storage while other workers create the same tables.
SETUP_ATTEMPTS = 5
# A trial that keeps killing its worker (running out of memory, say) is retried
# this often, then left failed.
MAX_RETRY = 3
# User attributes that describe one attempt at a trial, not the trial's variant;
# a retry starts without them.
_ATTEMPT_ATTRS = (
    "grindwatch.worker",
    "grindwatch.host",
    "grindwatch.pid",
    "grindwatch.heartbeat",
    "grindwatch.mlflow_run_id",
    "grindwatch.metrics",
    "grindwatch.error",
    "grindwatch.stopped_step",
)


def rdb_storage(url: str, engine_kwargs: dict[str, Any] | None = None) -> Any:
    """Open ``optuna.storages.RDBStorage`` at ``url``, with heartbeats on servers.

    Retries up to ``SETUP_ATTEMPTS`` times while another process creates the
    tables of a new database.
    """
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(1, SETUP_ATTEMPTS + 1):
        try:
            with quiet_experimental():
                return RDBStorage(
                    url, engine_kwargs=engine_kwargs, **heartbeat_options(url)
                )
        except (IntegrityError, ProgrammingError) as error:
            if attempt == SETUP_ATTEMPTS:
                raise
            logger.info(
                "creating the study tables failed, probably because another worker "
                "creates them; retrying (%s)",
                str(error).splitlines()[0],
            )
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def uses_heartbeats(url: str) -> bool:
    """Return True for storage URLs of server databases, False for SQLite."""
    return not url.startswith("sqlite")


class RetryStaleTrial:
    """Queue a failed trial again, with its parameters but none of its attempt's state.

    Optuna's ``RetryHeartbeatStaleTrialCallback`` copies every user attribute of the
    failed trial. This callback first drops those that belong to the dead attempt
    (its worker, process, heartbeat, MLflow run and partial results), so the copy
    cannot look like the dead worker's trial. Optuna records the original trial's
    number in the copy's system attribute ``failed_trial``.

    Parameters
    ----------
    max_retry : int
        Copies made of one original trial at most.
    """

    def __init__(self, max_retry: int = MAX_RETRY) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        cleaned = copy.deepcopy(trial)
        cleaned.user_attrs = {
            key: value
            for key, value in trial.user_attrs.items()
            if key not in _ATTEMPT_ATTRS
        }
        with quiet_experimental():
            retry = RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry)
            retry(study, cleaned)
        logger.info("trial %d failed; queued it again", trial.number)


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the block.

    Optuna has marked its heartbeat arguments (since 2.9) and retry callback (since
    2.8) experimental; grindwatch uses them on purpose.
    """
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


def heartbeat_options(
    url: str,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int = GRACE_PERIOD_S,
) -> dict[str, Any]:
    """Keyword arguments for ``optuna.storages.RDBStorage`` at ``url``.

    Empty for SQLite; for server databases the heartbeat interval and grace period
    in seconds, and ``RetryStaleTrial`` as the stale-trial callback.
    """
    if not uses_heartbeats(url):
        return {}
    return {
        "heartbeat_interval": heartbeat_interval,
        "grace_period": grace_period,
        "heartbeat_stale_trial_callback": RetryStaleTrial(),
    }


def ask(study: optuna.Study) -> optuna.Trial:
    """Call ``study.ask()`` without Optuna's warning about heartbeats outside optimize.

    Optuna records heartbeats itself only inside ``Study.optimize`` and warns when
    ``ask`` meets a storage with heartbeats. grindwatch's workers ask and tell on
    their own and record heartbeats with ``record_heartbeat``, so the warning does
    not apply to them.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Heartbeat of storage is supposed to be used", UserWarning
        )
        return study.ask()


def record_heartbeat(backend: Any, trial: optuna.Trial) -> None:
    """Record a heartbeat for ``trial`` when ``backend`` has heartbeats enabled."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if is_heartbeat_enabled(backend):
        backend.record_heartbeat(trial._trial_id)


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark FAIL the running trials without a recent heartbeat, and queue retries.

    Does nothing when the study's storage has heartbeats disabled.
    """
    import optuna

    with quiet_experimental():
        optuna.storages.fail_stale_trials(study)


def retry_trial(study: optuna.Study, backend: Any, trial_id: int) -> None:
    """Queue a trial just marked FAIL again, through the storage's callback.

    For trials that ``grindwatch.trial_runner`` failed itself (their process is gone
    from this host), which Optuna's own check would only find after the grace
    period. Does nothing when the storage has no stale-trial callback.
    """
    callback = getattr(backend, "get_heartbeat_stale_trial_callback", lambda: None)()
    if callback is None:
        return
    callback(study, copy.deepcopy(backend.get_trial(trial_id)))
