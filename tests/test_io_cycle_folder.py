"""Cycle folders in a grinding machine logger's layout, and end-to-end detection."""

from __future__ import annotations

import json
import logging
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import grindwatch
from grindwatch.config import Config
from grindwatch.exceptions import InputError
from grindwatch.io import ReadOptions, list_files, load_recordings, read_file
from grindwatch.io.synthetic import CURRENT_CHANNELS, write_grinding_cycles

SMALL = {"ae_rate": 20_000, "current_rate": 2_000, "duration": 0.2}


@pytest.fixture
def few_cycles(tmp_path):
    return write_grinding_cycles(tmp_path / "cycles", 3, {"burn": 1}, **SMALL)


def test_generator_writes_logger_layout(few_cycles, tmp_path):
    first = few_cycles[0].path

    raw_files = sorted(p.name for p in (first / "raw").iterdir())
    meta = json.loads((first / "meta.json").read_text())

    assert first.parent.name == "OK_Measurements"
    assert few_cycles[3].path.parent.name == "NOK_Measurements"
    assert first.name == "2024.02.14_22.00.10_Grinding"
    assert raw_files == [
        "Sampling20KHz_AEKi-0.parquet",
        "Sampling2KHz_Irms_Grinding-Grinding spindle current L1-Grinding spindle "
        "current L2-Grinding spindle current L3-0.parquet",
    ]
    assert set(meta) == {
        "tool",
        "material",
        "exp_Nr",
        "stop",
        "running",
        "process",
        "start_time",
    }
    assert meta["start_time"] == "2024.02.14_22.00.10"
    columns = pd.read_parquet(first / "raw" / raw_files[0]).columns
    assert list(columns) == ["AEKi_rate20000_clipping0_batch0"]


def test_cycle_folders_listed_as_one_item_each(few_cycles, tmp_path):
    (tmp_path / "cycles" / "notes.txt").write_text("time,a\n0,1\n")

    listed = list_files(tmp_path / "cycles")

    assert sorted(p.name for p in listed if p.is_dir()) == sorted(
        c.path.name for c in few_cycles
    )
    assert listed[-1].name == "notes.txt"
    assert not any("raw" in p.parts for p in listed)


def test_resample_mode_gives_lowest_rate(few_cycles):
    recording = read_file(few_cycles[0].path)[0]

    # Channels follow the raw files in name order.
    assert recording.channels == ["AEKi", *CURRENT_CHANNELS]
    assert recording.sample_rate == 2000.0
    assert recording.n_samples == 400
    assert recording.metadata["streams"]["AEKi"] == 20000.0
    assert recording.metadata["meta"]["tool"] == "CRIN3-25-V"
    assert recording.metadata["cycle_mode"] == "resample"
    assert recording.label == 0


def test_resample_mode_removes_content_above_new_nyquist(tmp_path):
    folder = tmp_path / "OK_Measurements" / "2024.01.01_00.00.00_Grinding"
    (folder / "raw").mkdir(parents=True)
    (folder / "meta.json").write_text('{"tool": "T1"}')
    t = np.arange(20000) / 20000
    tone = np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 3000 * t)
    pd.DataFrame({"AE_rate20000_clipping0_batch0": tone}).to_parquet(
        folder / "raw" / "Sampling20KHz_AE-0.parquet"
    )
    slow = np.sin(2 * np.pi * 50 * np.arange(1000) / 1000)
    pd.DataFrame({"I_rate1000_clipping0_batch0": slow}).to_parquet(
        folder / "raw" / "Sampling1KHz_I-0.parquet"
    )

    recording = read_file(folder)[0]

    spectrum = np.abs(np.fft.rfft(recording.data[1])) / 500
    assert recording.sample_rate == 1000.0
    assert spectrum[50] == pytest.approx(1.0, abs=0.05)
    # 3 kHz would alias to 0 Hz or 500 Hz without the anti-aliasing filter.
    assert spectrum[[0, 500]].max() < 0.01


