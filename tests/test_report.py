"""The HTML report: content, self-containment, study section, MLflow, CLI, browser."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

import grindwatch
from grindwatch.config import Config
from grindwatch.pipeline import read_data
from grindwatch.report import build_report, create_report, write_report
from grindwatch.report.sections import study_section
from grindwatch.report.study import summarize_study
from grindwatch.results import window_table_path, write_table
from grindwatch.tracking import read_study
from tests.browser_check import CHROMIUM, check_page
from tests.conftest import shared_dataset, write_cycle_folders, write_cycles


def _config(**overrides) -> Config:  # noqa: ANN003
    base = {
        "windows.length": 256,
        "frontend.kind": "spectrum",
        "frontend.n_bands": 16,
        "detector.family": "pca",
        "tracking.enabled": False,
        "tracking.experiment": "tests",
        # Logging the pyfunc model takes seconds and the report never reads it.
        "tracking.log_model": False,
    }
    base.update(overrides)
    return Config().with_overrides(base)


@pytest.fixture(scope="module")
def cycles(tmp_path_factory) -> SimpleNamespace:  # noqa: ANN001
    """The cycle_folders recordings, a PCA model of the good ones, and its report.

    Built once per module because drawing the detail figures takes seconds.
    """
    root = tmp_path_factory.mktemp("cycles")
    write_cycle_folders(root)
    model = grindwatch.train(root / "good", _config()).model
    recordings = read_data(root, model.config)
    text = build_report(model, recordings)
    return SimpleNamespace(root=root, model=model, recordings=recordings, text=text)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:  # noqa: ANN001
    """One SQLite MLflow store for this module: creating one takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def tracked(store, request) -> SimpleNamespace:  # noqa: ANN001
    """Tracking settings in the shared store, with an experiment of this test's own."""
    config = _config(
        **{
            "tracking.enabled": True,
            "tracking.uri": store,
            "tracking.experiment": request.node.name,
        }
    )
    return SimpleNamespace(config=config, client=MlflowClient(store))


def _external_references(text: str) -> list[str]:
    """Every src or href that would leave the page."""
    targets = re.findall(r'(?:src|href)="([^"]*)"', text)
    return [t for t in targets if not t.startswith(("data:", "#"))]


def test_report_is_self_contained(cycles):
    text = cycles.text

    assert text.startswith("<!DOCTYPE html>")
    assert _external_references(text) == []
    assert "<script" not in text
    assert "@import" not in text
    assert "url(" not in text


def test_table_sorted_and_linked(cycles):
    text = cycles.text

    table = text[text.index('id="recordings"') : text.index('id="details"')]
    assert table.count("<tr") == 12  # header and 11 recordings
    assert table.count("ANOMALOUS") == 3
    links = re.findall(r'href="#(rec-\d+)"', table)
    assert links == ["rec-1", "rec-2", "rec-3"]
    for anchor in links:
        assert f'<article id="{anchor}">' in text
    rows = re.findall(
        r'<tr[^>]*><td>(\d+)</td><td class="text">.*?</td><td>([^<]+)</td>', table
    )
    assert [int(rank) for rank, _ in rows] == list(range(1, 12))
    scores = [float(score) for _, score in rows]
    assert scores == sorted(scores, reverse=True)


def test_distribution_explains_threshold(cycles):
    text, model = cycles.text, cycles.model

    distribution = text[text.index('id="distribution"') : text.index('id="recordings"')]
    assert distribution.count("data:image/png;base64,") == 1
    assert model.threshold_.describe().split(";")[0] in distribution.replace(
        "&#x27;", "'"
    )
    assert "0.9 quantile of its window scores" in distribution


def test_detail_has_all_figures(cycles):
    text = cycles.text

    article = text[
        text.index('<article id="rec-1">') : text.index('<article id="rec-2">')
    ]
    assert article.count("data:image/png;base64,") == 3
    assert "Signal of each channel" in article
    assert "Heat map of the departure" in article
    assert "Spectrogram of channel " in article
    assert "Spectrogram of the channel with the largest contribution" in article
    neighbour = re.search(r"Nearest normal recording: (cycle_\d+)", article)
    assert neighbour is not None
    assert int(neighbour.group(1).removeprefix("cycle_")) < 8  # a good cycle


def test_details_capped_and_counted(cycles):
    text = build_report(cycles.model, cycles.recordings, max_details=1)

    assert text.count("<article") == 1
    assert "1 of 3 flagged recordings have a detail section" in text
    assert "2 more flagged recordings are listed in the table only" in text


def test_none_flagged_says_so(cycles):
    recordings = read_data(cycles.root / "good", cycles.model.config)

    text = build_report(cycles.model, recordings)

    assert "<article" not in text
    assert "No recording is flagged, so there are no detail sections." in text
    assert "0 of 0" not in text


def test_all_flagged_has_no_neighbour(cycles):
    recordings = read_data(cycles.root / "bad", cycles.model.config)

    text = build_report(cycles.model, recordings, max_details=1)

    assert "there is no normal recording to compare with" in text


def test_shifted_batch_warns_like_score(cycles, tmp_path, caplog):
    # Every cycle read through a fivefold gain, as after a sensor change.
    for path in write_cycles(tmp_path / "shifted", 4, start_seed=40):
        frame = pd.read_csv(path)
        frame[["vib_x", "vib_y", "current"]] *= 5.0
        frame.to_csv(path, index=False)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        grindwatch.score(cycles.model, tmp_path / "shifted")
    from_score = [r.getMessage() for r in caplog.records]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        create_report(
            cycles.model, tmp_path / "shifted", tmp_path / "r.html", max_details=0
        )
    from_report = [r.getMessage() for r in caplog.records]

    shift = [m for m in from_score if "change of operating point" in m]
    assert len(shift) == 1
    assert shift[0] in from_report


