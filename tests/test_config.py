"""Reading configuration files: wrong types and unknown keys are clear errors."""

from __future__ import annotations

import pytest

from grindwatch.config import load_config
from grindwatch.exceptions import ConfigError


def _load(tmp_path, text: str):  # noqa: ANN001, ANN202
    path = tmp_path / "grindwatch.yaml"
    path.write_text(text)
    return load_config(path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("windows:\n  length: true\n", "windows.length"),
        ("detector:\n  autoencoder:\n    filters: [16, true]\n", "filters"),
        ("threshold:\n  margin: false\n", "threshold.margin"),
    ],
)
def test_boolean_for_number_rejected(tmp_path, text, key):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)

    assert key in str(raised.value)
    assert "not a boolean" in str(raised.value)
    assert "Value error" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "text", "quoted", "shown", "read"),
    [
        ("time_column", "12:30", '"12:30"', "not 750 (int)", "12:30"),
        ("hdf5_key", "010", '"010"', "not 8 (int)", "010"),
        ("channels", "[vib, on]", '[vib, "on"]', "not True (bool)", ["vib", "on"]),
        ("time_column", "on", '"on"', "not True (bool)", "on"),
    ],
)
def test_unquoted_name_rejected_with_fix(tmp_path, name, text, quoted, shown, read):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, f"data:\n  {name}: {text}\n")
    config = _load(tmp_path, f"data:\n  {name}: {quoted}\n")

    # Before, the message read "expected a number" or "a valid string".
    assert f"data.{name}: expected text, {shown}" in str(raised.value)
    assert "quote the value" in str(raised.value)
    assert getattr(config.data, name) == read


def test_comma_text_for_list_names_fix(tmp_path):
    # --set data.channels=a,b gives the text "a,b".
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, "data:\n  channels: vib_x,current\n")

    # Before, the message read "Input should be a valid list".
    assert "data.channels: expected a list, not the text 'vib_x,current'" in str(
        raised.value
    )
    assert "--set 'KEY=[a, b]'" in str(raised.value)


def test_boolean_settings_still_read(tmp_path):
    config = _load(tmp_path, "data:\n  strict: true\ntracking:\n  enabled: false\n")

    assert config.data.strict is True
    assert config.tracking.enabled is False


@pytest.mark.parametrize("value", [True, False])
def test_log_scores_reads_true_and_false(tmp_path, value):
    text = f"threshold:\n  log_scores: {str(value).lower()}\n"

    config = _load(tmp_path, text)

    assert config.threshold.log_scores is value


def test_unknown_key_lists_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, "detector:\n  autoencoder:\n    filtres: [16]\n")

    message = str(raised.value)
    assert "detector.autoencoder.filtres: unknown setting" in message
    assert "'filters'" in message
    assert "'kernel_sizes'" in message


def test_unknown_section_lists_sections(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, "detectr:\n  family: pca\n")

    assert "'detector'" in str(raised.value)


def test_negative_seed_rejected(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, "seed: -1\n")

    assert "seed" in str(raised.value)
    assert "greater than or equal to 0" in str(raised.value)


def test_tab_in_config_names_fix(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, "windows:\n\tlength: 512\n")

    assert "line 2, column 1: found character '\\t'" in str(raised.value)
    assert "replace the tab with spaces" in str(raised.value)


def test_utf16_config_from_powershell_is_read(tmp_path):
    path = tmp_path / "grindwatch.yaml"
    path.write_bytes("windows:\n  length: 512\n".encode("utf-16"))

    assert load_config(path).windows.length == 512


def test_config_in_another_encoding_names_the_byte(tmp_path):
    path = tmp_path / "grindwatch.yaml"
    path.write_bytes("tracking:\n  experiment: Schleifen-Prüfstand\n".encode("latin-1"))

    with pytest.raises(ConfigError, match="is not UTF-8 text \\(byte 0xfc"):
        load_config(path)


def test_key_given_twice_rejected(tmp_path):
    path = tmp_path / "grindwatch.yaml"
    path.write_text("windows:\n  length: 256\nwindows:\n  hop: 128\n")

    with pytest.raises(ConfigError, match="line 3, column 1: the key 'windows'"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message", "fix"),
    [
        ("data:\n  channels: []\n", "lists no channels", "leave data.channels unset"),
        ("data:\n  channels: ['']\n", "contains an empty channel name", "remove it"),
        ("data:\n  channels: [vib_x, ' ']\n", "contains an empty channel", "remove it"),
    ],
)
def test_empty_channel_list_rejected(tmp_path, text, message, fix):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)

    assert f"data.channels: {message}" in str(raised.value)
    assert fix in str(raised.value)


# Windows in seconds -------------------------------------------------------------------


def test_window_in_seconds_becomes_samples_at_the_rate(tmp_path):
    config = _load(tmp_path, "windows:\n  seconds: 0.25\n  hop_seconds: 0.1\n")

    resolved = config.windows_in_samples(2000.0, "signals")

    assert (resolved.windows.length, resolved.hop) == (500, 200)
    assert resolved.windows.seconds is None
    assert resolved.windows.hop_seconds is None
    # Nothing is left to resolve a second time, at another rate.
    assert resolved.windows_in_samples(10.0, "signals") == resolved
    # Half a sample rounds up.
    halves = config.windows_in_samples(10.0, "signals")
    assert (halves.windows.length, halves.hop) == (3, 1)


def test_window_in_seconds_is_dropped_for_tables(tmp_path):
    config = _load(tmp_path, "windows:\n  seconds: 0.25\n")

    resolved = config.windows_in_samples(None, "table")

    assert resolved.windows.seconds is None


def test_window_in_seconds_needs_a_sample_rate(tmp_path):
    config = _load(tmp_path, "windows:\n  seconds: 0.25\n")

    with pytest.raises(
        ConfigError, match="windows.seconds is 0.25 s, but the"
    ) as error:
        config.windows_in_samples(None, "signals")
    assert "set data.sample_rate" in str(error.value)


def test_window_shorter_than_one_sample_rejected(tmp_path):
    config = _load(tmp_path, "windows:\n  hop_seconds: 0.001\n")

    with pytest.raises(ConfigError, match="less than one sample at 100 samples/s"):
        config.windows_in_samples(100.0, "signals")


def test_hop_in_samples_and_seconds_rejected(tmp_path):
    with pytest.raises(ConfigError, match="hop_seconds .* are both set"):
        _load(tmp_path, "windows:\n  hop: 64\n  hop_seconds: 0.1\n")


def test_window_setting_replaces_the_other_unit(tmp_path):
    in_seconds = _load(tmp_path, "windows:\n  seconds: 0.25\n  hop: 16\n")

    in_samples = in_seconds.with_overrides({"windows.length": 128})
    assert (in_samples.windows.length, in_samples.windows.seconds) == (128, None)
    back = in_samples.with_overrides({"windows.seconds": 0.5, "windows.hop": 10})
    assert (back.windows.length, back.windows.seconds) == (1024, 0.5)
    hop = back.with_overrides({"windows.hop_seconds": 0.1})
    assert (hop.windows.hop, hop.windows.hop_seconds) == (None, 0.1)
    with pytest.raises(ConfigError, match="both set the window length"):
        in_samples.with_overrides({"windows.length": 64, "windows.seconds": 0.1})


def test_length_and_seconds_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"length \(512 samples\) and seconds"):
        _load(tmp_path, "windows:\n  length: 512\n  seconds: 0.25\n")
