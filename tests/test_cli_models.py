"""Loading models in the grindwatch command: damaged bundles and MLflow URIs.

Every test runs the real command against a real SQLite MLflow store in tmp_path.
"""

from __future__ import annotations

import json
import pickle
import socket
import time

import pytest
from typer.testing import CliRunner

from grindwatch.cli import _register_extensions, app
from tests.conftest import write_cycles

runner = CliRunner()
TRAIN = ["--detector", "pca", "--window", "256", "--set", "frontend.n_bands=16"]


@pytest.fixture(scope="module")
def full_app():  # noqa: ANN201
    """The grindwatch command with the subcommands that ``main`` adds."""
    names = {command.callback.__name__ for command in app.registered_commands}
    if "watch" not in names:
        _register_extensions()
    return app


@pytest.fixture
def torch_threads():  # noqa: ANN201
    """Restore the PyTorch thread count that ``serve`` sets for the process."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _train(data, output, *extra: str):  # noqa: ANN001, ANN202
    result = runner.invoke(app, ["train", str(data), "-o", str(output), *TRAIN, *extra])
    assert result.exit_code == 0, result.output
    return result


def _assert_one_line_error(result, *phrases: str) -> None:  # noqa: ANN001
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.count("error:") == 1, result.output
    for phrase in phrases:
        assert phrase in result.output, f"{phrase!r} not in {result.output!r}"


# A pickle that refers to a class grindwatch.pipeline.RemovedModel, which this
# version lacks, like a bundle written by another grindwatch version.
REMOVED_CLASS = b"cgrindwatch.pipeline\nRemovedModel\n)\x81."


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"garbage\n", "is not a readable grindwatch model"),
        (b"", "is empty"),
        (pickle.dumps({"threshold": 1.0})[:-3], "is not a readable grindwatch model"),
        (REMOVED_CLASS, "written by another program or grindwatch version"),
        (pickle.dumps({"threshold": 1.0}), "contains a pickled dict"),
    ],
    ids=["garbage", "empty", "truncated", "removed-class", "other-object"],
)
def test_damaged_bundle_gives_one_line_error(tmp_path, content, problem):
    folder = tmp_path / "fakemodel"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(content)
    (folder / "model.json").write_text("{}")

    result = runner.invoke(app, ["score", str(tmp_path), "--model", str(folder)])

    _assert_one_line_error(
        result, str(folder / "model.pkl"), problem, "grindwatch train --output"
    )


def test_folder_without_model_pkl(tmp_path):
    folder = tmp_path / "fakemodel"
    folder.mkdir()
    (folder / "model.json").write_text("{}")

    result = runner.invoke(app, ["score", str(tmp_path), "--model", str(folder)])

    _assert_one_line_error(
        result, str(folder), "is not a grindwatch model folder (no model.pkl)"
    )


def test_missing_model_folder(tmp_path):
    folder = tmp_path / "nothere"

    result = runner.invoke(app, ["score", str(tmp_path), "--model", str(folder)])

    _assert_one_line_error(result, str(folder), "no such model folder")


@pytest.mark.parametrize("location", ["", " "])
def test_empty_model_location_is_rejected(cycle_folders, tmp_path, location):
    # The working folder contains a model, which an empty location must not find.
    _train(cycle_folders["good"], tmp_path)

    result = runner.invoke(
        app, ["score", str(cycle_folders["bad"]), "--model", location]
    )

    _assert_one_line_error(
        result, f"{location!r}: is not a model location (empty)", "pass the folder"
    )


def test_model_file_instead_of_folder(cycle_folders, tmp_path):
    _train(cycle_folders["good"], tmp_path / "model", "--no-track")
    file = tmp_path / "model" / "model.pkl"

    result = runner.invoke(app, ["score", str(tmp_path), "--model", str(file)])

    _assert_one_line_error(result, str(file), "is a file, not a model folder")


def test_damaged_description_only_warns(cycle_folders, tmp_path):
    _train(cycle_folders["good"], tmp_path / "model", "--no-track")
    (tmp_path / "model" / "model.json").write_text("garbage\n")

    result = runner.invoke(
        app, ["score", str(cycle_folders["bad"]), "--model", str(tmp_path / "model")]
    )

    assert result.exit_code == 0, result.output
    assert "is not valid JSON" in result.output
    assert "3 of 3 recordings" in result.output


def test_edited_bundle_is_rejected(cycle_folders, tmp_path):
    _train(cycle_folders["good"], tmp_path / "model")
    bundle = tmp_path / "model" / "model.pkl"
    content = bytearray(bundle.read_bytes())
    # Flip bits in the last third, where the fitted arrays are, and keep the size.
    # Such a pickle can still load, with other values.
    middle = len(content) * 2 // 3
    for index in range(middle, middle + 64):
        content[index] ^= 0x5A
    bundle.write_bytes(bytes(content))

    result = runner.invoke(
        app, ["score", str(cycle_folders["bad"]), "--model", str(tmp_path / "model")]
    )

    _assert_one_line_error(
        result,
        f"{bundle}: differs from the file that was saved",
        "damaged or edited since",
        "retrain with 'grindwatch train --output FOLDER'",
    )


def test_truncated_bundle_names_saved_size(cycle_folders, tmp_path):
    _train(cycle_folders["good"], tmp_path / "model")
    bundle = tmp_path / "model" / "model.pkl"
    size = bundle.stat().st_size
    bundle.write_bytes(bundle.read_bytes()[: size // 2])

    result = runner.invoke(
        app, ["score", str(cycle_folders["bad"]), "--model", str(tmp_path / "model")]
    )

    _assert_one_line_error(
        result,
        f"{bundle}: has {size // 2} bytes, but had {size} when it was saved",
        "truncated",
    )


def test_bundle_without_saved_hash_loads(cycle_folders, tmp_path):
    _train(cycle_folders["good"], tmp_path / "model")
    description = tmp_path / "model" / "model.json"
    saved = json.loads(description.read_text())
    # Bundles of older versions have no model_pkl record.
    del saved["model_pkl"]
    description.write_text(json.dumps(saved))

    result = runner.invoke(
        app, ["score", str(cycle_folders["bad"]), "--model", str(tmp_path / "model")]
    )

    assert result.exit_code == 0, result.output
    assert "3 of 3 recordings" in result.output


@pytest.fixture
def plant_store(cycle_folders, tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """Return the URI of a store in tmp_path/plant with the model cnc@champion.

    The test then runs in tmp_path/elsewhere, which has no store, with
    MLFLOW_TRACKING_URI unset, like a user in another folder than the store's.
    The model is also saved to tmp_path/model.
    """
    from mlflow import MlflowClient

    (tmp_path / "plant").mkdir()
    uri = f"sqlite:///{tmp_path / 'plant' / 'mlflow.db'}"
    _train(
        cycle_folders["good"],
        tmp_path / "model",
        "--tracking-uri",
        uri,
        "--register",
        "cnc",
        "--alias",
        "champion",
    )
    assert (
        str(MlflowClient(uri).get_model_version_by_alias("cnc", "champion").version)
        == "1"
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    return uri


def test_score_tracking_uri_finds_model(plant_store, cycle_folders, tmp_path):
    result = runner.invoke(
        app,
        [
            "score",
            str(cycle_folders["bad"]),
            "--model",
            "models:/cnc@champion",
            "--tracking-uri",
            plant_store,
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["n_recordings"] == 3
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()


def test_evaluate_logs_to_tracking_uri(plant_store, cycle_folders, tmp_path):
    from mlflow import MlflowClient

    result = runner.invoke(
        app,
        [
            "evaluate",
            str(cycle_folders["root"]),
            "--model",
            "models:/cnc@champion",
            "--tracking-uri",
            plant_store,
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    run = MlflowClient(plant_store).get_run(run_id)
    assert run.data.tags["grindwatch.kind"] == "evaluate"
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()


def test_report_names_model_store(full_app, plant_store, cycle_folders, tmp_path):
    from mlflow import MlflowClient

    result = runner.invoke(
        full_app,
        [
            "report",
            str(cycle_folders["bad"]),
            "--model",
            str(tmp_path / "model"),
            "-o",
            str(tmp_path / "report.html"),
        ],
    )

    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "Logged to MLflow run" in x)
    run_id = line.split()[4]
    assert line.endswith(f" in {plant_store}")
    assert MlflowClient(plant_store).get_run(run_id).data.tags["grindwatch.kind"] == (
        "score"
    )


def test_report_tracking_uri_overrides_model(
    full_app, plant_store, cycle_folders, tmp_path
):
    from mlflow import MlflowClient

    (tmp_path / "other").mkdir()
    other = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"

    result = runner.invoke(
        full_app,
        [
            "report",
            str(cycle_folders["bad"]),
            "--model",
            str(tmp_path / "model"),
            "-o",
            str(tmp_path / "report.html"),
            "--tracking-uri",
            other,
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["tracking_uri"] == other
    run = MlflowClient(other).get_run(payload["run_id"])
    assert run.data.tags["grindwatch.kind"] == "score"


def test_watch_tracking_uri_finds_model(full_app, plant_store, tmp_path):
    write_cycles(tmp_path / "incoming", 1)

    result = runner.invoke(
        full_app,
        [
            "watch",
            str(tmp_path / "incoming"),
            "--model",
            "models:/cnc@champion",
            "--tracking-uri",
            plant_store,
            "--once",
            "--settle",
            "0",
            "--results",
            str(tmp_path / "results.sqlite"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "Scored 1 new file" in result.output
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()


@pytest.mark.usefixtures("torch_threads")
def test_serve_tracking_uri_resolves_alias(full_app, plant_store, tmp_path):
    # serve stops with an error when its port is taken, which is after it has
    # loaded the model and looked up the alias's version, so no server starts.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = runner.invoke(
            full_app,
            [
                "serve",
                "--model",
                "models:/cnc@champion",
                "--tracking-uri",
                plant_store,
                "--port",
                str(port),
            ],
        )

    _assert_one_line_error(result, f"port {port} on 127.0.0.1 is in use")
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()


@pytest.fixture
def empty_store(isolated_tracking):  # noqa: ANN001, ANN201
    """Return the URI of the test's own store, created and without runs."""
    from mlflow import MlflowClient

    MlflowClient(isolated_tracking).search_experiments()
    return isolated_tracking