def test_raw_report_uses_time_steps(cycle_folders):
    model = grindwatch.train(
        cycle_folders["good"], _config(**{"frontend.kind": "raw"})
    ).model
    recordings = read_data(cycle_folders["bad"], model.config)

    text = build_report(model, recordings, max_details=1)

    assert "peak at" in text
    assert "time steps within each window" in text
    assert text.count("<article") == 1


def test_heatmap_captions_follow_frontend(cycle_folders):
    texts = {}
    for frontend in ("raw", "spectrum"):
        model = grindwatch.train(
            cycle_folders["good"], _config(**{"frontend.kind": frontend})
        ).model
        recordings = read_data(cycle_folders["bad"], model.config)
        texts[frontend] = build_report(model, recordings, max_details=1)

    # The raw heat map has one column per sample and no band panel.
    raw_caption = "of each channel at each sample, averaged where windows overlap"
    assert raw_caption in texts["raw"]
    assert "summed per channel and window" not in texts["raw"]
    assert "band-level values summed per channel and window (left)" in texts["spectrum"]


def test_table_report_shows_features(feature_table):
    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "iforest"}
    )
    model = grindwatch.train(feature_table, config).model
    recordings = read_data(feature_table, model.config)

    text = build_report(model, recordings, max_details=2)

    article = text[text.index("<article") :]
    assert "Bar chart of the features that contribute most" in article
    assert "scaled deviation" in article
    assert "Spectrogram" not in text
    assert "top feature" in text
    assert "flagged windows" not in text


def _visible_text(page: str) -> str:
    """Return the page's text as a reader sees it, without markup or images."""
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"<img[^>]*>", " ", page)
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_table_report_says_rows(feature_table, tmp_path):
    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "iforest"}
    )
    model = grindwatch.train(feature_table, config).model
    # Only outliers, so the nearest normal row has to come from the references.
    outliers = pd.read_parquet(feature_table).tail(4)
    batch = tmp_path / "outliers.parquet"
    outliers.to_parquet(batch)
    recordings = read_data(batch, model.config)
    references = read_data(feature_table, model.config)

    text = _visible_text(
        build_report(model, recordings, max_details=1, reference=references)
    )

    assert "grindwatch report: 4 rows" in text
    assert "4 rows scored" in text
    assert "Rows by score" in text
    assert "Flagged rows" in text
    assert "3 more flagged rows are listed in the table only" in text
    assert "Nearest normal rows are chosen among 0 scored rows" in text
    assert "Nearest normal row: features#" in text
    assert "Each row of the feature table is one cycle" in text
    assert "recording" not in text.lower()


def test_table_knn_attribution_says_rows(feature_table):
    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "knn"}
    )
    model = grindwatch.train(feature_table, config).model
    recordings = read_data(feature_table, model.config)

    text = _visible_text(build_report(model, recordings, max_details=1))

    assert "the mean of the nearest training rows" in text
    assert "training windows" not in text


def test_cli_table_report_one_row(feature_table, tmp_path):
    import typer

    from grindwatch.cli_report import register

    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "iforest"}
    )
    grindwatch.train(feature_table, config).model.save(tmp_path / "model")
    one = tmp_path / "one.parquet"
    pd.read_parquet(feature_table).head(1).to_parquet(one)
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    command = ["report", str(one), "--model", str(tmp_path / "model")]
    command += ["-o", str(tmp_path / "out.html"), "--no-track"]

    result = CliRunner().invoke(app, command)

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "of 1 row flagged;" in output
    assert "rows flagged" not in output


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("recording", "is both an input of the report"),
        ("scores", "is both an input of the report"),
        # A path below a file: the folder for the report cannot be created.
        ("below_recording", "cannot write there, because"),
    ],
)
def test_report_will_not_overwrite_its_input(tmp_path, target, message):
    import typer

    from grindwatch.cli_report import register

    folders = write_cycle_folders(tmp_path / "cycles")
    config = _config(**{"detector.family": "pca"})
    model = grindwatch.train(folders["good"], config).model
    model.save(tmp_path / "model")
    table = tmp_path / "scores.csv"
    write_table(grindwatch.score(model, folders["bad"]).recordings, table)
    recording = sorted(folders["bad"].glob("*.csv"))[0]
    output = {
        "recording": recording,
        "scores": table,
        "below_recording": recording / "report.html",
    }[target]
    before = recording.read_bytes(), table.read_bytes()
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    command = ["report", str(folders["bad"]), "--model", str(tmp_path / "model")]
    command += ["--scores", str(table), "-o", str(output), "--no-track"]

    result = CliRunner().invoke(app, command)

    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert (recording.read_bytes(), table.read_bytes()) == before


def test_table_score_figure_says_rows(feature_table):
    from grindwatch.report import plot_score_distribution

    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "iforest"}
    )
    model = grindwatch.train(feature_table, config).model
    scores = model.training_scores_

    figure = plot_score_distribution(scores, model.threshold_, scores, scores, "table")

    axis = figure.axes[0]
    labels = [text.get_text() for text in axis.get_legend().get_texts()]
    assert axis.get_title() == "Row scores, clusters and threshold; ticks: scored rows"
    assert f"training rows ({len(scores)})" in labels
    assert f"scored rows ({len(scores)})" in labels


def test_saved_scores_same_table(cycles, tmp_path):
    scored = grindwatch.score(cycles.model, cycles.root)
    write_table(scored.recordings, tmp_path / "scores.csv")
    write_table(scored.windows, window_table_path(tmp_path / "scores.csv"))

    fresh = create_report(cycles.model, cycles.root, tmp_path / "a.html", max_details=0)
    saved = create_report(
        cycles.model,
        cycles.root,
        tmp_path / "b.html",
        scores=tmp_path / "scores.csv",
        max_details=0,
    )

    def table(path: Path) -> str:
        text = path.read_text()
        return text[text.index('id="recordings"') : text.index('id="details"')]

    assert table(saved.path) == table(fresh.path)
    assert saved.n_flagged == fresh.n_flagged == 3
    assert saved.n_flagged_not_read == 0


