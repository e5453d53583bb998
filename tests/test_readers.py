"""Readers: each format, channel naming, label and time columns, data set expansion."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from grindwatch.config import Config
from grindwatch.exceptions import ConfigError, InputError
from grindwatch.io import ReadOptions, load_recordings, read_file
from grindwatch.pipeline import read_options


def test_csv_semicolon_with_decimal_comma(tmp_path):
    path = tmp_path / "cycle.csv"
    path.write_text(
        "time;force;power\n0,000;1,5;2,25\n0,001;1,75;2,5\n0,002;2,0;2,75\n"
    )

    (recording,) = read_file(path)

    assert recording.channels == ["force", "power"]
    np.testing.assert_allclose(recording.data[0], [1.5, 1.75, 2.0])
    assert recording.sample_rate == pytest.approx(1000.0)
    assert recording.data.dtype == np.float32


def test_csv_late_decimal_comma_names_cell(tmp_path):
    # The detection reads the first lines, where an idle machine logs zeros.
    rows = [f"{i};0;{i % 5}" for i in range(40)] + ["40;49,98;0", "41;51,5;1"]
    path = tmp_path / "idle.csv"
    path.write_text("time_ms;force;step\n" + "\n".join(rows) + "\n")

    with pytest.raises(InputError) as raised:
        read_file(path)
    (recording,) = read_file(path, ReadOptions(decimal=","))

    # Before, the message showed the first cell, '0', as the number stored as text.
    assert "(first: '49,98' at data row 40)" in raised.value.problem
    assert raised.value.fix == "for a decimal comma set data.decimal to ','"
    assert recording.channels == ["force", "step"]
    assert recording.data[0, -2:].tolist() == pytest.approx([49.98, 51.5])


def test_csv_percent_numbers_raise(tmp_path):
    path = tmp_path / "run.csv"
    rows = "".join(f"{i / 1000:.3f},{i % 90 + 0.5:.1f} %,{i % 5}\n" for i in range(300))
    path.write_text("time,spindle_load,step\n" + rows)

    # Before, the column was left out as text, with a warning at most.
    with pytest.raises(InputError) as raised:
        read_file(path)
    (recording,) = read_file(path, ReadOptions(channels=["step"]))

    assert "column 'spindle_load' holds numbers stored as text" in raised.value.problem
    assert "(first: '0.5 %' at data row 0)" in raised.value.problem
    assert raised.value.fix == "export the numbers without the % sign"
    assert recording.channels == ["step"]


def test_csv_name_with_delimiter_raises(tmp_path):
    path = tmp_path / "run.csv"
    rows = "".join(f"{i / 1000:.3f},{np.sin(i / 7):.4f},{i % 5}\n" for i in range(300))
    path.write_text("time,Force (kN, filtered),speed\n" + rows)

    # Before, the error named 300 NaN samples in the column 'speed'.
    with pytest.raises(InputError) as raised:
        read_file(path)

    assert "header line has 4 ','-separated names" in raised.value.problem
    assert "data rows have 3 fields" in raised.value.problem
    assert "put such names in double quotes" in raised.value.fix


@pytest.mark.parametrize("comments", ["", "# "])
def test_txt_aligned_with_spaces(tmp_path, comments):
    values = np.column_stack(
        [np.arange(300) / 1000, np.sin(np.arange(300) / 7), np.arange(300) % 5]
    )
    path = tmp_path / "run.txt"
    # numpy.savetxt separates columns with one space by default.
    np.savetxt(path, values, header="time a b", comments=comments)

    # Before, the columns were not split and no channel was found.
    (recording,) = read_file(path)

    assert recording.channels == ["a", "b"]
    assert recording.sample_rate == pytest.approx(1000.0)
    np.testing.assert_allclose(recording.data[0], values[:, 1], rtol=1e-6)


def test_csv_label_and_text_columns_are_not_channels(tmp_path):
    path = tmp_path / "run.csv"
    frame = pd.DataFrame(
        {
            "datetime": pd.date_range("2024-01-01", periods=6, freq="1s").astype(str),
            "a": np.arange(6.0),
            "phase": ["x"] * 6,
            "anomaly": [0, 0, 1, 1, 0, 0],
        }
    )
    frame.to_csv(path, index=False)

    (recording,) = read_file(path)

    assert recording.channels == ["a"]
    assert recording.sample_rate == pytest.approx(1.0)
    np.testing.assert_array_equal(recording.sample_labels, [0, 0, 1, 1, 0, 0])


def test_csv_trailing_empty_rows_are_dropped(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("sensor 1,sensor 2\n1.0,2.0\n3.0,4.0\n,\n,\n")

    (recording,) = read_file(path)

    assert recording.data.shape == (2, 2)


def test_csv_nan_inside_raises_with_channel_and_position(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,\n5,6\n")

    with pytest.raises(InputError, match=r"channel 'b' at sample 1"):
        read_file(path)


def test_csv_nan_interpolated_when_asked(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("a,b\n1,2\n3,\n5,6\n")

    (recording,) = read_file(path, ReadOptions(nan_policy="interpolate"))

    np.testing.assert_allclose(recording.data[1], [2, 4, 6])


def test_csv_with_carriage_return_line_ends(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"a,b\r1,2\r3,4\r5,6")

    (recording,) = read_file(path)

    assert recording.data.shape == (2, 3)


def _csv_rows(n_rows: int = 300) -> str:
    return "".join(
        f"{i / 1000:.3f},{np.sin(i / 7):.4f},{i % 5},{np.cos(i / 3):.4f}\n"
        for i in range(n_rows)
    )


def test_csv_latin1_names_encoding_fix(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(("time,a,b,T [°C]\n" + _csv_rows()).encode("latin-1"))

    with pytest.raises(
        InputError,
        match=r"latin.csv: is not valid utf-8 text \(byte 0xb0 on line 1\); set the "
        r"file's encoding with --set data.encoding=NAME",
    ):
        read_file(path)
    (recording,) = read_file(path, ReadOptions(encoding="latin-1"))

    assert recording.channels == ["a", "b", "T [°C]"]
    assert recording.sample_rate == pytest.approx(1000.0)


def test_csv_encoding_set_in_config(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(("time,a,b,T [°C]\n" + _csv_rows()).encode("cp1252"))
    config = Config().with_overrides({"data.encoding": "cp1252"})

    loaded = load_recordings(path, read_options(config))

    assert loaded.channels == ["a", "b", "T [°C]"]


@pytest.mark.parametrize(
    ("codec", "encoding", "match"),
    [
        ("utf-16", None, "starts with a UTF-16 byte order mark"),
        ("utf-16", "latin-1", "starts with a UTF-16 byte order mark"),
        ("utf-16-le", None, r"contains NUL bytes \(first on line 1\)"),
        ("utf-16-le", "utf-16", "is not valid utf-16 text"),
    ],
)
def test_csv_utf16_names_encoding_fix(tmp_path, codec, encoding, match):
    path = tmp_path / "wide.csv"
    path.write_bytes(("time,a,b,T [°C]\n" + _csv_rows()).encode(codec))
    options = ReadOptions(encoding=encoding) if encoding else ReadOptions()

    # Before, the fix named latin-1 or a cut-short last line, or a UnicodeError
    # escaped.
    with pytest.raises(InputError, match=match) as raised:
        read_file(path, options)
    (recording,) = read_file(path, ReadOptions(encoding=codec))

    assert "data.encoding=utf-16" in raised.value.fix or "utf-16-le" in raised.value.fix
    assert recording.channels == ["a", "b", "T [°C]"]
    assert recording.sample_rate == pytest.approx(1000.0)


def test_csv_ending_in_nul_bytes_raises(tmp_path):
    path = tmp_path / "crashed.csv"
    # A file system may leave a file written at a crash padded with NUL bytes.
    path.write_bytes(("time,a,b,c\n" + _csv_rows()).encode() + b"\x00" * 512)

    with pytest.raises(InputError) as raised:
        read_file(path)

    assert "contains NUL bytes from line 302 on" in raised.value.problem
    assert "UTF-16" not in raised.value.problem
    assert raised.value.fix == "export the file again, or delete the NUL bytes"


def test_csv_invalid_byte_late_in_file_raises(tmp_path):
    path = tmp_path / "late.csv"
    rows = _csv_rows(3000)
    assert len(rows) > 65536
    path.write_bytes(("time,a,b,c\n" + rows + "9,1,2,3 °C\n").encode("latin-1"))

    with pytest.raises(
        InputError,
        match=r"late.csv: is not valid utf-8 text \(byte 0xb0 after the first 64 KiB\)",
    ):
        read_file(path)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"resample_rate": 0}, r"resample_rate is 0; it should be a number greater"),
        ({"sample_rate": -5.0}, r"sample_rate is -5.0; it should be a number greater"),
        ({"sample_rate": float("nan")}, r"sample_rate is nan"),
        ({"kind": "tabel"}, r"kind is 'tabel'; use 'signals' or 'table'"),
        ({"nan_policy": "zero"}, r"nan_policy is 'zero'; use 'raise' or"),
        ({"clipping_policy": "drop"}, r"clipping_policy is 'drop'; use 'warn' or"),
        ({"cycle_mode": "mean"}, r"cycle_mode is 'mean'; use 'resample' or"),
        (
            {"stream_modes": (("AE", "fft"),)},
            r"stream_modes gives 'fft' for stream 'AE'",
        ),
        ({"frame_seconds": 0}, r"frame_seconds is 0; it should be a number greater"),
        ({"frame_bands": -1}, r"frame_bands is -1; it should be a whole number of 0"),
        ({"chunk_samples": 0}, r"chunk_samples is 0; it should be a whole number"),
        ({"timezone": "Europe/Berlni"}, r"unknown time zone 'Europe/Berlni'"),
        ({"channels": ()}, r"channels lists no channels"),
        ({"channels": ("a", "a")}, r"channels lists \['a'\] more than once"),
        ({"ignore_time": True, "time_column": "t"}, r"ignore_time reads no time"),
    ],
)
def test_read_options_invalid_value_raises(options, match):
    with pytest.raises(ConfigError, match=f"invalid ReadOptions: {match}"):
        ReadOptions(**options)


def test_read_options_from_config_accepted():
    config = Config().with_overrides(
        {"data.sample_rate": 100.0, "data.resample_rate": 50.0, "data.kind": "table"}
    )

    options = read_options(config)

    assert (options.sample_rate, options.resample_rate) == (100.0, 50.0)
    assert options.kind == "table"


def test_binary_negative_sample_rate_raises(tmp_path):
    # The headerless reader takes its rate from the options alone.
    path = tmp_path / "run.bin"
    np.arange(400, dtype="<i2").tofile(path)

    with pytest.raises(ConfigError, match="sample_rate is -5"):
        read_file(path, ReadOptions(raw_dtype="<i2", sample_rate=-5))


@pytest.mark.parametrize(
    "options", [{"delimiter": ",", "decimal": ","}, {"decimal": ","}]
)
def test_csv_delimiter_equal_to_decimal_raises(tmp_path, options):
    # The columns were reported as numbers stored as text.
    path = tmp_path / "run.csv"
    path.write_text("time,a\n0,1.5\n0.001,2.5\n0.002,1.0\n")

    with pytest.raises(
        InputError, match="run.csv: the delimiter and the decimal mark are both ','"
    ):
        read_file(path, ReadOptions(**options))


@pytest.mark.parametrize("delimiter", ["\\t", "\\s+", "\t"])
def test_csv_delimiter_as_regular_expression(tmp_path, delimiter):
    path = tmp_path / "run.csv"
    path.write_text("time\ta\tb\tc\n" + _csv_rows().replace(",", "\t"))
    # --set data.delimiter=\t gives a backslash and a t, not a tab.
    config = Config().with_overrides({"data.delimiter": delimiter})

    (recording,) = read_file(path, read_options(config))

    assert recording.channels == ["a", "b", "c"]
    assert recording.sample_rate == pytest.approx(1000.0)


def test_csv_unknown_encoding_rejected(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text("time,a\n0,1\n0.001,2\n")

    with pytest.raises(
        ConfigError, match="ReadOptions: unknown text encoding 'latin-9x'"
    ):
        read_file(path, ReadOptions(encoding="latin-9x"))
    with pytest.raises(ConfigError, match="unknown text encoding 'latin-9x'"):
        Config().with_overrides({"data.encoding": "latin-9x"})


@pytest.mark.parametrize("delimiter", [None, ","])
def test_csv_leading_comment_lines_skipped(tmp_path, delimiter):
    path = tmp_path / "logger.csv"
    comments = "# Logger XY-200, firmware 1.2\n# started 2024-02-14 22:01\n\n"
    path.write_text(comments + "time,a,b,c\n" + _csv_rows())

    (recording,) = read_file(path, ReadOptions(delimiter=delimiter))

    assert recording.channels == ["a", "b", "c"]
    assert recording.n_samples == 300
    assert recording.sample_rate == pytest.approx(1000.0)


def test_csv_savetxt_header_in_comment(tmp_path):
    path = tmp_path / "saved.csv"
    values = np.column_stack([np.arange(300) / 1000, np.ones((300, 3))])
    np.savetxt(path, values, delimiter=",", header="time,a,b,c")

    (recording,) = read_file(path)

    assert recording.channels == ["a", "b", "c"]
    assert recording.n_samples == 300
    assert recording.sample_rate == pytest.approx(1000.0)


@pytest.mark.parametrize("comments", ["", "# Logger XY-200\n"])
def test_csv_header_with_hash_column(tmp_path, comments):
    path = tmp_path / "hash.csv"
    rows = "0,0.000,0.5\n1,0.001,0.1\n2,0.002,-0.3\n3,0.003,0.2\n"
    path.write_text(comments + "#,time,vib\n" + rows)

    (recording,) = read_file(path)

    assert recording.channels == ["#", "vib"]
    assert recording.n_samples == 4
    assert recording.sample_rate == pytest.approx(1000.0)


def test_csv_lone_hash_line_is_comment(tmp_path):
    path = tmp_path / "single.csv"
    path.write_text("#\nvib\n0.5\n0.1\n-0.3\n")

    (recording,) = read_file(path)

    assert recording.channels == ["vib"]
    assert recording.n_samples == 3


def test_csv_only_comments_raises(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("# export aborted\n# no data\n")

    with pytest.raises(
        InputError,
        match="notes.csv: contains comment lines starting with '#' but no header",
    ):
        read_file(path)


def test_csv_repeated_column_names_warned(tmp_path, caplog):
    path = tmp_path / "dup.csv"
    path.write_text("time,vib,vib,temp\n" + _csv_rows())

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        (recording,) = read_file(path)

    assert recording.channels == ["vib", "vib.1", "temp"]
    assert "dup.csv: columns ['vib'] appear more than once in the header" in caplog.text
    assert "renamed ['vib.1']" in caplog.text


def test_csv_distinct_column_names_not_warned(tmp_path, caplog):
    path = tmp_path / "plain.csv"
    path.write_text("time,vib,vib.1,temp\n" + _csv_rows())

    with caplog.at_level(logging.WARNING, logger="grindwatch"):
        (recording,) = read_file(path)

    assert recording.channels == ["vib", "vib.1", "temp"]
    assert "more than once" not in caplog.text


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(InputError, match="empty"):
        read_file(path)


def test_parquet_reader(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"x": np.arange(10.0), "y": np.ones(10)}).to_parquet(path)

    (recording,) = read_file(path, ReadOptions(sample_rate=100.0))

    assert recording.channels == ["x", "y"]
    assert recording.sample_rate == 100.0


def test_hdf5_single_dataset_is_found(tmp_path):
    import h5py

    path = tmp_path / "r.h5"
    with h5py.File(path, "w") as handle:
        dataset = handle.create_dataset(
            "group/signal", data=np.zeros((500, 2), "int16")
        )
        dataset.attrs["sample_rate"] = 2000.0
        dataset.attrs["channels"] = ["ae", "current"]

    (recording,) = read_file(path)

    assert recording.data.shape == (2, 500)
    assert recording.channels == ["ae", "current"]
    assert recording.sample_rate == 2000.0
    assert recording.metadata["source_dtype"] == "int16"


def test_hdf5_ambiguous_lists_candidates_and_key_selects(tmp_path):
    import h5py

    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as handle:
        handle["a"] = np.zeros((100, 2))
        handle["b"] = np.ones((50, 3))

    with pytest.raises(InputError, match=r"a \(100, 2\), b \(50, 3\)"):
        read_file(path)
    (recording,) = read_file(path, ReadOptions(hdf5_key="b"))
    assert recording.data.shape == (3, 50)


def test_hdf5_one_dimensional_datasets_become_channels(tmp_path):
    import h5py

    path = tmp_path / "cols.h5"
    with h5py.File(path, "w") as handle:
        handle["x"] = np.arange(20.0)
        handle["y"] = np.arange(20.0) * 2

    (recording,) = read_file(path)

    assert recording.channels == ["x", "y"]


def test_npy_and_npz_readers(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((1000, 3), dtype=np.float64))
    np.savez(
        tmp_path / "b.npz",
        data=np.ones((2, 400)),
        channels=np.array(["p", "q"]),
        sample_rate=np.array(50.0),
    )

    (first,) = read_file(tmp_path / "a.npy")
    (second,) = read_file(tmp_path / "b.npz")

    assert first.data.shape == (3, 1000)
    assert second.channels == ["p", "q"]
    assert second.sample_rate == 50.0


def test_unsupported_extension_names_supported_ones(tmp_path):
    path = tmp_path / "x.xyz"
    path.write_text("1")

    with pytest.raises(InputError, match=r"unsupported file type '.xyz'"):
        read_file(path)


def test_folder_glob_and_list_give_same_recordings(cycle_folders):
    root = cycle_folders["root"]

    from_folder = load_recordings(root)
    from_glob = load_recordings(str(root / "*" / "*.csv"))
    from_list = load_recordings(sorted(root.rglob("*.csv")))

    names = [r.name for r in from_folder]
    assert names == [r.name for r in from_glob] == [r.name for r in from_list]
    assert len(names) == 11


def test_folder_names_give_labels(cycle_folders):
    recordings = load_recordings(cycle_folders["root"])

    labels = {r.source.parent.name: r.label for r in recordings}

    assert labels == {"good": 0, "bad": 1}


def test_bad_file_skipped_and_listed(cycle_folders):
    (cycle_folders["good"] / "broken.csv").write_text("")

    recordings = load_recordings(cycle_folders["good"])

    assert len(recordings) == 8
    assert recordings.skipped[0].path.name == "broken.csv"
    assert "empty" in recordings.skipped[0].reason


def test_bad_file_raises_in_strict_mode(cycle_folders):
    (cycle_folders["good"] / "broken.csv").write_text("")

    with pytest.raises(InputError, match="broken.csv"):
        load_recordings(cycle_folders["good"], strict=True)


def test_channels_reordered_by_name(tmp_path):
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(
        tmp_path / "1.csv", index=False
    )
    pd.DataFrame({"b": [5.0, 6.0], "a": [7.0, 8.0]}).to_csv(
        tmp_path / "2.csv", index=False
    )

    recordings = load_recordings(tmp_path)

    second = recordings.recordings[1]
    assert second.channels == ["a", "b"]
    np.testing.assert_allclose(second.data[0], [7.0, 8.0])


def test_feature_table_rows_become_recordings(feature_table):
    recordings = load_recordings(feature_table, ReadOptions(kind="table"))

    assert len(recordings) == 304
    assert recordings.recordings[0].data.shape == (6, 1)
    assert recordings.recordings[0].name == "features#0"
    assert [r.label for r in recordings.recordings[-4:]] == [1, 1, 1, 1]
    assert "anomaly" not in recordings.channels


def test_missing_path_raises(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        load_recordings(tmp_path / "nope")


def test_npz_channel_names_decide_orientation(tmp_path):
    # More channels than samples: only the names tell the axes apart.
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    names = np.array(["a", "b", "c", "d"])
    np.savez(tmp_path / "wide.npz", data=data, channels=names)
    np.savez(tmp_path / "tall.npz", data=data.T, channels=names)

    wide = read_file(tmp_path / "wide.npz", ReadOptions())
    tall = read_file(tmp_path / "tall.npz", ReadOptions())

    assert wide[0].channels == tall[0].channels == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(wide[0].data, data)
    np.testing.assert_array_equal(tall[0].data, data)


def test_npz_repeated_channel_name_raises(tmp_path):
    # Selecting channels by name read the first 'vib' twice and lost the second.
    data = np.vstack([np.sin(np.arange(200.0)), np.cos(np.arange(200.0))])
    np.savez(tmp_path / "twice.npz", data=data, channels=np.array(["vib", "vib"]))

    with pytest.raises(
        InputError, match="twice.npz: names more than one channel 'vib'"
    ):
        read_file(tmp_path / "twice.npz", ReadOptions())
