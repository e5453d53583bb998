"""Unsupervised thresholds and their fallbacks."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import grindwatch
from grindwatch.config import Config
from grindwatch.exceptions import ConfigError
from grindwatch.io.recording import Recording, RecordingSet
from grindwatch.thresholds import fit_threshold


def _two_clusters(n_normal: int = 990, n_anomalous: int = 10) -> np.ndarray:
    rng = np.random.default_rng(0)
    normal = np.exp(rng.normal(0.0, 0.2, n_normal))
    anomalous = np.exp(rng.normal(2.5, 0.1, n_anomalous))
    return np.concatenate([normal, anomalous])


def test_gmm_threshold_separates_small_high_cluster():
    scores = _two_clusters()

    threshold = fit_threshold(scores)

    assert threshold.method == "gmm"
    assert threshold.fallback_reason is None
    flagged = scores > threshold.value
    assert flagged[-10:].all()
    assert flagged[:-10].sum() == 0
    assert threshold.separation >= 2.0
    assert any(not c["normal"] for c in threshold.components)
    assert "Gaussian mixture" in threshold.describe()


def test_gmm_skewed_peak_is_one_cluster():
    # Log scores with a long upper tail: the mixture fits the tail with
    # components D >= 2 apart, with no dip in the density between them.
    rng = np.random.default_rng(0)
    scores = np.exp(-0.95 + rng.gamma(2.0, 0.04, 1500))

    threshold = fit_threshold(scores)

    assert threshold.method == "mad"
    assert "the score density has no dip" in threshold.describe()
    assert threshold.share_flagged < 0.05


def test_gmm_cut_not_at_lone_outlier():
    rng = np.random.default_rng(3)
    normal = np.exp(rng.normal(0.0, 0.2, 300))
    scores = np.append(normal, np.exp(5.0))

    threshold = fit_threshold(scores)

    # A component of one score has almost no width, so the cut must not hug it.
    assert threshold.method == "gmm"
    assert threshold.value > normal.max()
    assert threshold.value < np.exp(3.0)
    assert fit_threshold(np.append(normal, np.exp(2.5))).value < np.exp(2.5)
    assert "counted as at least as wide" in threshold.describe()


def test_gmm_description_omits_widening_when_unused():
    rng = np.random.default_rng(0)
    normal = np.exp(rng.normal(0.0, 0.2, 990))
    wide_anomalous = np.exp(rng.normal(3.0, 0.3, 30))

    threshold = fit_threshold(np.concatenate([normal, wide_anomalous]))

    assert threshold.method == "gmm"

    assert "counted as at least as wide" not in threshold.describe()


def test_gmm_description_counts_clusters():
    threshold = fit_threshold(_two_clusters())
    n_normal = sum(c["normal"] for c in threshold.components)
    n_high = len(threshold.components) - n_normal

    described = threshold.describe()

    assert "(s)" not in described
    high = "cluster" if n_high == 1 else "clusters"
    normal = "one" if n_normal == 1 else "ones"
    assert f"{n_high} high-score {high} separated from {n_normal} normal {normal}" in (
        described
    )


@pytest.mark.parametrize(
    ("percentile", "words"),
    [
        (1, "the 1st percentile"),
        (2, "the 2nd percentile"),
        (3, "the 3rd percentile"),
        (11, "the 11th percentile"),
        (92, "the 92nd percentile"),
        (99, "the 99th percentile"),
        (99.9, "the 99.9th percentile"),
    ],
)
def test_percentile_description_ordinal(percentile, words):
    scores = np.arange(1, 101, dtype=float)

    threshold = fit_threshold(scores, method="percentile", percentile=percentile)

    assert words in threshold.describe()


def test_gmm_single_cluster_falls_back_to_mad(caplog):
    scores = np.exp(np.random.default_rng(1).normal(0, 0.3, 2000))

    with caplog.at_level(logging.INFO, logger="grindwatch.thresholds"):
        threshold = fit_threshold(scores)

    assert threshold.method == "mad"
    assert threshold.requested_method == "gmm"
    assert "single cluster" in threshold.fallback_reason
    assert "median + 3 * MAD" in threshold.describe()
    # One cluster is the expected result on clean data, so it is logged at
    # info level and never as a warning.
    fallback_records = [r for r in caplog.records if "fell back" in r.getMessage()]
    assert [r.levelno for r in fallback_records] == [logging.INFO]
    assert 0 < threshold.share_flagged < 0.01


def test_gmm_few_scores_fall_back():
    threshold = fit_threshold(np.array([0.1, 0.5, 0.9]))

    assert threshold.method == "mad"
    assert "only 3 training scores" in threshold.fallback_reason
    assert "tied" not in threshold.fallback_reason


def test_gmm_tied_scores_fall_back():
    scores = np.ones(500)

    threshold = fit_threshold(scores)

    assert threshold.method == "mad"
    assert "tied" in threshold.fallback_reason
    assert threshold.value == pytest.approx(1.0)
    assert (scores > threshold.value).sum() == 0


def test_mostly_tied_scores_use_spread_instead_of_zero_mad():
    scores = np.r_[np.ones(400), np.linspace(1.1, 2.0, 100)]

    threshold = fit_threshold(scores, method="mad")

    assert "standard deviation" in threshold.fallback_reason
    assert threshold.value > 1.0


def test_overlapping_clusters_fall_back():
    rng = np.random.default_rng(2)
    scores = np.exp(np.r_[rng.normal(0, 0.3, 600), rng.normal(0.4, 0.3, 400)])

    threshold = fit_threshold(scores, max_components=2)

    assert threshold.method == "mad"
    assert threshold.fallback_reason


def test_percentile_threshold():
    scores = np.arange(1, 101, dtype=float)

    threshold = fit_threshold(
        scores, method="percentile", percentile=90, log_scores=False
    )

    assert threshold.value == pytest.approx(np.percentile(scores, 90))


def test_mad_threshold_on_log_scale():
    scores = np.exp(np.random.default_rng(3).normal(0, 1, 5000))

    threshold = fit_threshold(scores, method="mad", mad_k=3)

    assert threshold.log_scale
    assert np.log(threshold.value) == pytest.approx(3.0, abs=0.15)
    assert "median + 3 * MAD" in threshold.describe()


def test_mad_description_states_log_transform():
    scores = np.exp(np.random.default_rng(3).normal(0, 1, 5000))

    threshold = fit_threshold(scores, method="mad", mad_k=3, margin=2)
    text = threshold.describe()

    # The cut lies on the log scale, so the threshold is the score whose log it is.
    assert "2 times the score whose log is median + 3 * MAD of the log" in text
    assert np.log(threshold.value / 2) == pytest.approx(3.0, abs=0.15)


def test_linear_scale_description_omits_log():
    negative = np.random.default_rng(4).normal(0, 1, 300)
    clusters = _two_clusters()

    mad = fit_threshold(negative, method="mad").describe()
    gmm = fit_threshold(clusters, log_scores=False)

    assert "median + 3 * MAD of the training scores" in mad
    assert "log" not in mad
    assert gmm.method == "gmm"
    assert "Gaussian mixture on the scores of" in gmm.describe()
    assert "log" not in gmm.describe()


def test_negative_scores_use_linear_scale():
    scores = np.random.default_rng(4).normal(0, 1, 300)

    threshold = fit_threshold(scores, method="mad")

    assert not threshold.log_scale


def test_invalid_inputs_raise():
    with pytest.raises(ConfigError, match="NaN"):
        fit_threshold(np.array([1.0, np.nan]))
    with pytest.raises(ConfigError, match="invalid"):
        fit_threshold(np.ones(5), method="otsu")
    with pytest.raises(ConfigError, match="non-negative"):
        fit_threshold(np.array([-1.0, 2.0]), log_scores=True)
    with pytest.raises(ConfigError, match="to no scores"):
        fit_threshold(np.array([]))
    with pytest.raises(ConfigError, match="2 scores containing NaN"):
        fit_threshold(np.array([1.0, np.nan]))


def test_zero_scores_stay_finite_on_log_scale():
    scores = np.r_[np.zeros(10), np.exp(np.random.default_rng(5).normal(0, 0.2, 500))]

    threshold = fit_threshold(scores)

    assert np.isfinite(threshold.value)


@pytest.mark.parametrize("margin", [1.0, 1.5])
def test_cut_at_zero_scores_leaves_them_unflagged(margin):
    # Perfect reconstructions score exactly 0; here they are half the scores.
    scores = np.r_[np.zeros(50), np.linspace(1.0, 2.0, 50)]

    threshold = fit_threshold(scores, method="percentile", percentile=10, margin=margin)

    assert threshold.log_scale
    assert threshold.value == 0.0
    assert threshold.share_flagged == 0.5


def test_percentile_100_flags_no_training_score():
    for seed in range(20):
        scores = np.exp(np.random.default_rng(seed).normal(size=200))

        threshold = fit_threshold(scores, method="percentile", percentile=100)

        assert threshold.log_scale
        assert threshold.value == scores.max(), seed
        assert threshold.share_flagged == 0.0, seed


def test_margin_multiplies_the_cut_and_is_described():
    scores = np.arange(1, 1001, dtype=float)

    plain = fit_threshold(scores, method="percentile", percentile=99.9)
    wide = fit_threshold(scores, method="percentile", percentile=99.9, margin=4 / 3)

    assert wide.value == pytest.approx(plain.value * 4 / 3)
    assert wide.share_flagged == 0.0
    assert "1.33 times the 99.9th percentile" in wide.describe()


def test_margin_named_in_gmm_description():
    threshold = fit_threshold(_two_clusters(), margin=1.5)

    assert threshold.method == "gmm"
    assert "is 1.5 times the score where" in threshold.describe()


def test_margin_rejects_negative_cuts_and_non_positive_values():
    negative = np.random.default_rng(5).normal(-5, 1, 300)

    with pytest.raises(ConfigError, match="leave threshold.margin at 1"):
        fit_threshold(negative, method="percentile", margin=1.5)
    with pytest.raises(ConfigError, match="greater than 0"):
        fit_threshold(np.ones(5), margin=0)


def test_mad_with_tied_scores_stays_near_scores():
    # Over half the windows score the same (here 0.5, as a clipped distance
    # would); the rest score 1 to 2. The standard deviation of the log scores
    # would put the threshold far above any score these windows could reach.
    rest = np.random.default_rng(0).uniform(1, 2, 400)
    scores = np.concatenate([np.full(600, 0.5), rest])

    threshold = fit_threshold(scores, method="mad")

    assert threshold.log_scale
    assert rest.max() < threshold.value < 5
    assert threshold.share_flagged == 0
    assert "of the scores (not their logs)" in threshold.fallback_reason


def test_gmm_leaves_out_zero_scores():
    # k-nearest neighbours scores 0 for windows that repeat exactly, such as
    # those of a machine at rest. As the majority, these zeros were the
    # mixture's only normal cluster, and the cut fell just above 0.
    rng = np.random.default_rng(1)
    active = np.exp(rng.normal(0.0, 0.2, 380))
    faults = np.exp(rng.normal(3.0, 0.1, 20))
    scores = np.concatenate([np.zeros(600), active, faults])

    threshold = fit_threshold(scores)

    assert threshold.method == "gmm"
    assert active.max() < threshold.value < faults.min()
    assert threshold.share_flagged == pytest.approx(0.02)
    assert threshold.n_zero == 600
    assert sum(c["weight"] for c in threshold.components) == pytest.approx(1.0)
    assert (
        "log scores of 400 training windows that score above 0 (the 600 that "
        "score exactly 0 count as normal)" in threshold.describe()
    )


def test_gmm_description_without_zero_scores():
    threshold = fit_threshold(_two_clusters())

    assert threshold.n_zero == 0
    assert "log scores of 1000 training windows found" in threshold.describe()


def test_zero_majority_fallback_near_scores():
    rest = np.random.default_rng(0).uniform(1, 2, 400)
    scores = np.concatenate([np.zeros(600), np.sort(rest)])

    threshold = fit_threshold(scores, max_components=1)

    assert threshold.method == "mad"
    assert threshold.n_zero == 600
    assert "with the 600 scores of exactly 0 left out" in threshold.fallback_reason
    assert rest.max() < threshold.value < 5


@pytest.mark.parametrize("n_zero", [300, 450, 900])
def test_mad_fallback_leaves_out_zero_scores(n_zero):
    # The median and MAD of the fallback were taken over the zeros too: 300
    # zeros in 1000 doubled the threshold, 450 raised it tenfold, and 900 put
    # it below half of the scores above 0.
    active = np.exp(np.random.default_rng(1).normal(0.0, 0.3, 1000 - n_zero))
    scores = np.concatenate([np.zeros(n_zero), active])

    threshold = fit_threshold(scores, max_components=1)
    alone = fit_threshold(active, max_components=1)

    assert threshold.method == alone.method == "mad"
    assert threshold.value == pytest.approx(alone.value)
    assert threshold.n_zero == n_zero
    assert threshold.share_flagged <= 0.01
    assert "log training scores above 0 (MAD" in threshold.describe()
    assert f"with the {n_zero} scores of exactly 0 left out" in threshold.describe()


def test_mad_fallback_one_score_above_zeros():
    threshold = fit_threshold(np.concatenate([np.zeros(50), [1.0]]))

    assert threshold.value == 1.0
    assert "all training scores above 0 are equal" in threshold.fallback_reason


def _resting_cycle(rng: np.random.Generator, name: str) -> Recording:
    # 60 % of the cycle at rest with held values, then 40 % of noisy machining.
    rest = np.tile(np.array([[1.0], [0.0], [0.5]]), 1200)
    t = np.arange(800) / 1000
    active = np.stack(
        [
            3 + 0.05 * rng.standard_normal(800),
            np.sin(2 * np.pi * 50 * t) + 0.1 * rng.standard_normal(800),
            2 + 0.05 * rng.standard_normal(800),
        ]
    )
    return Recording(
        name=name,
        data=np.concatenate([rest, active], axis=1),
        channels=["spindle", "vib", "current"],
        sample_rate=1000.0,
    )


def test_knn_at_rest_flags_no_training():
    rng = np.random.default_rng(0)
    training = RecordingSet([_resting_cycle(rng, f"ok{i}") for i in range(20)])
    config = Config().with_overrides(
        {
            "windows.length": 100,
            "frontend.kind": "raw",
            "detector.family": "knn",
            "cycle.enabled": False,
            "tracking.enabled": False,
        }
    )

    result = grindwatch.train(training, config)

    windows = result.training.windows
    assert (windows["score"] == 0).mean() == pytest.approx(0.6)
    active = windows.loc[windows["score"] > 0, "score"]
    assert result.model.threshold_.value > active.median()
    assert not result.training.recordings["flag"].any()
    faulty = _resting_cycle(rng, "burst")
    faulty.data[1, 1500:1800] += 3 * rng.standard_normal(300)
    scored = result.model.score([faulty, _resting_cycle(rng, "normal")])
    flags = dict(
        zip(scored.recordings["recording"], scored.recordings["flag"], strict=True)
    )
    assert flags == {"burst": True, "normal": False}


def test_mad_method_leaves_exact_zeros_out():
    rng = np.random.default_rng(0)
    positive = rng.lognormal(0.0, 0.3, 400)
    scores = np.concatenate([np.zeros(600), positive])

    threshold = fit_threshold(scores, method="mad")
    alone = fit_threshold(positive, method="mad")

    assert threshold.value == pytest.approx(alone.value)
    assert "(the 600 scores of exactly 0 count as normal)" in threshold.describe()


def test_all_zero_scores_say_none_above_zero():
    threshold = fit_threshold(np.zeros(50))

    assert threshold.value == 0.0
    assert threshold.share_flagged == 0.0
    assert "no training score is above 0" in threshold.describe()
    assert "only 0 training scores" not in threshold.describe()