def test_given_common_rate_is_used(few_cycles):
    recording = read_file(few_cycles[0].path, ReadOptions(resample_rate=5000.0))[0]

    assert recording.sample_rate == 5000.0
    assert recording.n_samples == 1000


def test_features_mode_frames_each_stream_at_its_rate(few_cycles):
    options = ReadOptions(
        cycle_mode="features",
        frame_seconds=0.02,
        frame_hop_seconds=0.01,
        stream_modes=(("Irms_Grinding", "resample"),),
    )

    recording = read_file(few_cycles[0].path, options)[0]

    assert recording.sample_rate == 100.0
    assert recording.n_samples == 19
    assert recording.channels[14] == "Irms_Grinding"
    assert "AEKi.rms" in recording.channels
    assert "AEKi.band3" in recording.channels
    assert "Grinding spindle current L1.kurtosis" in recording.channels
    # 1 resampled channel, 4 feature streams x (10 statistics + 4 bands).
    assert recording.n_channels == 1 + 4 * 14
    assert recording.metadata["cycle_mode"] == "features"


def test_features_mode_frame_rms_matches_samples(tmp_path):
    folder = tmp_path / "2024.01.01_00.00.00_Grinding"
    (folder / "raw").mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    values = np.repeat([1.0, 3.0], 500)
    pd.DataFrame({"AE_rate10000_clipping0_batch0": values}).to_parquet(
        folder / "raw" / "ae-0.parquet"
    )

    recording = read_file(folder, ReadOptions(cycle_mode="features", frame_bands=0))[0]

    rms = recording.data[recording.channels.index("AE.rms")]
    np.testing.assert_allclose(rms, [1.0] * 5 + [3.0] * 5, rtol=1e-6)


def test_batches_and_parts_joined_in_order(tmp_path):
    folder = tmp_path / "2024.01.01_00.00.00_Grinding"
    (folder / "raw").mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    pd.DataFrame(
        {
            "AE_rate100_clipping0_batch1": [10.0, 11.0],
            "AE_rate100_clipping0_batch0": [0.0, 1.0],
        }
    ).to_parquet(folder / "raw" / "Sampling0KHz_AE-0.parquet")
    pd.DataFrame({"AE_rate100_clipping0_batch0": [20.0, 21.0]}).to_parquet(
        folder / "raw" / "Sampling0KHz_AE-1.parquet"
    )

    recording = read_file(folder)[0]

    np.testing.assert_array_equal(recording.data[0], [0, 1, 10, 11, 20, 21])