# The arguments before --model of each command that loads a model. The data
# folder is never read, because the model fails to load first.
COMMANDS = {
    "score": ["score", "."],
    "evaluate": ["evaluate", "."],
    "report": ["report", "."],
    "watch": ["watch", "."],
    "serve": ["serve"],
}


@pytest.mark.usefixtures("torch_threads")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("runs:/deadbeef/model", "Run with id=deadbeef not found"),
        ("models:/nothere@champion", "Registered Model with name=nothere not found"),
    ],
    ids=["run", "alias"],
)
def test_unknown_model_uri_names_store(full_app, empty_store, command, uri, reason):
    result = runner.invoke(full_app, [*COMMANDS[command], "--model", uri])

    _assert_one_line_error(
        result,
        f"{uri}: not found in the MLflow tracking store {empty_store}",
        reason,
        "pass --tracking-uri or set MLFLOW_TRACKING_URI",
    )


def test_invalid_model_uri_names_store(empty_store):
    result = runner.invoke(app, ["score", ".", "--model", "runs:/"])

    _assert_one_line_error(
        result,
        f"runs:/: cannot be loaded from the MLflow tracking store {empty_store}",
        "Not a proper runs:/ URI",
        "check the model URI",
    )


@pytest.mark.new_tracking_store
def test_missing_store_is_not_created(isolated_tracking, tmp_path):
    result = runner.invoke(app, ["score", ".", "--model", "models:/cnc@champion"])

    _assert_one_line_error(
        result,
        f"the MLflow tracking store {isolated_tracking} does not exist",
        "pass --tracking-uri or set MLFLOW_TRACKING_URI",
    )
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_server_fails_at_once(tmp_path):
    from tests.servers import free_port

    # Nothing listens on this loopback port, so every connection is refused.
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    result = runner.invoke(
        app, ["score", ".", "--model", "models:/cnc@champion", "--tracking-uri", uri]
    )

    # MLflow alone retries a refused connection for about 4 minutes.
    assert time.monotonic() - started < 60
    _assert_one_line_error(
        result,
        f"models:/cnc@champion: cannot be looked up: the MLflow tracking server "
        f"{uri} cannot be reached",
        "start the server",
    )


