"""Loading models in the grindwatch command: damaged bundles and MLflow URIs.

Every test runs the real command against a real SQLite MLflow store in tmp_path.
"""

from __future__ import annotations

import pickle

import pytest
from typer.testing import CliRunner

from grindwatch.cli import _register_extensions, app

runner = CliRunner()
TRAIN = ["--detector", "pca", "--window", "256", "--set", "frontend.n_bands=16"]


@pytest.fixture(scope="module")
def full_app():  # noqa: ANN201
    """The grindwatch command with the subcommands that ``main`` adds."""
    names = {command.callback.__name__ for command in app.registered_commands}
    if "watch" not in names:
        _register_extensions()
    return app


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
