"""CSV time columns: names and units, the time_column option, time-like channels,
irregular time steps, and date columns combined with time-of-day columns."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grindwatch.config import Config
from grindwatch.exceptions import ConfigError, InputError
from grindwatch.io import ReadOptions, load_recordings, read_file
from grindwatch.io.chunks import open_stream
from grindwatch.io.date_time import parse_times
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
        ("Time [d]", 1 / 86400),
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

    assert "1 of 1 recording has channels ['channel_1'] that rise by the same step" in (
        caplog.text
    )


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

    recording = read_file(path, ReadOptions(known_channels=("Time [ms]", "a")))[0]

    # Scoring reads only the model's channels when the file has them all.
    assert recording.channels == ["Time [ms]", "a"]
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


# A date column and a time-of-day column ------------------------------------------

# 400 samples at 100 Hz, from 2 s before midnight to 2 s after it.
PAIR_RATE = 100.0


def _split_stamps(start="2026-03-01 23:59:58", n_samples=400):  # noqa: ANN001, ANN202
    steps = pd.to_timedelta(np.arange(n_samples) * 10, unit="ms")
    return pd.Timestamp(start) + steps


def _split_frame(
    stamps,  # noqa: ANN001
    date_format="%Y-%m-%d",
    time_format="%H:%M:%S.%f",
    names=("Date", "Time"),
):  # noqa: ANN202
    rng = np.random.default_rng(9)
    times = [stamp.strftime(time_format) for stamp in stamps]
    if time_format.endswith("%f"):
        times = [text[:-3] for text in times]  # milliseconds
    return pd.DataFrame(
        {
            names[0]: [stamp.strftime(date_format) for stamp in stamps],
            names[1]: times,
            "vib": rng.standard_normal(len(stamps)),
        }
    )


@pytest.mark.parametrize(
    ("names", "date_format", "start"),
    [
        (("Date", "Time"), "%Y-%m-%d", "2026-03-01 23:59:58"),
        (("Datum", "Uhrzeit"), "%d.%m.%Y", "2026-03-01 23:59:58"),
        (("date", "time"), "%Y/%m/%d", "2026-03-01 23:59:58"),
        (("Datum", "Zeit"), "%d.%m.%y", "2025-12-31 23:59:58"),
        (("Date (dd.mm.yyyy)", "Time [hh:mm:ss]"), "%d.%m.%Y", "2026-03-01 23:59:58"),
        (("Day", "Time of day"), "%d %b %Y", "2026-03-01 23:59:58"),
        # Day first, because 13 cannot be a month.
        (("Date", "Time"), "%d/%m/%Y", "2026-03-12 23:59:58"),
        # 03/01 and 04/01 fit both orders, but only day first puts them a day apart.
        (("Date", "Time"), "%d/%m/%Y", "2026-01-03 23:59:58"),
        (("Date", "Time"), "%m/%d/%Y", "2026-01-03 23:59:58"),
        (("Date", "Time"), "%d-%m-%Y", "2026-01-03 23:59:58"),
    ],
)
def test_date_and_time_columns_cross_midnight(tmp_path, names, date_format, start):
    path = tmp_path / "night.csv"
    frame = _split_frame(_split_stamps(start), date_format, names=names)
    frame.to_csv(path, sep=";", index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["vib"]
    assert recording.n_samples == 400
    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert recording.metadata["time_column"] == names[1]
    assert recording.metadata["date_column"] == names[0]
    assert "irregular_time_steps" not in recording.metadata
    assert "unused_time_columns" not in recording.metadata


@pytest.mark.parametrize(
    ("names", "offset"), [(("Date", "Time"), 0), (("Datum", "Uhrzeit"), 693_960)]
)
def test_serial_day_date_column_crosses_midnight(tmp_path, names, offset):
    path = tmp_path / "night.csv"
    stamps = _split_stamps()
    frame = _split_frame(stamps, names=names)
    # A date cell that lost its format: whole days since 1899-12-30 (46082 is
    # 2026-03-01), or a MATLAB datenum with the offset.
    frame[names[0]] = (stamps.normalize() - pd.Timestamp("1899-12-30")).days + offset
    frame.to_csv(path, sep=";", index=False)

    # Before, the date column was not read, so the time went back at midnight
    # and the file was skipped.
    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert recording.metadata["date_column"] == names[0]
    assert "irregular_time_steps" not in recording.metadata


@pytest.mark.parametrize(
    "time_format",
    ["%H:%M:%S,%f", "%I:%M:%S.%f %p", "%H:%M:%S.%f000"],
)
def test_time_of_day_formats_cross_midnight(tmp_path, time_format):
    path = tmp_path / "night.csv"
    _split_frame(_split_stamps(), "%d.%m.%Y", time_format).to_csv(
        path, sep=";", index=False
    )

    recording = read_file(path)[0]

    assert recording.channels == ["vib"]
    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert "irregular_time_steps" not in recording.metadata


def test_whole_seconds_cross_midnight(tmp_path):
    path = tmp_path / "slow.csv"
    stamps = pd.Timestamp("2026-03-01 23:58:00") + pd.to_timedelta(
        np.arange(300), unit="s"
    )
    _split_frame(stamps, "%Y-%m-%d", "%H:%M:%S").to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.n_samples == 300
    assert recording.sample_rate == pytest.approx(1.0)
    assert "irregular_time_steps" not in recording.metadata


def test_numeric_date_column_is_no_channel(tmp_path):
    path = tmp_path / "plc.csv"
    frame = _split_frame(_split_stamps(), "%Y%m%d", names=("Datum", "Uhrzeit"))
    frame["Datum"] = frame["Datum"].astype(int)
    frame.to_csv(path, sep=";", index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["vib"]
    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert recording.metadata["date_column"] == "Datum"


def test_date_time_gap_across_midnight(tmp_path):
    stamps = _split_stamps().to_series(index=range(400))
    stamps.iloc[200:] += pd.Timedelta(seconds=5)
    path = tmp_path / "pause.csv"
    _split_frame(stamps).to_csv(path, index=False)

    recording = read_file(path)[0]

    steps = recording.metadata["irregular_time_steps"]
    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert steps["column"] == "Time"
    assert steps["n_gaps"] == 1
    assert steps["largest_gap_row"] == 200
    assert steps["largest_gap_s"] == pytest.approx(5.01)


def test_date_time_repeats_dropped(tmp_path, caplog):
    stamps = _split_stamps().to_series(index=range(400))
    stamps.iloc[201] = stamps.iloc[200]
    path = tmp_path / "twice.csv"
    _split_frame(stamps).to_csv(path, index=False)

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        recording = read_file(path)[0]

    assert recording.n_samples == 399
    assert "dropped 1 row that repeats a timestamp of column 'Time'" in caplog.text
    assert "first at data row 201" in caplog.text


def test_empty_date_time_cells_are_no_gap(tmp_path):
    frame = _split_frame(_split_stamps())
    frame.loc[150, "Date"] = None
    frame.loc[250, "Time"] = None
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.n_samples == 400
    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert "irregular_time_steps" not in recording.metadata


def test_date_not_changing_at_midnight_raises(tmp_path):
    frame = _split_frame(_split_stamps())
    frame["Date"] = "2026-03-01"
    path = tmp_path / "stuck.csv"
    frame.to_csv(path, index=False)

    with pytest.raises(
        InputError,
        match=r"stuck.csv: time column 'Time' \(combined with date column 'Date'\) "
        r"goes backwards at data row 200 .*check that the dates in column 'Date' "
        "change at midnight",
    ):
        read_file(path)


@pytest.mark.parametrize(
    ("column", "cell", "problem"),
    [
        ("Datum", "32.03.2026", "is not a date"),
        ("Datum", "01.03.2026 10:00", "is not a date"),
        ("Uhrzeit", "24:00:01", "is not a time of day"),
        ("Uhrzeit", "ERR", "is not a time of day"),
    ],
)
def test_invalid_date_time_cell_raises(tmp_path, column, cell, problem):
    frame = _split_frame(_split_stamps(), "%d.%m.%Y", names=("Datum", "Uhrzeit"))
    frame.loc[7, column] = cell
    path = tmp_path / "broken.csv"
    frame.to_csv(path, sep=";", index=False)

    with pytest.raises(InputError) as raised:
        read_file(path)

    message = str(raised.value)
    assert message.startswith(f"{path}: cannot combine date column 'Datum' with")
    assert f"{cell!r} at data row 7 {problem}" in message
    assert "correct or delete that row" in message


def test_ambiguous_dates_far_apart_raise(tmp_path):
    stamps = _split_stamps().to_series(index=range(400))
    stamps.iloc[200:] += pd.Timedelta(days=3)
    path = tmp_path / "weekend.csv"
    _split_frame(stamps, "%d/%m/%Y").to_csv(path, index=False)

    with pytest.raises(
        InputError,
        match=r"weekend.csv: date column 'Date' has dates such as '01/03/2026' and "
        r"'05/03/2026' that may be day first or month first.*write the dates "
        r"year first \(2026-03-01\)",
    ):
        read_file(path)


def test_mixed_date_orders_raise(tmp_path):
    frame = _split_frame(_split_stamps("2026-03-13 23:59:58"), "%d/%m/%Y")
    frame.loc[0, "Date"] = "03/13/2026"
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)

    with pytest.raises(
        InputError,
        match="has day-first dates \\('13/03/2026'\\) and month-first dates "
        "\\('03/13/2026'\\)",
    ):
        read_file(path)


def test_date_beside_seconds_not_combined(tmp_path):
    frame = _split_frame(_split_stamps())
    frame.insert(0, "Time [s]", np.arange(400) / PAIR_RATE)
    path = tmp_path / "both.csv"
    frame.to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.channels == ["vib"]
    assert recording.metadata["time_column"] == "Time [s]"
    assert "date_column" not in recording.metadata
    assert recording.metadata["unused_time_columns"] == ["Date", "Time"]


def test_date_and_time_in_feature_table_left_out(tmp_path):
    frame = _split_frame(_split_stamps(n_samples=5))
    frame.loc[2, "Date"] = "not a date"
    frame["force"] = np.arange(5.0)
    path = tmp_path / "cycles.csv"
    frame.to_csv(path, index=False)

    rows = read_file(path, ReadOptions(kind="table"))

    assert len(rows) == 5
    assert rows[0].channels == ["vib", "force"]


def test_date_and_time_columns_from_parquet(tmp_path):
    stamps = _split_stamps()
    table = pa.table(
        {
            "Date": pa.array([stamp.date() for stamp in stamps], pa.date32()),
            "Time": pa.array([stamp.time() for stamp in stamps], pa.time64("us")),
            "vib": np.sin(np.arange(400) / 10.0),
        }
    )
    path = tmp_path / "night.parquet"
    pq.write_table(table, path, row_group_size=100)

    recording = read_file(path)[0]
    stream = open_stream(path)

    for read in (recording, stream):
        assert read.channels == ["vib"]
        assert read.sample_rate == pytest.approx(PAIR_RATE)
        assert read.metadata["date_column"] == "Date"
        assert "irregular_time_steps" not in read.metadata


# The date_column option -----------------------------------------------------------


def test_date_column_option_names_pair(tmp_path):
    path = tmp_path / "plc.csv"
    names = ("Tag", "Zeitpunkt")
    _split_frame(_split_stamps(), "%d.%m.%Y", names=names).to_csv(path, index=False)
    options = read_options(
        Config().with_overrides(
            {"data.date_column": "Tag", "data.time_column": "Zeitpunkt"}
        )
    )

    recording = read_file(path, options)[0]

    assert recording.channels == ["vib"]
    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert recording.metadata["date_column"] == "Tag"
    assert recording.metadata["time_column"] == "Zeitpunkt"


def test_date_column_option_finds_clock_column(tmp_path):
    path = tmp_path / "plc.csv"
    names = ("Tag", "Zeitpunkt")
    _split_frame(_split_stamps(), "%d.%m.%Y", names=names).to_csv(path, index=False)

    recording = read_file(path, ReadOptions(date_column="Tag"))[0]

    assert recording.channels == ["vib"]
    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert recording.metadata["time_column"] == "Zeitpunkt"


def test_time_column_option_pairs_with_date(tmp_path):
    path = tmp_path / "plc.csv"
    names = ("Datum", "Zeitpunkt")
    _split_frame(_split_stamps(), "%d.%m.%Y", names=names).to_csv(path, index=False)

    recording = read_file(path, ReadOptions(time_column="Zeitpunkt"))[0]

    assert recording.channels == ["vib"]
    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert recording.metadata["date_column"] == "Datum"


def test_time_column_option_of_seconds_not_paired(tmp_path):
    path = tmp_path / "plc.csv"
    frame = _split_frame(_split_stamps(), "%d.%m.%Y", names=("Datum", "Zeitpunkt"))
    frame["clock"] = np.arange(400) / PAIR_RATE
    frame.to_csv(path, index=False)

    recording = read_file(path, ReadOptions(time_column="clock"))[0]

    assert recording.channels == ["vib"]
    assert recording.metadata["time_column"] == "clock"
    assert "date_column" not in recording.metadata
    assert recording.metadata["unused_time_columns"] == ["Datum", "Zeitpunkt"]


def test_unnamed_pair_read_as_before(tmp_path):
    path = tmp_path / "plc.csv"
    names = ("Tag", "Zeitpunkt")
    _split_frame(_split_stamps(), "%d.%m.%Y", names=names).to_csv(path, index=False)

    with pytest.raises(InputError, match="time column 'Zeitpunkt' goes backwards"):
        read_file(path)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            ReadOptions(date_column="Datum"),
            r"date column 'Datum' not found; the columns are \['Date', 'Time', "
            r"'vib'\]; fix data.date_column",
        ),
        (
            ReadOptions(date_column="Date", channels=("Date", "vib")),
            "column 'Date' is named both as the date column and as a channel",
        ),
        (
            ReadOptions(date_column="Date", time_column="vib"),
            r"with time column 'vib': '-?\d\.\d+' at data row 0 is not a time of day",
        ),
    ],
)
def test_date_column_option_invalid_raises(tmp_path, options, match):
    path = tmp_path / "night.csv"
    _split_frame(_split_stamps()).to_csv(path, index=False)

    with pytest.raises(InputError, match=match):
        read_file(path, options)


def test_date_column_option_without_clock_raises(tmp_path):
    path = tmp_path / "dates.csv"
    _split_frame(_split_stamps()).drop(columns="Time").to_csv(path, index=False)

    with pytest.raises(
        InputError,
        match="no time-of-day column found beside date column 'Date' "
        r"\(data.date_column\).*name the time-of-day column with data.time_column",
    ):
        read_file(path, ReadOptions(date_column="Date"))


def test_date_column_setting_equal_to_time_column_rejected():
    with pytest.raises(ConfigError, match="date_column and time_column both name"):
        Config().with_overrides(
            {"data.date_column": "Datum", "data.time_column": "Datum"}
        )
    with pytest.raises(ConfigError, match="date_column and time_column both name"):
        ReadOptions(date_column="Datum", time_column="Datum")


def test_one_column_dotted_dates_read_day_first(tmp_path):
    stamps = _split_stamps()
    path = tmp_path / "one.csv"
    pd.DataFrame(
        {
            "timestamp": [t.strftime("%d.%m.%Y %H:%M:%S.%f")[:-3] for t in stamps],
            "vib": np.random.default_rng(0).standard_normal(len(stamps)),
        }
    ).to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert "irregular_time_steps" not in recording.metadata


@pytest.mark.parametrize(
    ("first", "n_first"),
    [("dotted", 300), ("iso", 300), ("iso", 100), ("iso", 380), ("dotted", 20)],
)
def test_one_column_mixed_iso_and_dotted_dates(tmp_path, first, n_first):
    # Files merged from two loggers. Day-first reading turned 2026-03-02 into
    # 3 February, and month-first reading turned 02.03.2026 into 3 February.
    formats = {"dotted": "%d.%m.%Y %H:%M:%S.%f", "iso": "%Y-%m-%d %H:%M:%S.%f"}
    other = "iso" if first == "dotted" else "dotted"
    stamps = _split_stamps()
    texts = [
        t.strftime(formats[first if i < n_first else other])[:-3]
        for i, t in enumerate(stamps)
    ]
    path = tmp_path / "merged.csv"
    pd.DataFrame(
        {
            "timestamp": texts,
            "vib": np.random.default_rng(0).standard_normal(len(stamps)),
        }
    ).to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.n_samples == len(stamps)
    assert recording.sample_rate == pytest.approx(PAIR_RATE)
    assert "irregular_time_steps" not in recording.metadata


def test_clock_times_past_midnight_name_date_setting(tmp_path):
    path = tmp_path / "renamed.csv"
    names = ("Tag", "Uhrzeit")
    _split_frame(_split_stamps(), "%d.%m.%Y", names=names).to_csv(path, index=False)

    with pytest.raises(InputError, match="data.date_column") as raised:
        read_file(path)

    assert "goes backwards at data row 200" in str(raised.value)
    rate = read_file(path, ReadOptions(date_column="Tag"))[0].sample_rate
    assert rate == pytest.approx(PAIR_RATE)


@pytest.mark.parametrize("first_day", [12, 3])
def test_one_column_slashed_dates_read_day_first(tmp_path, first_day):
    # A day after the 12th shows the order, also when it comes late in the
    # file. Without one, the order without a jump at the change of date wins.
    start = pd.Timestamp(2026, 3, first_day, 23, 59, 50)
    stamps = pd.date_range(start, periods=400, freq="100ms")
    path = tmp_path / "slashed.csv"
    pd.DataFrame(
        {
            "timestamp": [t.strftime("%d/%m/%Y %H:%M:%S.%f")[:-3] for t in stamps],
            "vib": np.random.default_rng(0).standard_normal(len(stamps)),
        }
    ).to_csv(path, index=False)

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(10.0)
    assert "irregular_time_steps" not in recording.metadata
    assert recording.n_samples == 400


def _local_times(start_utc: str, zone: str, n_samples: int = 7200) -> pd.Series:
    utc = pd.date_range(start_utc, periods=n_samples, freq="1s", tz="UTC")
    return pd.Series(utc.tz_convert(zone).tz_localize(None))


@pytest.mark.parametrize(
    ("start_utc", "switch"),
    [("2026-10-25 00:30:00", "back"), ("2026-03-29 00:30:00", "forward")],
)
def test_timezone_reads_across_daylight_saving(tmp_path, start_utc, switch):
    local = _local_times(start_utc, "Europe/Berlin")
    vib = np.random.default_rng(0).standard_normal(len(local))
    one = tmp_path / f"one_{switch}.csv"
    pd.DataFrame(
        {"timestamp": local.dt.strftime("%Y-%m-%d %H:%M:%S"), "vib": vib}
    ).to_csv(one, index=False)
    pair = tmp_path / f"pair_{switch}.csv"
    pd.DataFrame(
        {
            "Date": local.dt.strftime("%d.%m.%Y"),
            "Time": local.dt.strftime("%H:%M:%S"),
            "vib": vib,
        }
    ).to_csv(pair, index=False)
    zone = ReadOptions(timezone="Europe/Berlin")

    for path in (one, pair):
        recording = read_file(path, zone)[0]
        assert recording.n_samples == 7200
        assert recording.sample_rate == pytest.approx(1.0)
        assert "irregular_time_steps" not in recording.metadata


def test_repeated_hour_without_timezone_names_setting(tmp_path):
    local = _local_times("2026-10-25 00:30:00", "Europe/Berlin")
    path = tmp_path / "back.csv"
    pd.DataFrame(
        {"timestamp": local.dt.strftime("%Y-%m-%d %H:%M:%S"), "vib": np.arange(7200.0)}
    ).to_csv(path, index=False)

    with pytest.raises(InputError, match="goes backwards at data row 1800") as raised:
        read_file(path)

    assert "data.timezone" in raised.value.fix


def test_timezone_leaves_offsets_and_numbers_alone(tmp_path):
    stamps = pd.date_range("2026-10-25 00:30:00", periods=100, freq="1s", tz="UTC")
    path = tmp_path / "offsets.csv"
    pd.DataFrame(
        {
            "timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "vib": np.arange(100.0),
        }
    ).to_csv(path, index=False)
    seconds = tmp_path / "seconds.csv"
    pd.DataFrame({"time": np.arange(100) / 10, "vib": np.arange(100.0)}).to_csv(
        seconds, index=False
    )
    zone = ReadOptions(timezone="America/Chicago")

    assert read_file(path, zone)[0].sample_rate == pytest.approx(1.0)
    assert read_file(seconds, zone)[0].sample_rate == pytest.approx(10.0)


def test_timezone_setting_rejects_unknown_zone():
    with pytest.raises(ConfigError, match="unknown time zone 'Europe/Berlinn'"):
        Config().with_overrides({"data.timezone": "Europe/Berlinn"})


def test_timezone_rejects_skipped_local_times(tmp_path):
    # Clocks in Berlin jump from 02:00 to 03:00 on 29 March 2026.
    stamps = pd.date_range("2026-03-29 01:59:00", periods=120, freq="1s")
    path = tmp_path / "skipped.csv"
    pd.DataFrame(
        {"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "vib": np.arange(120.0)}
    ).to_csv(path, index=False)

    with pytest.raises(
        InputError, match="not valid local times in Europe/Berlin"
    ) as raised:
        read_file(path, ReadOptions(timezone="Europe/Berlin"))

    assert "2026-03-29 02:00:00 is a nonexistent time" in raised.value.problem
    assert "argument" not in raised.value.problem


def test_damaged_time_cell_raises(tmp_path):
    seconds = (np.arange(300) / 2000).astype(object)
    seconds[120] = "ERR"
    path = _write(tmp_path / "run.csv", "time", seconds)

    # Read with no time column, the file got the model's rate when scored.
    with pytest.raises(
        InputError, match="the time column 'time' has 'ERR' at data row 120"
    ):
        read_file(path)


def test_time_zone_abbreviation_raises(tmp_path):
    stamps = pd.date_range("2026-03-01 10:00:00", periods=300, freq="1ms")
    texts = [stamp.strftime("%Y-%m-%d %H:%M:%S.%f") + " CET" for stamp in stamps]
    path = _write(tmp_path / "run.csv", "time", texts)

    # pandas 3.1 does not parse "CET", and such a file was read at no sample rate.
    with pytest.raises(InputError, match="none of its cells parses") as raised:
        read_file(path)

    assert "'2026-03-01 10:00:00.000000 CET' at data row 0" in raised.value.problem
    assert "data.timezone" in raised.value.fix


def test_minutes_and_seconds_read_as_elapsed(tmp_path):
    # Spreadsheets show elapsed time as mm:ss.000, here 10 ms steps to 2.99 s.
    seconds = np.arange(300) / 100
    texts = [f"{int(value // 60):02d}:{value % 60:06.3f}" for value in seconds]
    path = _write(tmp_path / "run.csv", "Time", texts)

    # Before, pandas read 00:00.010 as a fraction of a minute in whole seconds,
    # so rows were dropped as repeated times and the rate was 1 sample/s.
    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(100.0)
    assert recording.n_samples == 300
    assert "irregular_time_steps" not in recording.metadata


def _minutes_and_seconds(seconds: np.ndarray) -> list[str]:
    return [f"{int(value // 60):02d}:{value % 60:06.3f}" for value in seconds]


def test_minutes_past_an_hour_read_as_elapsed(tmp_path):
    # 0.5 s steps over 130 minutes: 00:00.000 ... 125:30.500 ... 129:59.500.
    seconds = np.arange(15_600) / 2
    texts = _minutes_and_seconds(seconds)
    assert texts[15_061] == "125:30.500"
    path = _write(tmp_path / "run.csv", "Time", texts, n_samples=seconds.size)

    # Before, minutes above 59 did not parse, so the column was no time column
    # and reading raised that none of its cells parses.
    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(2.0)
    assert recording.n_samples == seconds.size
    assert recording.metadata["time_column"] == "Time"
    assert "irregular_time_steps" not in recording.metadata


def test_minutes_past_an_hour_leave_no_gap(tmp_path):
    # 10 ms steps from 59:58.000 to 60:01.990: the hour is crossed in the file.
    seconds = 3598 + np.arange(400) / 100
    path = _write(tmp_path / "run.csv", "Time", _minutes_and_seconds(seconds), 400)

    # Before, half the cells were past the hour and did not parse, so the
    # column was no time column.
    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(100.0)
    assert "irregular_time_steps" not in recording.metadata


def test_hours_past_a_day_read_as_elapsed(tmp_path):
    # Spreadsheets show elapsed hours above 23 as [h]:mm:ss: 23:50:00 to 24:39:50.
    seconds = 23 * 3600 + 50 * 60 + np.arange(300) * 10
    texts = [
        f"{value // 3600}:{value // 60 % 60:02d}:{value % 60:02d}" for value in seconds
    ]
    assert texts[60] == "24:00:00"
    path = _write(tmp_path / "run.csv", "Time", texts)

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(0.1)
    assert recording.n_samples == 300
    assert "irregular_time_steps" not in recording.metadata


def test_hours_and_minutes_stay_clock_times(tmp_path):
    # Without seconds or a fraction, 08:00 is a clock time, one sample a minute.
    stamps = pd.date_range("2026-03-01 08:00", periods=300, freq="1min")
    path = _write(tmp_path / "run.csv", "Time", stamps.strftime("%H:%M"))

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(1 / 60)
    assert recording.n_samples == 300


@pytest.mark.parametrize(
    ("cell", "elapsed_s", "clock_s"),
    [
        ("59:59.990", 3599.99, 3599.99),
        ("125:30.250", 7530.25, None),
        ("26:00:00", 93600.0, None),
        ("26:00:00.5", 93600.5, None),
        ("23:59", 86340.0, 86340.0),
        ("11:30 PM", 84600.0, 84600.0),
        ("12:60.000", None, None),  # 60 seconds
        ("26:00", None, None),  # 26 hours or 26 minutes
        ("25:61:00", None, None),  # 61 minutes after hours
        ("13:00 PM", None, None),
        ("1:2.5", None, None),
    ],
)
def test_parse_times_elapsed_ranges(cell, elapsed_s, clock_s):
    column = pd.Series([cell])

    for elapsed, expected in ((True, elapsed_s), (False, clock_s)):
        parsed = parse_times(column, elapsed=elapsed)
        if expected is None:
            assert parsed.invalid[0], (cell, elapsed)
        else:
            assert not parsed.invalid[0], (cell, elapsed)
            seconds = parsed.values[0] / np.timedelta64(1, "s")
            assert seconds == pytest.approx(expected), (cell, elapsed)


def test_elapsed_past_an_hour_beside_date(tmp_path):
    # From 59:58.000 on, most cells are no time of day, so the date column is
    # not combined with them and the Time column is read as elapsed time.
    seconds = 3598 + np.arange(300)
    frame = pd.DataFrame(
        {
            "Date": ["2026-03-01"] * 300,
            "Time": _minutes_and_seconds(seconds),
            "a": make_cycle(0, 300)[0],
        }
    )
    frame.to_csv(tmp_path / "run.csv", index=False)

    recording = read_file(tmp_path / "run.csv")[0]

    assert recording.sample_rate == pytest.approx(1.0)
    assert recording.metadata["time_column"] == "Time"
    assert recording.metadata["unused_time_columns"] == ["Date"]


@pytest.mark.parametrize("name", ["elapsed", "Laufzeit"])
def test_duration_text_from_pandas_read(tmp_path, name):
    # pandas writes a timedelta column to CSV as "0 days 00:00:00.005000".
    durations = pd.to_timedelta(np.arange(300) / 200, unit="s")
    path = _write(tmp_path / "run.csv", name, durations)

    # Before, the column was left out and the file had no sample rate.
    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(200.0)
    assert recording.channels == ["a", "b", "c"]
    assert recording.metadata["time_column"] == name


def test_time_running_backwards_raises(tmp_path):
    path = _write(tmp_path / "run.csv", "Zeit [s]", np.arange(300)[::-1] / RATE)

    with pytest.raises(InputError, match="'Zeit \\[s\\]' runs backwards"):
        read_file(path)


def test_given_rate_leaves_a_damaged_time_column_out(tmp_path):
    path = _write(tmp_path / "run.csv", "time", np.arange(300)[::-1] / RATE)

    recording = read_file(path, ReadOptions(sample_rate=RATE))[0]

    assert recording.sample_rate == RATE
    assert recording.metadata["unused_time_columns"] == ["time"]


def test_parquet_timedelta_and_text_times(tmp_path):
    seconds = np.arange(300) / 2000
    for name, values in (
        ("elapsed.parquet", pd.to_timedelta(seconds, unit="s")),
        ("text.parquet", [f"{value:.4f}" for value in seconds]),
    ):
        frame = pd.DataFrame(make_cycle(0, 300).T, columns=["a", "b", "c"])
        frame.insert(0, "time", values)
        frame.to_parquet(tmp_path / name)

        recording = read_file(tmp_path / name)[0]

        assert recording.sample_rate == pytest.approx(2000.0)
        assert recording.channels == ["a", "b", "c"]


def _repeated_hour_frame() -> pd.DataFrame:
    # One sample every 5 min, with one hour of timestamps written twice, as in
    # a logger whose clock was set back.
    times = pd.date_range("2026-01-07 00:00", periods=400, freq="5min")
    times = times.append(times[-12:]).append(
        pd.date_range(times[-1] + pd.Timedelta("5min"), periods=100, freq="5min")
    )
    values = np.sin(np.arange(times.size) / 7.0)
    return pd.DataFrame(
        {"timestamp": times.strftime("%Y-%m-%d %H:%M:%S"), "value": values}
    )


def test_ignore_time_reads_rows_in_file_order(tmp_path):
    frame = _repeated_hour_frame()
    frame.to_csv(tmp_path / "temperature.csv", index=False)
    config = Config().with_overrides(
        {"data.ignore_time": True, "data.sample_rate": 1 / 300}
    )

    with pytest.raises(InputError, match="data.ignore_time=true"):
        read_file(tmp_path / "temperature.csv")
    recording = read_file(tmp_path / "temperature.csv", read_options(config))[0]

    assert recording.channels == ["value"]
    assert recording.sample_rate == pytest.approx(1 / 300)
    assert recording.n_samples == len(frame)
    np.testing.assert_allclose(recording.data[0], frame["value"], rtol=1e-6)
    assert recording.metadata["unused_time_columns"] == ["timestamp"]
    assert "time_column" not in recording.metadata


def test_ignore_time_in_chunked_parquet(tmp_path):
    frame = _repeated_hour_frame()
    frame.to_parquet(tmp_path / "temperature.parquet", row_group_size=128)
    options = ReadOptions(ignore_time=True, sample_rate=1 / 300)

    stream = open_stream(tmp_path / "temperature.parquet", options)

    assert stream.sample_rate == pytest.approx(1 / 300)
    assert stream.channels == ["value"]


def test_ignore_time_needs_rate_and_no_time_settings():
    with pytest.raises(ConfigError, match="ignore_time needs sample_rate"):
        Config().with_overrides({"data.ignore_time": True})
    with pytest.raises(ConfigError, match="time_column='clock' is set"):
        Config().with_overrides(
            {
                "data.ignore_time": True,
                "data.sample_rate": 100,
                "data.time_column": "clock",
            }
        )


def test_time_column_rate_drops_rounding_noise(tmp_path):
    # Differences of arange(n) / 10 kHz in seconds are not exactly 1e-4, so the
    # plain reciprocal of the median step is 10000.0000000011 or so.
    rate = 10_000.0
    seconds = np.arange(3000) / rate
    assert 1.0 / float(np.median(np.diff(seconds))) != rate
    path = _write(tmp_path / "run.csv", "Time [s]", seconds, n_samples=3000)

    recording = read_file(path)[0]

    assert recording.sample_rate == rate


def _serial_days(n_samples: int, rate: float) -> np.ndarray:
    # Spreadsheet serial dates from 2026-03-01 10:00, rounded to the 15
    # significant digits that Excel writes.
    start = (pd.Timestamp("2026-03-01 10:00") - pd.Timestamp("1899-12-30")).days
    days = start + 10 / 24 + np.arange(n_samples) / rate / 86400
    return np.round(days, 10)


@pytest.mark.parametrize("name", ["date", "Datetime", "date_time"])
def test_serial_dates_in_date_column(tmp_path, name):
    path = _write(tmp_path / "run.csv", name, _serial_days(300, 2.0))

    # Before, the serial days were read as seconds: 172800 samples/s.
    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(2.0)
    assert recording.metadata["time_column"] == name
    assert "irregular_time_steps" not in recording.metadata


@pytest.mark.parametrize("rate", [1.0, 100.0, 1000.0, 3000.0])
def test_serial_dates_give_one_rate(tmp_path, rate):
    # Rounded to 15 digits, serial days jitter by 8.64 us, so the median step
    # of a 1 kHz file was off by up to 0.7% and differed between files.
    for index, n_samples in enumerate((300, 1000, 4000)):
        days = _serial_days(n_samples + index * 7, rate)[index * 7 :]
        _write(tmp_path / f"run{index}.csv", "Date", days, n_samples)

    loaded = load_recordings(tmp_path)

    rates = [recording.sample_rate for recording in loaded.recordings]
    assert rates == [rate] * 3


def test_matlab_datenums_in_datetime_column(tmp_path):
    days = _serial_days(300, 10.0) + 693_960  # datenum of 1899-12-30 is 693960
    path = _write(tmp_path / "run.csv", "datetime", days)

    recording = read_file(path)[0]
    path = _write(tmp_path / "run.csv", "Time", days)
    with pytest.raises(InputError, match="as MATLAB datenums") as raised:
        read_file(path)

    assert recording.sample_rate == pytest.approx(10.0)
    assert "'Time [d]' for serial dates" in raised.value.fix


@pytest.mark.parametrize(
    ("offset", "rate"), [(0, 50_000.0), (693_960, 5_000.0), (693_960, 10_000.0)]
)
def test_days_too_coarse_for_rate_raise(tmp_path, offset, rate):
    # Serial dates (offset 0) round to 8.64 us and datenums to 86.4 us when
    # written with 15 significant digits, as spreadsheets write them.
    days = np.array([float(f"{day:.15g}") for day in _serial_days(2000, rate) + offset])
    path = _write(tmp_path / "run.csv", "date", days, n_samples=2000)

    # Before, the rate came out 1 % to 16 % high, with a false gap warning.
    with pytest.raises(InputError, match="too coarse for its steps") as raised:
        read_file(path)

    assert "'date'" in str(raised.value)
    assert "data.sample_rate" in raised.value.fix


def test_whole_serial_days_in_date_column(tmp_path):
    days = 46082.0 + np.arange(300)
    path = _write(tmp_path / "daily.csv", "Date", days)

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(1 / 86400)


def test_serial_days_in_time_column_raise(tmp_path):
    path = _write(tmp_path / "run.csv", "time", _serial_days(300, 2.0))

    # Before, the file was read at 172800 samples/s without a warning.
    with pytest.raises(InputError, match="time column 'time' has no unit") as raised:
        read_file(path)

    assert "46082.41667 to 46082.4184" in raised.value.problem
    assert "they span 149.5 s" in raised.value.problem
    assert "'time [d]' for serial dates" in raised.value.fix
    assert "'time [s]' for seconds" in raised.value.fix


@pytest.mark.parametrize(("unit", "rate"), [("d", 2.0), ("s", 2.0 * 86400)])
def test_serial_days_unit_in_name(tmp_path, unit, rate):
    path = _write(tmp_path / "run.csv", f"time [{unit}]", _serial_days(300, 2.0))

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(rate, rel=1e-4)


def test_seconds_since_start_not_serial_days(tmp_path):
    # Seconds since a logger started, in the serial-day range but spanning 3 s.
    seconds = 23_456.0 + np.arange(300) / 100
    path = _write(tmp_path / "run.csv", "time", seconds)

    recording = read_file(path)[0]

    assert recording.sample_rate == pytest.approx(100.0)


def test_serial_days_in_chunked_parquet(tmp_path):
    frame = pd.DataFrame(make_cycle(0, 3000).T, columns=["a", "b", "c"])
    frame.insert(0, "time", _serial_days(3000, 2.0))
    frame.to_parquet(tmp_path / "days.parquet", row_group_size=500)
    # The first row group spans 0.5 s, the file 3 s.
    frame["time"] = 23_456.0 + np.arange(3000) / 1000
    frame.to_parquet(tmp_path / "seconds.parquet", row_group_size=500)

    with pytest.raises(InputError, match="time column 'time' has no unit"):
        open_stream(tmp_path / "days.parquet", ReadOptions())
    stream = open_stream(tmp_path / "seconds.parquet", ReadOptions())

    assert stream.sample_rate == pytest.approx(1000.0)