def test_unreachable_database_fails_at_once(tmp_path):
    pytest.importorskip("psycopg", reason="psycopg is not installed (extra 'postgres')")
    from tests.servers import free_port

    # Nothing listens on this loopback port, as when the database server is down.
    address = f"grindwatch:***@127.0.0.1:{free_port()}/mlflow"
    uri = f"postgresql+psycopg://{address.replace('***', 'secret')}"
    started = time.monotonic()

    result = runner.invoke(
        app, ["score", ".", "--model", "models:/cnc@champion", "--tracking-uri", uri]
    )

    # MLflow alone retries a refused database connection for about 100 s.
    assert time.monotonic() - started < 60
    _assert_one_line_error(
        result,
        "models:/cnc@champion: cannot be looked up: connecting to the MLflow "
        f"tracking database postgresql+psycopg://{address} failed",
        "Connection refused",
        "check the host, port, database name",
    )
    assert "secret" not in result.output


def test_score_elsewhere_names_working_store(plant_store, tmp_path):
    result = runner.invoke(app, ["score", ".", "--model", "models:/cnc@champion"])

    working_store = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    _assert_one_line_error(
        result,
        "models:/cnc@champion: cannot be looked up",
        f"the MLflow tracking store {working_store} does not exist",
        "pass --tracking-uri",
    )
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()


