"""Chunked reading and scoring give the same windows and scores as whole files."""

from __future__ import annotations

import json
import tracemalloc

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import grindwatch
from grindwatch.config import Config
from grindwatch.exceptions import InputError
from grindwatch.io import ReadOptions, Recording, RecordingSet, read_file
from grindwatch.io.chunks import iter_windows, open_stream
from grindwatch.signals.windows import window_starts
from grindwatch.streaming import score_chunked
from tests.conftest import make_cycle

RATE = 1000.0


@pytest.fixture(scope="module")
def model():
    recordings = [
        Recording(f"c{i}", make_cycle(i, 2048)[:2], ["channel_0", "channel_1"], RATE)
        for i in range(6)
    ]
    config = Config().with_overrides(
        {
            "windows.length": 128,
            "windows.hop": 48,
            "frontend.kind": "spectrum",
            "frontend.n_bands": 8,
            "detector.family": "pca",
            "tracking.enabled": False,
            "data.sample_rate": RATE,
        }
    )
    return grindwatch.train(RecordingSet(recordings), config).model


def _long_signal() -> np.ndarray:
    data = np.concatenate([make_cycle(20 + i, 1000)[:2] for i in range(3)], axis=1)
    data[:, 1700:1800] += 3.0  # an anomaly that crosses a chunk border
    return data


@pytest.mark.parametrize("layout", ["channels_first", "samples_first", "fortran"])
def test_npy_chunked_scores_equal_whole(model, tmp_path, layout):
    data = _long_signal()
    path = tmp_path / "long.npy"
    if layout == "channels_first":
        np.save(path, data)
    elif layout == "samples_first":
        np.save(path, data.T)
    else:
        np.save(path, np.asfortranarray(data))

    whole = grindwatch.score(model, path, attribution=False).windows
    chunked = score_chunked(model, path, chunk_samples=100).windows

    np.testing.assert_array_equal(chunked["start_sample"], whole["start_sample"])
    np.testing.assert_allclose(chunked["score"], whole["score"], rtol=1e-5)
    assert chunked["flag"].tolist() == whole["flag"].tolist()


def test_parquet_row_groups_chunked_scores_equal_whole(model, tmp_path):
    data = _long_signal()
    path = tmp_path / "long.parquet"
    table = pa.table(
        {
            "time": np.arange(data.shape[1]) / RATE,
            "channel_0": data[0],
            "channel_1": data[1],
        }
    )
    pq.write_table(table, path, row_group_size=333)

    whole = grindwatch.score(model, path, attribution=False).windows
    chunked = score_chunked(model, path, chunk_samples=250).windows

    np.testing.assert_allclose(chunked["score"], whole["score"], rtol=1e-5)


def test_hdf5_slices_chunked_scores_equal_whole(model, tmp_path):
    data = _long_signal()
    path = tmp_path / "long.h5"
    with h5py.File(path, "w") as handle:
        handle["run/channel_0"] = data[0]
        handle["run/channel_1"] = data[1]

    whole = grindwatch.score(model, path, attribution=False).windows
    chunked = score_chunked(model, path, chunk_samples=77).windows

    np.testing.assert_allclose(chunked["score"], whole["score"], rtol=1e-5)


def test_binary_int16_chunked_scores_equal_whole(model, tmp_path):
    counts = (_long_signal() * 1000).astype("<i2")
    path = tmp_path / "long.bin"
    counts.T.tofile(path)
    config = model.config.with_overrides(
        {"data.raw_dtype": "<i2", "data.raw_channels": 2}
    )
    model.config, saved = config, model.config
    try:
        whole = grindwatch.score(model, path, attribution=False).windows
        chunked = score_chunked(model, path, chunk_samples=500).windows
    finally:
        model.config = saved

    np.testing.assert_allclose(chunked["score"], whole["score"], rtol=1e-5)


