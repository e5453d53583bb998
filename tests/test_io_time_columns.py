"""CSV time columns: names and units, the time_column option, time-like channels
and irregular time steps."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from grindwatch.config import Config
from grindwatch.exceptions import InputError
from grindwatch.io import ReadOptions, load_recordings, read_file
from grindwatch.pipeline import read_options
from tests.conftest import make_cycle

RATE = 1000.0


def _write(path, time_name, time_values, n_samples=300):  # noqa: ANN001, ANN202
    frame = pd.DataFrame(make_cycle(0, n_samples).T, columns=["a", "b", "c"])
    frame.insert(0, time_name, time_values)
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("name", "per_second"),
    [
        ("Time [s]", 1.0),
        ("Time (s)", 1.0),
        ("time_s", 1.0),
        ("Zeit", 1.0),
        ("Zeit [s]", 1.0),
        ("Zeit / s", 1.0),
        ("t", 1.0),
        ("Elapsed time [s]", 1.0),
        ("seconds", 1.0),
        ("timestamp [ms]", 1e3),
        ("t (ms)", 1e3),
        ("time_ms", 1e3),
        ("Time [µs]", 1e6),
        ("Time [min]", 1 / 60),
    ],
)
def test_time_column_name_with_unit(tmp_path, name, per_second):
    seconds = np.arange(300) / RATE
    path = _write(tmp_path / "run.csv", name, seconds * per_second)

    recording = read_file(path)[0]

    assert recording.channels == ["a", "b", "c"]
    assert recording.sample_rate == pytest.approx(RATE)


@pytest.mark.parametrize("name", ["T [°C]", "t_min", "t_oil", "Time [a.u.]"])
def test_unknown_unit_stays_channel(tmp_path, name):
    rng = np.random.default_rng(1)
    path = _write(tmp_path / "run.csv", name, 20 + rng.standard_normal(300))

    recording = read_file(path)[0]

    assert recording.channels == [name, "a", "b", "c"]
    assert recording.sample_rate is None


def test_time_like_channel_warned_with_fix(tmp_path, caplog):
    for index in range(2):
        _write(tmp_path / f"run{index}.csv", "clock", np.arange(300) / RATE)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(tmp_path)

    assert loaded.channels == ["clock", "a", "b", "c"]
    assert loaded.recordings[0].metadata["time_like_channels"] == ["clock"]
    assert "2 of 2 recordings have channels ['clock']" in caplog.text
    assert "run0.csv" in caplog.text
    assert "--set data.time_column=NAME" in caplog.text


def test_time_like_row_of_npy_warned(tmp_path, caplog):
    data = make_cycle(0, 300)
    data[1] = np.arange(300)
    np.save(tmp_path / "run.npy", data)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        load_recordings(tmp_path)

    assert "have channels ['channel_1'] that rise by the same step" in caplog.text


def test_time_like_allows_float32_rounding(tmp_path):
    # Up to 300 s, float32 rounds 1 ms steps by up to about 3%.
    path = _write(
        tmp_path / "long.csv", "clock", 100 + np.arange(200_000) / RATE, 200_000
    )

    recording = read_file(path)[0]

    assert recording.metadata["time_like_channels"] == ["clock"]


def test_noisy_rising_signal_not_time_like(tmp_path):
    rng = np.random.default_rng(2)
    rising = np.arange(300) / RATE + 1e-4 * rng.standard_normal(300)
    path = _write(tmp_path / "run.csv", "position", rising)

    recording = read_file(path)[0]

    assert "time_like_channels" not in recording.metadata


def test_time_column_option_gives_rate(tmp_path, caplog):
    _write(tmp_path / "run.csv", "clock [ms]", np.arange(300))
    options = read_options(Config().with_overrides({"data.time_column": "clock [ms]"}))

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(tmp_path, options)

    assert loaded.channels == ["a", "b", "c"]
    assert loaded.sample_rate == pytest.approx(RATE)
    assert "rise by the same step" not in caplog.text


def test_time_column_option_without_unit_is_seconds(tmp_path):
    path = _write(tmp_path / "run.csv", "Uhrzeit", np.arange(300) / RATE)

    recording = read_file(path, ReadOptions(time_column="Uhrzeit"))[0]

    assert recording.channels == ["a", "b", "c"]
    assert recording.sample_rate == pytest.approx(RATE)


def test_time_column_option_missing_raises(tmp_path):
    path = _write(tmp_path / "run.csv", "time", np.arange(300) / RATE)

    with pytest.raises(
        InputError, match=r"run.csv: time column 'clock' not found; the columns are"
    ):
        read_file(path, ReadOptions(time_column="clock"))


def test_time_gap_recorded_in_metadata(tmp_path, caplog):
    seconds = np.arange(2000) / RATE
    seconds[1000:] += 5.0
    path = _write(tmp_path / "gap.csv", "time", seconds, 2000)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        recording = read_file(path)[0]

    steps = recording.metadata["irregular_time_steps"]
    assert recording.sample_rate == pytest.approx(RATE)
    assert recording.n_samples == 2000
    assert steps["column"] == "time"
    assert steps["largest_gap_s"] == pytest.approx(5.001)
    assert steps["largest_gap_row"] == 1000
    assert steps["largest_gap_at_s"] == pytest.approx(6.0)
    assert steps["n_gaps"] == 1
    assert steps["n_steps"] == 1999
    assert "median step" not in caplog.text


def test_time_gaps_warned_once_per_data_set(tmp_path, caplog):
    for index, gap in enumerate([0.5, 5.0, 2.0]):
        seconds = np.arange(2000) / RATE
        seconds[1000 + index :] += gap
        _write(tmp_path / f"run{index}.csv", "time", seconds, 2000)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        load_recordings(tmp_path)

    assert caplog.text.count("have gaps in their time column") == 1
    assert "3 of 3 files have gaps in their time column" in caplog.text
    assert "The largest is 5.001 s" in caplog.text
    assert "run1.csv, column 'time', at data row 1001" in caplog.text
    assert "window start_s" in caplog.text


def test_time_gap_row_after_comments(tmp_path):
    seconds = np.arange(300) / RATE
    seconds[200:] += 0.5
    path = _write(tmp_path / "gap.csv", "Time [ms]", seconds * 1e3)
    path.write_text("# logger export\n" + path.read_text())

    recording = read_file(path)[0]

    steps = recording.metadata["irregular_time_steps"]
    assert steps["largest_gap_row"] == 200
    assert steps["largest_gap_s"] == pytest.approx(0.501)


def test_time_short_steps_warned(tmp_path, caplog):
    seconds = np.arange(300) / RATE
    seconds[150:] -= 0.0008
    _write(tmp_path / "burst.csv", "time", seconds)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(tmp_path)

    steps = loaded.recordings[0].metadata["irregular_time_steps"]
    assert steps["n_short_steps"] == 1
    assert steps["first_short_step_row"] == 150
    assert (
        "1 of 1 files have time steps shorter than 1/1.5 of the median step "
        "(first: " in caplog.text
    )
    assert "burst.csv, column 'time', 1 of 299 steps, first at data row 150" in (
        caplog.text
    )


def test_time_jitter_not_warned(tmp_path, caplog):
    rng = np.random.default_rng(3)
    seconds = np.arange(300) / RATE + rng.uniform(-1e-4, 1e-4, 300)
    path = _write(tmp_path / "jitter.csv", "time", seconds)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(RATE, rel=0.01)
    assert "irregular_time_steps" not in recording.metadata
    assert "median step" not in caplog.text


# One-letter T, several time columns, date columns ---------------------------------


def _temperature_frame(n_samples=400, rising=False, with_time=False):  # noqa: ANN001, ANN202
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"Force": rng.standard_normal(n_samples)})
    if with_time:
        frame.insert(0, "Time [s]", np.arange(n_samples) / RATE)
    if rising:
        frame["T"] = np.linspace(20, 60, n_samples)
    else:
        frame["T"] = 40 + rng.standard_normal(n_samples)
    return frame


@pytest.mark.parametrize("name", ["T", "T_s", "t [ms]"])
def test_noisy_one_letter_t_is_channel(tmp_path, name):
    path = tmp_path / "oven.csv"
    _temperature_frame().rename(columns={"T": name}).to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["Force", name]
    assert recording.n_samples == 400
    assert recording.sample_rate is None


@pytest.mark.parametrize("rising", [False, True])
def test_t_beside_time_column_is_channel(tmp_path, rising):
    path = tmp_path / "run.csv"
    _temperature_frame(rising=rising, with_time=True).to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["Force", "T"]
    assert recording.sample_rate == pytest.approx(RATE)
    assert recording.metadata["time_column"] == "Time [s]"
    assert "unused_time_columns" not in recording.metadata


def test_rising_t_alone_is_time(tmp_path):
    path = tmp_path / "run.csv"
    frame = _temperature_frame().drop(columns="T")
    frame.insert(0, "t", np.arange(400) / RATE)
    frame.to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["Force"]
    assert recording.sample_rate == pytest.approx(RATE)


@pytest.mark.parametrize("with_time", [False, True])
def test_channels_option_keeps_rising_t(tmp_path, with_time):
    path = tmp_path / "run.csv"
    _temperature_frame(rising=True, with_time=with_time).to_csv(path, index=False)

    recording = read_file(path, ReadOptions(channels=("Force", "T")))[0]

    assert recording.channels == ["Force", "T"]
    assert recording.n_samples == 400


def test_channels_option_keeps_time_name(tmp_path):
    path = _write(tmp_path / "run.csv", "Time [ms]", np.arange(300))

    recording = read_file(path, ReadOptions(channels=("Time [ms]", "a")))[0]

    assert recording.channels == ["Time [ms]", "a"]
    assert recording.sample_rate is None


def test_known_channels_keep_time_name(tmp_path):
    path = _write(tmp_path / "run.csv", "Time [ms]", np.arange(300))

    recording = read_file(path, ReadOptions(known_channels=("Time [ms]",)))[0]

    assert recording.channels == ["Time [ms]", "a", "b", "c"]
    assert recording.sample_rate is None


def test_time_column_also_channel_raises(tmp_path):
    path = _write(tmp_path / "run.csv", "clock", np.arange(300) / RATE)
    options = ReadOptions(time_column="clock", channels=("clock", "a"))

    with pytest.raises(
        InputError, match="column 'clock' is named both as the time column and"
    ):
        read_file(path, options)


def test_second_time_column_left_out(tmp_path):
    seconds = np.arange(300) / RATE
    path = _write(tmp_path / "run.csv", "Time [s]", seconds)
    frame = pd.read_csv(path)
    frame.insert(1, "time_ms", seconds * 1e3)
    frame.to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["a", "b", "c"]
    assert recording.metadata["time_column"] == "Time [s]"
    assert recording.metadata["unused_time_columns"] == ["time_ms"]


def _dated_frame(date_text, time_values, n_samples=400):  # noqa: ANN001, ANN202
    rng = np.random.default_rng(8)
    return pd.DataFrame(
        {
            "Date": [date_text] * n_samples,
            "Time": time_values,
            "vib": rng.standard_normal(n_samples),
        }
    )


def test_date_column_beside_seconds(tmp_path):
    path = tmp_path / "dated.csv"
    seconds = np.arange(400) / 100
    frame = _dated_frame("2024-02-14", seconds).rename(columns={"Time": "Time [s]"})
    frame.to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["vib"]
    assert recording.n_samples == 400
    assert recording.sample_rate == pytest.approx(100.0)
    assert recording.metadata["unused_time_columns"] == ["Date"]


def test_date_and_time_text_columns(tmp_path):
    path = tmp_path / "dated.csv"
    start = pd.Timestamp("2024-02-14 10:00:00")
    stamps = start + pd.to_timedelta(np.arange(400) * 10, unit="ms")
    times = [stamp.strftime("%H:%M:%S.%f")[:-3] for stamp in stamps]
    _dated_frame("14.02.2024", times).to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["vib"]
    assert recording.n_samples == 400
    assert recording.sample_rate == pytest.approx(100.0)
    assert recording.metadata["time_column"] == "Time"


def test_date_only_column_is_no_time(tmp_path):
    path = tmp_path / "dated.csv"
    _dated_frame("2024-02-14", 0).drop(columns="Time").to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["vib"]
    assert recording.n_samples == 400
    assert recording.sample_rate is None
    assert recording.metadata["unused_time_columns"] == ["Date"]


def test_unused_time_columns_warned_once(tmp_path, caplog):
    for index in range(3):
        frame = _dated_frame("2024-02-14", np.arange(400) / 100)
        frame.rename(columns={"Time": "Time [s]"}).to_csv(
            tmp_path / f"run{index}.csv", index=False
        )

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        loaded = load_recordings(tmp_path)

    assert loaded.channels == ["vib"]
    assert caplog.text.count("look like time") == 1
    assert "3 of 3 files have columns ['Date'] that look like time" in caplog.text
    assert "read with time column 'Time [s]'" in caplog.text


def test_rising_t_with_given_rate_is_channel(tmp_path):
    path = tmp_path / "oven.csv"
    _temperature_frame(rising=True).to_csv(path, index=False)

    recording = read_file(path, ReadOptions(sample_rate=RATE))[0]

    assert recording.channels == ["Force", "T"]
    assert recording.sample_rate == RATE


def test_time_zone_timestamps_give_rate(tmp_path):
    start = pd.Timestamp("2024-02-14 10:00", tz="Europe/Berlin")
    path = _write(
        tmp_path / "zoned.csv",
        "timestamp",
        start + pd.to_timedelta(np.arange(300), unit="ms"),
    )
    frame = pd.read_csv(path)
    frame.to_parquet(tmp_path / "zoned.parquet")

    for source in (path, tmp_path / "zoned.parquet"):
        recording = read_file(source)[0]

        assert recording.channels == ["a", "b", "c"]
        assert recording.sample_rate == pytest.approx(RATE)


def test_offsets_across_daylight_saving_switch(tmp_path):
    # Berlin moves from +01:00 to +02:00 at 02:00 on this day.
    start = pd.Timestamp("2024-03-31 01:59:59.9", tz="Europe/Berlin")
    times = start + pd.to_timedelta(np.arange(300), unit="ms")
    path = _write(tmp_path / "switch.csv", "timestamp", [t.isoformat() for t in times])

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(RATE)
    assert "irregular_time_steps" not in recording.metadata


def test_missing_first_timestamp_keeps_rate(tmp_path):
    times = pd.Timestamp("2024-02-14 10:00") + pd.to_timedelta(np.arange(300), "ms")
    texts = [t.isoformat() for t in times]
    texts[0] = ""
    path = _write(tmp_path / "late.csv", "timestamp", texts)

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(RATE)


def test_empty_time_cell_is_no_gap(tmp_path):
    seconds = np.arange(2000) / RATE
    seconds[5] = np.nan
    path = _write(tmp_path / "hole.csv", "time", seconds, n_samples=2000)

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(RATE)
    assert "irregular_time_steps" not in recording.metadata


def test_named_time_column_must_increase(tmp_path):
    path = tmp_path / "dated.csv"
    _dated_frame("2024-03-01", np.arange(400) / 100).to_csv(path, index=False)

    with pytest.raises(InputError, match="does not increase"):
        read_file(path, ReadOptions(time_column="Date"))


def test_named_channel_not_warned_time_like(tmp_path, caplog):
    path = _write(tmp_path / "run.csv", "time_ms", np.arange(300))
    options = ReadOptions(channels=("time_ms", "a"))

    with caplog.at_level(logging.WARNING):
        recordings = load_recordings([path], options)

    assert recordings.recordings[0].channels == ["time_ms", "a"]
    assert not [r for r in caplog.records if "time or sample index" in r.message]