@pytest.mark.parametrize("name", ["spark_out", "spark_out.parquet"])
def test_saved_scores_from_parquet_folders(cycles, tmp_path, name):
    # spark-score's layout: a folder of part files for each table.
    scored = grindwatch.score(cycles.model, cycles.root)
    recordings = tmp_path / name
    if recordings.suffix:
        windows = window_table_path(recordings)
    else:
        windows = recordings.with_name(recordings.name + ".windows")
    for frame, folder in ((scored.recordings, recordings), (scored.windows, windows)):
        folder.mkdir()
        half = len(frame) // 2
        frame.iloc[:half].to_parquet(folder / "part-00000.parquet")
        frame.iloc[half:].to_parquet(folder / "part-00001.parquet")

    saved = create_report(
        cycles.model, cycles.root, tmp_path / "b.html", scores=recordings, max_details=0
    )

    assert saved.n_recordings == len(scored.recordings)
    assert saved.n_flagged == int(scored.recordings["flag"].sum())


def test_saved_scores_from_current_folder(cycles, tmp_path, monkeypatch):
    # report --scores . run inside spark-score's recordings folder.
    scored = grindwatch.score(cycles.model, cycles.root)
    recordings = tmp_path / "spark_out"
    windows = tmp_path / "spark_out.windows"
    for frame, folder in ((scored.recordings, recordings), (scored.windows, windows)):
        folder.mkdir()
        frame.to_parquet(folder / "part-00000.parquet")
        (folder / "_SUCCESS").touch()
    monkeypatch.chdir(recordings)

    saved = create_report(
        cycles.model, cycles.root, tmp_path / "r.html", scores=Path("."), max_details=0
    )

    assert saved.n_recordings == len(scored.recordings)
    assert saved.n_flagged == int(scored.recordings["flag"].sum())


def test_saved_scores_keep_numeric_names(cycles, tmp_path):
    # Cycle numbers as file names: 0001.csv, 0002.csv ...
    data = tmp_path / "numbered"
    data.mkdir()
    sources = sorted(cycles.root.glob("*/*.csv"))
    for number, source in enumerate(sources, start=1):
        (data / f"{number:04d}.csv").write_bytes(source.read_bytes())
    scored = grindwatch.score(cycles.model, data)
    write_table(scored.recordings, tmp_path / "scores.csv")
    write_table(scored.windows, window_table_path(tmp_path / "scores.csv"))

    saved = create_report(
        cycles.model, data, tmp_path / "r.html", scores=tmp_path / "scores.csv"
    )

    assert saved.n_flagged == 3
    assert saved.n_flagged_not_read == 0
    assert saved.n_details == 3
    assert "0001" in saved.path.read_text()


@pytest.mark.parametrize("margin", [True, False])
def test_saved_scores_of_other_model_rejected(cycles, tmp_path, margin):
    from grindwatch.exceptions import InputError

    scored = grindwatch.score(cycles.model, cycles.root)
    recordings = scored.recordings.copy()
    # Another model's table: same data, a threshold at the median recording
    # score, so that it flags normal recordings this model passes.
    other = float(recordings["score"].median())
    recordings["flag"] = recordings["score"] > other
    if margin:
        recordings["margin"] = recordings["score"] - other
    else:
        recordings = recordings.drop(columns="margin")
    assert (recordings["flag"] != scored.recordings["flag"]).any()
    write_table(recordings, tmp_path / "scores.csv")
    write_table(scored.windows, window_table_path(tmp_path / "scores.csv"))

    with pytest.raises(InputError) as raised:
        create_report(
            cycles.model,
            cycles.root,
            tmp_path / "r.html",
            scores=tmp_path / "scores.csv",
            max_details=0,
        )

    message = str(raised.value)
    assert "scores.csv" in message
    assert "another model" in message
    assert (f"threshold {other:.6g}" in message) == margin
    assert not (tmp_path / "r.html").exists()


def test_saved_scores_of_other_files_rejected(cycles, tmp_path):
    from grindwatch.exceptions import InputError

    # Scores of bad/, then a report on another folder whose normal cycles
    # carry the names of the faulty ones.
    scored = grindwatch.score(cycles.model, cycles.root / "bad")
    assert scored.recordings["flag"].all()
    write_table(scored.recordings, tmp_path / "scores.csv")
    write_table(scored.windows, window_table_path(tmp_path / "scores.csv"))
    other = tmp_path / "other"
    other.mkdir()
    good = sorted((cycles.root / "good").glob("*.csv"))
    for name, source in zip(scored.recordings["recording"], good, strict=False):
        (other / f"{name}.csv").write_bytes(source.read_bytes())

    with pytest.raises(InputError) as raised:
        create_report(
            cycles.model, other, tmp_path / "r.html", scores=tmp_path / "scores.csv"
        )

    message = str(raised.value)
    assert "scores.csv" in message
    assert str(cycles.root / "bad") in message
    assert str(other) in message
    assert not (tmp_path / "r.html").exists()


def test_saved_scores_match_files_through_a_link(cycles, tmp_path):
    scored = grindwatch.score(cycles.model, cycles.root / "bad")
    write_table(scored.recordings, tmp_path / "scores.csv")
    write_table(scored.windows, window_table_path(tmp_path / "scores.csv"))
    (tmp_path / "link").symlink_to(cycles.root / "bad")

    saved = create_report(
        cycles.model,
        tmp_path / "link",
        tmp_path / "r.html",
        scores=tmp_path / "scores.csv",
        max_details=1,
    )

    assert saved.n_flagged == 3
    assert saved.n_details == 1