def test_chunk_samples_setting_routes_score(model, tmp_path):
    path = tmp_path / "long.npy"
    np.save(path, _long_signal())
    chunked_model = grindwatch.pipeline._with_config(
        model, model.config.with_overrides({"data.chunk_samples": 300})
    )

    result = grindwatch.score(chunked_model, [path])  # a list, as the CLI passes

    assert "top_channel" not in result.windows.columns  # the chunked path
    # The hop grid plus the window that ends at the last sample.
    assert len(result.windows) == (3000 - 128) // 48 + 2
    assert result.recordings["flag"].iloc[0]


def test_nan_position_is_global(tmp_path):
    data = _long_signal()
    data[1, 2345] = np.nan
    np.save(tmp_path / "gap.npy", data)
    stream = open_stream(tmp_path / "gap.npy")

    with pytest.raises(InputError, match="channel 'channel_1' at sample 2345"):
        list(stream.chunks(1000))


def test_truncated_npy_raises(tmp_path):
    path = tmp_path / "cut.npy"
    np.save(path, _long_signal())
    path.write_bytes(path.read_bytes()[:5000])

    with pytest.raises(InputError, match="cut.npy: is truncated"):
        open_stream(path)


def _fast_parquet(path):  # noqa: ANN001, ANN202
    data = _long_signal()
    frame = pd.DataFrame(
        {"time": np.arange(3000) / 2000.0, "channel_0": data[0], "channel_1": data[1]}
    )
    frame.to_parquet(path)
    return path


def test_time_column_contradicting_sample_rate_raises(model, tmp_path):
    path = _fast_parquet(tmp_path / "fast.parquet")

    with pytest.raises(
        InputError, match="gives 2000 samples/s but sample_rate is 1000"
    ):
        score_chunked(model, path, chunk_samples=500)


def test_other_rate_rejected_in_chunks(model, tmp_path):
    path = _fast_parquet(tmp_path / "fast.parquet")
    data_settings = model.config.data.model_copy(update={"sample_rate": None})
    config = model.config.model_copy(update={"data": data_settings})
    unset_rate = grindwatch.pipeline._with_config(model, config)

    with pytest.raises(InputError, match="chunked scoring cannot resample"):
        score_chunked(unset_rate, path, chunk_samples=500)


@pytest.mark.parametrize("chunk_samples", [0, -5])
def test_chunk_samples_below_one_rejected(model, tmp_path, chunk_samples):
    path = tmp_path / "long.npy"
    np.save(path, _long_signal())

    with pytest.raises(ValueError, match=f"chunk_samples={chunk_samples} must be 1"):
        score_chunked(model, path, chunk_samples=chunk_samples)