def test_moved_artifacts_name_store(plant_store, tmp_path):
    from mlflow import MlflowClient

    run_id = MlflowClient(plant_store).get_model_version("cnc", "1").run_id
    uri = f"runs:/{run_id}/model"
    plant = tmp_path / "plant"
    (plant / "mlartifacts").rename(plant / "moved")

    result = runner.invoke(
        app, ["score", ".", "--model", uri, "--tracking-uri", plant_store]
    )

    _assert_one_line_error(
        result,
        f"{uri}: resolves in the MLflow tracking store {plant_store}",
        "contain no grindwatch model bundle",
        "artifact folder was not moved",
    )


def test_damaged_stored_model_names_uri(plant_store, tmp_path):
    stored = next((tmp_path / "plant" / "mlartifacts").rglob("model.pkl"))
    stored.write_bytes(stored.read_bytes()[:5000])

    uri = "models:/cnc@champion"
    result = runner.invoke(
        app, ["score", ".", "--model", uri, "--tracking-uri", plant_store]
    )

    _assert_one_line_error(
        result,
        "models:/cnc@champion: its file artifacts/bundle/model.pkl in the MLflow "
        f"tracking store {plant_store} has 5000 bytes",
        "truncated",
        "log the model again with 'grindwatch train'",
    )
    # The downloaded copy is deleted by then, so the message must not point at it.
    assert "grindwatch-model-" not in result.output


def test_bare_logged_model_id_loads(plant_store, cycle_folders):
    from mlflow import MlflowClient

    # MLflow 3 stores a registered version's logged model as models:/m-...
    source = MlflowClient(plant_store).get_model_version("cnc", "1").source
    model_id = source.removeprefix("models:/")

    result = runner.invoke(
        app,
        [
            "score",
            str(cycle_folders["bad"]),
            "--model",
            model_id,
            "--tracking-uri",
            plant_store,
            "--json",
        ],
    )

    assert model_id.startswith("m-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["n_recordings"] == 3


@pytest.mark.parametrize(
    ("uri", "fix"),
    [
        ("runs:/RUN", "name the model logged in the run: runs:/RUN/model"),
        ("runs:/RUN/", "name the model logged in the run: runs:/RUN/model"),
        ("models:/cnc", "models:/cnc/VERSION or models:/cnc@ALIAS"),
    ],
    ids=["run", "run-slash", "registered-name"],
)
def test_incomplete_model_uri_names_fix(plant_store, uri, fix):
    from mlflow import MlflowClient

    run_id = MlflowClient(plant_store).get_model_version("cnc", "1").run_id
    uri = uri.replace("RUN", run_id)

    result = runner.invoke(
        app, ["score", ".", "--model", uri, "--tracking-uri", plant_store]
    )

    _assert_one_line_error(result, f"{uri}: ", fix.replace("RUN", run_id))


def test_train_alias_without_register_fails(cycle_folders, tmp_path):
    result = runner.invoke(
        app,
        ["train", str(cycle_folders["good"]), "-o", str(tmp_path / "m")]
        + ["--alias", "champion", "--detector", "pca"],
    )

    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "needs a registered model to point at" in message
    assert "--register NAME" in message
    assert not (tmp_path / "m").exists()
