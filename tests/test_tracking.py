"""MLflow run contents, run status on failure, and the pyfunc model round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import grindwatch
from grindwatch.config import Config
from grindwatch.exceptions import ConfigError, TrackingError


def _config(**overrides) -> Config:  # noqa: ANN003
    base = {
        "windows.length": 256,
        "frontend.n_bands": 16,
        "detector.autoencoder.epochs": 3,
        "tracking.experiment": "tests",
    }
    base.update(overrides)
    return Config().with_overrides(base)


def test_train_run_holds_params_metrics_and_artifacts(cycle_folders, isolated_tracking):
    result = grindwatch.train(cycle_folders["good"], _config())

    client = MlflowClient(isolated_tracking)
    run = client.get_run(result.run_id)
    assert result.tracking_uri == isolated_tracking
    assert run.info.status == "FINISHED"
    assert run.data.params["windows.length"] == "256"
    assert run.data.params["detector.family"] == "autoencoder"
    assert run.data.tags["grindwatch.version"] == grindwatch.__version__
    assert run.data.tags["grindwatch.seed"] == "0"
    assert run.data.tags["grindwatch.kind"] == "train"
    assert run.data.tags["grindwatch.data_kind"] == "signals"
    assert len(run.data.tags["grindwatch.data_sha256"]) == 64
    assert run.data.metrics["threshold"] == pytest.approx(result.model.threshold_.value)
    history = client.get_metric_history(result.run_id, "train_loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert len(client.get_metric_history(result.run_id, "val_loss")) == 3
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {
        "score_histogram.png",
        "threshold.json",
        "data_fingerprint.json",
        "config.yaml",
        "epochs.csv",
    } <= artifacts


def test_train_run_logs_only_own_family(cycle_folders, isolated_tracking):
    config = _config(**{"detector.family": "knn", "tracking.log_model": False})
    result = grindwatch.train(cycle_folders["good"], config)

    params = MlflowClient(isolated_tracking).get_run(result.run_id).data.params
    assert params["detector.family"] == "knn"
    assert "detector.knn.n_neighbors" in params
    # A filter on another family's setting must not find this run.
    other = {key for key in params if key.startswith("detector.")} - {"detector.family"}
    assert {key.split(".")[1] for key in other} == {"knn"}
    assert params["windows.length"] == "256"


def test_train_run_tags_library_versions(cycle_folders, isolated_tracking):
    import platform
    from importlib.metadata import version

    import torch

    result = grindwatch.train(cycle_folders["good"], _config())

    tags = MlflowClient(isolated_tracking).get_run(result.run_id).data.tags
    assert tags["grindwatch.python_version"] == platform.python_version()
    assert tags["grindwatch.numpy_version"] == version("numpy")
    assert tags["grindwatch.scikit-learn_version"] == version("scikit-learn")
    assert tags["grindwatch.torch_version"] == version("torch")
    assert tags["grindwatch.torch_threads"] == str(torch.get_num_threads())


def test_fingerprint_lists_files_with_hashes(
    cycle_folders, isolated_tracking, tmp_path
):
    result = grindwatch.train(cycle_folders["good"], _config())

    path = MlflowClient(isolated_tracking).download_artifacts(
        result.run_id, "data_fingerprint.json", str(tmp_path)
    )
    fingerprint = json.loads(open(path).read())

    assert fingerprint["n_files"] == 8
    first = fingerprint["files"][0]
    assert first["bytes"] > 0
    assert len(first["sha256"]) == 64


def test_logged_config_repeats_the_run(cycle_folders, isolated_tracking, tmp_path):
    result = grindwatch.train(cycle_folders["good"], _config())
    path = MlflowClient(isolated_tracking).download_artifacts(
        result.run_id, "config.yaml", str(tmp_path)
    )

    repeated = grindwatch.train(cycle_folders["good"], grindwatch.load_config(path))

    np.testing.assert_array_equal(
        result.model.training_scores_, repeated.model.training_scores_
    )


def test_failed_training_marks_run_failed(cycle_folders, isolated_tracking):
    config = _config(**{"detector.autoencoder.strides": [512, 2]})

    with pytest.raises(ValueError, match="total stride"):
        grindwatch.train(cycle_folders["good"], config)

    runs = MlflowClient(isolated_tracking).search_runs(
        [mlflow.get_experiment_by_name("tests").experiment_id]
    )
    assert [run.info.status for run in runs] == ["FAILED"]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("htp://127.0.0.1:1", "unsupported URI"),
        ("sqlite:/no-slashes.db", "Could not parse"),
    ],
)
def test_unusable_tracking_uri_names_the_store(cycle_folders, uri, reason):
    config = _config(**{"detector.family": "pca", "tracking.uri": uri})

    with pytest.raises(TrackingError, match=reason) as raised:
        grindwatch.train(cycle_folders["good"], config)

    assert uri in str(raised.value)
    assert "--tracking-uri" in str(raised.value)


def test_plain_database_path_gets_sqlite_uri(cycle_folders, tmp_path):
    path = tmp_path / "store.db"
    config = _config(**{"detector.family": "pca", "tracking.uri": str(path)})

    # Before, the fix was only to check the URI.
    with pytest.raises(TrackingError) as raised:
        grindwatch.train(cycle_folders["good"], config)

    assert f"give the URI sqlite:///{path}" in str(raised.value)
    assert not path.exists()


def test_read_only_tracking_store_names_the_store(cycle_folders, tmp_path):
    database = tmp_path / "mlflow.db"
    config = _config(**{"detector.family": "pca"})
    grindwatch.train(cycle_folders["good"], config)
    read_only = f"sqlite:///file:{database}?mode=ro&uri=true"

    with pytest.raises(TrackingError, match="readonly database"):
        grindwatch.train(
            cycle_folders["good"], config.with_overrides({"tracking.uri": read_only})
        )


def test_deleted_experiment_error_names_restore(cycle_folders, isolated_tracking):
    client = MlflowClient(isolated_tracking)
    experiment_id = client.create_experiment("tests")
    client.delete_experiment(experiment_id)
    config = _config(**{"detector.family": "pca"})

    with pytest.raises(TrackingError, match="'tests'.* is deleted") as raised:
        grindwatch.train(cycle_folders["good"], config)

    assert f"mlflow experiments restore --experiment-id {experiment_id}" in str(
        raised.value
    )
    assert "--experiment" in str(raised.value)


def test_interrupted_training_marks_run_failed(
    cycle_folders, isolated_tracking, monkeypatch
):
    from grindwatch.detectors import AutoencoderDetector

    def interrupt(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        raise KeyboardInterrupt

    monkeypatch.setattr(AutoencoderDetector, "_train_epoch", interrupt)

    with pytest.raises(KeyboardInterrupt):
        grindwatch.train(cycle_folders["good"], _config())

    runs = MlflowClient(isolated_tracking).search_runs(
        [mlflow.get_experiment_by_name("tests").experiment_id]
    )
    assert runs[0].info.status == "FAILED"


def test_failed_model_logging_restores_log_level(isolated_tracking, tmp_path):
    import logging

    from grindwatch.tracking import log_model

    class UnsavableModel:
        def save(self, path):  # noqa: ANN001, ANN202
            raise OSError(f"disk full while writing {path}")

    mlflow.set_tracking_uri(isolated_tracking)
    run_id = MlflowClient(isolated_tracking).create_run("0").info.run_id
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    original = pyfunc_logger.level
    pyfunc_logger.setLevel(logging.INFO)

    try:
        with pytest.raises(OSError, match="disk full"):
            log_model(UnsavableModel(), run_id)
        level = pyfunc_logger.level
    finally:
        pyfunc_logger.setLevel(original)

    assert level == logging.INFO


def test_pyfunc_scores_windows_like_the_model(cycle_folders, tmp_path):
    result = grindwatch.train(cycle_folders["good"], _config())
    model = result.model
    windows = model.prepare(grindwatch.load_recordings(cycle_folders["bad"]).recordings)

    pyfunc = mlflow.pyfunc.load_model(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path)
    )
    predicted = pyfunc.predict(windows.X)

    np.testing.assert_allclose(
        predicted["score"], model.window_scores(windows.X), rtol=1e-6
    )
    assert predicted["flag"].dtype == bool


def test_pyfunc_rejects_other_window_length(cycle_folders, tmp_path):
    from grindwatch.exceptions import InputError

    result = grindwatch.train(cycle_folders["good"], _config())
    model = result.model
    recordings = grindwatch.load_recordings(cycle_folders["bad"]).recordings
    # Windows twice the model's length: the spectrum front end still gives
    # 16 bands per channel, so only an explicit check notices.
    longer = grindwatch.pipeline.make_windows(recordings, 512, 256).X

    pyfunc = mlflow.pyfunc.load_model(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path)
    )

    with pytest.raises(InputError, match="256 samples"):
        pyfunc.predict(longer)
    with pytest.raises(InputError, match="256 samples"):
        model.window_scores(longer)


def test_pyfunc_scores_a_recording_frame(cycle_folders, tmp_path):
    result = grindwatch.train(cycle_folders["good"], _config())
    frame = pd.read_csv(cycle_folders["bad"] / "cycle_100.csv")

    pyfunc = mlflow.pyfunc.load_model(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path)
    )
    predicted = pyfunc.predict(frame)

    direct = grindwatch.score(result.model, cycle_folders["bad"] / "cycle_100.csv")
    np.testing.assert_allclose(predicted["score"], direct.windows["score"], rtol=1e-6)
    assert list(predicted["start_sample"]) == list(direct.windows["start_sample"])
    verdict = direct.recordings.iloc[0]
    np.testing.assert_allclose(
        predicted["recording_score"], verdict["score"], rtol=1e-6
    )
    assert set(predicted["recording_flag"]) == {verdict["flag"]}
    # 8 training recordings are too few for the cycle check.
    assert set(predicted["cycle_check"]) == {""}


def test_pyfunc_names_text_channel_values(cycle_folders, tmp_path):
    from grindwatch.exceptions import InputError

    result = grindwatch.train(cycle_folders["good"], _config())
    frame = pd.read_csv(cycle_folders["bad"] / "cycle_100.csv")
    channel = result.model.channels_[0]
    frame[channel] = frame[channel].astype(object)
    frame.loc[5, channel] = "overload"

    pyfunc = mlflow.pyfunc.load_model(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path)
    )

    with pytest.raises(InputError, match=rf"not numbers: \['{channel}'\]"):
        pyfunc.predict(frame)
    with pytest.raises(InputError, match="is a dict that is not numeric"):
        pyfunc.predict({"values": [1.0, 2.0]})


def test_pyfunc_treats_gaps_like_score(cycle_folders, tmp_path):
    from grindwatch.exceptions import InputError

    config = _config(**{"data.nan_policy": "interpolate"})
    result = grindwatch.train(cycle_folders["good"], config)
    frame = pd.read_csv(cycle_folders["bad"] / "cycle_100.csv")
    channel = result.model.channels_[0]
    frame.loc[10:20, channel] = np.nan
    gaps = tmp_path / "gaps.csv"
    frame.to_csv(gaps, index=False)
    infinite = frame.fillna({channel: np.inf})

    pyfunc = mlflow.pyfunc.load_model(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path / "download")
    )
    predicted = pyfunc.predict(frame)
    strict = grindwatch.train(cycle_folders["good"], _config())
    strict_pyfunc = mlflow.pyfunc.load_model(
        f"runs:/{strict.run_id}/model", dst_path=str(tmp_path / "strict")
    )

    scored = grindwatch.score(result.model, gaps)
    np.testing.assert_allclose(predicted["score"], scored.windows["score"], rtol=1e-6)
    with pytest.raises(InputError, match="NaN or infinite samples"):
        strict_pyfunc.predict(infinite)


def test_pyfunc_rejects_repeated_channel_column(cycle_folders, tmp_path):
    from grindwatch.exceptions import InputError

    result = grindwatch.train(cycle_folders["good"], _config())
    frame = pd.read_csv(cycle_folders["bad"] / "cycle_100.csv")
    channel = result.model.channels_[0]
    repeated = pd.concat([frame, frame[[channel]]], axis=1)

    pyfunc = mlflow.pyfunc.load_model(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path)
    )

    message = rf"more than one column named \['{channel}'\]"
    with pytest.raises(InputError, match=message):
        pyfunc.predict(repeated)


def test_mlflow_scoring_server_returns_input_errors(cycle_folders, tmp_path):
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    result = grindwatch.train(cycle_folders["good"], _config())
    frame = pd.read_csv(cycle_folders["bad"] / "cycle_100.csv")
    channel = result.model.channels_[0]
    pyfunc = mlflow.pyfunc.load_model(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path)
    )
    # The app that 'mlflow models serve' runs, here without a server process.
    client = TestClient(scoring_server.init(pyfunc))

    def invoke(data: pd.DataFrame):  # noqa: ANN202
        split = json.loads(data.to_json(orient="split", index=False))
        return client.post("/invocations", json={"dataframe_split": split})

    scored = invoke(frame)
    missing = invoke(frame.drop(columns=channel))

    assert scored.status_code == 200, scored.text
    expected = grindwatch.tracking.predict_frame(result.model, frame)["score"]
    served = [row["score"] for row in scored.json()["predictions"]]
    np.testing.assert_allclose(served, expected, rtol=1e-6)
    assert missing.status_code == 400
    assert f"is missing channel columns ['{channel}']" in missing.json()["message"]


def test_load_model_from_runs_uri(cycle_folders, tmp_path, monkeypatch):
    import tempfile

    result = grindwatch.train(cycle_folders["good"], _config())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    loaded = grindwatch.load_model(f"runs:/{result.run_id}/model")

    assert loaded.threshold_.value == result.model.threshold_.value
    assert loaded.run_id_ == result.run_id
    # The downloaded copy is gone once the model is in memory: a service that
    # loads models for days must not fill the temporary folder.
    assert list(scratch.iterdir()) == []


def test_registered_model_loads_by_name(cycle_folders):
    config = _config(**{"tracking.registered_model": "grinder"})

    result = grindwatch.train(cycle_folders["good"], config)
    loaded = grindwatch.load_model("models:/grinder/1")

    assert loaded.run_id_ == result.run_id


def test_train_alias_moves_to_new_version(cycle_folders, isolated_tracking):
    settings = {
        "tracking.registered_model": "grinder",
        "tracking.alias": "champion",
        "detector.family": "pca",
    }

    first = grindwatch.train(cycle_folders["good"], _config(**settings))
    second = grindwatch.train(cycle_folders["good"], _config(**settings))

    client = MlflowClient(isolated_tracking)
    version = client.get_model_version_by_alias("grinder", "champion")
    assert str(version.version) == "2"
    assert version.run_id == second.run_id
    assert grindwatch.load_model("models:/grinder@champion").run_id_ == second.run_id
    tags = client.get_run(first.run_id).data.tags
    assert tags["grindwatch.registered_alias"] == "champion"


def test_train_alias_needs_registered_model():
    with pytest.raises(ConfigError, match="needs a registered model to point at"):
        _config(**{"tracking.alias": "champion"})


def test_train_alias_reserved_name_rejected():
    with pytest.raises(ConfigError, match="reserved by MLflow"):
        _config(**{"tracking.registered_model": "g", "tracking.alias": "v3"})


def test_evaluate_run_nested_under_training_run(cycle_folders, isolated_tracking):
    from grindwatch.evaluate import evaluate

    result = grindwatch.train(cycle_folders["good"], _config())
    evaluation = evaluate(result.model, cycle_folders["root"])

    run = MlflowClient(isolated_tracking).get_run(evaluation.run_id)
    assert run.data.tags["mlflow.parentRunId"] == result.run_id
    assert run.data.metrics["recording_auc_roc"] == pytest.approx(
        evaluation.recordings["auc_roc"]
    )
    assert run.info.status == "FINISHED"


def test_study_summary_drops_old_best_tags(isolated_tracking):
    from grindwatch.mlflow_tuning import StudyTracker

    tracker = StudyTracker(Config())
    run_id = tracker.open_parent(None, "study", "recurring_f1", {}, {})
    first = {"family": "iforest", "iforest.n_estimators": 100}
    tracker.log_summary(first, {"best_value": 0.5}, {}, {})

    tracker.log_summary({"family": "pca", "pca.n_components": 0.7}, {}, {}, {})

    tags = MlflowClient(isolated_tracking).get_run(run_id).data.tags
    assert tags["best.family"] == "pca"
    assert tags["best.pca.n_components"] == "0.7"
    assert "best.iforest.n_estimators" not in tags


def test_refused_tracking_server_fails_at_once(cycle_folders):
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    uri = f"http://127.0.0.1:{port}"
    config = _config(**{"detector.family": "pca", "tracking.uri": uri})

    started = time.monotonic()
    with pytest.raises(TrackingError, match="cannot reach the MLflow tracking server"):
        grindwatch.train(cycle_folders["good"], config)

    assert time.monotonic() - started < 30  # MLflow's own retries take minutes


def test_refused_tracking_database_fails_at_once(cycle_folders):
    import time

    from tests.servers import free_port

    # Nothing listens on the port, as when the database server is down.
    uri = f"postgresql+psycopg://grindwatch:secret@127.0.0.1:{free_port()}/mlflow"
    config = _config(**{"detector.family": "pca", "tracking.uri": uri})

    started = time.monotonic()
    with pytest.raises(TrackingError) as raised:
        grindwatch.train(cycle_folders["good"], config)

    # MLflow's own connection retries take about 100 s.
    assert time.monotonic() - started < 30
    message = str(raised.value)
    assert "cannot connect to the MLflow tracking database" in message
    assert "grindwatch:***@127.0.0.1" in message
    assert "secret" not in message


def test_server_probe_accepts_credentials_in_uri():
    import http.server
    import socket
    import threading

    from grindwatch.tracking import store_errors

    # Any HTTP response counts as reached; this server responds to every GET with 501.
    server = http.server.HTTPServer(
        ("127.0.0.1", 0), http.server.BaseHTTPRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with store_errors(f"http://user:s3cret@127.0.0.1:{port}"):
            pass
    finally:
        server.shutdown()
        server.server_close()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(TrackingError) as raised:
        with store_errors(f"http://user:s3cret@127.0.0.1:{closed}"):
            pass
    message = str(raised.value)
    assert f"http://127.0.0.1:{closed}" in message
    assert "s3cret" not in message


def test_logging_the_model_leaves_its_run_open(cycle_folders, isolated_tracking):
    from grindwatch.tracking import log_model

    model = grindwatch.train(
        cycle_folders["good"], _config(**{"detector.family": "pca"})
    ).model
    client = MlflowClient(isolated_tracking)
    experiment = client.get_experiment_by_name("tests").experiment_id
    run_id = client.create_run(experiment).info.run_id

    uri = log_model(model, run_id)

    assert client.get_run(run_id).info.status == "RUNNING"
    assert client.get_run(run_id).data.tags["grindwatch.model_uri"] == uri


def test_train_runs_sort_by_window_length(cycle_folders, isolated_tracking):
    settings = {"detector.family": "pca", "tracking.log_model": False}
    run_ids = {
        length: grindwatch.train(
            cycle_folders["good"], _config(**settings, **{"windows.length": length})
        ).run_id
        for length in (1024, 64)
    }

    client = MlflowClient(isolated_tracking)
    experiment = client.get_experiment_by_name("tests").experiment_id
    by_metric = client.search_runs([experiment], order_by=["metrics.window_length ASC"])
    by_param = client.search_runs([experiment], order_by=["params.windows.length ASC"])

    # As text, "1024" sorts before "64"; the metric sorts by value.
    assert [r.info.run_id for r in by_metric] == [run_ids[64], run_ids[1024]]
    assert [r.info.run_id for r in by_param] == [run_ids[1024], run_ids[64]]
    for run in by_metric:
        metrics = run.data.metrics
        assert metrics["window_length"] == float(run.data.params["windows.length"])
        # Without windows.hop, windows do not overlap.
        assert metrics["window_hop"] == metrics["window_length"]
        assert "n_parameters" not in metrics


def test_autoencoder_run_logs_parameter_count(cycle_folders, isolated_tracking):
    config = _config(**{"tracking.log_model": False})

    result = grindwatch.train(cycle_folders["good"], config)

    metrics = MlflowClient(isolated_tracking).get_run(result.run_id).data.metrics
    network = result.model.detector_.net_
    expected = sum(p.numel() for p in network.parameters())
    assert expected > 0
    assert metrics["n_parameters"] == expected


def test_table_run_logs_no_window_metrics(feature_table, isolated_tracking):
    config = _config(
        **{
            "data.kind": "table",
            "frontend.kind": "raw",
            "detector.family": "iforest",
            "tracking.log_model": False,
        }
    )

    result = grindwatch.train(feature_table, config)

    metrics = MlflowClient(isolated_tracking).get_run(result.run_id).data.metrics
    assert "window_length" not in metrics
    assert "window_hop" not in metrics
    assert metrics["threshold"] == pytest.approx(result.model.threshold_.value)


# Loads a logged model and scores a CSV in a process that cannot import
# grindwatch from anywhere else. It prints where grindwatch came from, the
# scores and the distributions of the modules that loading and scoring imported
# after MLflow's own.
_LOAD_WITHOUT_GRINDWATCH = """
import json
import sys
from importlib.metadata import packages_distributions