def test_csv_cannot_be_chunked(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a\n1\n2\n")

    with pytest.raises(InputError, match="'.csv' files cannot be read in chunks"):
        open_stream(path, ReadOptions())


def test_windows_span_many_small_chunks():
    data = np.arange(40, dtype=np.float32)[None, :]
    chunks = ((start, data[:, start : start + 3]) for start in range(0, 40, 3))

    pieces = list(iter_windows(chunks, length=10, hop=7))

    starts = np.concatenate([p[0] for p in pieces])
    windows = np.concatenate([p[1] for p in pieces])
    np.testing.assert_array_equal(starts, [0, 7, 14, 21, 28, 30])
    np.testing.assert_array_equal(windows[:, 0, 0], starts)
    np.testing.assert_array_equal(windows[-1, 0], np.arange(30, 40))


def test_window_batches_keep_starts_and_samples():
    data = np.arange(40, dtype=np.float32)[None, :]
    chunks = ((start, data[:, start : start + 17]) for start in range(0, 40, 17))

    pieces = list(iter_windows(chunks, length=10, hop=3, max_windows=2))

    assert max(len(starts) for starts, _ in pieces) == 2
    starts = np.concatenate([p[0] for p in pieces])
    windows = np.concatenate([p[1] for p in pieces])
    np.testing.assert_array_equal(starts, window_starts(40, 10, 3))
    np.testing.assert_array_equal(windows[:, 0, 0], starts)
    np.testing.assert_array_equal(windows[:, 0, -1], starts + 9)


def test_hdf5_scaled_integers_chunked_equal_whole(model, tmp_path):
    counts = (_long_signal() * 1000).astype(np.int16)
    path = tmp_path / "scaled.h5"
    with h5py.File(path, "w") as handle:
        dataset = handle.create_dataset("adc", data=counts.T)
        dataset.attrs["scale_factor"] = 0.001
        dataset.attrs["channels"] = ["channel_0", "channel_1"]

    whole = grindwatch.score(model, path, attribution=False).windows
    chunked = score_chunked(model, path, chunk_samples=400).windows

    np.testing.assert_allclose(chunked["score"], whole["score"], rtol=1e-5)


def _parquet_with_times(path, times):  # noqa: ANN001, ANN202
    data = _long_signal()
    table = pa.table({"time": times, "channel_0": data[0], "channel_1": data[1]})
    pq.write_table(table, path, row_group_size=500)
    return path


def test_parquet_later_gap_found(tmp_path):
    from grindwatch.io import read_file

    times = np.arange(3000) / RATE
    times[2200:] += 0.5  # a half-second gap in the fifth row group
    path = _parquet_with_times(tmp_path / "gap.parquet", times)

    chunked = open_stream(path, ReadOptions()).metadata["irregular_time_steps"]
    whole = read_file(path)[0].metadata["irregular_time_steps"]

    assert chunked["n_gaps"] == whole["n_gaps"] == 1
    assert chunked["largest_gap_row"] == whole["largest_gap_row"] == 2200
    assert chunked["largest_gap_at_s"] == pytest.approx(whole["largest_gap_at_s"])
    assert chunked["n_steps"] == whole["n_steps"]


def test_parquet_gap_between_groups_found(tmp_path):
    times = np.arange(3000) / RATE
    times[1000:] += 0.2  # the step from row group 1 into row group 2
    path = _parquet_with_times(tmp_path / "border.parquet", times)

    found = open_stream(path, ReadOptions()).metadata["irregular_time_steps"]

    assert found["largest_gap_row"] == 1000
    assert found["largest_gap_s"] == pytest.approx(0.201)


def test_parquet_later_time_backwards_raises(tmp_path):
    times = np.arange(3000) / RATE
    times[2600:] -= 1.0
    path = _parquet_with_times(tmp_path / "back.parquet", times)

    with pytest.raises(InputError, match="goes backwards at data row 2600"):
        open_stream(path, ReadOptions())


def test_parquet_regular_steps_not_irregular(tmp_path):
    path = _parquet_with_times(tmp_path / "even.parquet", np.arange(3000) / RATE)

    stream = open_stream(path, ReadOptions())

    assert "irregular_time_steps" not in stream.metadata
    assert stream.sample_rate == pytest.approx(RATE)


def test_chunked_split_timestamp_crosses_midnight(tmp_path):
    data = _long_signal()
    stamps = pd.Timestamp("2026-03-01 23:59:58") + pd.to_timedelta(
        np.arange(data.shape[1]), "ms"
    )
    frame = pd.DataFrame(
        {
            "Date": stamps.strftime("%d.%m.%Y"),
            "Time": stamps.strftime("%H:%M:%S.%f").str[:-3],
            "channel_0": data[0],
            "channel_1": data[1],
        }
    )
    path = tmp_path / "split.parquet"
    pq.write_table(pa.Table.from_pandas(frame), path, row_group_size=500)

    stream = open_stream(path, ReadOptions())

    assert stream.channels == ["channel_0", "channel_1"]
    assert stream.sample_rate == pytest.approx(RATE)
    assert "irregular_time_steps" not in stream.metadata


def test_chunked_parquet_reads_local_times_with_timezone(tmp_path):
    # 3000 samples at 1 Hz around the switch back to winter time in Berlin, in
    # row groups of 500: the clock goes back at row 2400, in the fifth group.
    utc = pd.date_range("2026-10-25 00:20:00", periods=3000, freq="1s", tz="UTC")
    local = utc.tz_convert("Europe/Berlin").tz_localize(None)
    data = _long_signal()
    table = pa.table(
        {"time": local.to_numpy(), "channel_0": data[0], "channel_1": data[1]}
    )
    path = tmp_path / "local.parquet"
    pq.write_table(table, path, row_group_size=500)

    with pytest.raises(InputError, match="data.timezone"):
        open_stream(path, ReadOptions())
    stream = open_stream(path, ReadOptions(timezone="Europe/Berlin"))

    assert stream.sample_rate == pytest.approx(1.0)
    assert "irregular_time_steps" not in stream.metadata


def test_interpolate_policy_rejected_in_chunks(model, tmp_path):
    path = tmp_path / "long.npy"
    np.save(path, _long_signal())
    interpolating = grindwatch.pipeline._with_config(
        model,
        model.config.with_overrides(
            {"data.chunk_samples": 300, "data.nan_policy": "interpolate"}
        ),
    )

    with pytest.raises(
        InputError, match="long.npy: cannot be scored in chunks"
    ) as info:
        grindwatch.score(interpolating, [path])

    assert "data.nan_policy=interpolate" in info.value.problem
    assert "--set data.nan_policy=raise" in info.value.fix


@pytest.mark.parametrize("order", ["C", "F"])
def test_square_npy_reads_as_channels_first(tmp_path, order):
    data = np.arange(16, dtype=np.float32).reshape(4, 4)
    path = tmp_path / "square.npy"
    np.save(path, np.asarray(data, order=order))
    whole = read_file(path)[0]

    stream = open_stream(path)

    assert stream.channels == whole.channels
    np.testing.assert_array_equal(stream.read(0, 4), whole.data)


def test_npy_without_samples_raises(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((2, 0), dtype=np.float32))

    with pytest.raises(InputError, match=r"contains no samples \(an array of shape"):
        open_stream(path)


def test_short_hop_windows_cut_in_batches(tmp_path):
    recordings = [
        Recording(f"c{i}", make_cycle(i, 600)[:1], ["channel_0"], RATE)
        for i in range(6)
    ]
    config = Config().with_overrides(
        {
            "windows.length": 256,
            "windows.hop": 1,
            "frontend.kind": "raw",
            "detector.family": "pca",
            "tracking.enabled": False,
            "data.sample_rate": RATE,
        }
    )
    one_hop_model = grindwatch.train(RecordingSet(recordings), config).model
    path = tmp_path / "long.npy"
    np.save(path, make_cycle(50, 60_000)[:1].astype(np.float32))
    # With a hop of 1, cutting the one chunk's windows at once takes 61 MB.
    all_windows_bytes = (60_000 - 256 + 1) * 256 * 4

    tracemalloc.start()
    try:
        result = score_chunked(one_hop_model, path, chunk_samples=60_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert len(result.windows) == 60_000 - 256 + 1
    assert peak < all_windows_bytes / 2


def test_window_batches_hold_at_most_a_chunk(tmp_path):
    recordings = [
        Recording(f"c{i}", make_cycle(i, 3000)[:1], ["channel_0"], RATE)
        for i in range(4)
    ]
    config = Config().with_overrides(
        {
            "windows.length": 512,
            "windows.hop": 1,
            "frontend.kind": "raw",
            "detector.family": "pca",
            "tracking.enabled": False,
            "data.sample_rate": RATE,
        }
    )
    long_windows = grindwatch.train(RecordingSet(recordings), config).model
    path = tmp_path / "long.npy"
    np.save(path, make_cycle(60, 40_000)[:1])
    batches = []
    score_windows = long_windows.window_scores

    def counted(windows):  # noqa: ANN001, ANN202
        batches.append(len(windows))
        return score_windows(windows)

    long_windows.window_scores = counted

    result = score_chunked(long_windows, path, chunk_samples=20_000)

    assert len(result.windows) == 40_000 - 512 + 1
    assert sum(batches) == len(result.windows)
    # 39 windows of 512 samples fit in a chunk of 20,000; 4096 windows, the cap
    # for short windows, would take 100 times the chunk's memory.
    assert max(batches) == 39


def test_boolean_channel_rejected_in_chunks(model, tmp_path):
    data = _long_signal()
    path = tmp_path / "switch.parquet"
    pd.DataFrame({"channel_0": data[0] > 0, "channel_1": data[1]}).to_parquet(path)

    with pytest.raises(InputError, match="switch.parquet") as info:
        score_chunked(model, path, chunk_samples=500)

    assert "['channel_0'] are not numbers in the Parquet schema" in info.value.problem
    assert "booleans" in info.value.problem
    assert "stored as text" not in info.value.problem


def test_table_model_rejected_in_chunks(feature_table, tmp_path):
    config = Config().with_overrides(
        {
            "data.kind": "table",
            "frontend.kind": "raw",
            "detector.family": "iforest",
            "tracking.enabled": False,
        }
    )
    table_model = grindwatch.train(feature_table, config).model
    path = tmp_path / "long.npy"
    np.save(path, _long_signal())

    with pytest.raises(
        InputError, match="long.npy: cannot be scored in chunks"
    ) as info:
        score_chunked(table_model, path)

    assert "feature table" in info.value.problem
    assert info.value.fix is not None


def test_nan_error_names_earliest_sample(tmp_path):
    data = _long_signal()
    data[0, 2400] = np.nan
    data[1, 2345] = np.inf
    np.save(tmp_path / "gap.npy", data)
    stream = open_stream(tmp_path / "gap.npy")

    with pytest.raises(InputError, match="channel 'channel_1' at sample 2345"):
        list(stream.chunks(1000))


def test_whole_and_chunked_name_same_first_nan(tmp_path):
    data = _long_signal()
    data[0, 2400] = np.nan
    data[1, 2345] = np.nan
    path = tmp_path / "gap.npy"
    np.save(path, data)

    with pytest.raises(InputError) as whole:
        read_file(path)
    with pytest.raises(InputError) as chunked:
        list(open_stream(path).chunks(1000))

    assert "channel 'channel_1' at sample 2345" in whole.value.problem
    assert "channel 'channel_1' at sample 2345" in chunked.value.problem


def test_cli_unsets_chunk_samples_to_score_whole(model, tmp_path):
    from typer.testing import CliRunner

    from grindwatch.cli import app

    folder = grindwatch.pipeline._with_config(
        model, model.config.with_overrides({"data.chunk_samples": 300})
    ).save(tmp_path / "model")
    data = _long_signal()
    data[0, 1234] = np.nan
    path = tmp_path / "gap.npy"
    np.save(path, data)
    command = ["score", str(path), "-m", str(folder), "--json"]
    command += ["--set", "data.nan_policy=interpolate"]
    runner = CliRunner()

    chunked = runner.invoke(app, command)
    whole = runner.invoke(app, command + ["--set", "data.chunk_samples=null"])
    not_optional = runner.invoke(app, command + ["--set", "data.nan_policy=null"])

    assert chunked.exit_code == 2
    assert "--set data.chunk_samples=null to read it whole" in chunked.output
    assert whole.exit_code == 0, whole.output
    assert json.loads(whole.stdout)["summary"]["n_recordings"] == 1
    assert not_optional.exit_code == 2
    assert "data.nan_policy=null' has no value" in not_optional.output
