"""End-to-end train and score on generated cycles and feature tables."""

from __future__ import annotations

import numpy as np
import pytest

import grindwatch
from grindwatch.config import Config
from grindwatch.exceptions import ConfigError, InputError


def _config(**overrides) -> Config:  # noqa: ANN003
    base = {
        "windows.length": 256,
        "frontend.kind": "spectrum",
        "frontend.n_bands": 16,
        "detector.autoencoder.epochs": 3,
        "tracking.enabled": False,
    }
    base.update(overrides)
    return Config().with_overrides(base)


@pytest.mark.parametrize(
    ("family", "frontend"),
    [
        ("autoencoder", "spectrum"),
        ("iforest", "features"),
        ("pca", "spectrum"),
        ("knn", "spectrum"),
    ],
)
def test_train_on_good_flags_bad_cycles(cycle_folders, family, frontend):
    config = _config(
        **{
            "detector.family": family,
            "frontend.kind": frontend,
            "detector.autoencoder.epochs": 15,
            "aggregate.method": "max",
        }
    )

    result = grindwatch.train(cycle_folders["good"], config)
    scored = grindwatch.score(result.model, cycle_folders["bad"])

    normal = grindwatch.score(result.model, cycle_folders["good"])
    assert scored.recordings["score"].min() > normal.recordings["score"].max()
    assert scored.recordings["flag"].all()


def test_threshold_margin_scales_the_trained_cut(cycle_folders):
    plain = _config(**{"detector.family": "pca", "threshold.method": "percentile"})
    wide = plain.with_overrides({"threshold.margin": 1.5})

    base = grindwatch.train(cycle_folders["good"], plain).model.threshold_
    scaled = grindwatch.train(cycle_folders["good"], wide).model.threshold_

    assert scaled.value == pytest.approx(1.5 * base.value)
    assert scaled.margin == 1.5
    assert scaled.share_flagged <= base.share_flagged


def test_score_tables_have_documented_columns(cycle_folders):
    result = grindwatch.train(cycle_folders["good"], _config())

    scored = grindwatch.score(result.model, cycle_folders["root"])

    assert list(scored.windows.columns[:6]) == [
        "recording", "window", "start_sample", "start_s", "end_s", "score",
    ]
    assert {"flag", "label"} <= set(scored.windows.columns)
    assert len(scored.recordings) == 11
    assert scored.windows["end_s"].iloc[0] == pytest.approx(0.256)
    assert set(scored.recordings["label"]) == {0, 1}


def test_feature_table_flags_outlier_rows(feature_table):
    config = _config(**{"data.kind": "table", "frontend.kind": "raw",
                        "detector.family": "iforest"})

    result = grindwatch.train(feature_table, config)
    scored = result.training.recordings

    flagged = scored.loc[scored["flag"], "recording"].tolist()
    assert {f"features#{i}" for i in range(300, 304)} <= set(flagged)
    assert len(flagged) < 10


def test_autoencoder_rejects_feature_tables(feature_table):
    config = _config(**{"data.kind": "table", "frontend.kind": "raw"})

    with pytest.raises(ConfigError, match="needs signal windows"):
        grindwatch.train(feature_table, config)


def test_score_skips_recording_missing_a_channel(cycle_folders, tmp_path):
    import pandas as pd

    result = grindwatch.train(cycle_folders["good"], _config())
    broken = tmp_path / "other" / "no_current.csv"
    broken.parent.mkdir()
    pd.read_csv(cycle_folders["good"] / "cycle_000.csv").drop(columns="current").to_csv(
        broken, index=False
    )

    scored = grindwatch.score(result.model, [cycle_folders["good"] / "cycle_000.csv",
                                            broken])

    assert len(scored.recordings) == 1
    assert "current" in scored.skipped[0]["reason"]


def test_score_strict_raises_on_missing_channel(cycle_folders, tmp_path):
    import pandas as pd

    result = grindwatch.train(cycle_folders["good"], _config())
    broken = tmp_path / "no_current.csv"
    pd.read_csv(cycle_folders["good"] / "cycle_000.csv").drop(columns="current").to_csv(
        broken, index=False
    )

    with pytest.raises(InputError, match="missing channels"):
        grindwatch.score(result.model, broken, strict=True)


def test_model_bundle_round_trip_gives_same_scores(cycle_folders, tmp_path):
    result = grindwatch.train(cycle_folders["good"], _config(), output=tmp_path / "m")

    loaded = grindwatch.load_model(tmp_path / "m")
    first = grindwatch.score(result.model, cycle_folders["bad"])
    second = grindwatch.score(loaded, cycle_folders["bad"])

    np.testing.assert_array_equal(first.windows["score"], second.windows["score"])
    assert (tmp_path / "m" / "model.json").is_file()


def test_same_seed_gives_same_scores(cycle_folders):
    first = grindwatch.train(cycle_folders["good"], _config())
    second = grindwatch.train(cycle_folders["good"], _config())

    np.testing.assert_array_equal(
        first.model.training_scores_, second.model.training_scores_
    )


def test_recording_shorter_than_window_is_skipped(cycle_folders):
    config = _config(**{"windows.length": 4096})

    with pytest.raises(InputError, match="fewer than one window"):
        grindwatch.train(cycle_folders["good"], config)


def test_saved_bundle_and_tables_follow_umask(cycle_folders, tmp_path):
    import os
    import stat

    from grindwatch.results import write_table

    previous = os.umask(0o022)
    try:
        result = grindwatch.train(cycle_folders["good"], _config(), output=tmp_path / "m")
        table = write_table(result.training.recordings, tmp_path / "r.csv")
    finally:
        os.umask(previous)

    for path in (tmp_path / "m" / "model.pkl", table):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