try:
    import grindwatch
except ImportError:
    pass
else:
    sys.exit(f"grindwatch is importable from {grindwatch.__file__}")
import mlflow.pyfunc

before = set(sys.modules)
model = mlflow.pyfunc.load_model(sys.argv[1])
import pandas as pd

predicted = model.predict(pd.read_csv(sys.argv[2]))
import grindwatch

names = {name.split(".")[0] for name in set(sys.modules) - before}
owners = packages_distributions()
outside = names - set(sys.stdlib_module_names)
distributions = {owner for name in outside for owner in owners.get(name, [])}
print(json.dumps({
    "grindwatch": grindwatch.__file__,
    "scores": predicted["score"].tolist(),
    "distributions": sorted(distributions),
}))
"""


def _with_dependencies(names: set[str]) -> set[str]:
    """Return ``names`` with every distribution that pip installs with them."""
    import re
    from importlib.metadata import PackageNotFoundError, requires

    found, pending = set(), [_normalize(name) for name in names]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        try:
            lines = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in lines:
            # Optional extras are not installed with the distribution.
            if "extra ==" not in line:
                pending.append(
                    _normalize(re.split(r"[ ;<>=!~\[(]", line, maxsplit=1)[0])
                )
    return found


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-")


@pytest.mark.parametrize("kind", ["signals", "table"])
def test_logged_model_loads_without_grindwatch(
    kind, cycle_folders, feature_table, isolated_tracking, tmp_path
):
    import site
    import subprocess
    import sys

    from grindwatch.tracking import SCORING_DISTRIBUTIONS

    if kind == "table":
        overrides = {"data.kind": "table", "frontend.kind": "raw"}
        config = _config(**overrides, **{"detector.family": "iforest"})
        result = grindwatch.train(feature_table, config)
        frame = pd.read_parquet(feature_table).drop(columns="anomaly").head(20)
    else:
        result = grindwatch.train(cycle_folders["good"], _config())
        frame = pd.read_csv(cycle_folders["bad"] / "cycle_100.csv")
    data = tmp_path / "input.csv"
    frame.to_csv(data, index=False)
    local = mlflow.artifacts.download_artifacts(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path / "download")
    )
    requirements = (Path(local) / "requirements.txt").read_text().split()
    # -S skips the site module, so no .pth file in site-packages is read, and an
    # editable grindwatch install, which is one, does not count.
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(site.getsitepackages())}
    command = [sys.executable, "-S", "-c", _LOAD_WITHOUT_GRINDWATCH, local, str(data)]

    completed = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True
    )

    assert completed.returncode == 0, completed.stderr
    output = json.loads(completed.stdout.strip().splitlines()[-1])
    assert Path(output["grindwatch"]).is_relative_to(Path(local) / "code")
    expected = grindwatch.tracking.predict_frame(result.model, frame)["score"]
    np.testing.assert_allclose(output["scores"], expected, rtol=1e-6)
    listed = {line.split("==")[0] for line in requirements}
    assert set(SCORING_DISTRIBUTIONS) <= listed
    imported = {_normalize(name) for name in output["distributions"]} - {"grindwatch"}
    # scikit-learn's callback module imports rich inside try/except, for an
    # optional progress bar, so rich is imported here but not required.
    installed = _with_dependencies(listed) | {"rich"}
    assert imported <= installed, f"not in requirements.txt: {imported - installed}"
    assert not any(line.startswith("grindwatch") for line in requirements)


def test_logged_model_code_is_modules_only(cycle_folders, isolated_tracking, tmp_path):
    result = grindwatch.train(cycle_folders["good"], _config())

    local = mlflow.artifacts.download_artifacts(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path)
    )

    code = Path(local) / "code" / "grindwatch"
    files = [path for path in code.rglob("*") if path.is_file()]
    assert (code / "pipeline.py") in files
    assert all(path.suffix == ".py" for path in files)
    assert sum(path.stat().st_size for path in files) < 2_000_000


def test_cli_shortens_mlflow_http_retries(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from grindwatch.cli import app

    for name in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    ):
        monkeypatch.delenv(name, raising=False)
    # A user's own setting is kept.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "90")

    CliRunner().invoke(app, ["train", str(tmp_path / "missing"), "--no-track"])

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "90"


def test_server_stopped_mid_train_fails_fast(cycle_folders, tmp_path, monkeypatch):
    import shutil
    import tempfile
    import threading
    import time

    from typer.testing import CliRunner

    from grindwatch.cli import app
    from tests.servers import _run_script, free_port

    for name in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    folder = tempfile.mkdtemp(prefix="grindwatch-mlflow-midrun-")
    store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
    start = ["dev-mlflow-server.sh", "start", folder, store, str(free_port()), "1"]
    stop = ["dev-mlflow-server.sh", "stop", folder]
    uri = _run_script(*start, timeout=240)["MLFLOW_TRACKING_URI"]
    stopped_at: list[float] = []

    def stop_once_training_logs() -> None:
        # The server's own store shows the run once training has started.
        store_client = MlflowClient(store)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = [
                run
                for experiment in store_client.search_experiments()
                for run in store_client.search_runs([experiment.experiment_id])
                if "train_loss" in run.data.metrics
            ]
            if runs:
                break
            time.sleep(0.2)
        _run_script(*stop, timeout=120)
        stopped_at.append(time.monotonic())

    # Early stopping waits longer than training runs, so only the outage ends it.
    arguments = ["train", str(cycle_folders["good"]), "--tracking-uri", uri]
    arguments += ["--set", "detector.autoencoder.epochs=100000"]
    arguments += ["--set", "detector.autoencoder.patience=100000"]
    stopper = threading.Thread(target=stop_once_training_logs)
    try:
        stopper.start()
        result = CliRunner().invoke(app, arguments)
        ended_at = time.monotonic()
        stopper.join()
    finally:
        try:
            _run_script(*stop, timeout=120)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    assert stopped_at, "the tracking server was not stopped"
    # MLflow 3.17's own retry settings wait about 4 minutes per call.
    assert ended_at - stopped_at[0] < 30
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"cannot use the MLflow tracking store {uri}" in message
    assert "that its server runs" in message
    assert "Traceback" not in result.output


def test_logged_bundle_holds_the_model_files_only(
    cycle_folders, isolated_tracking, tmp_path
):
    result = grindwatch.train(cycle_folders["good"], _config())

    local = mlflow.artifacts.download_artifacts(
        f"runs:/{result.run_id}/model", dst_path=str(tmp_path)
    )

    bundle = Path(local) / "artifacts" / "bundle"
    assert sorted(path.name for path in bundle.iterdir()) == [
        "config.yaml",
        "model.json",
        "model.pkl",
        "training_files.json",
    ]
