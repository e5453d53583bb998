"""Reading configuration files: wrong types and unknown keys are clear errors."""

from __future__ import annotations

import pytest

from grindwatch.config import Config, load_config
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
        ("hdf5_key", "010", '"010"', "not 10 (int)", "010"),
        ("time_column", "true", '"true"', "not True (bool)", "true"),
        ("channels", "[vib, 1.5]", '[vib, "1.5"]', "not 1.5 (float)", ["vib", "1.5"]),
        (
            "time_column",
            "2024-01-01",
            '"2024-01-01"',
            "not datetime.date(2024, 1, 1) (date)",
            "2024-01-01",
        ),
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


@pytest.mark.parametrize(
    ("name", "text", "read"),
    [
        ("channels", "[vib, on, no, Off, YES]", ["vib", "on", "no", "Off", "YES"]),
        ("time_column", "on", "on"),
        ("time_column", "12:30", "12:30"),
        ("date_column", "1:30:15", "1:30:15"),
    ],
)
def test_yaml_1_1_words_read_as_text(tmp_path, name, text, read):
    # YAML 1.1 read on and no as booleans and 12:30 as the base-60 number 750,
    # so these names were rejected.
    config = _load(tmp_path, f"data:\n  {name}: {text}\n")

    assert getattr(config.data, name) == read


@pytest.mark.parametrize(
    ("text", "length"),
    [("010", 10), ("0512", 512), ("1_024", 1024), ("0x10", 16), ("+064", 64)],
)
def test_leading_zero_integer_is_decimal(tmp_path, text, length):
    config = _load(tmp_path, f"windows:\n  length: {text}\n")

    # Before, YAML 1.1 read 010 as the octal number 8.
    assert config.windows.length == length


def test_set_option_reads_leading_zero_as_decimal():
    from grindwatch.cli import _parse_set

    overrides = _parse_set(["windows.length=010", "data.channels=[on, no]"])

    assert overrides["windows.length"] == 10
    assert overrides["data.channels"] == ["on", "no"]


@pytest.mark.parametrize(("text", "length"), [("1e3", 1000), ("2.048E+3", 2048)])
def test_exponent_without_dot_is_number(tmp_path, text, length):
    config = _load(tmp_path, f"windows:\n  length: {text}\n")

    # Before, YAML 1.1 read 1e3 as text, which an integer setting rejected.
    assert config.windows.length == length


def test_written_config_reads_back_unchanged(tmp_path):
    names = ["1e3", "on", "010", "12:30", "1.5", "vib"]
    config = Config().with_overrides({"data.channels": names})

    read = _load(tmp_path, config.to_yaml())

    assert read.data.channels == names


def test_set_option_adds_match_key():
    from grindwatch.cli import _parse_set

    overrides = _parse_set(['data.match.tool="010"', "data.stream_modes.ae=features"])
    config = Config().with_overrides(overrides)

    assert config.data.match == {"tool": "010"}
    assert config.data.stream_modes == {"ae": "features"}


def test_set_option_unknown_key_in_section_rejected():
    with pytest.raises(ConfigError, match="unknown setting 'windows.size'"):
        Config().with_overrides({"windows.size": 3})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("yes", True), ("Off", False), ("on", True), ("no", False), ("true", True)],
)
def test_boolean_words_still_set_booleans(tmp_path, text, expected):
    config = _load(
        tmp_path,
        f"data:\n  strict: {text}\ntracking:\n  enabled: {text}\n"
        f"threshold:\n  log_scores: {text}\n",
    )

    assert config.data.strict is expected
    assert config.tracking.enabled is expected
    assert config.threshold.log_scores is expected


def test_base_60_number_rejected(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, "windows:\n  seconds: 1:30\n")

    # Before, YAML 1.1 read 1:30 as 90 without an error.
    assert "windows.seconds: expected a number, not the text '1:30'" in str(
        raised.value
    )
    assert "such as 90" in str(raised.value)


@pytest.mark.parametrize(
    ("found", "text", "matched"),
    [
        (True, "on", True),
        (False, "off", True),
        (True, "no", False),
        ("on", "on", True),
        (1.0, "1", True),
        (25, "25.0", True),
        (3, "4", False),
        ("1.0", "1", False),
    ],
)
def test_match_word_compares_with_metadata(tmp_path, found, text, matched):
    import numpy as np

    from grindwatch.io import Recording
    from grindwatch.io.dataset import matches_metadata
    from grindwatch.pipeline import read_options

    config = _load(tmp_path, f"data:\n  match:\n    coolant: {text}\n")
    recording = Recording(
        name="cycle",
        data=np.zeros((1, 8), dtype=np.float32),
        channels=["vib"],
        metadata={"meta": {"coolant": found}},
    )

    # Before, on was read as True, so it missed the text "on" in meta.json.
    assert matches_metadata(recording, read_options(config).match) is matched


def test_match_text_true_equals_boolean():
    import numpy as np

    from grindwatch.io import Recording
    from grindwatch.io.dataset import matches_metadata
    from grindwatch.pipeline import read_options

    # A dict from Python or JSON can give "true" as text, not as a boolean.
    config = Config().with_overrides({"data.match": {"stop": "true"}})
    recording = Recording(
        name="cycle",
        data=np.zeros((1, 8), dtype=np.float32),
        channels=["vib"],
        metadata={"meta": {"stop": True}},
    )

    assert matches_metadata(recording, read_options(config).match) is True


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


@pytest.mark.parametrize("text", ["10 kHz", "'1,000'"])
def test_number_text_error_shows_value(tmp_path, text):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, f"data:\n  sample_rate: {text}\n")

    # Before, pydantic's message did not show the value.
    message = str(raised.value)
    assert "data.sample_rate: expected a number, not the text" in message
    assert repr(text.strip("'")) in message
    assert "without a unit" in message


def test_match_list_value_is_one_error(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, "data:\n  match:\n    tool: [a, b]\n")

    # Before, pydantic gave one error per type of the union: str, int, float, bool.
    message = str(raised.value)
    assert "data.match.tool: expected text, a number or a boolean" in message
    assert "['a', 'b'] (list)" in message
    assert "tool.int" not in message
