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
