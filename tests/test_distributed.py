"""Distributed tuning: tune workers sharing a study on PostgreSQL and an MLflow server.

PostgreSQL and the MLflow server run on loopback for the whole session (see
``tests/servers.py``); the tests skip without the PostgreSQL programs or psycopg.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient

from grindwatch.config import Config
from grindwatch.mlflow_tuning import NullTracker, StudyTracker
from grindwatch.study_storage import (
    ask,
    heartbeat_options,
    quiet_experimental,
    rdb_storage,
    record_heartbeat,
)
from grindwatch.trial_runner import TrialRunner
from tests.conftest import write_cycles
from tests.servers import (  # noqa: F401 - fixtures
    create_database,
    postgres_server,
    tracking_server,
)

N_TRIALS = 9
N_WORKERS = 3
# One-layer autoencoder trials run 8 epochs and report each one, so a worker
# can be caught in the middle of one, and every worker draws only such trials.
SPACE = {
    "tune.space.frontend": "[spectrum]",
    "tune.space.window_length": "[128]",
    "tune.space.n_bands": "[16]",
    "tune.space.family": "[autoencoder]",
    "tune.space.autoencoder.n_layers": "1",
    "tune.space.hop_fraction": "[1.0]",
    "tune.space.autoencoder.epochs": "8",
    "detector.autoencoder.patience": "8",
    "tune.max_fit_windows": "200",
    "tune.max_holdout_windows": "60",
    "tune.pruner": "none",
    "tracking.log_model": "false",
}


# One quick variant, for tests of how studies run rather than what they pick.
ONE_PCA_VARIANT = {
    "tune.space.frontend": ["spectrum"],
    "tune.space.window_length": [128],
    "tune.space.n_bands": [16],
    "tune.space.hop_fraction": [1.0],
    "tune.space.family": ["pca"],
    "tune.max_fit_windows": 200,
    "tune.max_holdout_windows": 60,
}


def _worker(data: Path, storage: str, study: str, tracking_uri: str) -> list[str]:
    command = [sys.executable, "-m", "grindwatch.cli", "tune", str(data), "--resume"]
    command += ["--trials", str(N_TRIALS), "--storage", storage, "--study-name", study]
    command += ["--tracking-uri", tracking_uri, "--experiment", study]
    for key, value in SPACE.items():
        command += ["--set", f"{key}={value}"]
    return command


def _running_epoch_of(
    storage: optuna.storages.RDBStorage, study: str, pid: int
) -> int | None:
    """Number of a trial that worker ``pid`` is in the middle of training, or None."""
    try:
        loaded = optuna.load_study(study_name=study, storage=storage)
    except KeyError:
        return None
    for trial in loaded.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if (
            trial.state == optuna.trial.TrialState.RUNNING
            and attrs.get("grindwatch.pid") == pid
            and attrs.get("grindwatch.mlflow_run_id")
            and trial.intermediate_values
        ):
            return trial.number
    return None


def _kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.mark.slow
def test_killed_worker_leaves_exact_trial_count(postgres, mlflow_server, tmp_path):
    # A new database: the three workers also race to create Optuna's tables.
    storage = create_database(postgres["OPTUNA_STORAGE"])
    study = f"scale-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "cycles"
    write_cycles(data, 12)
    command = _worker(data, storage, study, mlflow_server)
    # Each worker in its own process group, so teardown can end all of it.
    workers = [
        subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(N_WORKERS)
    ]
    victim, survivors = workers[0], workers[1:]
    # One storage for all the polling: each new one would open its own connections.
    backend = rdb_storage(storage)
    try:
        deadline = time.monotonic() + 240
        killed = None
        while killed is None:
            assert victim.poll() is None, victim.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no autoencoder trial to interrupt"
            killed = _running_epoch_of(backend, study, victim.pid)
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        errors = [worker.communicate(timeout=420)[1] for worker in survivors]
    finally:
        for worker in workers:
            _kill_group(worker)

    assert [worker.returncode for worker in survivors] == [0, 0], errors
    trials = optuna.load_study(study_name=study, storage=backend).get_trials()
    backend.engine.dispose()
    states = Counter(trial.state.name for trial in trials)
    assert states["COMPLETE"] == N_TRIALS
    assert states["FAIL"] == 1
    # A WAITING trial may remain: a worker that asked for a trial the full study no
    # longer needed puts it back unused (see grindwatch.trial_runner).
    assert states["RUNNING"] == 0
    failed = next(trial for trial in trials if trial.state.name == "FAIL")
    assert failed.number == killed
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert [retry.state.name for retry in retries] == ["COMPLETE"]
    assert retries[0].params == failed.params

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(study).experiment_id
    runs = client.search_runs(
        [experiment], f"tags.`grindwatch.study` = '{study}'", max_results=1000
    )
    kinds = [run.data.tags.get("grindwatch.kind") for run in runs]
    parents = [run for run, kind in zip(runs, kinds, strict=True) if kind == "study"]
    trial_runs = [run for run, kind in zip(runs, kinds, strict=True) if kind == "trial"]
    assert [parent.info.status for parent in parents] == ["FINISHED"]
    by_number = {}
    for run in trial_runs:
        number = int(run.data.tags["grindwatch.trial_number"])
        by_number.setdefault(number, []).append(run.info.status)
    complete = sorted(t.number for t in trials if t.state.name == "COMPLETE")
    finished = sorted(n for n, s in by_number.items() if s == ["FINISHED"])
    assert finished == complete, by_number
    assert by_number[killed] == ["FAILED"]
    assert len(trial_runs) == N_TRIALS + 1


@pytest.mark.slow
def test_stale_trial_of_other_host_is_retried(postgres):
    storage = postgres["OPTUNA_STORAGE"]
    with quiet_experimental():
        backend = optuna.storages.RDBStorage(
            storage, **heartbeat_options(storage, heartbeat_interval=1, grace_period=1)
        )
    study = optuna.create_study(storage=backend, study_name=uuid.uuid4().hex)
    trial = ask(study)
    trial.suggest_float("x", 0.0, 1.0)
    # A worker on another host: its process id means nothing here, and its own
    # heartbeat attribute is fresh, so only Optuna's heartbeat can find it dead.
    for key, value in {
        "grindwatch.worker": "elsewhere:4242:abcd",
        "grindwatch.host": "elsewhere",
        "grindwatch.pid": 4242,
        "grindwatch.heartbeat": time.time() + 3600,
        "grindwatch.overrides": {"detector.family": "pca"},
    }.items():
        trial.set_user_attr(key, value)
    record_heartbeat(backend, trial)
    time.sleep(3)
    runner = TrialRunner(study, backend, None, NullTracker(), Config())

    runner.fail_dead_trials()

    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    retry = trials[1]
    assert retry.params == trials[0].params
    assert retry.system_attrs["failed_trial"] == trials[0].number
    assert retry.user_attrs == {"grindwatch.overrides": {"detector.family": "pca"}}
    backend.engine.dispose()


def test_orphan_check_spares_run_ended_meanwhile():
    tracker = StudyTracker(Config())
    tracker.open_parent(None, "race", "injected_auc", {}, {})
    run_id = tracker.start_trial("race", 0, Config(), {})

    def trial_ended_during_check(number: int) -> bool:
        # The worker ends the run, then tells Optuna, between the orphan check's
        # search for RUNNING runs and its look at the trial.
        tracker.finish_trial(run_id, "COMPLETE", {"objective": 0.9})
        return False

    marked = tracker.fail_orphans("race", trial_ended_during_check)

    assert marked == 0
    assert tracker.run_status(run_id) == "FINISHED"


def test_sqlite_storage_gets_no_heartbeats():
    assert heartbeat_options("sqlite:///optuna.db") == {}
    assert set(heartbeat_options("postgresql+psycopg://h/db")) == {
        "heartbeat_interval",
        "grace_period",
        "heartbeat_stale_trial_callback",
    }


def test_lost_trial_gets_failed_run(tmp_path, isolated_tracking):
    from grindwatch.trial_runner import HOST

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    backend = rdb_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(storage=backend, study_name="lost")
    trial = ask(study)
    trial.suggest_float("x", 0.0, 1.0)
    # The state a SIGKILL leaves between Optuna's start of the trial and the
    # creation of its MLflow run: claimed by a local process that is gone.
    for key, value in {
        "grindwatch.worker": f"{HOST}:{dead.pid}:abcd",
        "grindwatch.host": HOST,
        "grindwatch.pid": dead.pid,
        "grindwatch.heartbeat": time.time(),
    }.items():
        trial.set_user_attr(key, value)
    tracker = StudyTracker(Config())
    tracker.open_parent(None, "lost", "injected_auc", {}, {})
    runner = TrialRunner(study, backend, None, tracker, Config())

    assert runner.fail_dead_trials() == [0]
    runner.fail_dead_trials()

    runs = MlflowClient(isolated_tracking).search_runs(
        [tracker.experiment_id],
        filter_string="tags.`grindwatch.kind` = 'trial'",
    )
    assert len(runs) == 1
    (run,) = runs
    assert run.info.status == "FAILED"
    assert run.data.tags["grindwatch.trial_number"] == "0"
    assert (
        "before the trial's run was created"
        in (run.data.tags["grindwatch.fail_reason"])
    )
    assert run.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    assert "optuna.x" in run.data.params


def test_orphan_of_finished_trial_keeps_result(tmp_path, isolated_tracking):
    backend = rdb_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(storage=backend, study_name="outage")
    tracker = StudyTracker(Config())
    tracker.open_parent(None, "outage", "injected_auc", {}, {})
    trial = ask(study)
    trial.suggest_float("x", 0.0, 1.0)
    overrides = {"detector.family": "pca"}
    trial.set_user_attr("grindwatch.overrides", overrides)
    run_id = tracker.start_trial("outage", 0, Config(), trial.params)
    trial.set_user_attr("grindwatch.mlflow_run_id", run_id)
    # A tracking server outage at the trial's end leaves this state. The study
    # has the result, and finish_trial never reached MLflow.
    trial.set_user_attr("grindwatch.metrics", {"objective": 0.75, "auc": 0.9})
    study.tell(trial, 0.75)
    runner = TrialRunner(study, backend, None, tracker, Config())

    runner.fail_dead_trials()

    run = MlflowClient(isolated_tracking).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["grindwatch.trial_state"] == "COMPLETE"
    assert "grindwatch.fail_reason" not in run.data.tags
    assert run.data.metrics["objective"] == 0.75
    assert run.data.metrics["auc"] == 0.9
    artifacts = [f.path for f in MlflowClient(isolated_tracking).list_artifacts(run_id)]
    assert "config.yaml" in artifacts


def test_tracking_outage_keeps_trials_for_resume(tmp_path, monkeypatch):
    from grindwatch.exceptions import TrackingError
    from grindwatch.tuning import tune
    from tests.servers import _run_script, free_port

    # MLflow retries a refused connection for minutes; one try keeps this short.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    data = tmp_path / "cycles"
    write_cycles(data, 6)
    folder = tempfile.mkdtemp(prefix="grindwatch-mlflow-outage-")
    store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
    start = ["dev-mlflow-server.sh", "start", folder, store, str(free_port()), "1"]
    stop = ["dev-mlflow-server.sh", "stop", folder]
    uri = _run_script(*start, timeout=240)["MLFLOW_TRACKING_URI"]
    location = {
        "tune.storage": str(tmp_path / "optuna.db"),
        "tune.study_name": "outage",
    }
    overrides = {
        **location,
        **ONE_PCA_VARIANT,
        "tune.n_trials": 3,
        "tracking.log_model": False,
        "tracking.uri": uri,
    }

    def stop_server_after_first_trial(event) -> None:  # noqa: ANN001
        if event.n_finished == 1:
            _run_script(*stop, timeout=120)

    try:
        with pytest.raises(TrackingError) as raised:
            tune(data, overrides=overrides, on_trial=stop_server_after_first_trial)
        # The same server again, at the tracking URI that the study stored.
        _run_script(*start, timeout=240)
        resumed = tune(resume=True, overrides=location)
        client = MlflowClient(uri)
        runs = client.search_runs(
            [client.get_experiment_by_name("grindwatch").experiment_id],
            filter_string="tags.`grindwatch.study` = 'outage'",
        )
    finally:
        try:
            _run_script(*stop, timeout=120)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    message = str(raised.value)
    assert "The trials are kept in" in message
    assert "--resume --study-name outage" in message
    assert resumed.complete
    assert Counter(resumed.trials["state"])["COMPLETE"] == 3
    statuses = Counter(
        (run.data.tags["grindwatch.kind"], run.info.status) for run in runs
    )
    assert statuses[("study", "FINISHED")] == 1
    assert statuses[("trial", "FINISHED")] == 3
    assert statuses[("trial", "RUNNING")] == 0


def test_missing_storage_database_is_named(postgres, tmp_path):
    from grindwatch.exceptions import ConfigError
    from grindwatch.tuning import tune

    server = postgres["OPTUNA_STORAGE"].rsplit("/", 1)[0]
    # The development server trusts every local login, so the password is ignored.
    storage = server.replace("grindwatch@", "grindwatch:hunter2@") + "/no_such_db"
    data = tmp_path / "cycles"
    write_cycles(data, 2)

    with pytest.raises(ConfigError) as raised:
        tune(data, overrides={"tune.storage": storage, "tracking.enabled": False})

    message = str(raised.value)
    assert 'database "no_such_db" does not exist' in message
    assert "grindwatch:***@" in message
    assert "hunter2" not in message


def test_storage_password_is_not_recorded(postgres, tmp_path):
    from grindwatch.exceptions import ConfigError
    from grindwatch.tuning import tune

    # The development server trusts every local login, so the password is ignored.
    storage = postgres["OPTUNA_STORAGE"].replace("grindwatch@", "grindwatch:hunter2@")
    study = f"password-{uuid.uuid4().hex[:8]}"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = tmp_path / "cycles"
    write_cycles(data, 6)
    overrides = {
        "tune.storage": storage,
        "tune.study_name": study,
        "tracking.uri": tracking_uri,
        **ONE_PCA_VARIANT,
        "tune.n_trials": 1,
    }

    result = tune(data, overrides=overrides)
    with pytest.raises(ConfigError) as exists:
        tune(data, overrides=overrides)

    assert result.finalized
    assert "grindwatch:***@" in result.storage
    assert "hunter2" not in result.storage
    assert "hunter2" not in str(exists.value)
    stored = optuna.load_study(study_name=study, storage=storage).user_attrs
    assert "hunter2" not in repr(stored)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`grindwatch.study` = '{study}'",
    )
    # The study's run, the trial's run and the retrained model's run.
    assert len(runs) == 3
    folders = []
    for run in runs:
        assert "hunter2" not in repr(run.data.params)
        assert "hunter2" not in repr(run.data.tags)
        folders.append(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, tracking_uri=tracking_uri
            )
        )
    models = client.search_logged_models([runs[0].info.experiment_id])
    assert models
    for model in models:
        folders.append(
            mlflow.artifacts.download_artifacts(
                artifact_uri=model.artifact_location, tracking_uri=tracking_uri
            )
        )
    files = [path for folder in folders for path in Path(folder).rglob("*")]
    assert any(path.name == "config.yaml" for path in files)
    for path in files:
        if path.is_file():
            assert b"hunter2" not in path.read_bytes(), path


def test_joining_worker_registration_is_kept(
    postgres, mlflow_server, tmp_path, monkeypatch
):
    from grindwatch.tuning import tune

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    study = f"register-{uuid.uuid4().hex[:8]}"
    model_name = f"joined-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "cycles"
    write_cycles(data, 6)
    location = {"tune.storage": postgres["OPTUNA_STORAGE"], "tune.study_name": study}
    overrides = {
        **location,
        **ONE_PCA_VARIANT,
        "tune.n_trials": 2,
    }

    def join_with_register(event) -> None:  # noqa: ANN001
        if event.n_finished == 1:
            # A second worker joins with --register and leaves at once, so the
            # first worker, started without --register, runs the last trial.
            joiner = {
                **location,
                "tune.registered_model": model_name,
                "tune.timeout": 1e-6,
            }
            tune(resume=True, overrides=joiner)

    result = tune(data, overrides=overrides, on_trial=join_with_register)

    assert result.finalized
    assert result.registered_model == model_name
    version = MlflowClient(mlflow_server).get_model_version_by_alias(
        model_name, "champion"
    )
    assert version.run_id == result.model_run_id


def test_killed_retraining_run_is_failed(
    postgres, mlflow_server, tmp_path, monkeypatch
):
    from grindwatch.tuning import tune

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    study = f"retrain-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "cycles"
    write_cycles(data, 6)
    location = {"tune.storage": postgres["OPTUNA_STORAGE"], "tune.study_name": study}
    overrides = {
        **location,
        **ONE_PCA_VARIANT,
        "tune.n_trials": 1,
        "tracking.log_model": False,
    }
    first = tune(data, overrides=overrides)
    client = MlflowClient(mlflow_server)
    parent = client.get_run(first.parent_run_id)
    # The run a worker killed during the final retraining leaves behind.
    killed = client.create_run(
        parent.info.experiment_id,
        run_name=f"{study} trial 0 retrained",
        tags={"grindwatch.kind": "train", "mlflow.parentRunId": parent.info.run_id},
    )

    second = tune(resume=True, overrides={**location, "tune.n_trials": 2})

    assert second.finalized
    orphan = client.get_run(killed.info.run_id)
    assert orphan.info.status == "FAILED"
    assert "retraining ended" in orphan.data.tags["grindwatch.fail_reason"]
    assert client.get_run(second.model_run_id).info.status == "FINISHED"
