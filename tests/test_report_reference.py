"""Reference recordings in the report: the nearest normal recording when every
scored recording is flagged, and the errors for bad reference input."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import grindwatch
from grindwatch.exceptions import InputError
from grindwatch.pipeline import read_data
from grindwatch.report import build_report, create_report
from grindwatch.report.references import prepare_references
from tests.conftest import make_cycle, write_cycle_folders
from tests.test_report import _config

NO_COMPARISON = "there is no normal recording to compare with"


def _report(suspects: SimpleNamespace, output: Path, **options):  # noqa: ANN003, ANN202
    """Report on the faulty cycles with the suspects' model."""
    return create_report(suspects.model, suspects.bad, output, **options)


@pytest.fixture(scope="module")
def suspects(tmp_path_factory) -> SimpleNamespace:  # noqa: ANN001
    """A PCA model of 8 good cycles, saved, and a folder of 3 faulty cycles only.

    Built once per module because training and drawing figures take seconds.
    """
    root = tmp_path_factory.mktemp("suspects")
    write_cycle_folders(root)
    model = grindwatch.train(root / "good", _config()).model
    model.save(root / "model")
    return SimpleNamespace(
        root=root,
        good=root / "good",
        bad=root / "bad",
        model=model,
        model_path=root / "model",
    )


def _articles(text: str) -> list[str]:
    return re.findall(r"<article.*?</article>", text, flags=re.DOTALL)


def _table(text: str) -> str:
    """Return the recordings table without its links to detail sections."""
    table = text[text.index('id="recordings"') : text.index('id="details"')]
    return re.sub(r"</?a\b[^>]*>", "", table)


def _notes(text: str) -> str:
    return text[text.index('id="notes"') :]