def test_streams_of_different_length_cut_to_shortest(few_cycles):
    raw = few_cycles[0].path / "raw"
    ae_file = next(raw.glob("*AEKi*"))
    frame = pd.read_parquet(ae_file)
    frame.iloc[: len(frame) // 2].to_parquet(ae_file)

    recording = read_file(few_cycles[0].path)[0]

    assert recording.metadata["duration_s"] == pytest.approx(0.1)
    assert recording.n_samples == 200


def test_logger_clipping_flag_recorded(few_cycles):
    raw = few_cycles[0].path / "raw"
    ae_file = next(raw.glob("*AEKi*"))
    pd.read_parquet(ae_file).rename(
        columns=lambda c: c.replace("clipping0", "clipping1")
    ).to_parquet(ae_file)

    recording = read_file(few_cycles[0].path)[0]

    assert "AEKi" in recording.metadata["clipped_channels"]
    with pytest.raises(InputError, match="channel 'AEKi' is clipped"):
        read_file(few_cycles[0].path, ReadOptions(clipping_policy="raise"))


def test_large_offset_stream_listed(few_cycles):
    raw = few_cycles[0].path / "raw"
    ae_file = next(raw.glob("*AEKi*"))
    frame = pd.read_parquet(ae_file)
    frame = frame / frame.std() + 2e7
    frame.to_parquet(ae_file)

    recording = read_file(few_cycles[0].path)[0]

    assert list(recording.metadata["low_precision_channels"]) == ["AEKi"]


def test_nan_in_stream_names_channel_and_sample(few_cycles):
    raw = few_cycles[0].path / "raw"
    current_file = next(raw.glob("*Irms*"))
    frame = pd.read_parquet(current_file)
    frame.iloc[17, 2] = np.inf
    frame.to_parquet(current_file)

    with pytest.raises(
        InputError, match="channel 'Grinding spindle current L2' at sample 17"
    ):
        read_file(few_cycles[0].path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("meta", "is not readable JSON"),
        ("no_parquet", "contains no Parquet file"),
        ("no_raw_folder", "is a cycle folder (it contains meta.json) without its raw/"),
        ("truncated", "is not a readable Parquet file"),
        ("foreign_columns", "contains no column named like"),
        ("rate_zero", "gives sample rate 0, which is not a positive number"),
    ],
)
def test_damaged_cycle_folder_skipped_with_reason(
    few_cycles, tmp_path, damage, message
):
    folder = few_cycles[1].path
    raw_files = sorted((folder / "raw").glob("*.parquet"))
    if damage == "meta":
        (folder / "meta.json").write_text('{"tool": "CRIN3')
    elif damage == "no_parquet":
        for path in raw_files:
            path.unlink()
    elif damage == "no_raw_folder":
        shutil.rmtree(folder / "raw")
    elif damage == "truncated":
        raw_files[0].write_bytes(raw_files[0].read_bytes()[:100])
    elif damage == "rate_zero":
        # A rate of 0 divided the stream's length by zero.
        frame = pd.read_parquet(raw_files[0])
        frame.columns = [re.sub(r"_rate\d+_", "_rate0_", c) for c in frame]
        frame.to_parquet(raw_files[0])
    else:
        for path in raw_files:
            pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(path)

    loaded = load_recordings(tmp_path / "cycles")

    assert len(loaded) == 3
    assert loaded.skipped[0].path == folder
    assert message in loaded.skipped[0].reason


def test_cycle_without_raw_folder_named(tmp_path):
    # Such a folder was left out, so a data set of them was reported as empty.
    folder = tmp_path / "OK_Measurements" / "2024.02.14_22.00.10_Grinding"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text('{"tool": "CRIN3-25-V"}')
    expected = "is a cycle folder .* without its raw/ folder of logger streams"

    with pytest.raises(InputError, match=f"{re.escape(folder.name)}: {expected}"):
        load_recordings(tmp_path)
    with pytest.raises(InputError, match=f"{re.escape(str(folder))}: {expected}"):
        read_file(folder)
    assert list_files(tmp_path / "*" / "*") == [folder]


def test_meta_json_beside_recordings_is_no_cycle(tmp_path):
    # A meta.json that describes the files beside it does not make a cycle.
    (tmp_path / "meta.json").write_text('{"line": 2}')
    (tmp_path / "run.csv").write_text("time,a\n0,1\n0.001,2\n0.002,1.5\n")

    loaded = load_recordings(tmp_path)

    assert [recording.name for recording in loaded] == ["run"]


def test_skipped_cycle_names_damaged_file(few_cycles, tmp_path):
    # The reason named only the folder, which contains several Parquet files.
    folder = few_cycles[1].path
    damaged = sorted((folder / "raw").glob("*.parquet"))[-1]
    damaged.write_bytes(damaged.read_bytes()[:100])

    loaded = load_recordings(tmp_path / "cycles")

    assert loaded.skipped[0].path == folder
    assert loaded.skipped[0].reason.startswith(f"raw/{damaged.name}: is not a")