def test_report_file_follows_the_umask(tmp_path):
    import os

    previous = os.umask(0o022)
    try:
        path = write_report("<!DOCTYPE html>", tmp_path / "r.html")
    finally:
        os.umask(previous)

    assert path.stat().st_mode & 0o777 == 0o644
    assert path.read_text() == "<!DOCTYPE html>"


def test_missing_window_table_is_reported(cycles, tmp_path):
    scored = grindwatch.score(cycles.model, cycles.root)
    write_table(scored.recordings, tmp_path / "scores.csv")

    with pytest.raises(grindwatch.exceptions.InputError, match="score table not found"):
        create_report(
            cycles.model,
            cycles.root,
            tmp_path / "r.html",
            scores=tmp_path / "scores.csv",
        )


def test_report_logged_to_scoring_run(cycle_folders, tmp_path, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model

    result = create_report(
        model, cycle_folders["root"], tmp_path / "report.html", max_details=1
    )

    client = tracked.client
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == model.run_id_
    assert run.data.tags["grindwatch.kind"] == "score"
    assert run.data.metrics["n_flagged_recordings"] == 3
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert artifacts == {"report.html", "recordings.csv"}
    stored = Path(
        client.download_artifacts(result.run_id, "report.html", str(tmp_path))
    )
    assert stored.read_bytes() == result.path.read_bytes()


def test_no_track_creates_no_run(cycle_folders, tmp_path, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model

    result = create_report(
        model, cycle_folders["root"], tmp_path / "r.html", track=False, max_details=0
    )

    assert result.run_id is None
    assert result.path.is_file()
    client = tracked.client
    experiment = client.get_experiment_by_name(
        tracked.config.tracking.experiment
    ).experiment_id
    assert [r.info.run_id for r in client.search_runs([experiment])] == [model.run_id_]


def _study(client: MlflowClient, model_run_id: str, extra_tags: dict[str, str]) -> str:
    """A study run whose children are the model's run, three more trials and a
    failed one."""
    experiment = client.get_run(model_run_id).info.experiment_id
    parent = client.create_run(experiment, run_name="study-a", tags=extra_tags)
    study_id = parent.info.run_id
    client.set_tag(model_run_id, "mlflow.parentRunId", study_id)
    client.log_param(model_run_id, "detector.pca.n_components", "0.9")
    client.log_metric(model_run_id, "objective", 0.93)
    trials = [("0.5", "mlp", 0.71), ("0.7", "cnn", 0.80), ("0.99", "cnn", 0.88)]
    for share, arch, value in trials:
        run = client.create_run(experiment, tags={"mlflow.parentRunId": study_id})
        client.log_param(run.info.run_id, "detector.pca.n_components", share)
        client.log_param(run.info.run_id, "arch", arch)
        client.log_param(run.info.run_id, "seed", "0")
        client.log_metric(run.info.run_id, "objective", value)
        client.set_terminated(run.info.run_id, "FINISHED")
    # A failed trial with the best value so far must not count as completed.
    failed = client.create_run(experiment, tags={"mlflow.parentRunId": study_id})
    client.log_metric(failed.info.run_id, "objective", 0.99)
    client.set_terminated(failed.info.run_id, "FAILED")
    return study_id


def test_study_section_from_mlflow(cycle_folders, tmp_path, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model
    client = tracked.client
    study_id = _study(client, model.run_id_, {"grindwatch.objective": "objective"})

    result = create_report(
        model, cycle_folders["root"], tmp_path / "report.html", max_details=0
    )

    text = result.path.read_text()
    study = text[
        text.index('<section id="study">') : text.index('<section id="notes">')
    ]
    assert f"MLflow run {study_id}" in study
    assert "5 trials, 4 completed with an objective value" in study
    assert "This model is trial" in study
    assert "as recorded by the study" in study
    assert "The best value is 0.93" in study
    assert study.count("<tr") == 6
    assert 'class="model"' in study
    assert "Optimisation history" in study
    assert "Parameter importances" in study
    assert "fANOVA" in study


def test_study_section_without_tracking_run(cycle_folders, tmp_path, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model
    _study(tracked.client, model.run_id_, {})
    options = {"track": False, "max_details": 0}

    with_study = create_report(
        model, cycle_folders["root"], tmp_path / "a.html", **options
    )
    without = create_report(
        model, cycle_folders["root"], tmp_path / "b.html", study=False, **options
    )

    assert '<section id="study">' in with_study.path.read_text()
    assert '<section id="study">' not in without.path.read_text()
    assert with_study.run_id is None


def test_study_summary_direction_and_importances(cycle_folders, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model
    client = tracked.client
    _study(client, model.run_id_, {"direction": "minimize"})

    summary = summarize_study(read_study(model.run_id_, model.config), model.run_id_)

    assert summary.objective == "objective"
    assert summary.objective_source == "guessed"
    assert summary.direction == "minimize"
    assert summary.best["value"] == pytest.approx(0.71)
    # Only parameters that vary between trials count; the model run logged every
    # config setting, which then varies only where the other trials have no value.
    assert set(summary.importances) <= {"detector.pca.n_components", "arch"}
    assert sum(summary.importances.values()) == pytest.approx(1.0)
    assert "seed" not in summary.trials.columns


def _tuned_study(client: MlflowClient, model_run_id: str) -> None:
    """A study laid out as older versions of grindwatch's tuner recorded one.

    The study run names the objective and direction in tags. Trial runs carry
    kind, number and Optuna state tags and their sampled values as optuna.NAME
    parameters. They log the objective per epoch, then the final value last, at
    step 0. The pruned trial's only values are those of its epochs.
    The model is the best trial retrained in a run of its own.
    """
    experiment = client.get_run(model_run_id).info.experiment_id
    study_tags = {
        "grindwatch.objective": "objective",
        "grindwatch.direction": "maximize",
    }
    study = client.create_run(
        experiment, run_name="study-c", tags=study_tags
    ).info.run_id
    trials = [
        (0, "COMPLETE", "FINISHED", "0.001", 0.80),
        (1, "PRUNED", "FINISHED", "0.01", 0.95),
        (2, "COMPLETE", "FINISHED", "0.0001", 0.90),
        (3, "FAIL", "FAILED", "0.1", None),
    ]
    for number, state, status, rate, final in trials:
        tags = {
            "mlflow.parentRunId": study,
            "grindwatch.kind": "trial",
            "grindwatch.trial_number": str(number),
            "grindwatch.trial_state": state,
        }
        run = client.create_run(experiment, run_name=f"trial {number}", tags=tags)
        run_id = run.info.run_id
        client.log_param(run_id, "optuna.learning_rate", rate)
        client.log_param(run_id, "trial_number", str(number))
        client.log_param(run_id, "seed", "0")
        if state == "PRUNED":
            client.log_metric(run_id, "objective", 0.5, 1000, 0)
            client.log_metric(run_id, "objective", final, 1001, 1)
            client.set_tag(run_id, "grindwatch.stopped_step", "1")
        elif final is not None:
            # Explicit, increasing times: the final value is the one logged last.
            for epoch in range(3):
                value = 0.5 + 0.1 * epoch
                client.log_metric(run_id, "objective", value, 1000 + epoch, epoch)
            client.log_metric(run_id, "objective", final, 2000, 0)
        client.set_terminated(run_id, status)
    client.set_tag(model_run_id, "mlflow.parentRunId", study)
    client.set_tag(model_run_id, "grindwatch.best_trial", "2")


def test_tuner_study_layout_is_understood(cycle_folders, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model
    _tuned_study(tracked.client, model.run_id_)

    summary = summarize_study(read_study(model.run_id_, model.config), model.run_id_)

    trials = summary.trials.set_index("number")
    assert list(trials.index) == [0, 1, 2, 3]
    assert list(trials["status"]) == ["COMPLETE", "PRUNED", "COMPLETE", "FAIL"]
    assert trials.loc[[0, 2], "value"].tolist() == pytest.approx([0.80, 0.90])
    # The pruned trial's logged value was an epoch's, not an objective.
    assert np.isnan(trials.loc[1, "value"])
    assert trials.loc[1, "stopped_step"] == 1
    assert list(trials["completed"]) == [True, False, True, False]
    assert summary.objective_source == "recorded"
    assert summary.retrained
    assert trials["is_model"].tolist() == [False, False, True, False]
    assert summary.best["number"] == 2
    assert summary.parameters == ["learning_rate"]
    assert list(summary.importances) == ["learning_rate"]
    section = study_section(summary)
    assert "PRUNED after 2 epochs" in section
    assert "0.95" not in section
    assert "retrained on all training recordings" in section
    assert "retrained on all training rows" in study_section(summary, "table")


def test_family_settings_share_one_column(cycle_folders, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model
    client = tracked.client
    experiment = client.get_run(model.run_id_).info.experiment_id
    parent = client.create_run(experiment, run_name="study-c")
    client.set_tag(model.run_id_, "mlflow.parentRunId", parent.info.run_id)
    client.log_param(model.run_id_, "family", "pca")
    client.log_metric(model.run_id_, "objective", 0.6)
    for neighbours, value in (("5", 0.7), ("12", 0.8)):
        run = client.create_run(
            experiment, tags={"mlflow.parentRunId": parent.info.run_id}
        )
        client.log_param(run.info.run_id, "family", "knn")
        client.log_param(run.info.run_id, "knn.n_neighbors", neighbours)
        client.log_metric(run.info.run_id, "objective", value)
        client.set_terminated(run.info.run_id, "FINISHED")

    summary = summarize_study(read_study(model.run_id_, model.config), model.run_id_)
    section = study_section(summary)

    assert "<th>other settings</th>" in section
    assert "knn.n_neighbors 5" in section
    assert "knn.n_neighbors 12" in section


def test_trial_settings_shown_whole(cycle_folders, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model
    client = tracked.client
    experiment = client.get_run(model.run_id_).info.experiment_id
    parent = client.create_run(experiment, run_name="study-d")
    client.set_tag(model.run_id_, "mlflow.parentRunId", parent.info.run_id)
    client.log_metric(model.run_id_, "objective", 0.6)
    # Both autoencoders drew 16 first-layer filters, and only the first drew a
    # third layer, so neither setting varies across the trials that have it.
    trials = [
        {"family": "autoencoder", "autoencoder.n_layers": "3"}
        | {"autoencoder.filters_0": "16", "autoencoder.filters_1": "8"}
        | {"autoencoder.filters_2": "8"},
        {"family": "autoencoder", "autoencoder.n_layers": "2"}
        | {"autoencoder.filters_0": "16", "autoencoder.filters_1": "32"},
        {"family": "knn", "knn.n_neighbors": "7"},
    ]
    for number, params in enumerate(trials):
        run = client.create_run(
            experiment, tags={"mlflow.parentRunId": parent.info.run_id}
        )
        client.log_param(run.info.run_id, "trial_number", str(number))
        for name, value in params.items():
            client.log_param(run.info.run_id, f"optuna.{name}", value)
        client.log_metric(run.info.run_id, "objective", 0.5 + 0.1 * number)
        client.set_terminated(run.info.run_id, "FINISHED")

    summary = summarize_study(read_study(model.run_id_, model.config), model.run_id_)
    section = study_section(summary)

    assert section.count("autoencoder.filters_0 16") == 2
    assert "autoencoder.filters_2 8" in section
    assert "knn.n_neighbors 7" in section
    # Importances still cover only the parameters that vary.
    assert "autoencoder.filters_0" not in summary.parameters
    assert "autoencoder.filters_1" in summary.parameters


def test_single_completed_trial_has_no_importances(cycle_folders, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model
    client = tracked.client
    experiment = client.get_run(model.run_id_).info.experiment_id
    parent = client.create_run(experiment, run_name="study-b")
    client.set_tag(model.run_id_, "mlflow.parentRunId", parent.info.run_id)
    client.log_metric(model.run_id_, "objective", 0.5)

    summary = summarize_study(read_study(model.run_id_, model.config), model.run_id_)

    assert summary.importances == {}
    assert "at least two completed trials" in summary.importance_note


def test_equal_objectives_have_no_importances():
    from grindwatch.report.study import parameter_importances

    trials = pd.DataFrame(
        {
            "completed": [True, True, True],
            "value": [0.0, 0.0, 0.0],
            "param.knn.n_neighbors": [3, 7, 12],
            "param.window_length": [256, 512, 1024],
        }
    )

    importances, note = parameter_importances(
        trials, ["param.knn.n_neighbors", "param.window_length"], "maximize"
    )

    assert importances == {}
    assert "Every completed trial has the objective 0" in note


def test_read_study_without_parent(cycle_folders, tracked):
    model = grindwatch.train(cycle_folders["good"], tracked.config).model

    assert read_study(model.run_id_, model.config) is None


def test_read_study_keeps_missing_store(tmp_path):
    config = _config(**{"tracking.uri": f"sqlite:///{tmp_path / 'absent.db'}"})

    assert read_study("0123456789abcdef", config) is None
    assert not (tmp_path / "absent.db").exists()


def test_cli_report_writes_html(cycles, tmp_path):
    import typer

    from grindwatch import cli
    from grindwatch.cli_report import register

    model = cycles.model
    model.save(tmp_path / "model")
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    output = tmp_path / "out.html"

    result = CliRunner().invoke(
        app,
        [
            "report",
            str(cycles.root),
            "--model",
            str(tmp_path / "model"),
            "-o",
            str(output),
            "--no-track",
            "--max-details",
            "1",
            "--json",
        ],
    )

    assert "grindwatch.cli_report" in cli._EXTENSIONS
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_flagged"] == 3
    assert payload["n_details"] == 1
    assert output.stat().st_size == payload["size_bytes"]
    assert f"{model.threshold_.value:.4g}" in output.read_text()


def test_cli_report_counts_detail_sections(cycles, tmp_path):
    import typer

    from grindwatch.cli_report import register

    cycles.model.save(tmp_path / "model")
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    command = [
        "report",
        str(cycles.root),
        "--model",
        str(tmp_path / "model"),
        "-o",
        str(tmp_path / "out.html"),
        "--no-track",
        "--max-details",
        "1",
    ]

    result = CliRunner().invoke(app, command)

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "recordings flagged; 1 with a detail section." in output
    assert "detail sections." not in output


def test_cli_report_rejects_output_folder(cycles, tmp_path):
    import typer

    from grindwatch.cli_report import register

    cycles.model.save(tmp_path / "model")
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    folder = tmp_path / "out.html"
    folder.mkdir()
    arguments = ["--model", str(tmp_path / "model"), "-o", str(folder), "--no-track"]

    result = CliRunner().invoke(app, ["report", str(cycles.root), *arguments])

    assert result.exit_code == 2, result.output
    assert "output is a folder" in result.output
    assert "Traceback" not in result.output


def test_cli_report_needs_data(tmp_path):
    import typer

    from grindwatch.cli_report import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)

    result = CliRunner().invoke(app, ["report", "--model", str(tmp_path)])

    assert result.exit_code == 2
    assert "no data given" in result.output


needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is missing; install it with 'apt-get install chromium'",
)


def _assert_opens_cleanly(page: Path, screenshot: Path) -> None:
    found = check_page(page, screenshot)

    assert found.errors == []
    assert found.requests == []
    layout = found.layout
    assert layout["broken_images"] == 0
    height = layout["viewport"][1]
    # The first screen shows the whole distribution plot and the table's first rows.
    assert layout["distribution"]["bottom"] <= height
    assert layout["distribution"]["height"] > 200
    assert layout["first_row"]["bottom"] <= height
    assert layout["table"]["top"] < height / 3
    assert screenshot.stat().st_size > 10_000


@needs_chromium
def test_cycles_report_in_chromium(cycles, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(cycles.text, encoding="utf-8")

    _assert_opens_cleanly(page, tmp_path / "first_screen.png")


@needs_chromium
@pytest.mark.shared_data
def test_gearbox_report_in_chromium(tmp_path):
    folder = shared_dataset("gearbox_spectraquest")
    config = _config(**{"windows.length": 1024})
    model = grindwatch.train(folder / "healthy", config).model

    result = create_report(
        model,
        [folder / "healthy", folder / "broken_tooth"],
        tmp_path / "gearbox.html",
        max_details=2,
    )

    verdicts = result.scored.recordings.set_index("recording")["flag"]
    assert verdicts[[f"b30hz{load}" for load in (0, 20, 40, 60, 80)]].all()
    _assert_opens_cleanly(result.path, tmp_path / "gearbox.png")


@needs_chromium
@pytest.mark.shared_data
def test_grinding_report_in_chromium(tmp_path):
    folder = shared_dataset("grinding_kellenberger_features")
    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "pca"}
    )
    model = grindwatch.train(folder / "ok_features.parquet", config).model

    result = create_report(
        model,
        [folder / "ok_features.parquet", folder / "nok_features.parquet"],
        tmp_path / "grinding.html",
        max_details=5,
    )

    assert result.n_recordings == 1547
    _assert_opens_cleanly(result.path, tmp_path / "grinding.png")


def test_saved_scores_of_absent_recordings_named(cycles, tmp_path):
    scored = grindwatch.score(cycles.model, cycles.root)
    write_table(scored.recordings, tmp_path / "scores.csv")
    write_table(scored.windows, window_table_path(tmp_path / "scores.csv"))

    # Only the good cycles are given: the flagged ones of the table are absent.
    result = create_report(
        cycles.model,
        cycles.root / "good",
        tmp_path / "r.html",
        scores=tmp_path / "scores.csv",
        track=False,
    )

    text = result.path.read_text()
    assert "3 flagged recordings of the score table are not in the data" in text
    assert "raise the detail limit" not in text
    assert result.n_flagged == 3
    assert result.n_details == 0
    assert result.n_flagged_not_read == 3


def test_resampled_recording_drawn_at_the_model_rate(cycle_folders):
    import numpy as np
    from scipy.signal import resample_poly

    from grindwatch.explain import explain_recording
    from grindwatch.io import Recording
    from tests.conftest import make_cycle

    model = grindwatch.train(
        cycle_folders["good"], _config(**{"data.resample": True})
    ).model
    # A cycle like the training ones at twice their rate; the spike spans
    # 1.024 to 1.536 s.
    slow = make_cycle(200, anomaly="spike")
    data = resample_poly(slow, 2, 1, axis=1).astype(np.float32)
    fast = Recording("fast", data, ["vib_x", "vib_y", "current"], 2000.0)

    explanation = explain_recording(model, fast)

    drawn = explanation.recording
    assert drawn.sample_rate == model.sample_rate_ == pytest.approx(1000.0)
    assert drawn.n_samples == 2048
    worst = explanation.starts[np.argmax(explanation.scores)] / drawn.sample_rate
    assert worst == pytest.approx(1.024)
    assert build_report(model, [fast], max_details=1).count("<article") == 1


def test_report_takes_reading_options(cycle_folders, tmp_path):
    import numpy as np
    import pandas as pd
    import typer

    from grindwatch.cli_report import register
    from tests.conftest import make_cycle

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)

    model = tmp_path / "model"
    grindwatch.train(cycle_folders["good"], _config(), output=model)
    data = make_cycle(201, n_samples=4096, rate=2000.0, anomaly="spike")
    frame = pd.DataFrame(data.T, columns=["vib_x", "vib_y", "current"])
    frame.insert(0, "time", np.arange(4096) / 2000.0)
    frame.to_csv(tmp_path / "fast.csv", index=False)
    base = ["report", str(tmp_path / "fast.csv"), "-m", str(model), "--no-track"]
    base += ["-o", str(tmp_path / "fast.html")]

    rejected = CliRunner().invoke(app, base)
    resampled = CliRunner().invoke(app, [*base, "--set", "data.resample=true"])

    assert rejected.exit_code != 0
    assert "sample rate 2000" in rejected.output
    assert resampled.exit_code == 0, resampled.output
    assert "1 of 1 recording flagged" in resampled.output


def test_untracked_model_report_says_not_logged(cycle_folders, tmp_path):
    import typer

    from grindwatch.cli_report import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    model = tmp_path / "model"
    grindwatch.train(cycle_folders["good"], _config(), output=model)
    command = ["report", str(cycle_folders["bad"]), "-m", str(model)]
    command += ["-o", str(tmp_path / "report.html"), "--max-details", "0"]

    result = CliRunner().invoke(app, command)

    assert result.exit_code == 0, result.output
    assert "Not logged to MLflow: the model was trained with tracking off" in (
        " ".join(result.output.split())
    )
    assert "Logged to MLflow run" not in result.output


def test_long_channel_names_stay_distinct_in_figures():
    from grindwatch.report.figures import _short

    names = ["Grinding spindle current L1", "Grinding spindle current L2"]

    shortened = [_short(name) for name in names]

    assert len(set(shortened)) == 2
    assert all(len(label) <= 24 for label in shortened)
    assert shortened[1].endswith("current L2")
    assert _short("X1_CommandAcceleration") == "X1_CommandAcceleration"


def test_skipped_recording_listed_not_fatal(cycles, tmp_path):
    import pandas as pd

    folder = tmp_path / "data"
    folder.mkdir()
    frame = pd.read_csv(cycles.root / "bad" / "cycle_100.csv")
    frame.to_csv(folder / "complete.csv", index=False)
    frame.drop(columns="current").to_csv(folder / "no_current.csv", index=False)

    result = create_report(cycles.model, folder, tmp_path / "r.html", max_details=1)

    text = result.path.read_text()
    header = text[text.index("<header>") : text.index("</header>")]
    notes = text[text.index('id="notes"') :]
    assert result.n_recordings == 1
    assert result.n_details == 1
    assert '<a href="#skipped"><b>1 file skipped</b></a>, not scored' in header
    assert '<p id="skipped">Skipped files, not scored:</p>' in notes
    assert "no_current.csv: missing channels [&#x27;current&#x27;]" in notes


def test_saved_scores_edited_by_hand_rejected(cycles, tmp_path):
    from grindwatch.exceptions import InputError

    scored = grindwatch.score(cycles.model, cycles.root)
    windows = scored.windows.astype({"score": object})
    windows.loc[3, "score"] = "x"
    write_table(scored.recordings, tmp_path / "scores.csv")
    write_table(windows, window_table_path(tmp_path / "scores.csv"))

    with pytest.raises(
        InputError,
        match="scores.windows.csv: column 'score' contains 'x' at data row 3",
    ):
        create_report(
            cycles.model,
            cycles.root,
            tmp_path / "r.html",
            scores=tmp_path / "scores.csv",
            max_details=0,
        )


def test_mixture_curves_scaled_to_nonzero_share():
    # The mixture is fitted to the 400 scores above 0 only, so its curves hold
    # 40 % of the density of a histogram of all 1000 training scores.
    from grindwatch.report.scores import plot_score_distribution
    from grindwatch.thresholds import fit_threshold

    rng = np.random.default_rng(1)
    active = np.exp(rng.normal(0.0, 0.2, 380))
    faults = np.exp(rng.normal(3.0, 0.1, 20))
    scores = np.concatenate([np.zeros(600), active, faults])
    threshold = fit_threshold(scores)

    figure = plot_score_distribution(scores, threshold, active, active[:5])

    curves = [
        line
        for line in figure.axes[0].get_lines()
        if line.get_label() in ("normal cluster", "high-score cluster")
    ]
    assert len(curves) == len(threshold.components)
    area = sum(np.trapezoid(line.get_ydata(), line.get_xdata()) for line in curves)
    assert area == pytest.approx(0.4, abs=0.02)


def test_rug_marks_cycle_flags_below_threshold():
    from grindwatch.report.scores import plot_score_distribution
    from grindwatch.thresholds import fit_threshold

    rng = np.random.default_rng(2)
    scores = np.concatenate([rng.normal(1.0, 0.1, 300), rng.normal(3.0, 0.1, 15)])
    threshold = fit_threshold(np.abs(scores))
    # The second recording is below the threshold but flagged by the cycle check.
    recordings = np.array([0.9, 1.0, threshold.value * 2])
    flags = np.array([False, True, True])

    figure = plot_score_distribution(
        np.abs(scores), threshold, np.abs(scores), recordings, recording_flags=flags
    )

    rugs = {
        line.get_color(): len(line.get_xdata())
        for line in figure.axes[0].get_lines()
        if line.get_marker() == "|"
    }
    assert recordings[1] < threshold.value
    assert rugs["#888"] == 1
    assert rugs["#b2182b"] == 2


def test_window_heatmap_columns_at_window_starts():
    from grindwatch.explain import explain_recording
    from grindwatch.io.recording import Recording, RecordingSet
    from grindwatch.report.figures import contribution_heatmaps

    rng = np.random.default_rng(0)

    def recording(name: str) -> Recording:
        data = rng.standard_normal((2, 4000)).astype(np.float32)
        return Recording(name, data, ["a", "b"], 1000.0)

    config = Config().with_overrides(
        {
            "windows.length": 400,
            "windows.hop": 100,
            "frontend.n_bands": 8,
            "detector.family": "pca",
            "tracking.enabled": False,
            "cycle.enabled": False,
        }
    )
    model = grindwatch.train(RecordingSet([recording("ok")]), config).model
    explanation = explain_recording(model, recording("new"))

    figure = contribution_heatmaps(explanation)
    image = figure.axes[0].images[0]
    left, right = image.get_extent()[:2]
    width = (right - left) / image.get_array().shape[1]

    # Windows start every 0.1 s; each column starts where its window starts.
    assert explanation.starts[30] == 3000
    assert left + 30 * width == pytest.approx(3.0)
    assert figure.axes[0].get_xlim() == pytest.approx((0.0, 4.0))


def test_time_heatmap_pooled_columns_in_place():
    from grindwatch.explain import explain_recording
    from grindwatch.io.recording import Recording, RecordingSet
    from grindwatch.report.figures import MAX_HEATMAP_COLUMNS, contribution_heatmaps

    rng = np.random.default_rng(2)
    # 6001 samples pool 11 to a column, and 546 columns of 11 hold 6006 samples.
    # The image ended at the last sample, so each column was drawn narrower than
    # its 11 samples and the late ones sat up to 5 ms early.
    n_samples = 10 * MAX_HEATMAP_COLUMNS + 1

    def recording(name: str) -> Recording:
        data = rng.standard_normal((2, n_samples)).astype(np.float32)
        return Recording(name, data, ["a", "b"], 1000.0)

    config = Config().with_overrides(
        {
            "windows.length": 200,
            "frontend.kind": "raw",
            "detector.family": "pca",
            "tracking.enabled": False,
            "cycle.enabled": False,
        }
    )
    model = grindwatch.train(RecordingSet([recording("ok")]), config).model
    explanation = explain_recording(model, recording("new"))

    figure = contribution_heatmaps(explanation)
    image = figure.axes[0].images[0]
    left, right = image.get_extent()[:2]
    n_columns = image.get_array().shape[1]

    assert n_columns == 546
    assert left == 0
    assert (right - left) / n_columns == pytest.approx(0.011)
    assert figure.axes[0].get_xlim() == pytest.approx((0.0, 6.001))


@pytest.mark.parametrize(
    ("frontend", "label"),
    [("spectrum", "frequency band"), ("features", "window feature")],
)
def test_element_heatmap_axes_labelled(frontend, label):
    from grindwatch.explain import explain_recording
    from grindwatch.io.recording import Recording, RecordingSet
    from grindwatch.report.figures import contribution_heatmaps

    rng = np.random.default_rng(1)

    def recording(name: str) -> Recording:
        data = rng.standard_normal((2, 4000)).astype(np.float32)
        return Recording(name, data, ["a", "b"], 1000.0)

    config = Config().with_overrides(
        {
            "windows.length": 400,
            "frontend.kind": frontend,
            "frontend.n_bands": 8,
            "detector.family": "pca",
            "tracking.enabled": False,
            "cycle.enabled": False,
        }
    )
    model = grindwatch.train(RecordingSet([recording("ok")]), config).model
    explanation = explain_recording(model, recording("new"))

    figure = contribution_heatmaps(explanation)
    by_window, by_element, window_bar, element_bar = figure.axes

    assert by_window.get_xlabel() == "time (s)"
    assert by_element.get_xlabel() == label
    assert window_bar.get_ylabel() == "contribution"
    assert element_bar.get_ylabel() == "contribution"