def _write_csv(path: Path, data: np.ndarray, channels: list[str], rate: float):
    frame = pd.DataFrame(data.T, columns=channels)
    frame.insert(0, "time", np.arange(data.shape[1]) / rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def _upsampled_cycle(seed: int) -> np.ndarray:
    """A good cycle of 2048 samples at 1 kHz, upsampled to 4096 samples at 2 kHz."""
    from scipy.signal import resample_poly

    return resample_poly(make_cycle(seed), 2, 1, axis=1).astype(np.float32)


def _app() -> typer.Typer:
    from grindwatch.cli_report import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


# Library: all scored recordings flagged ------------------------------------------


def test_all_flagged_without_reference_names_fix(suspects, tmp_path):
    result = create_report(
        suspects.model, suspects.bad, tmp_path / "r.html", max_details=3
    )

    text = result.path.read_text()
    articles = _articles(text)
    assert result.n_flagged == result.n_recordings == 3
    assert len(articles) == 3
    for article in articles:
        assert "Every scored recording is flagged" in article
        assert "no reference recordings were given" in article
        assert NO_COMPARISON in article
        assert "--reference" in article
        assert "Nearest normal recording" not in article
    assert result.has_comparison is False
    assert result.n_reference == 0


def test_reference_gives_nearest_normal(suspects, tmp_path):
    plain = _report(suspects, tmp_path / "plain.html", max_details=0)

    result = _report(
        suspects, tmp_path / "r.html", max_details=3, reference=suspects.good
    )

    text = result.path.read_text()
    articles = _articles(text)
    assert len(articles) == 3
    for article in articles:
        found = re.search(
            r"Nearest normal recording: (cycle_\d+) \(a reference recording, ([^)]+)\)",
            article,
        )
        assert found is not None, article[:600]
        assert int(found.group(1).removeprefix("cycle_")) < 8
        assert Path(found.group(2)).parent == suspects.good
        assert NO_COMPARISON not in article
        # Two columns of signal panels: the flagged recording and its neighbour.
        assert article.count("data:image/png;base64,") == 3
    # Reference recordings are comparison material, not rows of the table.
    assert _table(text) == _table(plain.path.read_text())
    assert result.n_recordings == 3
    assert result.n_reference == 8
    assert result.n_reference_flagged == 0
    assert result.has_comparison is True
    assert "among 0 scored recordings that are not flagged and 8 reference" in text


def test_reference_overlapping_scored_data_not_doubled(suspects, tmp_path):
    # The parent folder contains the scored bad cycles as well as the good ones.
    result = _report(
        suspects, tmp_path / "r.html", max_details=1, reference=suspects.root
    )

    text = result.path.read_text()
    assert result.n_reference == 8
    assert result.n_reference_flagged == 0
    assert "Reference recordings not used" not in text


def test_flagged_reference_left_out(suspects, tmp_path, caplog):
    references = tmp_path / "references"
    shutil.copytree(suspects.good, references)
    # A faulty cycle filed among the known-good ones by mistake.
    shutil.copy(suspects.bad / "cycle_101.csv", references / "suspect.csv")

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        result = _report(
            suspects, tmp_path / "r.html", max_details=3, reference=references
        )

    text = result.path.read_text()
    assert result.n_reference == 8
    assert result.n_reference_flagged == 1
    assert "1 reference recordings are flagged by this model" in text
    assert "suspect.csv: flagged by this model" in _notes(text)
    for article in _articles(text):
        assert "Nearest normal recording: suspect" not in article
        assert "Nearest normal recording: cycle_" in article
    assert "are flagged by the model and are not used" in caplog.text
    assert "suspect" in caplog.text


def test_all_references_flagged_says_so(suspects, tmp_path):
    references = tmp_path / "references"
    shutil.copytree(suspects.bad, references)

    result = _report(suspects, tmp_path / "r.html", max_details=1, reference=references)

    article = _articles(result.path.read_text())[0]
    assert "all 3 usable reference recordings are flagged by this model too" in article
    assert NO_COMPARISON in article
    assert "check the model&#x27;s threshold" in article
    assert result.has_comparison is False
    assert result.n_reference == 0
    assert result.n_reference_flagged == 3


def test_empty_reference_list_means_none(suspects, tmp_path):
    config = suspects.model.config
    # An empty list must not fall back to reading data.paths.
    assert not config.data.paths

    result = create_report(
        suspects.model, suspects.bad, tmp_path / "r.html", max_details=1, reference=[]
    )

    assert result.has_comparison is False
    assert "no reference recordings were given" in result.path.read_text()


def test_unflagged_scored_recordings_stay_candidates(suspects, tmp_path):
    # Good and bad cycles scored together: the good ones are candidates already.
    result = create_report(
        suspects.model,
        [suspects.good, suspects.bad],
        tmp_path / "r.html",
        max_details=1,
        reference=[suspects.good / "cycle_000.csv"],
    )

    text = result.path.read_text()
    assert result.n_recordings == 11
    assert result.n_reference == 0
    assert "among 8 scored recordings that are not flagged and 0 reference" in text
    assert "(a reference recording" not in text
    assert "Nearest normal recording: cycle_" in text


def test_build_report_takes_reference_recordings(suspects):
    model = suspects.model
    recordings = read_data(suspects.bad, model.config, model)
    references = read_data(suspects.good, model.config, model)

    text = build_report(model, recordings, max_details=1, reference=references)

    article = _articles(text)[0]
    assert "(a reference recording, " in article
    assert NO_COMPARISON not in article


# Reference recordings are matched to the model -----------------------------------


def test_reference_resampled_to_model_rate(cycle_folders, tmp_path):
    model = grindwatch.train(
        cycle_folders["good"], _config(**{"data.resample": True})
    ).model
    # A cycle at twice the model's rate, columns in another order, plus a
    # channel the model does not read.
    data = _upsampled_cycle(20)
    extra = np.zeros((1, 4096), dtype=np.float32)
    path = _write_csv(
        tmp_path / "fast.csv",
        np.vstack([data[2], extra, data[0], data[1]]),
        ["current", "spare", "vib_x", "vib_y"],
        2000.0,
    )
    read = read_data(path, model.config, model)

    references = prepare_references(model, read)

    # Normal or flagged, the recording is kept as the model reads it.
    usable = references.normal + references.flagged
    assert len(usable) == 1
    assert references.skipped == []
    matched = usable[0]
    assert matched.channels == model.channels_ == ["vib_x", "vib_y", "current"]
    assert matched.sample_rate == pytest.approx(model.sample_rate_)
    assert matched.n_samples == 2048
    # Each matched channel follows its own column of the file, at half the rate.
    for row, channel in enumerate(matched.channels):
        source = data[["vib_x", "vib_y", "current"].index(channel), 200:3800:2]
        correlation = np.corrcoef(matched.data[row, 100:1900], source)[0, 1]
        assert correlation > 0.9, channel


def test_reference_channel_order_matched(suspects, tmp_path):
    # A training cycle with its columns in another order and an extra channel.
    frame = pd.read_csv(suspects.good / "cycle_003.csv")
    frame["spare"] = 0.0
    path = tmp_path / "reordered.csv"
    frame[["time", "spare", "current", "vib_y", "vib_x"]].to_csv(path, index=False)

    result = _report(suspects, tmp_path / "r.html", max_details=1, reference=path)

    text = result.path.read_text()
    assert result.n_reference == 1
    assert "Nearest normal recording: reordered (a reference recording" in text
    # The distance is the same as for the file with the training column order.
    plain = _report(
        suspects,
        tmp_path / "plain.html",
        max_details=1,
        reference=suspects.good / "cycle_003.csv",
    ).path.read_text()
    distance = re.compile(r"at distance ([0-9.e+-]+) between")
    assert distance.search(text).group(1) == distance.search(plain).group(1)


def test_reference_at_other_rate_rejected(suspects, tmp_path):
    data = make_cycle(7, n_samples=4096, rate=2000.0)
    path = _write_csv(
        tmp_path / "fast.csv", data, ["vib_x", "vib_y", "current"], 2000.0
    )

    with pytest.raises(InputError) as raised:
        _report(suspects, tmp_path / "r.html", reference=path)

    message = str(raised.value)
    assert message.startswith(str(path))
    assert "no reference recording can be compared with" in message
    assert "sample rate 2000 differs from the model's 1000" in message
    assert "data.resample=true" in message
    assert not (tmp_path / "r.html").exists()


# Errors for bad reference input ---------------------------------------------------


def test_missing_reference_path_named(suspects, tmp_path):
    missing = tmp_path / "no-such-folder"

    with pytest.raises(InputError) as raised:
        create_report(
            suspects.model, suspects.bad, tmp_path / "r.html", reference=missing
        )

    message = str(raised.value)
    assert message.startswith(str(missing))
    assert "reference recordings: no such file or folder" in message
    assert "check the path" in message
    assert not (tmp_path / "r.html").exists()


def test_unreadable_reference_named(suspects, tmp_path):
    folder = tmp_path / "references"
    folder.mkdir()
    (folder / "broken.csv").write_text("not,a\nsensor,file\n")

    with pytest.raises(InputError) as raised:
        create_report(
            suspects.model, suspects.bad, tmp_path / "r.html", reference=folder
        )

    message = str(raised.value)
    assert "broken.csv" in message
    assert "reference recordings: no readable recording" in message
    assert "fix or remove the files listed" in message


def test_reference_with_unknown_channels_named(suspects, tmp_path):
    data = make_cycle(3)
    path = _write_csv(tmp_path / "other.csv", data, ["a", "b", "c"], 1000.0)

    with pytest.raises(InputError) as raised:
        _report(suspects, tmp_path / "r.html", reference=path)

    message = str(raised.value)
    assert message.startswith(str(path))
    assert "no reference recording can be compared with" in message
    assert "missing channels ['vib_x', 'vib_y', 'current']" in message
    assert "pass reference recordings with the model's channels" in message
    assert "at least 256 samples" in message
    assert "such as the training data" in message


def test_some_unusable_references_skipped(suspects, tmp_path, caplog):
    folder = tmp_path / "references"
    folder.mkdir()
    shutil.copy(suspects.good / "cycle_000.csv", folder / "good.csv")
    _write_csv(folder / "two.csv", make_cycle(4)[:2], ["vib_x", "vib_y"], 1000.0)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        result = _report(suspects, tmp_path / "r.html", max_details=1, reference=folder)

    notes = _notes(result.path.read_text())
    assert result.n_reference == 1
    assert result.n_reference_skipped == 1
    assert "two.csv: missing channels" in notes
    assert "Reference recordings not used" in notes
    assert "reference recording not used" in caplog.text


def test_strict_rejects_any_unusable_reference(suspects, tmp_path):
    model = grindwatch.load_model(suspects.model_path)
    model.config = model.config.with_overrides({"data.strict": True})
    folder = tmp_path / "references"
    folder.mkdir()
    shutil.copy(suspects.good / "cycle_000.csv", folder / "good.csv")
    _write_csv(folder / "two.csv", make_cycle(4)[:2], ["vib_x", "vib_y"], 1000.0)

    with pytest.raises(InputError) as raised:
        create_report(model, suspects.bad, tmp_path / "r.html", reference=folder)

    message = str(raised.value)
    assert "two.csv" in message
    assert "reference recording does not match the model" in message


# CLI --------------------------------------------------------------------------------


def _report_args(suspects, tmp_path) -> list[str]:  # noqa: ANN001
    return [
        "report",
        str(suspects.bad),
        "--model",
        str(suspects.model_path),
        "-o",
        str(tmp_path / "r.html"),
        "--no-track",
        "--max-details",
        "1",
    ]


def test_cli_reference_repeatable(suspects, tmp_path):
    args = _report_args(suspects, tmp_path)
    args += ["--reference", str(suspects.good / "cycle_000.csv")]
    args += ["--reference", str(suspects.good / "cycle_001.csv"), "--json"]

    result = CliRunner().invoke(_app(), args)

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_recordings"] == 3
    assert payload["n_reference"] == 2
    assert payload["has_comparison"] is True
    text = (tmp_path / "r.html").read_text()
    assert re.search(r"Nearest normal recording: cycle_00[01] \(a reference", text)


def test_cli_without_reference_names_fix(suspects, tmp_path):
    result = CliRunner().invoke(_app(), _report_args(suspects, tmp_path))

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "3 of 3 recordings flagged" in output
    assert "no normal recording to compare with" in output
    assert "with --reference" in output
    assert NO_COMPARISON in (tmp_path / "r.html").read_text()


def test_cli_missing_reference_fails(suspects, tmp_path):
    missing = tmp_path / "absent"
    args = [*_report_args(suspects, tmp_path), "--reference", str(missing)]

    result = CliRunner().invoke(_app(), args)

    output = " ".join(result.output.split())
    assert result.exit_code == 2
    assert "reference recordings: no such file or folder" in output
    assert "absent" in output
    assert not (tmp_path / "r.html").exists()


def test_cli_reference_takes_reading_options(suspects, tmp_path):
    data = _upsampled_cycle(9)
    path = _write_csv(
        tmp_path / "fast.csv", data[::-1], ["current", "vib_y", "vib_x"], 2000.0
    )
    args = [*_report_args(suspects, tmp_path), "--reference", str(path)]

    rejected = CliRunner().invoke(_app(), args)
    resampled = CliRunner().invoke(
        _app(), [*args, "--set", "data.resample=true", "--json"]
    )

    assert rejected.exit_code == 2
    assert "sample rate 2000" in " ".join(rejected.output.split())
    assert resampled.exit_code == 0, resampled.output
    payload = json.loads(resampled.stdout)
    assert payload["n_reference"] + payload["n_reference_flagged"] == 1
    assert payload["n_reference_skipped"] == 0


def test_table_reference_compared_by_feature(feature_table, tmp_path):
    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "iforest"}
    )
    model = grindwatch.train(feature_table, config).model
    frame = pd.read_parquet(feature_table)
    frame[frame["anomaly"]].reset_index(drop=True).to_parquet(
        tmp_path / "suspects.parquet"
    )
    # 50 normal rows and, last, one outlier, with the feature columns in reverse
    # order.
    normal = pd.concat([frame[~frame["anomaly"]].head(50), frame[frame["anomaly"]][:1]])
    normal = normal.reset_index(drop=True)
    normal[["anomaly", *reversed([f"f{i}" for i in range(6)])]].to_parquet(
        tmp_path / "normal.parquet"
    )

    without = create_report(
        model, tmp_path / "suspects.parquet", tmp_path / "a.html", max_details=1
    )
    result = create_report(
        model,
        tmp_path / "suspects.parquet",
        tmp_path / "b.html",
        max_details=1,
        reference=tmp_path / "normal.parquet",
    )

    assert without.n_flagged == without.n_recordings == 4
    # A feature table's report calls its rows rows.
    assert NO_COMPARISON.replace("recording", "row") in without.path.read_text()
    article = _articles(result.path.read_text())[0]
    assert "(a reference row, " in article
    assert result.n_recordings == 4
    assert result.n_reference == 50
    assert result.n_reference_flagged == 1
    # A flagged row is listed by file and row, not by file alone.
    assert "normal.parquet (normal#50): flagged by this model" in _notes(
        result.path.read_text()
    )
    # The nearest normal column contains the reference row's values, by feature name.
    values = re.findall(
        r'<tr><td class="text">(f\d)</td><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>',
        article,
    )
    assert values
    name = re.search(r"Nearest normal row: normal#(\d+) \(a reference", article)
    row = normal.loc[int(name.group(1))]
    for feature, printed in values:
        assert float(printed) == pytest.approx(row[feature], rel=1e-3, abs=1e-3)


def test_cli_reference_same_as_data(suspects, tmp_path):
    args = [*_report_args(suspects, tmp_path), "--reference", str(suspects.bad)]

    result = CliRunner().invoke(_app(), args)

    output = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "Reference recordings: 0 used, 0 left out" in output
    assert "every reference recording is among the scored data" in output
    text = (tmp_path / "r.html").read_text()
    assert "every reference recording is also among the scored data" in text