def test_two_megahertz_stream_at_small_length(tmp_path):
    cycles = write_grinding_cycles(
        tmp_path, 1, ae_rate=2_000_000, current_rate=100_000, duration=0.01
    )

    resampled = read_file(cycles[0].path)[0]
    framed = read_file(
        cycles[0].path, ReadOptions(cycle_mode="features", frame_seconds=0.002)
    )[0]

    assert resampled.metadata["streams"]["AEKi"] == 2_000_000
    assert resampled.sample_rate == 100_000
    assert resampled.n_samples == 1000
    assert framed.n_samples == 5


def test_match_and_group_by_tool(tmp_path, caplog):
    write_grinding_cycles(tmp_path, 4, tools=("CRIN3-25-V", "B126-X"), **SMALL)

    with caplog.at_level(logging.INFO, logger="grindwatch"):
        only = load_recordings(tmp_path, ReadOptions(match=(("tool", "B126-X"),)))
    groups = load_recordings(tmp_path).group_by("tool")

    assert len(only) == 2
    assert {r.metadata["meta"]["tool"] for r in only} == {"B126-X"}
    assert "left out 2 recordings" in caplog.text
    assert sorted(groups) == ["B126-X", "CRIN3-25-V"]
    assert len(groups["CRIN3-25-V"]) == 2


def test_match_with_no_recording_raises(tmp_path):
    write_grinding_cycles(tmp_path, 2, **SMALL)

    with pytest.raises(InputError, match="none with metadata"):
        load_recordings(tmp_path, ReadOptions(match=(("tool", "other"),)))


# End to end: 200 cycles ------------------------------------------------------------


@pytest.fixture(scope="module")
def two_hundred_cycles(tmp_path_factory):
    root = tmp_path_factory.mktemp("grinding")
    cycles = write_grinding_cycles(
        root,
        192,
        {"burn": 4, "chatter": 4},
        ae_rate=200_000,
        current_rate=10_000,
        duration=0.3,
        seed=1,
    )
    return root, {c.path.name: c.anomaly for c in cycles}


def _flagged_by_kind(result, kinds):  # noqa: ANN001, ANN202
    table = result.recordings.copy()
    table["kind"] = [
        kinds[name.rsplit("/", 1)[-1]] or "normal" for name in table["recording"]
    ]
    return table.groupby("kind")["flag"].agg(["sum", "count"])


@pytest.mark.slow
def test_two_hundred_cycles_features_mode_flags_anomalies(two_hundred_cycles):
    root, kinds = two_hundred_cycles
    # Each cycle is 30 frames of 10 ms; one window spans the whole cycle, and the
    # features front end summarises each frame statistic over it.
    config = Config().with_overrides(
        {
            "data.cycle_mode": "features",
            "windows.length": 30,
            "frontend.kind": "features",
            "detector.family": "iforest",
            "aggregate.method": "max",
            "tracking.enabled": False,
        }
    )

    model = grindwatch.train(root, config).model
    scored = grindwatch.score(model, root)

    flagged = _flagged_by_kind(scored, kinds)
    assert flagged.loc["burn", "sum"] == 4
    assert flagged.loc["chatter", "sum"] == 4
    assert flagged.loc["normal", "sum"] <= 2
    assert set(scored.recordings["meta.tool"]) == {"CRIN3-25-V"}
    assert set(scored.recordings["label"]) == {0, 1}


@pytest.mark.slow
def test_two_hundred_cycles_resample_mode_flags_anomalies(two_hundred_cycles):
    root, kinds = two_hundred_cycles
    config = Config().with_overrides(
        {
            "windows.length": 1000,
            "frontend.kind": "features",
            "detector.family": "iforest",
            "aggregate.method": "mean",
            "tracking.enabled": False,
        }
    )

    result = grindwatch.train(root, config)

    flagged = _flagged_by_kind(result.training, kinds)
    assert result.model.sample_rate_ == 10_000
    assert flagged.loc["burn", "sum"] == 4
    assert flagged.loc["chatter", "sum"] == 4
    assert flagged.loc["normal", "sum"] <= 2
