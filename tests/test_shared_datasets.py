"""Acceptance checks on the real recordings under ../shared/data (skipped if absent).

These are the configurations documented in benchmarks/BENCHMARKS.md. Labels are used
only to evaluate, never to fit.
"""

from __future__ import annotations

import grindwatch
from grindwatch.config import Config
from grindwatch.evaluate import evaluate
from tests.conftest import shared_dataset


def test_gearbox_trained_on_healthy_separates_broken_tooth():
    root = shared_dataset("gearbox_spectraquest")
    config = Config().with_overrides({"detector.family": "pca"})

    result = grindwatch.train(root / "healthy", config)
    evaluation = evaluate(result.model, root, track=False)

    assert evaluation.windows["auc_roc"] >= 0.98
    assert evaluation.windows["f1"] >= 0.9


def test_gearbox_autoencoder_default_config():
    root = shared_dataset("gearbox_spectraquest")

    result = grindwatch.train(root / "healthy", Config())
    evaluation = evaluate(result.model, root, track=False)

    assert evaluation.windows["auc_roc"] >= 0.98
    assert evaluation.windows["f1"] >= 0.9


def test_grinding_features_clustered_threshold_finds_nok_cycles():
    root = shared_dataset("grinding_kellenberger_features")
    config = Config().with_overrides(
        {"data.kind": "table", "detector.family": "iforest"}
    )

    result = grindwatch.train(
        [root / "ok_features.parquet", root / "nok_features.parquet"], config
    )
    evaluation = evaluate(result.model, root, track=False)

    assert result.model.threshold_.method == "gmm"
    assert evaluation.recordings["f1"] >= 0.9


def test_grinding_ok_rows_alone_keep_a_narrow_cut():
    # The isolation forest's scores of OK rows form one skewed peak, which the
    # mixture fitted with components 2.3 apart, and a cut between them flagged
    # 45 % of the rows.
    root = shared_dataset("grinding_kellenberger_features")
    config = Config().with_overrides(
        {"data.kind": "table", "detector.family": "iforest"}
    )

    result = grindwatch.train(root / "ok_features.parquet", config)
    nok = grindwatch.score(result.model, root / "nok_features.parquet")

    assert result.model.threshold_.share_flagged < 0.05
    assert nok.recordings["flag"].all()


def test_gearbox_segments_cycle_check():
    from benchmarks.cycle_check import gearbox_segments

    from grindwatch.io import RecordingSet
    from grindwatch.pipeline import Model

    root = shared_dataset("gearbox_spectraquest")
    config = Config().with_overrides(
        {"windows.length": 256, "detector.family": "pca", "tracking.enabled": False}
    )
    model = Model(config).fit(
        RecordingSet(gearbox_segments(root / "healthy" / "h30hz0.csv", 0))
    )

    def flagged_share(path):  # noqa: ANN001, ANN202
        segments = gearbox_segments(path, 1)
        verdicts = model.cycle_verdicts(model.prepare(segments))
        return sum(v.flag for v in verdicts) / len(verdicts)

    assert flagged_share(root / "healthy" / "h30hz0.csv") <= 0.1
    assert flagged_share(root / "healthy" / "h30hz80.csv") >= 0.9
    assert flagged_share(root / "broken_tooth" / "b30hz0.csv") >= 0.9
