"""The documented behaviour for each kind of messy input (see docs/inputs.md)."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pandas as pd
import pytest

import grindwatch
from grindwatch.config import Config
from grindwatch.exceptions import InputError
from grindwatch.io import ReadOptions, load_recordings, read_file
from grindwatch.io.samples import resample
from tests.conftest import make_cycle, write_cycles

CHANNELS = ("vib_x", "vib_y", "current")


def _config(**overrides) -> Config:  # noqa: ANN003
    base = {
        "windows.length": 256,
        "frontend.kind": "spectrum",
        "frontend.n_bands": 16,
        "detector.family": "pca",
        "tracking.enabled": False,
    }
    base.update(overrides)
    return Config().with_overrides(base)


def _write_csv(path, data, columns=("a", "b", "c"), rate=1000.0):  # noqa: ANN001
    frame = pd.DataFrame(data.T, columns=list(columns))
    frame.insert(0, "time", np.arange(data.shape[1]) / rate)
    frame.to_csv(path, index=False)
    return path


# NaN and inf ---------------------------------------------------------------------


def test_hdf5_inf_raises_with_channel_and_sample(tmp_path):
    data = make_cycle(0, 300)
    data[2, 123] = np.inf
    path = tmp_path / "inf.h5"
    with h5py.File(path, "w") as handle:
        handle["signals"] = data

    with pytest.raises(
        InputError, match=r"inf.h5: .*channel 'signals\[2\]' at sample 123"
    ):
        read_file(path)


@pytest.mark.parametrize("policy", ["raise", "interpolate"])
def test_empty_channel_named_without_interpolation(tmp_path, policy):
    path = tmp_path / "run.csv"
    rows = "".join(f"{i / 1000:.3f},{np.sin(i / 7):.4f},\n" for i in range(300))
    path.write_text("time,force,spare\n" + rows)

    # Before, the fix for raise was interpolation, which then failed.
    with pytest.raises(InputError) as raised:
        read_file(path, ReadOptions(nan_policy=policy))

    assert "channel 'spare' has no finite sample (all 300" in raised.value.problem
    assert "interpolate" not in raised.value.fix
    assert "--channels" in raised.value.fix


def test_nan_interpolated_when_asked(tmp_path, caplog):
    data = make_cycle(0, 300)
    data[1, 10:13] = np.nan
    path = _write_csv(tmp_path / "gap.csv", data)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        recording = read_file(path, ReadOptions(nan_policy="interpolate"))[0]

    assert np.isfinite(recording.data).all()
    assert "interpolated 3 NaN or infinite samples" in caplog.text


# Constant and clipped channels -----------------------------------------------------


def test_constant_channel_kept_and_warned_once(tmp_path, caplog):
    for i in range(3):
        data = make_cycle(i, 300)
        data[2] = 0.0
        _write_csv(tmp_path / f"dead_{i}.csv", data)

    with caplog.at_level(logging.WARNING, logger="grindwatch.io.dataset"):
        loaded = load_recordings(tmp_path)

    assert loaded.recordings[0].metadata["constant_channels"] == ["c"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "3 of 3 recordings have constant (zero-variance) channels ['c']" in (
        warnings[0].getMessage()
    )


def test_constant_channel_raises_when_asked(tmp_path):
    data = make_cycle(0, 300)
    data[0] = 1.5
    path = _write_csv(tmp_path / "dead.csv", data)

    with pytest.raises(InputError, match=r"dead.csv: channel 'a' is constant"):
        read_file(path, ReadOptions(constant_policy="raise"))


def test_clipped_channel_position_recorded(tmp_path):
    data = make_cycle(0, 1000)
    data[1] = np.clip(2 * np.sin(2 * np.pi * 5 * np.arange(1000) / 1000), -0.8, 0.8)
    path = _write_csv(tmp_path / "clip.csv", data)
    first = int(np.argmax(data[1] >= 0.8))

    recording = read_file(path)[0]

    assert recording.metadata["clipped_channels"] == {"b": first}


def test_clipped_channel_raises_when_asked(tmp_path):
    data = make_cycle(0, 1000) * 2
    data[1] = np.clip(data[1], -0.8, 0.8)
    path = _write_csv(tmp_path / "clip.csv", data)

    with pytest.raises(
        InputError, match=r"channel 'b' is clipped, first at sample \d+"
    ):
        read_file(path, ReadOptions(clipping_policy="raise"))


def test_integer_full_scale_counts_as_clipped(tmp_path):
    counts = (make_cycle(0, 500)[:1] * 1000).astype(np.int16)
    counts[0, 77] = 32767
    np.save(tmp_path / "adc.npy", counts)

    recording = read_file(tmp_path / "adc.npy")[0]

    assert recording.metadata["clipped_channels"] == {"channel_0": 77}


def test_noisy_sine_is_not_clipped(tmp_path):
    path = _write_csv(tmp_path / "clean.csv", make_cycle(3, 2000))

    recording = read_file(path)[0]

    assert "clipped_channels" not in recording.metadata
    assert "constant_channels" not in recording.metadata


# Short recordings ------------------------------------------------------------------


def test_large_offset_channel_warned(tmp_path, caplog):
    data = make_cycle(0, 2000).astype(np.float64)
    data[0] = 2e7 + np.sin(np.arange(2000) / 10)
    data[1] = 2e7 + 1e4 * data[1]
    path = _write_csv(tmp_path / "offset.csv", data)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(path)

    recording = loaded.recordings[0]
    assert len(np.unique(recording.data[0])) <= 3
    assert list(recording.metadata["low_precision_channels"]) == ["a"]
    assert "1 of 1 recording has channels ['a'] whose variation is tiny" in (
        caplog.text
    )
    assert "offset.csv" in caplog.text
    assert "Subtract the offset" in caplog.text


def test_large_offset_npy_row_listed(tmp_path):
    data = make_cycle(0, 2000).astype(np.float64)
    data[1] += 1e6
    np.save(tmp_path / "offset.npy", data)

    recording = read_file(tmp_path / "offset.npy")[0]
    selected = read_file(tmp_path / "offset.npy", ReadOptions(channels=("channel_0",)))[
        0
    ]

    assert list(recording.metadata["low_precision_channels"]) == ["channel_1"]
    assert "low_precision_channels" not in selected.metadata


def test_centred_channels_not_low_precision(tmp_path):
    path = _write_csv(tmp_path / "plain.csv", make_cycle(0, 2000))

    recording = read_file(path)[0]

    assert "low_precision_channels" not in recording.metadata


def test_short_recording_skipped_in_training(cycle_folders, tmp_path):
    _write_csv(cycle_folders["good"] / "short.csv", make_cycle(50, 100), CHANNELS)

    result = grindwatch.train(cycle_folders["good"], _config())

    skipped = {s.path.name: s.reason for s in result.recordings.skipped}
    assert "fewer than one window of 256" in skipped["short.csv"]
    assert len(result.training.recordings) == 8


def test_short_recording_raises_in_strict_training(cycle_folders):
    _write_csv(cycle_folders["good"] / "short.csv", make_cycle(50, 100), CHANNELS)

    with pytest.raises(InputError, match="short.csv: has 100 samples, fewer than one"):
        grindwatch.train(cycle_folders["good"], _config(**{"data.strict": True}))


def test_short_recording_skipped_in_scoring(cycle_folders, tmp_path):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    short = _write_csv(tmp_path / "short.csv", make_cycle(50, 100), CHANNELS)

    scored = grindwatch.score(model, [cycle_folders["good"] / "cycle_000.csv", short])

    assert len(scored.recordings) == 1
    assert "fewer than one window" in scored.skipped[0]["reason"]


# Channel sets and orders -----------------------------------------------------------


def test_reordered_channels_give_same_scores(cycle_folders, tmp_path):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    original = cycle_folders["bad"] / "cycle_100.csv"
    frame = pd.read_csv(original)
    reordered = tmp_path / "cycle_100.csv"
    frame[["current", "time", "vib_y", "vib_x"]].assign(extra=1.0).to_csv(
        reordered, index=False
    )

    first = grindwatch.score(model, original).windows["score"]
    second = grindwatch.score(model, reordered).windows["score"]

    np.testing.assert_allclose(first, second, rtol=1e-6)


def test_missing_named_channel_fix_when_scoring(cycle_folders, tmp_path):
    config = _config(**{"data.channels": ["vib_x", "current"]})
    model = grindwatch.train(cycle_folders["good"], config).model
    data = make_cycle(50)[:2]
    partial = _write_csv(tmp_path / "partial.csv", data, ("vib_x", "vib_y"))

    scored = grindwatch.score(model, [cycle_folders["good"] / "cycle_000.csv", partial])

    # Before, the fix named data.channels, which scoring does not accept.
    reason = scored.skipped[0]["reason"]
    assert "channels ['current'] not found" in reason
    assert "score the file with a model trained on the channels it has" in reason
    assert "data.channels" not in reason


def test_missing_channel_skipped_when_loading(tmp_path):
    write_cycles(tmp_path, 2)
    pd.read_csv(tmp_path / "cycle_001.csv").drop(columns="vib_y").to_csv(
        tmp_path / "cycle_002.csv", index=False
    )

    loaded = load_recordings(tmp_path)

    assert [r.name for r in loaded] == ["cycle_000", "cycle_001"]
    assert "missing channels ['vib_y']" in loaded.skipped[0].reason


def test_channel_name_with_space_explained(cycle_folders, tmp_path):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    frame = pd.read_csv(cycle_folders["bad"] / "cycle_100.csv")
    frame.rename(columns={"vib_x": "vib_x "}).to_csv(
        tmp_path / "spaced.csv", index=False
    )

    with pytest.raises(InputError) as raised:
        grindwatch.score(model, tmp_path / "spaced.csv", strict=True)

    message = str(raised.value)
    assert "names that differ only in spaces or Unicode normalisation" in message
    assert "'vib_x' expected, 'vib_x ' found" in message


def test_nfd_channel_name_explained(tmp_path):
    write_cycles(tmp_path / "train", 3)
    for path in (tmp_path / "train").glob("*.csv"):
        frame = pd.read_csv(path).rename(columns={"current": "Strom \u00e4"})
        frame.to_csv(path, index=False)
    model = grindwatch.train(tmp_path / "train", _config()).model
    frame = frame.rename(columns={"Strom \u00e4": "Strom a\u0308"})
    frame.to_csv(tmp_path / "nfd.csv", index=False)

    with pytest.raises(InputError) as raised:
        grindwatch.score(model, tmp_path / "nfd.csv", strict=True)

    assert "'Strom \\xe4' expected, 'Strom a\\u0308' found" in str(raised.value)


def _write_odd_first(folder):  # noqa: ANN001, ANN202
    """Six 3-channel cycles and one file that sorts first with another channel set."""
    write_cycles(folder, 6)
    odd = pd.read_csv(folder / "cycle_000.csv").rename(columns={"vib_y": "spindle"})
    odd.to_csv(folder / "aaa_odd.csv", index=False)


def test_odd_first_file_does_not_set_channels(tmp_path, caplog):
    _write_odd_first(tmp_path)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(tmp_path)

    assert len(loaded) == 6
    assert loaded.channels == list(CHANNELS)
    assert [s.path.name for s in loaded.skipped] == ["aaa_odd.csv"]
    reason = loaded.skipped[0].reason
    assert "missing channels ['vib_y']" in reason
    assert "6 of 7 files have ['vib_x', 'vib_y', 'current']" in reason
    expected = "6 of 7 files have ['vib_x', 'vib_y', 'current'], so those are"
    assert expected in caplog.text


def test_odd_first_file_raises_in_strict_mode(tmp_path):
    _write_odd_first(tmp_path)

    with pytest.raises(InputError, match=r"aaa_odd.csv: missing channels \['vib_y'\]"):
        load_recordings(tmp_path, strict=True)


def test_channel_set_tie_goes_to_first_file(tmp_path):
    write_cycles(tmp_path, 2)
    frame = pd.read_csv(tmp_path / "cycle_001.csv")
    frame.rename(columns={"vib_y": "spindle"}).to_csv(
        tmp_path / "cycle_001.csv", index=False
    )

    loaded = load_recordings(tmp_path)

    assert [r.name for r in loaded] == ["cycle_000"]
    assert "missing channels ['vib_y']" in loaded.skipped[0].reason


def test_extra_channels_do_not_set_channels(tmp_path):
    write_cycles(tmp_path, 3)
    frame = pd.read_csv(tmp_path / "cycle_000.csv")
    frame.assign(extra=1.0).to_csv(tmp_path / "aaa_extra.csv", index=False)

    loaded = load_recordings(tmp_path)

    assert len(loaded) == 4
    assert loaded.skipped == []
    assert all(r.channels == list(CHANNELS) for r in loaded)


def test_odd_first_file_trains_on_others(tmp_path):
    from typer.testing import CliRunner

    from grindwatch.cli import app

    _write_odd_first(tmp_path / "cycles")

    result = CliRunner().invoke(
        app,
        [
            "train",
            str(tmp_path / "cycles"),
            "--window",
            "256",
            "--detector",
            "iforest",
            "--no-track",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "Trained iforest on 6 recordings" in result.output
    assert "skipped" in result.output
    assert "aaa_odd.csv: missing channels ['vib_y']" in result.output


# Sample rates ----------------------------------------------------------------------


def test_other_rate_fails_unless_resampling_asked(cycle_folders, tmp_path):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    fast = _write_csv(
        tmp_path / "fast.csv", make_cycle(1, 4096, rate=2000.0), CHANNELS, 2000.0
    )

    with pytest.raises(
        InputError, match="sample rate 2000 differs from the model's 1000"
    ):
        grindwatch.score(model, fast, strict=True)
    model.config = model.config.with_overrides({"data.resample": True})
    scored = grindwatch.score(model, fast)

    assert scored.recordings["n_windows"].iloc[0] == 2048 // 256


def test_mixed_rates_in_a_folder(tmp_path):
    write_cycles(tmp_path, 2)
    fast = make_cycle(9, 4096, rate=2000.0)
    _write_csv(tmp_path / "cycle_009.csv", fast, CHANNELS, 2000.0)

    plain = load_recordings(tmp_path)
    resampled = load_recordings(tmp_path, ReadOptions(resample=True))

    expected = "sample rate 2000 differs from 1000, the rate of 2 of 3 files"
    assert expected in plain.skipped[0].reason
    assert len(resampled) == 3
    assert resampled.recordings[2].n_samples == 2048
    assert resampled.recordings[2].metadata["resampled_from"] == pytest.approx(2000)


def test_resample_rate_applies_to_every_file(tmp_path):
    path = _write_csv(tmp_path / "a.csv", make_cycle(0, 1000))

    recording = read_file(path, ReadOptions(resample_rate=250.0))[0]

    assert recording.sample_rate == 250.0
    assert recording.n_samples == 250


@pytest.mark.parametrize("rate", [0.0, -250.0, float("nan")])
def test_resample_to_invalid_rate_raises(tmp_path, rate):
    # resample is public, and 0 failed with "cannot resample from 1000 to 0".
    path = _write_csv(tmp_path / "a.csv", make_cycle(0, 1000))
    recording = read_file(path)[0]

    with pytest.raises(ValueError, match=f"target_rate is {rate!r}; resampling"):
        resample(recording, rate)


@pytest.mark.parametrize(
    ("rate", "target", "n_samples"), [(10_000.0, 2.0, 3), (1500.0, 1.0, 10)]
)
def test_resample_rate_far_below_file_rate(tmp_path, rate, target, n_samples):
    # With a denominator of at most 1000, a ratio under 1/2000 became 0, and
    # reading raised a bare ValueError ("cannot resample from 10000 to 2"). A
    # ratio of 1/1500 became 1/1000, so 15 s at 1 Hz came out as 15 samples.
    path = _write_csv(
        tmp_path / "a.csv", make_cycle(0, 15_000, rate=rate), CHANNELS, rate
    )

    recording = read_file(path, ReadOptions(resample_rate=target))[0]

    assert recording.sample_rate == target
    assert recording.n_samples == n_samples


@pytest.mark.parametrize("rate", [999.7, 3001.0, 2560.5])
def test_resample_keeps_event_time(rate):
    # The rate ratio was a fraction with a denominator of at most 1000. So
    # 999.7 Hz to 1 kHz kept every sample (ratio 1/1) and 3001 Hz became 1/3.
    # A step at 50 s then landed 15 samples early or 17 samples late.
    target = 1000.0
    times = np.arange(int(60 * rate)) / rate
    data = np.where(times >= 50.0, 1.0, 0.0)[None, :].astype(np.float32)
    recording = grindwatch.Recording("cycle", data, ["level"], rate)

    resampled = resample(recording, target)

    expected_samples = len(times) * target / rate
    assert abs(resampled.n_samples - expected_samples) <= 1
    step = int(np.argmax(resampled.data[0] > 0.5))
    assert abs(step - 50.0 * target) <= 1


def test_odd_first_rate_does_not_set_rate(tmp_path, caplog):
    write_cycles(tmp_path, 3)
    _write_csv(tmp_path / "aaa_fast.csv", make_cycle(9, 4096), CHANNELS, 2000.0)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(tmp_path)

    assert len(loaded) == 3
    assert loaded.sample_rate == pytest.approx(1000.0)
    reason = loaded.skipped[0].reason
    assert "sample rate 2000 differs from 1000, the rate of 3 of 4 files" in reason
    assert "3 of 4 files with these channels are at 1000 samples/s" in caplog.text


def test_rate_warning_counts_files_without_rate(tmp_path, caplog):
    for name, rate in (("fast", 1000.0), ("fast2", 1000.0), ("slow", 500.0)):
        _write_csv(tmp_path / f"{name}.csv", make_cycle(0, 600), CHANNELS, rate)
    pd.read_csv(tmp_path / "fast.csv").drop(columns="time").to_parquet(
        tmp_path / "no_time.parquet"
    )

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(tmp_path)

    assert [r.name for r in loaded] == ["fast", "fast2"]
    assert (
        "the files have 2 different sample rates and 1 file without one; 2 of 4 "
        "files with these channels are at 1000 samples/s, so the others are skipped"
        in caplog.text
    )


def test_file_without_rate_named_in_data_set(tmp_path):
    write_cycles(tmp_path, 2)
    pd.read_csv(tmp_path / "cycle_000.csv").drop(columns="time").to_parquet(
        tmp_path / "aaa_no_time.parquet"
    )

    loaded = load_recordings(tmp_path)

    assert len(loaded) == 2
    reason = loaded.skipped[0].reason
    assert "has no sample rate, but 2 of 3 files are at 1000 samples/s" in reason
    assert "first file" not in reason
    assert "unknown" not in reason


def test_file_with_rate_among_files_without(tmp_path):
    write_cycles(tmp_path, 3)
    for name in ("cycle_001", "cycle_002"):
        frame = pd.read_csv(tmp_path / f"{name}.csv").drop(columns="time")
        frame.to_parquet(tmp_path / f"{name}.parquet")
        (tmp_path / f"{name}.csv").unlink()

    loaded = load_recordings(tmp_path)

    assert [r.name for r in loaded] == ["cycle_001", "cycle_002"]
    expected = "has a sample rate of 1000 samples/s, but 2 of 3 files have no"
    assert expected in loaded.skipped[0].reason


def _score_cli(model, *paths):  # noqa: ANN001, ANN002, ANN202
    from typer.testing import CliRunner

    from grindwatch.cli import app

    command = ["score", *map(str, paths), "--model", str(model), "--json"]
    return CliRunner().invoke(app, command)


def test_score_checks_rate_against_model(cycle_folders, tmp_path):
    model = tmp_path / "model"
    grindwatch.train(cycle_folders["good"], _config(), output=model)
    no_rate = tmp_path / "r0.parquet"
    pd.read_csv(cycle_folders["bad"] / "cycle_100.csv").drop(columns="time").to_parquet(
        no_rate
    )
    good = cycle_folders["good"] / "cycle_000.csv"

    for paths in ([no_rate, good], [good, no_rate]):
        result = _score_cli(model, *paths)

        assert result.exit_code == 0, result.output
        assert "the first file" not in result.output
        payload = json.loads(result.stdout)
        assert payload["summary"]["skipped"] == []
        names = sorted(row["recording"] for row in payload["recordings"])
        assert names == ["cycle_000", "r0"]


def test_score_without_rate_gets_model_rate(cycle_folders, tmp_path):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    no_rate = tmp_path / "r0.parquet"
    pd.read_csv(cycle_folders["good"] / "cycle_001.csv").drop(
        columns="time"
    ).to_parquet(no_rate)

    scored = grindwatch.score(model, [no_rate, cycle_folders["good"] / "cycle_000.csv"])

    assert len(scored.recordings) == 2
    assert scored.windows["end_s"].max() == pytest.approx(2.048)


def test_score_other_rate_skipped_against_model(cycle_folders, tmp_path):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    fast = _write_csv(
        tmp_path / "aaa_fast.csv", make_cycle(1, 4096, rate=2000.0), CHANNELS, 2000.0
    )

    scored = grindwatch.score(model, [fast, cycle_folders["good"] / "cycle_000.csv"])

    assert scored.recordings["recording"].tolist() == ["cycle_000"]
    assert len(scored.skipped) == 1
    assert (
        "sample rate 2000 differs from the model's 1000"
        in (scored.skipped[0]["reason"])
    )


def test_score_odd_first_file_keeps_others(cycle_folders, tmp_path):
    model = grindwatch.train(cycle_folders["good"], _config()).model
    _write_odd_first(tmp_path / "odd")

    scored = grindwatch.score(model, tmp_path / "odd")

    assert len(scored.recordings) == 6
    assert [s["path"] for s in scored.skipped] == [
        str(tmp_path / "odd" / "aaa_odd.csv")
    ]
    assert "missing channels ['vib_y']" in scored.skipped[0]["reason"]


# HDF5 layouts ----------------------------------------------------------------------


def test_hdf5_nested_group_dataset_found(tmp_path):
    path = tmp_path / "nested.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("machine/run_1/raw/ae", data=make_cycle(0, 300)[:2].T)
        handle["machine"].attrs["operator"] = "night shift"

    recording = read_file(path)[0]

    assert recording.data.shape == (2, 300)
    assert recording.metadata["hdf5_datasets"] == ["machine/run_1/raw/ae"]


def test_hdf5_several_candidates_listed_and_key_selects_group(tmp_path):
    path = tmp_path / "several.h5"
    data = make_cycle(0, 300)
    with h5py.File(path, "w") as handle:
        handle["run/x"] = data[0]
        handle["run/y"] = data[1]
        handle["other/spectrum"] = np.ones((30, 4))

    with pytest.raises(
        InputError, match=r"several candidate .*other/spectrum \(30, 4\)"
    ):
        read_file(path)
    recording = read_file(path, ReadOptions(hdf5_key="/run"))[0]

    assert recording.channels == ["x", "y"]


@pytest.mark.parametrize(
    ("data", "described"),
    [
        (np.zeros((3, 4, 300)), "dtype float64, shape (3, 4, 300)"),
        (np.float64(1.0), "dtype float64, shape ()"),
        (np.array([b"ERR"] * 300), "dtype |S3, shape (300,)"),
        (np.zeros((3, 300), dtype=complex), "dtype complex128, shape (3, 300)"),
    ],
)
def test_hdf5_key_to_non_signal_raises(tmp_path, data, described):
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as handle:
        handle["signal"] = data
        handle["good"] = make_cycle(0, 300)

    with pytest.raises(InputError) as raised:
        load_recordings(path, ReadOptions(hdf5_key="signal"), strict=True)

    message = str(raised.value)
    assert f"dataset 'signal' ({described}) is not a numeric" in message
    assert "numeric datasets found: ['good']" in message
    assert "set hdf5_key to a dataset of numbers" in message


def test_hdf5_without_numeric_dataset_lists_datasets(tmp_path):
    path = tmp_path / "flags.h5"
    with h5py.File(path, "w") as handle:
        handle["run/ok"] = np.ones(300, dtype=bool)

    with pytest.raises(InputError) as raised:
        read_file(path)

    message = str(raised.value)
    assert "holds no numeric 1-D or 2-D dataset" in message
    assert "run/ok (dtype bool, shape (300,))" in message
    assert "store the samples as a dataset of numbers" in message


# CSV dialects and timestamps -------------------------------------------------------


def test_csv_decimal_comma_with_datetime_time_column(tmp_path):
    path = tmp_path / "plant.csv"
    lines = ["Zeit;Strom;Kraft"]
    for i in range(50):
        stamp = f"2024-02-14 22:00:{i // 10:02d}.{i % 10}00"
        current = f"{1 + i / 100:.2f}".replace(".", ",")
        lines.append(f"{stamp};{current};-{i},5")
    path.write_text("\n".join(lines) + "\n;;\n;;\n")

    recording = read_file(path)[0]

    assert recording.channels == ["Strom", "Kraft"]
    assert recording.sample_rate == pytest.approx(10.0)
    assert recording.data[0, 3] == pytest.approx(1.03)
    assert recording.data[1, 3] == pytest.approx(-3.5)
    assert recording.n_samples == 50


def test_csv_duplicated_timestamps_dropped_with_warning(tmp_path, caplog):
    data = make_cycle(0, 100)
    frame = pd.DataFrame(data.T, columns=["a", "b", "c"])
    frame.insert(0, "time", np.arange(100) / 1000.0)
    frame = pd.concat([frame.iloc[:40], frame.iloc[39:41], frame.iloc[41:]])
    path = tmp_path / "dup.csv"
    frame.to_csv(path, index=False)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        recording = read_file(path)[0]

    assert recording.n_samples == 100
    assert recording.sample_rate == pytest.approx(1000.0)
    assert "dropped 1 row that repeats a timestamp of column 'time'" in caplog.text


def test_csv_time_going_backwards_raises_with_row(tmp_path):
    data = make_cycle(0, 100)
    frame = pd.DataFrame(data.T, columns=["a", "b", "c"])
    time = np.arange(100) / 1000.0
    time[[60, 61]] = time[[61, 60]]
    frame.insert(0, "time", time)
    path = tmp_path / "swap.csv"
    frame.to_csv(path, index=False)

    with pytest.raises(
        InputError, match="swap.csv: time column 'time' goes backwards at data row 61"
    ):
        read_file(path)


def test_csv_only_header_raises(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("time,a,b\n\n\n")

    with pytest.raises(InputError, match="header.csv: the file holds no data rows"):
        read_file(path)


def test_csv_without_header_raises(tmp_path):
    for seed in range(3):
        frame = pd.DataFrame(make_cycle(seed, 300).T)
        frame.to_csv(tmp_path / f"cycle_{seed}.csv", index=False, header=False)

    with pytest.raises(InputError) as raised:
        grindwatch.train(tmp_path, _config(**{"data.sample_rate": 1000.0}))

    message = str(raised.value)
    assert "cycle_0.csv: has no header line" in message
    assert "contains only numbers, not column names" in message
    assert "add a first line with one name per column" in message


def test_headerless_decimal_comma_csv_raises(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("0,5;1,25;2\n0,6;1;2\n0,7;1,75;2,5\n")

    with pytest.raises(InputError, match="export.csv: has no header line"):
        read_file(path)


def test_csv_numbered_columns_are_names(tmp_path):
    path = tmp_path / "numbered.csv"
    pd.DataFrame(make_cycle(0, 300).T).to_csv(path, index=False)

    recording = read_file(path, ReadOptions(sample_rate=1000.0))[0]

    assert recording.channels == ["0", "1", "2"]
    assert recording.n_samples == 300


# Sample rates stored in files -----------------------------------------------------


def _write_npz(path, rate, channels=CHANNELS):  # noqa: ANN001, ANN202
    np.savez(path, data=make_cycle(0, 300), sample_rate=rate, channels=channels)
    return path


def test_npz_rate_with_two_values_raises(tmp_path):
    path = _write_npz(tmp_path / "bad.npz", np.array([1000.0, 2000.0]))

    with pytest.raises(
        InputError,
        match=r"bad.npz: the array 'sample_rate' contains 2 values, not one sample "
        r"rate \(starting \[1000., 2000.\]\); store the sample rate as one number",
    ):
        read_file(path)


@pytest.mark.parametrize(
    ("rate", "shown"), [(0.0, "0"), (-1000.0, "-1000"), (np.nan, "nan")]
)
def test_npz_rate_not_positive_raises(tmp_path, rate, shown):
    path = _write_npz(tmp_path / "bad.npz", np.array(rate))

    with pytest.raises(
        InputError,
        match=rf"bad.npz: the array 'sample_rate' is {shown}, which is not a "
        "positive number of samples per second",
    ):
        read_file(path)


def test_npz_bad_rate_skipped_in_data_set(tmp_path):
    _write_npz(tmp_path / "bad.npz", np.array([1000.0, 2000.0]))
    for index in range(2):
        _write_npz(tmp_path / f"good{index}.npz", np.array(1000.0))

    loaded = load_recordings(tmp_path)

    assert [r.name for r in loaded] == ["good0", "good1"]
    assert "contains 2 values" in loaded.skipped[0].reason


def test_npz_rate_conflicts_with_setting(tmp_path):
    path = _write_npz(tmp_path / "fast.npz", np.array(2000.0))

    with pytest.raises(
        InputError,
        match="fast.npz: the file stores sample rate 2000 but sample_rate is 1000",
    ):
        read_file(path, ReadOptions(sample_rate=1000.0))
    recording = read_file(path, ReadOptions(sample_rate=2000.0))[0]

    assert recording.sample_rate == 2000.0


@pytest.mark.parametrize("chunked", [False, True])
def test_hdf5_rate_text_with_unit_raises(tmp_path, chunked):
    from grindwatch.io.chunks import open_stream

    path = tmp_path / "khz.h5"
    with h5py.File(path, "w") as handle:
        handle["signals"] = make_cycle(0, 300)
        handle.attrs["sample_rate"] = "1 kHz"
    read = open_stream if chunked else read_file

    with pytest.raises(
        InputError,
        match="khz.h5: the HDF5 attribute 'sample_rate' contains '1 kHz', which is "
        "not a number in Hz; store the sample rate as one number in Hz",
    ):
        read(path)


def test_hdf5_rate_as_number_text_read(tmp_path):
    path = tmp_path / "text.h5"
    with h5py.File(path, "w") as handle:
        handle["signals"] = make_cycle(0, 300)
        handle["signals"].attrs["fs"] = np.bytes_("2000")

    recording = read_file(path)[0]

    assert recording.sample_rate == 2000.0


@pytest.mark.parametrize(
    ("fs", "problem"),
    [
        ("1 kHz", "the variable 'fs' contains '1 kHz', which is not a number in Hz"),
        (0.0, "the variable 'fs' is 0, which is not a positive number"),
    ],
)
def test_mat_bad_rate_raises(tmp_path, fs, problem):
    from scipy.io import savemat

    path = tmp_path / "run.mat"
    savemat(path, {"data": make_cycle(0, 300), "fs": fs})

    with pytest.raises(InputError, match=f"run.mat: {problem}"):
        read_file(path)


# Empty, unreadable and truncated files --------------------------------------------


@pytest.mark.parametrize(
    "suffix", [".csv", ".parquet", ".h5", ".npy", ".wav", ".mat", ".tdms"]
)
def test_empty_file_raises(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.touch()

    with pytest.raises(InputError, match="the file is empty"):
        read_file(path)


def _truncated(tmp_path, suffix):  # noqa: ANN001, ANN202
    data = make_cycle(0, 2000)
    path = tmp_path / f"whole{suffix}"
    if suffix == ".parquet":
        pd.DataFrame(data.T, columns=["a", "b", "c"]).to_parquet(path)
    elif suffix == ".h5":
        with h5py.File(path, "w") as handle:
            handle["x"] = data
    elif suffix == ".npy":
        np.save(path, data)
    elif suffix == ".mat":
        from scipy.io import savemat

        savemat(path, {"data": data})
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    return cut


@pytest.mark.parametrize("suffix", [".parquet", ".h5", ".npy", ".mat"])
def test_truncated_file_raises(tmp_path, suffix):
    cut = _truncated(tmp_path, suffix)

    with pytest.raises(InputError, match=f"cut{suffix}: "):
        read_file(cut)


def test_garbage_with_known_suffix_raises(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(b"\x00\xffnot hdf5" * 50)

    with pytest.raises(InputError, match="is not a readable HDF5 file"):
        read_file(path)


def test_bad_files_do_not_stop_training(tmp_path):
    folder = tmp_path / "cycles"
    write_cycles(folder, 30)
    (folder / "empty.csv").touch()
    _truncated(tmp_path, ".parquet").rename(folder / "cut.parquet")
    (folder / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(40))

    result = grindwatch.train(folder, _config())

    reasons = {s.path.name: s.reason for s in result.recordings.skipped}
    assert sorted(reasons) == ["cut.parquet", "empty.csv", "garbage.h5"]
    assert "empty" in reasons["empty.csv"]
    assert "Parquet" in reasons["cut.parquet"]
    assert "HDF5" in reasons["garbage.h5"]
    assert len(result.training.recordings) == 30


def test_bad_file_stops_strict_training(tmp_path):
    folder = tmp_path / "cycles"
    write_cycles(folder, 3)
    (folder / "cycle_001.csv").write_text("time,vib_x\n0,1\n0.001,oops\n")

    with pytest.raises(InputError, match="cycle_001.csv"):
        grindwatch.train(folder, _config(**{"data.strict": True}))


def test_table_with_nan_names_row_and_fix(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": [0.5, 0.6, 0.7]})
    path = tmp_path / "features.csv"
    frame.to_csv(path, index=False)

    with pytest.raises(InputError) as raised:
        read_file(path, ReadOptions(kind="table", nan_policy="interpolate"))

    message = str(raised.value)
    assert "features.csv" in message
    assert "row 2, feature 'a'" in message
    assert "fill them, or drop their rows from the table" in message


# Text in numeric columns -----------------------------------------------------------


def _csv_with_text_cell(path, row=100, value="ERR"):  # noqa: ANN001, ANN202
    data = make_cycle(3, 4000)
    frame = pd.DataFrame(data.T, columns=["ch0", "ch1", "ch2"]).astype(object)
    frame.loc[row, "ch1"] = value
    frame.insert(0, "time", np.arange(4000) / 1000.0)
    frame.to_csv(path, index=False)
    return path


def test_text_cell_in_numeric_column_raises(tmp_path):
    path = _csv_with_text_cell(tmp_path / "textcol.csv")

    with pytest.raises(InputError) as raised:
        read_file(path)

    message = str(raised.value)
    assert message.startswith(str(path))
    assert "non-numeric value 'ERR' in column 'ch1' at data row 100" in message
    assert "1 of its 4000 filled cells is not a number" in message
    assert "clean the file" in message
    assert "--channels" in message


def test_repeated_header_line_named(tmp_path):
    path = _csv_with_text_cell(tmp_path / "joined.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:201], lines[0], *lines[201:]]) + "\n")

    with pytest.raises(InputError) as raised:
        read_file(path)

    message = str(raised.value)
    assert "the header line appears again at data row 200" in message
    assert "delete the repeated header lines" in message
    assert "--channels" not in message


def test_units_line_under_header_named(tmp_path):
    path = _csv_with_text_cell(tmp_path / "units.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "s,g,g,A", *lines[1:]]) + "\n")

    with pytest.raises(InputError) as raised:
        read_file(path)

    message = str(raised.value)
    assert "non-numeric value 'g' in column 'ch0' at data row 0" in message
    assert "if the line under the header holds units, delete it" in message


def test_text_cell_counted_and_first_named(tmp_path):
    path = _csv_with_text_cell(tmp_path / "textcol.csv", row=7, value="---")
    frame = pd.read_csv(path)
    frame.loc[[20, 30], "ch1"] = "ERR"
    frame.to_csv(path, index=False)

    with pytest.raises(InputError) as raised:
        read_file(path)

    assert "'---' in column 'ch1' at data row 7" in str(raised.value)
    assert "3 of its 4000 filled cells are not numbers" in str(raised.value)


def test_text_cell_with_decimal_comma_raises(tmp_path):
    path = tmp_path / "comma.csv"
    rows = ["time;a;b"] + [f"0,{i:03d};1,{i};2,5" for i in range(50)]
    rows[11] = "0,010;1,10;ERR"
    path.write_text("\n".join(rows) + "\n")

    with pytest.raises(InputError, match="'ERR' in column 'b' at data row 10"):
        read_file(path)


def test_text_cell_column_left_out_by_channels(tmp_path):
    path = _csv_with_text_cell(tmp_path / "textcol.csv")

    (recording,) = read_file(path, ReadOptions(channels=("ch0", "ch2")))

    assert recording.channels == ["ch0", "ch2"]
    assert "non_numeric_columns" not in recording.metadata


def test_text_cell_fails_training_from_cli(tmp_path):
    from typer.testing import CliRunner

    from grindwatch.cli import app

    path = _csv_with_text_cell(tmp_path / "textcol.csv")

    result = CliRunner().invoke(
        app,
        ["train", str(path), "--window", "256", "--detector", "iforest", "--no-track"],
    )

    assert result.exit_code == 2, result.output
    assert "'ERR' in column 'ch1' at data row 100" in result.output
    assert "Trained" not in result.output
    assert "Traceback" not in result.output


def test_text_cell_skips_file_in_folder(tmp_path):
    write_cycles(tmp_path / "cycles", 3)
    bad = pd.read_csv(tmp_path / "cycles" / "cycle_001.csv").astype(object)
    bad.loc[5, "vib_y"] = "bad"
    bad.to_csv(tmp_path / "cycles" / "cycle_001.csv", index=False)

    loaded = load_recordings(tmp_path / "cycles")

    assert [r.name for r in loaded] == ["cycle_000", "cycle_002"]
    assert loaded.channels == list(CHANNELS)
    assert "'bad' in column 'vib_y' at data row 5" in loaded.skipped[0].reason


def test_table_text_cell_in_feature_raises(tmp_path):
    frame = pd.DataFrame({"f0": np.arange(20.0), "f1": [str(v) for v in range(20)]})
    frame.loc[12, "f1"] = "bad"
    path = tmp_path / "features.parquet"
    frame.to_parquet(path)

    with pytest.raises(InputError) as raised:
        read_file(path, ReadOptions(kind="table"))

    assert "features.parquet" in str(raised.value)
    assert "'bad' in column 'f1' at data row 12" in str(raised.value)


def test_table_text_id_column_not_left_out(tmp_path):
    frame = pd.DataFrame({"part": [f"P{i}" for i in range(6)], "f0": np.arange(6.0)})
    path = tmp_path / "features.csv"
    frame.to_csv(path, index=False)

    rows = read_file(path, ReadOptions(kind="table", id_column="part"))

    assert [row.name for row in rows] == [f"P{i}" for i in range(6)]
    assert rows[0].channels == ["f0"]
    assert "non_numeric_columns" not in rows[0].metadata


def test_table_text_column_warning_names_id_column(tmp_path, caplog):
    frame = pd.DataFrame({"cycle": [f"C{i}" for i in range(6)], "f0": np.arange(6.0)})
    frame.to_csv(tmp_path / "features.csv", index=False)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(tmp_path, ReadOptions(kind="table"))

    assert loaded.channels == ["f0"]
    warnings = [r.getMessage() for r in caplog.records if "non-numeric" in r.message]
    assert len(warnings) == 1
    assert "non-numeric columns ['cycle']" in warnings[0]
    assert "--set data.id_column=NAME" in warnings[0]


def test_text_only_column_left_out_with_warning(tmp_path, caplog):
    folder = tmp_path / "cycles"
    for path in write_cycles(folder, 3):
        frame = pd.read_csv(path)
        frame["part_id"] = "P-0042"
        frame["comment"] = None
        frame.loc[3, "comment"] = "tool changed"
        frame.to_csv(path, index=False)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(folder)

    assert loaded.channels == list(CHANNELS)
    assert loaded.recordings[0].metadata["non_numeric_columns"] == [
        "part_id",
        "comment",
    ]
    warnings = [r.getMessage() for r in caplog.records if "non-numeric" in r.message]
    assert len(warnings) == 1
    expected = "3 of 3 files have non-numeric columns ['comment', 'part_id']"
    assert expected in warnings[0]
    assert "left out" in warnings[0]
    # Signal files have no row ids, so the warning does not suggest one.
    assert "id_column" not in warnings[0]


def test_chunked_parquet_text_column_named(tmp_path):
    model = grindwatch.train(
        [_write_csv(tmp_path / f"c{i}.csv", make_cycle(i, 1024)) for i in range(4)],
        _config(),
    ).model
    frame = pd.DataFrame(make_cycle(9, 1024).T, columns=["a", "b", "c"])
    frame["b"] = frame["b"].astype(str)
    frame.loc[5, "b"] = "bad"
    path = tmp_path / "long.parquet"
    frame.to_parquet(path)
    chunked = model.config.with_overrides({"data.chunk_samples": 300})

    with pytest.raises(InputError, match=r"columns \[.b.\] are not numbers in the"):
        grindwatch.score(grindwatch.pipeline._with_config(model, chunked), path)


def test_long_channel_lists_are_shortened(tmp_path):

    from grindwatch.pipeline import read_data

    names = [f"feature_{i:03d}" for i in range(40)]
    frame = pd.DataFrame(np.zeros((5, 40)), columns=names)
    frame.to_csv(tmp_path / "wide.csv", index=False)
    config = Config().with_overrides(
        {"data.kind": "table", "data.channels": [*names[:30], "absent"]}
    )

    with pytest.raises(InputError) as raised:
        read_data(tmp_path / "wide.csv", config)

    message = str(raised.value)
    assert "channels ['absent'] not found" in message
    assert "and 32 more" in message
    assert "feature_039" not in message


def test_numbers_stored_as_text_raise(tmp_path):
    frame = pd.DataFrame(
        {
            "time": np.arange(300) / 1000.0,
            "ch0": np.random.default_rng(0).normal(size=300),
            "ch1": [f"{v:.3f}" for v in np.random.default_rng(1).normal(size=300)],
        }
    )
    frame.to_parquet(tmp_path / "strings.parquet")

    with pytest.raises(InputError) as raised:
        read_file(tmp_path / "strings.parquet", ReadOptions())

    message = str(raised.value)
    assert "column 'ch1' holds numbers stored as text" in message
    assert "write the column as numbers" in message
    # The decimal mark setting applies to CSV only.
    assert "data.decimal" not in message


def test_thousands_separators_raise_not_time(tmp_path):
    # '1.234,0' once parsed as a date, so the column became the time column
    # (one row per day) and the real time column a channel.
    rows = "".join(
        f"{i / 1000:.3f};1.234,{i % 10};{i % 7},5\n".replace(".", ",", 1)
        for i in range(300)
    )
    path = tmp_path / "grouped.csv"
    path.write_text("time;force;current\n" + rows)

    for options in (ReadOptions(), ReadOptions(decimal=",")):
        with pytest.raises(InputError) as raised:
            read_file(path, options)

        message = str(raised.value)
        assert "column 'force' holds numbers stored as text" in message
        assert "'1.234,0'" in message
        assert "without thousands separators" in message


def test_decimal_comma_hint_only_when_unset(tmp_path):
    values = [f"{v:.3f}".replace(".", ",") for v in np.linspace(0, 1, 300)]
    frame = pd.DataFrame({"time": np.arange(300) / 1000.0, "ch0": values})
    path = tmp_path / "comma.csv"
    frame.to_csv(path, index=False, sep="\t")

    with pytest.raises(InputError) as raised:
        read_file(path, ReadOptions(delimiter="\t", decimal="."))

    assert "set data.decimal to ','" in str(raised.value)
    recording = read_file(path, ReadOptions(delimiter="\t", decimal=","))[0]
    assert recording.channels == ["ch0"]
    assert recording.data[0, 1] == pytest.approx(1 / 299, abs=1e-3)


def test_numeric_id_column_is_no_feature(tmp_path):
    frame = pd.DataFrame(np.random.default_rng(2).normal(size=(20, 3)))
    frame.columns = ["f0", "f1", "f2"]
    frame.insert(0, "cycle", np.arange(1000, 1020))
    frame.to_csv(tmp_path / "features.csv", index=False)
    options = ReadOptions(kind="table", id_column="cycle")

    recordings = read_file(tmp_path / "features.csv", options)

    assert recordings[0].channels == ["f0", "f1", "f2"]
    assert recordings[0].name == "1000"


def test_mat_rate_with_several_values_raises(tmp_path):
    from scipy.io import savemat

    path = tmp_path / "multi.mat"
    rng = np.random.default_rng(4)
    savemat(path, {"sig": rng.random((2, 500)), "fs": np.array([1000.0, 2000.0])})

    with pytest.raises(
        InputError, match="multi.mat: the variable 'fs' contains 2 values, not one"
    ):
        read_file(path)


def test_mat_signal_named_rate_kept(tmp_path):
    from scipy.io import savemat

    path = tmp_path / "rate.mat"
    rng = np.random.default_rng(5)
    savemat(
        path, {"vib": rng.random((1, 500)), "rate": rng.random((1, 500)), "fs": 1e3}
    )

    recording = read_file(path)[0]

    assert recording.channels == ["rate", "vib"]
    assert recording.n_samples == 500
    assert recording.sample_rate == 1000.0


def _parquet_frame() -> pd.DataFrame:
    frame = pd.DataFrame(make_cycle(0, 400).T, columns=list(CHANNELS))
    frame.insert(0, "time", np.arange(400) / 1000.0)
    return frame


def test_nullable_parquet_column_follows_the_nan_policy(tmp_path):
    frame = _parquet_frame()
    frame["vib_x"] = (frame["vib_x"] * 1000).round().astype("Int64")
    frame.loc[7, "vib_x"] = pd.NA
    path = tmp_path / "nullable.parquet"
    frame.to_parquet(path)

    with pytest.raises(InputError, match="channel 'vib_x' at sample 7"):
        read_file(path)
    recording = read_file(path, ReadOptions(nan_policy="interpolate"))[0]
    assert np.isfinite(recording.data).all()
    assert recording.data[0, 7] == pytest.approx(
        (recording.data[0, 6] + recording.data[0, 8]) / 2
    )


def test_decimal_parquet_columns_are_numbers(tmp_path):
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _parquet_frame()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    values = [decimal.Decimal(f"{value:.4f}") for value in frame["current"]]
    table = table.set_column(3, "current", pa.array(values, type=pa.decimal128(10, 4)))
    pq.write_table(table, tmp_path / "decimal.parquet")

    recording = read_file(tmp_path / "decimal.parquet")[0]

    assert recording.channels == list(CHANNELS)
    np.testing.assert_allclose(recording.data[2], frame["current"], atol=1e-4)


def test_parquet_with_repeated_column_names_says_so(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [pa.array(np.arange(10.0)) for _ in range(3)]
    table = pa.Table.from_arrays(columns, names=["time", "vib", "vib"])
    pq.write_table(table, tmp_path / "twice.parquet")

    with pytest.raises(InputError, match="more than one column named 'vib'"):
        read_file(tmp_path / "twice.parquet")


def test_delimiter_at_line_ends_adds_no_channel(tmp_path):
    frame = _parquet_frame()
    lines = frame.to_csv(index=False).splitlines()
    path = tmp_path / "trailing.csv"
    path.write_text("\n".join(line + "," for line in lines) + "\n")

    recording = read_file(path)[0]

    assert recording.channels == list(CHANNELS)
    assert recording.sample_rate == pytest.approx(1000.0)


def test_delimiter_at_data_line_ends_only_keeps_columns(tmp_path):
    frame = _parquet_frame()
    header, *rows = frame.to_csv(index=False).splitlines()
    path = tmp_path / "trailing.csv"
    path.write_text("\n".join([header, *(row + "," for row in rows)]) + "\n")

    recording = read_file(path)[0]

    assert recording.channels == list(CHANNELS)
    np.testing.assert_allclose(recording.data[0], frame[CHANNELS[0]], rtol=1e-6)


def test_more_fields_than_header_names_raises(tmp_path):
    frame = _parquet_frame().drop(columns="time")
    header, *rows = frame.to_csv(index=False).splitlines()
    path = tmp_path / "extra.csv"
    path.write_text("\n".join([header, *(row + ",7" for row in rows)]) + "\n")

    with pytest.raises(InputError) as raised:
        read_file(path, ReadOptions(sample_rate=1000.0))

    message = str(raised.value)
    assert "more ','-separated fields than its header line has column names" in message
    assert "name every column in the header line" in message


def test_gap_in_unused_column_scores(tmp_path):
    write_cycles(tmp_path / "train", 4)
    model = grindwatch.train(tmp_path / "train", _config()).model
    frame = pd.read_csv(tmp_path / "train" / "cycle_000.csv")
    frame["temperature"] = 21.5
    frame.loc[100, "temperature"] = np.nan
    frame.to_csv(tmp_path / "extra.csv", index=False)

    scored = grindwatch.score(model, tmp_path / "extra.csv")

    assert list(scored.recordings["recording"]) == ["extra"]
    assert not scored.skipped


def test_file_without_the_channels_is_probably_no_recording(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame({"No": [1, 2, 3], "feedrate": [3.0, 6.0, 20.0]}).to_csv(path)

    with pytest.raises(InputError, match="so it is probably not a recording") as error:
        read_file(path, ReadOptions(channels=CHANNELS))

    # A misspelled --channels gives the same error for every file.
    assert "correct the names in data.channels (--channels)" in str(error.value)
    # Scoring reads with the model's channels, which cannot change there.
    with pytest.raises(InputError, match="probably not a recording") as scoring:
        read_file(path, ReadOptions(channels=CHANNELS, known_channels=CHANNELS))
    assert "lacks the model's channels" in str(scoring.value)
    assert "data.channels" not in str(scoring.value)


def test_few_training_windows_suggest_shorter_ones(tmp_path, caplog):
    write_cycles(tmp_path / "train", 3)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        grindwatch.train(tmp_path / "train", _config(**{"windows.length": 1024}))

    assert "only 6 training windows of 1024 samples" in caplog.text
    assert "--window 256" in caplog.text


def test_lines_with_another_delimiter_are_named(tmp_path):
    lines = _parquet_frame().to_csv(index=False).splitlines()
    lines[3] = lines[3].replace(",", ";")
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(InputError, match="data row 2 is separated by ';'"):
        read_file(path)


def test_integers_beyond_64_bits_are_numbers(tmp_path):
    lines = _parquet_frame().round(4).to_csv(index=False).splitlines()
    big = 2**70
    lines = [lines[0]] + [
        f"{line.split(',')[0]},{big + i},{','.join(line.split(',')[2:])}"
        for i, line in enumerate(lines[1:])
    ]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")

    recording = read_file(path)[0]

    assert recording.channels == list(CHANNELS)
    assert recording.data[0, 0] == pytest.approx(float(big), rel=1e-6)


def test_npz_channel_names_must_fit_the_data(tmp_path):
    data = make_cycle(0, 400)
    np.savez(tmp_path / "names.npz", data=data, channels=np.array(["a", "b"]))
    np.save(tmp_path / "empty.npy", np.zeros((3, 0), dtype=np.float32))

    with pytest.raises(InputError, match="names 2 channels in its 'channels' array"):
        read_file(tmp_path / "names.npz")
    with pytest.raises(InputError, match="holds no samples"):
        read_file(tmp_path / "empty.npy")


def test_npz_object_channel_names_error_gives_fix(tmp_path):
    # np.array(df.columns) of a DataFrame is an object array, which np.load
    # reads only with allow_pickle, so the names must be saved as text.
    path = tmp_path / "names.npz"
    names = np.array(["a", "b", "c"], dtype=object)
    np.savez(path, data=make_cycle(0, 400), channels=names)

    with pytest.raises(InputError) as error:
        read_file(path)

    assert "names.npz: array 'channels' cannot be read" in str(error.value)
    assert "np.array(names, dtype=str)" in str(error.value)


def test_parquet_time_index_gives_rate(tmp_path):
    # DataFrame.to_parquet stores a named index, and pyarrow made it the index
    # again, so the time was lost and the file had no sample rate.
    from grindwatch.io.chunks import open_stream

    frame = _parquet_frame()
    frame["time"] = np.arange(len(frame)) / 2000.0
    path = tmp_path / "indexed.parquet"
    frame.set_index("time").to_parquet(path)

    recording = read_file(path)[0]
    stream = open_stream(path)

    assert recording.channels == list(CHANNELS)
    assert recording.sample_rate == pytest.approx(2000.0)
    assert recording.metadata["time_column"] == "time"
    assert stream.channels == list(CHANNELS)
    assert stream.sample_rate == pytest.approx(2000.0)


def test_parquet_index_named_as_column_raises(tmp_path):
    frame = _parquet_frame()
    frame.index = pd.Index(np.arange(len(frame)), name="vib_x")
    frame.to_parquet(tmp_path / "both.parquet")

    with pytest.raises(InputError, match="an index and a column both named 'vib_x'"):
        read_file(tmp_path / "both.parquet")


def test_parquet_rows_counted_after_filtering(tmp_path):
    # The label check named the row by the stored index, here 110.
    frame = _parquet_frame().iloc[100:]
    frame["label"] = 0
    frame.loc[110, "label"] = -1
    frame.to_parquet(tmp_path / "filtered.parquet")

    with pytest.raises(InputError, match="'label' holds -1 at data row 10,"):
        read_file(tmp_path / "filtered.parquet")


def test_feature_table_index_read_as_id_only(tmp_path):
    features = pd.DataFrame(
        {"rms": [1.0, 1.1, 0.9, 1.2], "peak": [3.0, 3.2, 2.9, 3.1]},
        index=pd.Index([17, 18, 19, 20], name="cycle"),
    )
    path = tmp_path / "features.parquet"
    features.to_parquet(path)

    rows = read_file(path, ReadOptions(kind="table"))
    named = read_file(path, ReadOptions(kind="table", id_column="cycle"))

    assert rows[0].channels == ["rms", "peak"]
    assert named[0].channels == ["rms", "peak"]
    assert [row.name for row in named] == ["17", "18", "19", "20"]


def test_csv_cut_in_last_line_raises(tmp_path):
    # pandas filled the missing fields with NaN, so the error named a NaN
    # sample, or a time going back where the cut left '0' of '0.217'.
    path = _csv_with_text_cell(tmp_path / "whole.csv", value=0.5)
    text = path.read_text()
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: text.rindex("\n", 0, -1) + 8])
    complete = tmp_path / "no_break.csv"
    complete.write_text(text.rstrip("\n"))

    with pytest.raises(InputError, match="cut.csv: its last line .* of 4 fields and"):
        read_file(cut)
    assert read_file(complete)[0].n_samples == 4000


def test_csv_last_line_of_spaces_read(tmp_path):
    # Padding after the last line break is not a cut line: pandas skips it.
    path = tmp_path / "padded.csv"
    path.write_text("time,a,b\n0,1,2\n0.001,2,3\n0.002,3,4\n   ", encoding="utf-8")

    recording = read_file(path, ReadOptions())[0]

    assert recording.n_samples == 3
    assert recording.sample_rate == pytest.approx(1000.0)


def test_excel_separator_line_sets_delimiter(tmp_path):
    # The "sep=;" line was read as the header, and the error blamed the data.
    path = tmp_path / "excel.csv"
    frame = _parquet_frame()
    path.write_text("sep=;\n" + frame.to_csv(sep=";", index=False, decimal=","))

    recording = read_file(path)[0]

    assert recording.channels == list(CHANNELS)
    assert recording.sample_rate == pytest.approx(1000.0)
    np.testing.assert_allclose(recording.data[0], frame["vib_x"], rtol=1e-6)


def test_csv_quoted_cell_over_lines_at_end(tmp_path):
    # Its last line has fewer fields than the line before, but it ends a cell.
    path = tmp_path / "notes.csv"
    path.write_text('time,a,note\n0,1,"x"\n0.001,2,"y"\n0.002,3,"two\nlines"')

    recording = read_file(path)[0]

    assert recording.channels == ["a"]
    assert recording.n_samples == 3
