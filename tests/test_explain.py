"""Attribution: top channel, band, statistic or time step, per window and recording."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.stats import spearmanr

import grindwatch
from grindwatch.config import Config
from grindwatch.explain import (
    ElementAxis,
    describe_summary,
    element_axis,
    explain_recording,
    feature_groups,
    recording_summary,
)
from grindwatch.io.recording import Recording, RecordingSet
from grindwatch.pipeline import read_data
from grindwatch.signals.frontends import FEATURE_NAMES
from tests.conftest import shared_dataset

# The faults make_cycle injects, and the channel each one lives in.
FAULT_CHANNEL = {"cycle_100": "vib_y", "cycle_101": "vib_x", "cycle_102": "current"}


def _config(**overrides) -> Config:  # noqa: ANN003
    base = {
        "windows.length": 256,
        "frontend.kind": "spectrum",
        "frontend.n_bands": 16,
        "detector.family": "pca",
        "detector.autoencoder.epochs": 15,
        "tracking.enabled": False,
    }
    base.update(overrides)
    return Config().with_overrides(base)


@pytest.mark.parametrize("family", ["autoencoder", "pca", "knn", "iforest"])
def test_top_channel_is_the_faulty_one(cycle_folders, family):
    model = grindwatch.train(
        cycle_folders["good"], _config(**{"detector.family": family})
    ).model

    scored = grindwatch.score(model, cycle_folders["bad"])

    tops = dict(
        zip(
            scored.recordings["recording"],
            scored.recordings["top_channel"],
            strict=True,
        )
    )
    assert tops == FAULT_CHANNEL


@pytest.mark.parametrize("family", ["autoencoder", "pca", "knn", "iforest"])
def test_score_and_explain_match_separate_calls(cycle_folders, family):
    config = _config(**{"detector.family": family, "detector.autoencoder.epochs": 2})
    model = grindwatch.train(cycle_folders["good"], config).model
    windows = model.prepare(read_data(cycle_folders["bad"], config).recordings)
    features = model.features(windows.X)

    scores, contributions = model.detector_.score_and_explain(features)

    assert np.allclose(scores, model.detector_.anomaly_score(features))
    assert np.allclose(contributions, model.detector_.explain(features))


def test_top_band_holds_the_added_tone(cycle_folders):
    model = grindwatch.train(cycle_folders["good"], _config()).model

    scored = grindwatch.score(model, cycle_folders["bad"])

    axis = element_axis(model)
    tone = scored.recordings.set_index("recording").loc["cycle_101"]
    low, high = axis.band_ranges[axis.labels.index(tone["top_band"])]
    assert axis.unit == "Hz"
    assert low <= 180 < high


def test_raw_top_sample_lies_in_the_spike(cycle_folders):
    config = _config(**{"frontend.kind": "raw"})
    model = grindwatch.train(cycle_folders["good"], config).model

    scored = grindwatch.score(model, cycle_folders["bad"])

    spike = scored.recordings.set_index("recording").loc["cycle_100"]
    # make_cycle adds the spike to samples 1024 to 1535 of its 2048.
    assert 1024 <= spike["top_sample"] < 1536
    windows = scored.windows[scored.windows["flag"]]
    assert (
        windows["top_sample"]
        .between(windows["start_sample"], windows["start_sample"] + 255)
        .all()
    )


def test_features_frontend_names_a_statistic(cycle_folders):
    config = _config(**{"frontend.kind": "features", "detector.family": "knn"})
    model = grindwatch.train(cycle_folders["good"], config).model

    scored = grindwatch.score(model, cycle_folders["bad"])

    assert set(scored.windows["top_feature"]) <= set(FEATURE_NAMES)
    level = scored.recordings.set_index("recording").loc["cycle_102"]
    assert level["top_feature"] in {"mean", "rms", "peak"}


def test_table_attribution_names_shifted_features(feature_table):
    config = _config(**{"data.kind": "table", "frontend.kind": "raw"})

    result = grindwatch.train(feature_table, config)

    rows = result.training.recordings.set_index("recording")
    outliers = rows.loc[[f"features#{i}" for i in range(300, 304)]]
    # The fixture shifts f0, f1, f2 and f5 of the outliers by 5 to 7 units.
    assert set(outliers["top_channel"]) <= {"f0", "f1", "f2", "f5"}
    assert "top_band" not in rows.columns
    assert "worst_window" not in rows.columns


def test_attribution_columns_appended(cycle_folders):
    model = grindwatch.train(cycle_folders["good"], _config()).model

    plain = grindwatch.score(model, cycle_folders["root"], attribution=False)
    explained = grindwatch.score(model, cycle_folders["root"])

    n_windows = len(plain.windows.columns)
    n_recordings = len(plain.recordings.columns)
    assert list(explained.windows.columns[:n_windows]) == list(plain.windows.columns)
    assert list(explained.windows.columns[n_windows:]) == [
        "top_channel",
        "top_channel_share",
        "top_band",
    ]
    assert list(explained.recordings.columns[:n_recordings]) == list(
        plain.recordings.columns
    )
    assert list(explained.recordings.columns[n_recordings:]) == [
        "top_channel",
        "top_channel_share",
        "top_band",
        "worst_window",
        "worst_start_sample",
        "worst_start_s",
        "worst_end_s",
        "margin",
    ]
    assert np.array_equal(explained.windows["score"], plain.windows["score"])


def test_shares_and_margins_are_consistent(cycle_folders):
    model = grindwatch.train(cycle_folders["good"], _config()).model

    scored = grindwatch.score(model, cycle_folders["root"])

    recordings = scored.recordings
    assert scored.windows["top_channel_share"].between(0, 1).all()
    assert recordings["top_channel_share"].between(0, 1).all()
    assert np.allclose(recordings["margin"], recordings["score"] - scored.threshold)
    assert (recordings["flag"] == (recordings["margin"] > 0)).all()
    worst = scored.windows.loc[scored.windows.groupby("recording")["score"].idxmax()]
    expected = dict(zip(worst["recording"], worst["window"], strict=True))
    assert (
        dict(zip(recordings["recording"], recordings["worst_window"], strict=True))
        == expected
    )


def test_unflagged_summary_uses_worst_window(cycle_folders):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    recording = read_data(cycle_folders["good"], model.config).recordings[0]
    explanation = explain_recording(model, recording)
    worst = int(np.argmax(explanation.scores))

    summary = recording_summary(
        model,
        explanation.contributions,
        explanation.scores,
        explanation.starts,
        explanation.score,
    )

    assert not explanation.flags.any()
    top = int(explanation.contributions[worst].sum(axis=1).argmax())
    assert summary["top_channel"] == model.channels_[top]
    assert summary["worst_window"] == worst
    assert summary["margin"] < 0


def test_channel_by_time_covers_tail(cycle_folders):
    config = _config(**{"frontend.kind": "raw", "windows.length": 300})
    model = grindwatch.train(cycle_folders["good"], config).model
    recording = read_data(cycle_folders["bad"], model.config).recordings[0]

    explanation = explain_recording(model, recording)
    over_time = explanation.channel_by_time()

    # 2048 samples hold 6 windows of 300 on the hop grid, and a 7th window ends at
    # the last sample, so the last 248 samples are scored too.
    assert over_time.shape == (3, 2048)
    assert np.isfinite(over_time).all()
    assert list(explanation.starts) == [0, 300, 600, 900, 1200, 1500, 1748]
    assert np.allclose(over_time[:, :300], np.maximum(explanation.contributions[0], 0))
    assert explanation.channel_by_window().shape == (3, 7)


def test_channel_by_time_rejects_spectra(cycle_folders):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    recording = read_data(cycle_folders["bad"], model.config).recordings[0]

    explanation = explain_recording(model, recording)

    with pytest.raises(ValueError, match="raw front end"):
        explanation.channel_by_time()


def test_band_labels_without_rate(cycle_folders):
    config = _config()
    model = grindwatch.train(cycle_folders["good"], config).model
    model.sample_rate_ = None

    axis = element_axis(model)

    assert axis.unit == "fs"
    assert axis.band_ranges[0, 0] == 0
    # The last band ends at the Nyquist frequency, not one bin past it.
    assert axis.band_ranges[-1, 1] == 0.5
    assert axis.labels[0].endswith(" fs")


def test_describe_names_channel_and_band(cycle_folders):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    recording = read_data(cycle_folders["bad"], model.config).recordings[0]

    text = explain_recording(model, recording).describe()

    assert "above the threshold" in text
    assert "channel vib_y carries" in text
    assert "windows above the threshold, channel" in text
    assert "most of it in band" in text
    assert "the worst window spans" in text


def test_describe_names_worst_window_leader():
    summary = {
        "top_channel": "vib",
        "top_channel_share": 0.31,
        "worst_start_s": 904.0,
        "worst_end_s": 936.0,
    }
    # An axis without a column: the sentence then names no band or sample.
    axis = ElementAxis(name="band", labels=[], column=None)

    text = describe_summary(
        summary, 4.4, 2.0, axis, n_summed=12, worst_channel=("flow", 0.66)
    )
    alone = describe_summary(
        summary, 4.4, 2.0, axis, n_summed=1, worst_channel=("vib", 0.31)
    )

    assert "Over its 12 windows above the threshold, channel vib carries 31%" in text
    assert text.endswith("spans 904-936 s, where channel flow leads with 66%.")
    assert "In its worst window, channel vib carries 31%" in alone
    assert "leads with" not in alone


def test_feature_groups_split_on_prefix():
    names = ["ae_mean", "ae_std", "rms_ae_mean", "li1_ae_mean", "li1_ae_std"]

    groups = feature_groups(names)

    assert groups == {"ae": [0, 1], "rms": [2], "li1": [3, 4]}
    assert feature_groups(["f0", "f1", "f2"]) == {"": [0, 1, 2]}
    assert feature_groups(["ae_a", "ae_b"]) == {"": [0, 1]}


@pytest.mark.shared_data
def test_gearbox_attribution_matches_band_differences():
    folder = shared_dataset("gearbox_spectraquest")
    config = _config(
        **{
            "windows.length": 1024,
            "detector.family": "autoencoder",
            "detector.autoencoder.epochs": 10,
        }
    )
    model = grindwatch.train(folder / "healthy", config).model
    healthy = model.prepare(read_data(folder / "healthy", config).recordings).X
    broken = model.prepare(read_data(folder / "broken_tooth", config).recordings).X

    attribution = model.explain(broken).mean(axis=0)

    # A simple per-band comparison: the standardised difference of the mean log
    # band energy between broken-tooth and healthy windows, per channel and band.
    healthy_bands, broken_bands = model.features(healthy), model.features(broken)
    difference = np.abs(broken_bands.mean(axis=0) - healthy_bands.mean(axis=0))
    difference /= healthy_bands.std(axis=0)
    top = np.unravel_index(attribution.argmax(), attribution.shape)
    rank = int((difference > difference[top]).sum())
    assert rank < 3, f"top attributed (channel, band) {top} ranks {rank} by difference"
    # Measured rho: 0.52 to 0.68 for seeds 0 to 2 at 10 and 30 epochs, so 0.4
    # leaves room for other seeds and thread counts.
    rho = spearmanr(attribution.ravel(), difference.ravel()).statistic
    assert rho > 0.4
    channels_by_attribution = set(np.argsort(-attribution.sum(axis=1))[:2])
    channels_by_difference = set(np.argsort(-difference.sum(axis=1))[:2])
    assert channels_by_attribution == channels_by_difference


def test_band_labels_distinct_at_slow_rates():
    from grindwatch.io import Recording, RecordingSet
    from tests.conftest import make_cycle

    recordings = [
        Recording(f"r{seed}", make_cycle(seed, 2048), ["a", "b", "c"], 1.0)
        for seed in range(4)
    ]
    config = Config().with_overrides(
        {
            "windows.length": 64,
            "frontend.n_bands": 32,
            "detector.family": "pca",
            "tracking.enabled": False,
        }
    )
    model = grindwatch.train(RecordingSet(recordings), config).model

    labels = element_axis(model).labels

    assert len(set(labels)) == 32
    # Band 0 is bin 0 alone, which collects frequencies up to half a bin.
    assert labels[0] == "0.000-0.008 Hz"


def _sine_and_noise(seed: int, burst: float = 0.0):  # noqa: ANN202
    from grindwatch.io import Recording

    rng = np.random.default_rng(seed)
    t = np.arange(2048) / 1000.0
    sine = np.sin(2 * np.pi * 50 * t + rng.uniform(0, 2 * np.pi))
    sine += burst * rng.standard_normal(t.size)
    noise = rng.standard_normal(t.size)
    data = np.stack([sine, noise]).astype(np.float32)
    return Recording(f"r{seed}", data, ["sine", "noise"], 1000.0)


def test_noisy_channel_does_not_top_attribution():
    from grindwatch.io import RecordingSet

    config = _config(
        **{
            "frontend.kind": "raw",
            "detector.pca.n_components": 4,
            "threshold.method": "percentile",
        }
    )
    training = RecordingSet([_sine_and_noise(seed) for seed in range(40)])
    model = grindwatch.train(training, config).model
    faulty = _sine_and_noise(99, burst=0.7)

    row = model.score([faulty]).recordings.iloc[0]
    baseline = model.contribution_baseline_.sum(axis=1)
    del model.contribution_baseline_  # attribution as in bundles without it
    unadjusted = model.score([faulty]).recordings.iloc[0]

    # PCA cannot reconstruct white noise, so in every window the noise channel
    # carries most of the residual; the fault sits in the sine channel.
    assert baseline[1] > 10 * baseline[0]
    assert bool(row["flag"])
    assert row["top_channel"] == "sine"
    assert row["top_channel_share"] > 0.7
    assert unadjusted["top_channel"] == "noise"


@pytest.mark.parametrize("family", ["iforest", "pca"])
def test_service_shares_match_score_table(cycle_folders, family):
    from grindwatch.online import score_recording

    # A low cut flags normal windows too, so a channel departs in some of a
    # recording's flagged windows and lies below normal in others.
    config = _config(
        **{
            "detector.family": family,
            "threshold.method": "percentile",
            "threshold.percentile": 50,
        }
    )
    model = grindwatch.train(cycle_folders["good"], config).model
    recordings = read_data(cycle_folders["root"], model.config).recordings

    table = model.score(recordings).recordings.set_index("recording")

    for recording in recordings:
        cycle = score_recording(model, recording)
        row = table.loc[recording.name]
        assert sum(cycle.channel_shares.values()) == pytest.approx(1)
        assert cycle.channel_shares[row["top_channel"]] == pytest.approx(
            row["top_channel_share"], abs=1e-6
        ), recording.name


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        (["a", "a", "b"], ("a", 2, 3)),
        (["a", "b"], None),  # a tie names no channel
        (["a", None, None], None),  # windows without attribution count
        (["a", "a", None, "b"], ("a", 2, 4)),
        ([], None),
    ],
)
def test_leading_channel_needs_half(channels, expected):
    from grindwatch.explain import leading_channel

    assert leading_channel(channels) == expected


def _two_channel_cycle(rng: np.random.Generator, name: str) -> Recording:
    t = np.arange(2000) / 1000
    data = np.stack(
        [
            np.sin(2 * np.pi * 50 * t) + 0.1 * rng.standard_normal(t.size),
            np.sin(2 * np.pi * 80 * t) + 0.1 * rng.standard_normal(t.size),
            2 + 0.05 * rng.standard_normal(t.size),
        ]
    )
    return Recording(name, data, ["vib_x", "vib_y", "current"], 1000.0)


def test_describe_names_both_faulty_channels():
    rng = np.random.default_rng(0)
    training = [_two_channel_cycle(rng, f"ok{i}") for i in range(20)]
    config = _config(
        **{
            "windows.length": 100,
            "frontend.kind": "raw",
            "detector.family": "knn",
            "cycle.enabled": False,
        }
    )
    model = grindwatch.train(RecordingSet(training), config).model
    both = _two_channel_cycle(rng, "both")
    for channel in (0, 1):
        both.data[channel, 800:1200] += 3 * rng.standard_normal(400)
    single = _two_channel_cycle(rng, "single")
    single.data[1, 800:1200] += 3 * rng.standard_normal(400)

    both_text = explain_recording(model, both).describe()
    single_text = explain_recording(model, single).describe()

    assert re.search(r"channel vib_[xy] carries \d+% of the departure", both_text)
    assert re.search(r", and channel vib_[xy] carries \d+%;", both_text)
    assert "channel vib_y carries" in single_text
    assert ", and channel" not in single_text


def test_describe_summary_names_second_channel():
    summary = {"top_channel": "vib", "top_channel_share": 0.52}
    axis = ElementAxis(name="band", labels=[], column=None)

    text = describe_summary(
        summary, 4.4, 2.0, axis, n_summed=3, second_channel=("flow", 0.47)
    )

    assert text.endswith(
        "channel vib carries 52% of the departure from normal, "
        "and channel flow carries 47%."
    )


def test_describe_without_rate_names_window_samples(cycle_folders):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    recording = read_data(cycle_folders["bad"], model.config).recordings[0]
    model.sample_rate_ = None

    explanation = explain_recording(model, recording)
    text = explanation.describe()

    first = explanation.summary["worst_start_sample"]
    assert f"the worst window spans samples {first} to {first + 255}" in text


def test_describe_long_recording_whole_seconds():
    # Three channels at 1 Hz for 13,000 s, so windows start past 10,000 s.
    rng = np.random.default_rng(0)

    def recording(name: str) -> Recording:
        data = 0.3 * rng.standard_normal((3, 13_000))
        return Recording(name, data.astype(np.float32), ["a", "b", "c"], 1.0)

    config = _config(**{"cycle.enabled": False, "aggregate.method": "max"})
    model = grindwatch.train(
        RecordingSet([recording(f"ok{i}") for i in range(4)]), config
    ).model
    faulty = recording("burst")
    faulty.data[1, 12_300:12_500] += 3 * rng.standard_normal(200)

    text = explain_recording(model, faulty).describe()

    assert "the worst window spans 12288-12544 s" in text
    assert "e+" not in text


def test_top_band_holds_tone_near_edge():
    rate, length = 20_000.0, 2048
    rng = np.random.default_rng(3)
    edge = 320  # first FFT bin of band 10 of 32 in a 2048-sample window
    tone_hz = (edge - 0.35) * rate / length  # nearer to bin 320 than to bin 319

    def recording(name: str, tone: bool) -> Recording:
        data = rng.standard_normal((2, 8 * length))
        if tone:
            times = np.arange(data.shape[1]) / rate
            data[1] += 3.0 * np.sin(2 * np.pi * tone_hz * times)
        return Recording(name, data.astype(np.float32), ["a", "b"], rate)

    config = _config(
        **{
            "windows.length": length,
            "frontend.n_bands": 32,
            "detector.family": "knn",
        }
    )
    normal = RecordingSet([recording(f"ok{i}", False) for i in range(4)])
    model = grindwatch.train(normal, config).model

    scored = grindwatch.score(model, RecordingSet([recording("tone", True)]))

    axis = element_axis(model)
    row = scored.recordings.iloc[0]
    low, high = axis.band_ranges[axis.labels.index(row["top_band"])]
    assert row["top_channel"] == "b"
    assert low <= tone_hz <= high
