"""WAV, TDMS, MATLAB and headerless binary readers, and integer conversion."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest
from scipy.io import savemat, wavfile

from grindwatch.exceptions import ConfigError, InputError
from grindwatch.io import ReadOptions, load_recordings, read_file
from grindwatch.io.chunks import open_stream
from grindwatch.io.samples import to_float32


def _sine(n: int = 400, channels: int = 2) -> np.ndarray:
    t = np.arange(n) / 1000
    return np.stack([np.sin(2 * np.pi * (20 + 10 * k) * t) for k in range(channels)])


def test_wav_int16_stereo_scaled_to_unit_range(tmp_path):
    counts = (_sine() * 20000).astype(np.int16)
    path = tmp_path / "stereo.wav"
    wavfile.write(path, 8000, counts.T)

    recording = read_file(path)[0]

    assert recording.data.dtype == np.float32
    assert recording.data.shape == (2, 400)
    assert recording.sample_rate == 8000
    np.testing.assert_allclose(recording.data, counts / 32768, atol=1e-6)
    assert recording.metadata["source_dtype"] == "int16"
    assert recording.metadata["full_scale"] == 32768
    assert recording.metadata["scale"] == pytest.approx(1 / 32768)


def test_wav_uint8_is_centred(tmp_path):
    counts = np.array([0, 64, 128, 192, 255] * 20, dtype=np.uint8)
    path = tmp_path / "mono8.wav"
    wavfile.write(path, 1000, counts)

    recording = read_file(path)[0]

    assert recording.channels == ["channel_0"]
    np.testing.assert_allclose(recording.data[0, :5], [-1.0, -0.5, 0.0, 0.5, 0.9921875])
    assert recording.metadata["offset"] == -1.0


def test_wav_float_six_channels_kept_as_is(tmp_path):
    values = _sine(300, 6).astype(np.float32) * 0.5
    path = tmp_path / "six.wav"
    wavfile.write(path, 48000, values.T)

    recording = read_file(path)[0]

    assert recording.n_channels == 6
    np.testing.assert_array_equal(recording.data, values)
    assert "scale" not in recording.metadata


def test_wav_truncated_raises(tmp_path):
    path = tmp_path / "cut.wav"
    wavfile.write(path, 8000, (_sine() * 1000).astype(np.int16).T)
    path.write_bytes(path.read_bytes()[:30])

    with pytest.raises(InputError, match="cut.wav: is not a readable WAV file"):
        read_file(path)


def test_wav_cut_in_samples_raises(tmp_path):
    # scipy returns the samples before the cut and only warns.
    path = tmp_path / "cut.wav"
    wavfile.write(path, 8000, (_sine() * 1000).astype(np.int16).T)
    path.write_bytes(path.read_bytes()[:1001])

    with pytest.raises(
        InputError, match="cut.wav: is not a readable WAV file.*truncated"
    ):
        read_file(path)


def test_wav_data_chunk_past_end_raises(tmp_path):
    # The RIFF size fits the cut file, so scipy read it short without a warning.
    path = tmp_path / "cut.wav"
    wavfile.write(path, 8000, (_sine() * 1000).astype(np.int16).T)
    raw = bytearray(path.read_bytes()[:1001])
    raw[4:8] = (len(raw) - 8).to_bytes(4, "little")
    path.write_bytes(bytes(raw))

    with pytest.raises(InputError, match="truncated: its data chunk gives"):
        read_file(path)


def test_wav_streamed_length_read_to_eof(tmp_path):
    path = tmp_path / "stream.wav"
    counts = (_sine() * 1000).astype(np.int16)
    wavfile.write(path, 8000, counts.T)
    raw = bytearray(path.read_bytes())
    data = raw.find(b"data")
    raw[4:8] = raw[data + 4 : data + 8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(raw))

    recording = read_file(path)[0]

    assert recording.n_samples == counts.shape[1]


def test_wav_sample_rate_zero_raises(tmp_path):
    path = tmp_path / "norate.wav"
    wavfile.write(path, 0, (_sine() * 1000).astype(np.int16).T)

    with pytest.raises(InputError, match="norate.wav: its header gives sample rate 0"):
        read_file(path)


def test_integer_conversion_happens_before_arithmetic():
    counts = np.array([0, 65535], dtype=np.uint16)

    values, metadata = to_float32(counts, scale=0.5, offset=-1.0)

    np.testing.assert_array_equal(values, [-1.0, 32766.5])
    assert metadata == {
        "source_dtype": "uint16",
        "full_scale": 65535,
        "scale": 0.5,
        "offset": -1.0,
    }


def _write_tdms(path, groups):  # noqa: ANN001
    from nptdms import ChannelObject, TdmsWriter

    with TdmsWriter(path) as writer:
        for group, channels in groups.items():
            writer.write_segment(
                [
                    ChannelObject(
                        group, name, values, properties={"wf_increment": 1e-3}
                    )
                    for name, values in channels.items()
                ]
            )


def test_tdms_group_channels_and_rate(tmp_path):
    pytest.importorskip("nptdms")
    path = tmp_path / "run.tdms"
    counts = (_sine() * 1000).astype(np.int16)
    _write_tdms(path, {"Measurement": {"AE": counts[0], "Current": counts[1]}})

    recording = read_file(path)[0]

    assert recording.channels == ["AE", "Current"]
    assert recording.sample_rate == pytest.approx(1000)
    np.testing.assert_array_equal(recording.data, counts.astype(np.float32))
    assert recording.metadata["source_dtype"] == "int16"
    assert recording.metadata["tdms_group"] == "Measurement"


def test_tdms_several_groups_need_tdms_group(tmp_path):
    pytest.importorskip("nptdms")
    path = tmp_path / "two.tdms"
    values = _sine()
    _write_tdms(path, {"A": {"x": values[0]}, "B": {"y": values[1]}})

    with pytest.raises(InputError, match=r"several groups with data \(\['A', 'B'\]\)"):
        read_file(path)
    recording = read_file(path, ReadOptions(tdms_group="B"))[0]

    assert recording.channels == ["y"]


@pytest.mark.parametrize("increment", [0.0, -1e-3, float("nan")])
def test_tdms_invalid_increment_raises(tmp_path, increment):
    # An interval of 0 used to leave the file without a rate, and scoring then
    # took the model's rate for it.
    pytest.importorskip("nptdms")
    from nptdms import ChannelObject, TdmsWriter

    path = tmp_path / "run.tdms"
    with TdmsWriter(path) as writer:
        properties = {"wf_increment": increment}
        writer.write_segment(
            [ChannelObject("Measurement", "AE", _sine(300, 1)[0], properties)]
        )

    with pytest.raises(
        InputError,
        match=r"run.tdms: channel 'AE' stores wf_increment .*, which is not a "
        r"positive sample interval in seconds.*set data.sample_rate",
    ):
        read_file(path)
    recording = read_file(path, ReadOptions(sample_rate=500.0))[0]
    assert recording.sample_rate == 500.0


def test_tdms_truncated_raises(tmp_path):
    # npTDMS logs a warning and returns fewer samples for a cut file.
    pytest.importorskip("nptdms")
    path = tmp_path / "cut.tdms"
    _write_tdms(path, {"Measurement": {"AE": _sine(400, 1)[0]}})
    path.write_bytes(path.read_bytes()[:-900])

    with pytest.raises(InputError, match="cut.tdms: is not a readable TDMS file"):
        read_file(path)


@pytest.mark.parametrize(
    ("kept", "problem"),
    [(10, "lead-in has 10 of 28 bytes"), (40, "metadata is incomplete")],
)
def test_tdms_cut_before_last_data_raises(tmp_path, kept, problem):
    # Cut in the last segment's lead-in or metadata, npTDMS left the segment
    # out, and the file was read as 400 samples of 800.
    pytest.importorskip("nptdms")
    from nptdms import ChannelObject, TdmsWriter

    path = tmp_path / "cut.tdms"
    with TdmsWriter(path) as writer:
        for values in _sine(800, 1)[0].reshape(2, 400):
            channel = ChannelObject("g", "AE", values, {"wf_increment": 1e-3})
            writer.write_segment([channel])
    whole = path.read_bytes()
    second = whole.index(b"TDSm", 4)
    path.write_bytes(whole[: second + kept])

    with pytest.raises(InputError, match=problem):
        read_file(path)


def test_tdms_missing_package_names_it(tmp_path, monkeypatch):
    path = tmp_path / "run.tdms"
    path.write_bytes(b"TDSm" + bytes(100))
    monkeypatch.setitem(sys.modules, "nptdms", None)

    with pytest.raises(ImportError, match="pip install npTDMS"):
        read_file(path)


def test_mat_v5_with_rate_and_channel_names(tmp_path):
    path = tmp_path / "run.mat"
    values = _sine(500, 3)
    savemat(path, {"data": values.T, "fs": 2000.0, "channels": ["ae", "i1", "i2"]})

    recording = read_file(path)[0]

    assert recording.channels == ["ae", "i1", "i2"]
    assert recording.sample_rate == 2000.0
    np.testing.assert_allclose(recording.data, values, rtol=1e-6)
    assert recording.metadata["mat_version"] == "5"


def test_mat_char_matrix_names_lose_padding(tmp_path):
    path = tmp_path / "run.mat"
    values = _sine(500, 3)
    # savemat writes a list of strings as a char matrix, as MATLAB's char() does,
    # with each row padded to the longest name ("ae     ").
    names = ["ae", "vib x", "current"]
    savemat(path, {"data": values.T, "fs": 2000.0, "channels": names})

    recording = read_file(path)[0]

    assert recording.channels == ["ae", "vib x", "current"]


def test_mat_v5_struct_field_selected_by_dotted_name(tmp_path):
    path = tmp_path / "nested.mat"
    values = _sine(300, 2)
    savemat(path, {"run": {"raw": values, "filtered": values[:, ::2]}})

    with pytest.raises(InputError, match="several candidate signal variables"):
        read_file(path)
    recording = read_file(path, ReadOptions(mat_variable="run.raw"))[0]

    assert recording.data.shape == (2, 300)


def test_mat_rate_field_beside_signal(tmp_path):
    # The rate was looked up among top-level variables only, so run.fs was lost.
    path = tmp_path / "runs.mat"
    values = _sine(300, 2)
    savemat(
        path,
        {
            "fs": 100.0,
            "run": {"data": values, "fs": 2000.0},
            "other": {"x": values[0], "y": values[1], "Fs": 500.0},
        },
    )

    run = read_file(path, ReadOptions(mat_variable="run.data"))[0]
    other = read_file(path, ReadOptions(mat_variable="other.x"))[0]

    assert run.sample_rate == 2000.0
    assert other.sample_rate == 500.0


def _write_mat73(path, variables):  # noqa: ANN001
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, value in variables.items():
            # MATLAB stores column-major, so the file contains the transpose.
            dataset = handle.create_dataset(name, data=np.asarray(value).T)
            dataset.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, written by a test".ljust(128, b" "))


def test_mat_v73_read_through_hdf5(tmp_path):
    path = tmp_path / "big.mat"
    values = _sine(600, 2)
    _write_mat73(path, {"signal": values.T, "Fs": np.array([[5000.0]])})

    recording = read_file(path)[0]

    assert recording.metadata["mat_version"] == "7.3"
    assert recording.sample_rate == 5000.0
    np.testing.assert_allclose(recording.data, values, rtol=1e-6)


@pytest.mark.parametrize("vector_shape", ["row", "column"])
def test_mat_one_variable_per_channel_both_versions(tmp_path, vector_shape):
    values = _sine(4096, 3)
    variables = {
        name: row[None, :] if vector_shape == "row" else row[:, None]
        for name, row in zip("abc", values, strict=True)
    }
    savemat(tmp_path / "v5.mat", {**variables, "fs": 1000.0})
    _write_mat73(tmp_path / "v73.mat", {**variables, "fs": np.array([[1000.0]])})

    v5 = read_file(tmp_path / "v5.mat")[0]
    v73 = read_file(tmp_path / "v73.mat")[0]

    for recording in (v5, v73):
        assert recording.channels == ["a", "b", "c"]
        assert recording.sample_rate == 1000.0
        np.testing.assert_allclose(recording.data, values, rtol=1e-6)
    assert v73.metadata["mat_version"] == "7.3"


def test_binary_needs_dtype_and_reads_interleaved(tmp_path):
    counts = (_sine(200, 2) * 100).astype("<i2")
    path = tmp_path / "stream.bin"
    counts.T.tofile(path)

    with pytest.raises(InputError, match="raw_dtype is not set"):
        read_file(path)
    options = ReadOptions(raw_dtype="<i2", raw_channels=2, sample_rate=1000.0)
    recording = read_file(path, options)[0]

    np.testing.assert_array_equal(recording.data, counts.astype(np.float32))
    assert recording.metadata["full_scale"] == 32768


def test_binary_truncated_raises_with_size(tmp_path):
    path = tmp_path / "cut.raw"
    path.write_bytes(bytes(1001))

    with pytest.raises(InputError, match="1001 bytes is not a whole number"):
        read_file(path, ReadOptions(raw_dtype="<i2", raw_channels=2))


@pytest.mark.parametrize("count", [0, -2])
def test_binary_channel_count_below_one_raises(tmp_path, count):
    # ReadOptions is public, and 0 divided the file size by zero.
    path = tmp_path / "run.raw"
    path.write_bytes(bytes(1000))

    with pytest.raises(
        ConfigError, match=f"raw_channels is {count}; it should be a whole number"
    ):
        read_file(path, ReadOptions(raw_dtype="<i2", raw_channels=count))


def test_new_formats_found_in_folders(tmp_path):
    counts = (_sine(300, 2) * 1000).astype("<i2")
    wavfile.write(tmp_path / "a.wav", 1000, counts.T)
    counts.T.tofile(tmp_path / "b.bin")
    (tmp_path / "notes.docx").write_bytes(b"not a recording")
    options = ReadOptions(raw_dtype="<i2", raw_channels=2, sample_rate=1000.0)

    loaded = load_recordings(tmp_path, options)

    assert [r.name for r in loaded] == ["a", "b"]
    assert loaded.skipped == []
    np.testing.assert_allclose(
        loaded.recordings[0].data * 32768, loaded.recordings[1].data
    )


def test_hdf5_integer_scale_attributes_applied(tmp_path):
    counts = (_sine(300, 2) * 1000).astype(np.int16)
    path = tmp_path / "adc.h5"
    with h5py.File(path, "w") as handle:
        dataset = handle.create_dataset("force", data=counts)
        dataset.attrs["scale_factor"] = 0.01
        dataset.attrs["add_offset"] = 1.0

    recording = read_file(path)[0]

    np.testing.assert_allclose(recording.data, counts * 0.01 + 1.0, rtol=1e-6)
    assert recording.metadata["source_dtype"] == "int16"
    assert recording.metadata["scale"] == 0.01
    assert recording.metadata["offset"] == 1.0


def test_npy_integer_counts_keep_scale_one(tmp_path):
    counts = (_sine(300, 2) * 1000).astype(np.int32)
    np.save(tmp_path / "counts.npy", counts)

    recording = read_file(tmp_path / "counts.npy")[0]

    np.testing.assert_array_equal(recording.data, counts.astype(np.float32))
    assert recording.metadata["full_scale"] == 2**31
    assert recording.metadata["scale"] == 1.0


def test_damaged_mat_file_is_input_error(tmp_path):
    (tmp_path / "damaged.mat").write_bytes(b"garbage")

    with pytest.raises(InputError, match="damaged.mat: is not a readable MATLAB"):
        read_file(tmp_path / "damaged.mat", ReadOptions())


def test_hdf5_scale_of_each_dataset_applied(tmp_path):
    # Every channel took the first dataset's scale_factor and add_offset.
    counts = (_sine(300, 2) * 1000).astype(np.int16)
    path = tmp_path / "cf.h5"
    with h5py.File(path, "w") as handle:
        handle["force"] = counts[0]
        handle["force"].attrs["scale_factor"] = 0.01
        handle["force"].attrs["add_offset"] = 1.0
        handle["torque"] = counts[1]
        handle["torque"].attrs["scale_factor"] = 0.5

    recording = read_file(path)[0]
    stream = open_stream(path)
    _, streamed = next(iter(stream.chunks(1000)))

    assert recording.channels == ["force", "torque"]
    np.testing.assert_allclose(recording.data[0], counts[0] * 0.01 + 1.0, rtol=1e-6)
    np.testing.assert_allclose(recording.data[1], counts[1] * 0.5, rtol=1e-6)
    np.testing.assert_allclose(streamed, recording.data, rtol=1e-6)
    assert recording.metadata["scale"] == [0.01, 0.5]
    assert recording.metadata["offset"] == [1.0, 0.0]


def test_hdf5_scale_per_channel_of_2d(tmp_path):
    counts = (_sine(300, 3) * 1000).astype(np.int16)
    path = tmp_path / "adc.h5"
    with h5py.File(path, "w") as handle:
        handle["adc"] = counts
        handle["adc"].attrs["scale_factor"] = [0.1, 0.2, 0.3]

    recording = read_file(path)[0]

    np.testing.assert_allclose(
        recording.data, counts * np.array([[0.1], [0.2], [0.3]]), rtol=1e-6
    )


def test_hdf5_names_of_another_count_warn(tmp_path, caplog):
    path = tmp_path / "adc.h5"
    with h5py.File(path, "w") as handle:
        handle["adc"] = _sine(300, 3)
        handle["adc"].attrs["channels"] = ["ae", "current"]

    recording = read_file(path)[0]
    stream = open_stream(path)

    expected = ["adc[0]", "adc[1]", "adc[2]"]
    assert recording.channels == expected
    assert stream.channels == expected
    messages = [record.getMessage() for record in caplog.records]
    warnings = [message for message in messages if "names 2 channels" in message]
    assert len(warnings) == 2
    assert (
        "'channels' of 'adc' names 2 channels, but the dataset holds 3" in (warnings[0])
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("mV", "'scale_factor' of 'adc' contains 'mV', which is not a finite number"),
        ([0.1, 0.2], "'scale_factor' of 'adc' contains 2 values for 3 channels"),
        (np.nan, "'scale_factor' of 'adc' contains nan, which is not a finite number"),
        ([1.0, np.inf, 1.0], "contains inf, which is not a finite number"),
    ],
)
def test_hdf5_bad_scale_raises(tmp_path, value, problem):
    path = tmp_path / "adc.h5"
    with h5py.File(path, "w") as handle:
        handle["adc"] = (_sine(300, 3) * 1000).astype(np.int16)
        handle["adc"].attrs["scale_factor"] = value

    with pytest.raises(InputError, match=problem):
        read_file(path)


def test_hdf5_rate_on_group_of_signals(tmp_path):
    # A rate attribute on the group that contains the channel datasets was not
    # read, so the recording had no sample rate.
    values = _sine(300, 2)
    path = tmp_path / "group_rate.h5"
    with h5py.File(path, "w") as handle:
        run = handle.create_group("runs/run1")
        run["force"] = values[0]
        run["torque"] = values[1]
        run.attrs["fs"] = 2000.0
        handle.attrs["sample_rate"] = 10.0

    recording = read_file(path)[0]
    stream = open_stream(path)

    assert recording.channels == ["force", "torque"]
    assert recording.sample_rate == 2000.0
    assert stream.sample_rate == 2000.0


def test_mat_channels_field_beside_signal(tmp_path):
    # Channel names in a struct field beside the signal were ignored, while the
    # rate field beside it was read, so the channels were numbered.
    path = tmp_path / "struct.mat"
    values = _sine(300, 2)
    names = np.array(["force", "torque"], dtype=object)
    savemat(path, {"run": {"data": values, "fs": 2000.0, "channels": names}})

    recording = read_file(path)[0]

    assert recording.channels == ["force", "torque"]
    assert recording.sample_rate == 2000.0


def test_hdf5_runs_in_groups_need_key(tmp_path):
    # One group per run raised a repeated-channel-name error that asked for
    # distinct channel names instead of hdf5_key.
    values = _sine(300, 2)
    path = tmp_path / "runs.h5"
    with h5py.File(path, "w") as handle:
        for run in ("run1", "run2"):
            handle[f"{run}/force"] = values[0]
            handle[f"{run}/torque"] = values[1]

    with pytest.raises(InputError, match=r"in several groups \(\['run1', 'run2'\]\)"):
        read_file(path)
    with pytest.raises(InputError, match="set hdf5_key to the group"):
        open_stream(path)
    recording = read_file(path, ReadOptions(hdf5_key="run2"))[0]

    assert recording.channels == ["force", "torque"]


def _write_time_and_signals(path, time, values, fmt):  # noqa: ANN001
    names = ["time_ms", "force", "torque"]
    rows = [time, values[0], values[1]]
    if fmt == "h5":
        with h5py.File(path, "w") as handle:
            for name, row in zip(names, rows, strict=True):
                handle[name] = row
    elif fmt == "mat":
        savemat(path, dict(zip(names, rows, strict=True)))
    else:
        np.savez(path, data=np.stack(rows), channels=np.array(names))


@pytest.mark.parametrize("fmt", ["h5", "mat", "npz"])
def test_time_vector_gives_rate_not_channel(tmp_path, fmt):
    # A time dataset or variable beside the signals was read as a steadily
    # rising channel, and the file had no sample rate.
    values = _sine(400, 2)
    time_ms = np.arange(400) * 0.5
    path = tmp_path / f"run.{fmt}"
    _write_time_and_signals(path, time_ms, values, fmt)

    recording = read_file(path)[0]

    assert recording.channels == ["force", "torque"]
    assert recording.sample_rate == 2000.0
    assert recording.metadata["time_column"] == "time_ms"
    np.testing.assert_allclose(recording.data, values, rtol=1e-6)
    if fmt == "h5":
        assert open_stream(path).channels == ["force", "torque"]
        assert open_stream(path).sample_rate == 2000.0


@pytest.mark.parametrize("fmt", ["h5", "mat", "npz"])
def test_time_vector_kept_when_named_channel(tmp_path, fmt):
    values = _sine(400, 2)
    path = tmp_path / f"run.{fmt}"
    _write_time_and_signals(path, np.arange(400) * 0.5, values, fmt)
    options = ReadOptions(channels=("time_ms", "force"))

    recording = read_file(path, options)[0]

    assert recording.channels == ["time_ms", "force"]
    assert recording.sample_rate is None


def test_time_vector_running_backwards_raises(tmp_path):
    path = tmp_path / "run.h5"
    _write_time_and_signals(path, np.arange(400)[::-1] * 0.5, _sine(400, 2), "h5")

    with pytest.raises(InputError, match="time vector 'time_ms' has median step"):
        read_file(path)
    recording = read_file(path, ReadOptions(ignore_time=True, sample_rate=100.0))[0]

    assert recording.channels == ["force", "torque"]
    assert recording.metadata["unused_time_columns"] == ["time_ms"]


def test_time_vector_kept_for_model_channel(tmp_path):
    # A model trained on a 'time_ms' channel still finds it when it scores.
    values = _sine(400, 2)
    path = tmp_path / "run.h5"
    _write_time_and_signals(path, np.arange(400) * 0.5, values, "h5")
    options = ReadOptions(known_channels=("time_ms", "force", "torque"))

    recording = read_file(path, options)[0]
    stream = open_stream(path, options)

    assert recording.channels == ["force", "time_ms", "torque"]
    assert stream.channels == ["force", "time_ms", "torque"]


@pytest.mark.parametrize("fmt", ["h5", "mat"])
def test_wide_matrix_oriented_by_names(tmp_path, fmt):
    # A (samples, channels) matrix with more channels than samples was read
    # transposed, as 50 channels of 64 samples with numbered names.
    rng = np.random.default_rng(0)
    values = rng.normal(size=(64, 50))
    names = [f"feature_{i}" for i in range(64)]
    path = tmp_path / f"wide.{fmt}"
    if fmt == "h5":
        with h5py.File(path, "w") as handle:
            handle["x"] = values.T
            handle["x"].attrs["channels"] = names
    else:
        savemat(path, {"x": values.T, "channels": np.array(names, dtype=object)})

    recording = read_file(path)[0]

    assert recording.channels == names
    np.testing.assert_allclose(recording.data, values, rtol=1e-6)
    if fmt == "h5":
        stream = open_stream(path)
        _, streamed = next(iter(stream.chunks(1000)))
        assert stream.channels == names
        np.testing.assert_allclose(streamed, values, rtol=1e-6)


def test_tdms_time_channel_gives_rate(tmp_path):
    # A LabVIEW export with a 'Time' channel and no wf_increment read the
    # time as a channel and had no sample rate.
    nptdms = pytest.importorskip("nptdms")
    path = tmp_path / "run.tdms"
    values = _sine(400, 2)
    with nptdms.TdmsWriter(path) as writer:
        writer.write_segment(
            [
                nptdms.ChannelObject("g", "Time", np.arange(400) / 500.0),
                nptdms.ChannelObject("g", "AE", values[0]),
                nptdms.ChannelObject("g", "Current", values[1]),
            ]
        )

    recording = read_file(path)[0]

    assert recording.channels == ["AE", "Current"]
    assert recording.sample_rate == 500.0
    assert recording.metadata["time_column"] == "Time"


def test_time_vector_named_by_time_column(tmp_path):
    values = _sine(400, 2)
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as handle:
        handle["tick"] = np.arange(400) / 250.0
        handle["elapsed"] = np.arange(400) / 100.0
        handle["force"] = values[0]
        handle["torque"] = values[1]

    recording = read_file(path, ReadOptions(time_column="tick"))[0]

    assert recording.channels == ["force", "torque"]
    assert recording.sample_rate == 250.0
    assert recording.metadata["unused_time_columns"] == ["elapsed"]


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_mat_time_vector_beside_matrix(tmp_path, version):
    # A 't' vector beside a (samples, channels) matrix, as MATLAB scripts save
    # them, raised "several candidate signal variables".
    values = _sine(400, 3)
    variables = {"t": np.arange(400)[None, :] / 4000.0, "data": values.T}
    path = tmp_path / "run.mat"
    if version == "5":
        savemat(path, variables)
    else:
        _write_mat73(path, variables)

    recording = read_file(path)[0]

    assert recording.channels == ["data[0]", "data[1]", "data[2]"]
    assert recording.sample_rate == 4000.0
    assert recording.metadata["time_column"] == "t"
    np.testing.assert_allclose(recording.data, values, rtol=1e-6)


def test_hdf5_time_vector_beside_matrix(tmp_path):
    # A 'time' dataset beside a 2-D signal dataset raised "several candidate
    # signal datasets".
    values = _sine(400, 3)
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as handle:
        handle["time"] = np.arange(400) / 4000.0
        handle["data"] = values.T
        handle["data"].attrs["channels"] = ["a", "b", "c"]

    recording = read_file(path)[0]
    stream = open_stream(path)

    assert recording.channels == ["a", "b", "c"]
    assert recording.sample_rate == 4000.0
    assert recording.metadata["time_column"] == "time"
    np.testing.assert_allclose(recording.data, values, rtol=1e-6)
    assert stream.channels == ["a", "b", "c"]
    assert stream.sample_rate == 4000.0


def test_hdf5_time_vector_orients_wide_matrix(tmp_path):
    # 40 channels of 20 samples, saved (samples, channels) without channel names:
    # the time vector's length marks the samples axis, though it is the shorter.
    values = _sine(20, 40)
    path = tmp_path / "wide.h5"
    with h5py.File(path, "w") as handle:
        handle["time"] = np.arange(20) / 1000.0
        handle["data"] = values.T

    recording = read_file(path)[0]
    stream = open_stream(path)

    assert recording.data.shape == (40, 20)
    assert recording.sample_rate == 1000.0
    np.testing.assert_allclose(recording.data, values, rtol=1e-6)
    assert len(stream.channels) == 40
