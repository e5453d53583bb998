"""The Python API used from a notebook: in-memory recordings, configs, arguments."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

import grindwatch
from grindwatch import Recording, RecordingSet
from grindwatch.config import Config
from grindwatch.exceptions import ConfigError, InputError
from tests.conftest import make_cycle, write_cycles

CHANNELS = ["vib_x", "vib_y", "current"]


def _config(**overrides) -> Config:  # noqa: ANN003
    base = {
        "detector.family": "pca",
        "windows.length": 256,
        "tracking.enabled": False,
    }
    base.update(overrides)
    return Config().with_overrides(base)


def _recordings(count: int, rate: float | None = 1000.0) -> RecordingSet:
    return RecordingSet(
        [
            Recording(f"r{seed}", make_cycle(seed), CHANNELS, rate)
            for seed in range(count)
        ]
    )


def test_recording_transposed_data_names_fix():
    data = make_cycle(0)

    with pytest.raises(InputError, match=r"\(2048, 3\).*pass data\.T"):
        Recording("r0", data.T, CHANNELS, 1000.0)


def test_recording_one_dimensional_data():
    with pytest.raises(InputError, match=r"not 2 dimensions.*numpy\.newaxis"):
        Recording("r0", make_cycle(0)[0], ["vib_x"], 1000.0)


def test_recording_list_data_is_type_error():
    with pytest.raises(TypeError, match="numpy array.*not list"):
        Recording("r0", make_cycle(0).tolist(), CHANNELS, 1000.0)


def test_recording_repeated_channel_names():
    with pytest.raises(InputError, match=r"\['vib_x'\] are given more than once"):
        Recording("r0", make_cycle(0), ["vib_x", "vib_x", "current"], 1000.0)


@pytest.mark.parametrize("rate", [0, -1000.0, float("nan"), float("inf"), "1000"])
def test_recording_invalid_sample_rate(rate):
    with pytest.raises(InputError, match="not a positive number of samples per second"):
        Recording("r0", make_cycle(0), CHANNELS, rate)


def test_train_rejects_nonpositive_rate():
    # Accepted, a negative rate would give windows negative start_s.
    with pytest.raises(InputError, match="r0: sample rate -5"):
        grindwatch.train(_recordings(3, rate=-5.0), _config())


def test_recording_integer_data_scores_as_float():
    model = grindwatch.train(_recordings(4), _config()).model
    counts = np.round(make_cycle(10) * 1000).astype(np.int16)

    as_int = Recording("r10", counts, CHANNELS, 1000.0)
    as_float = Recording("r10", counts.astype(np.float32), CHANNELS, 1000.0)

    assert as_int.data.dtype == np.float32
    scores = [
        grindwatch.score(model, RecordingSet([recording])).recordings["score"][0]
        for recording in (as_int, as_float)
    ]
    assert scores[0] == scores[1]


def test_train_config_forms_agree(tmp_path):
    settings = {
        "detector.family": "pca",
        "windows.length": 256,
        "tracking.enabled": False,
    }
    yaml_path = tmp_path / "grindwatch.yaml"
    yaml_path.write_text(
        "detector:\n  family: pca\n"
        "windows:\n  length: 256\n"
        "tracking:\n  enabled: false\n"
    )
    recordings = _recordings(4)
    new = RecordingSet([Recording("new", make_cycle(20), CHANNELS, 1000.0)])

    scores = {}
    for form, config in (
        ("Config", Config().with_overrides(settings)),
        ("dict", settings),
        ("str path", str(yaml_path)),
        ("Path", yaml_path),
    ):
        model = grindwatch.train(recordings, config).model
        assert model.config.detector.family == "pca", form
        assert model.window_length_ == 256, form
        scores[form] = grindwatch.score(model, new).recordings["score"][0]

    assert scores["dict"] == scores["Config"]
    assert scores["str path"] == scores["Config"]
    assert scores["Path"] == scores["Config"]


def test_train_config_wrong_type():
    with pytest.raises(TypeError, match="config must be a grindwatch.Config.*not list"):
        grindwatch.train(_recordings(3), [("windows.length", 256)])


@pytest.mark.parametrize("source", [[], "", None])
def test_load_recordings_empty_source(source):
    with pytest.raises(InputError, match="which names no files"):
        grindwatch.load_recordings(source)


def test_load_recordings_array_is_type_error():
    with pytest.raises(TypeError, match="not ndarray"):
        grindwatch.load_recordings(make_cycle(0))


def test_score_frame_names_conversion():
    model = grindwatch.train(_recordings(4), _config()).model
    frame = pd.DataFrame(make_cycle(10).T, columns=CHANNELS)

    with pytest.raises(TypeError, match=r"not DataFrame; wrap each frame.*\.T"):
        grindwatch.score(model, frame)
    with pytest.raises(TypeError, match=r"not ndarray; wrap each array.*n_channels"):
        grindwatch.score(model, make_cycle(10))


def test_train_in_memory_uses_data_channels(tmp_path):
    write_cycles(tmp_path / "good", 4)
    config = _config(**{"data.channels": ["vib_y", "current"]})

    from_files = grindwatch.train(tmp_path / "good", config).model
    in_memory = grindwatch.load_recordings(tmp_path / "good")
    from_memory = grindwatch.train(in_memory, config).model

    assert in_memory.channels == ["vib_x", "vib_y", "current"]
    assert from_memory.channels_ == ["vib_y", "current"]
    assert from_memory.channels_ == from_files.channels_
    new = _recordings(1)
    files_score = grindwatch.score(from_files, new).recordings["score"][0]
    memory_score = grindwatch.score(from_memory, new).recordings["score"][0]
    assert memory_score == files_score


def test_train_in_memory_fills_data_sample_rate():
    config = _config(**{"data.sample_rate": 1000.0})

    result = grindwatch.train(_recordings(4, rate=None), config)

    assert result.model.sample_rate_ == 1000.0
    assert result.training.windows["start_s"].notna().all()


def test_score_repeated_recording_names():
    model = grindwatch.train(_recordings(4), _config()).model
    cycle = Recording("same", make_cycle(10), CHANNELS, 1000.0)

    with pytest.raises(InputError, match=r"\['same'\] appear more than once"):
        grindwatch.score(model, RecordingSet([cycle, cycle]))


@pytest.mark.parametrize("model", [None, 3])
def test_score_model_wrong_type(model):
    with pytest.raises(TypeError, match="model must be a grindwatch.Model"):
        grindwatch.score(model, _recordings(1))


def test_evaluate_stays_function_after_import():
    # tune imports the module grindwatch.evaluate, which has the function's name.
    importlib.import_module("grindwatch.evaluate")

    assert callable(grindwatch.evaluate)
    assert grindwatch.evaluate.__module__ == "grindwatch.evaluate"


def test_evaluate_callable_twice():
    model = grindwatch.train(_recordings(4), _config()).model
    labeled = RecordingSet(
        [
            Recording("normal", make_cycle(10), CHANNELS, 1000.0, label=0),
            Recording(
                "faulty", make_cycle(11, anomaly="spike"), CHANNELS, 1000.0, label=1
            ),
        ]
    )

    first = grindwatch.evaluate(model, labeled)
    second = grindwatch.evaluate(model, labeled)

    assert first.recordings == second.recordings


def test_tune_in_memory_uses_data_channels(tmp_path):
    write_cycles(tmp_path / "good", 6)
    config = _config(
        **{
            "data.channels": ["vib_y", "current"],
            "tune.objective": "injected_auc",
            "tune.n_trials": 1,
            "tune.space.family": ["pca"],
            "tune.storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        }
    )

    from_files = grindwatch.tune(
        tmp_path / "good", config.with_overrides({"tune.study_name": "files"})
    )
    from_memory = grindwatch.tune(
        grindwatch.load_recordings(tmp_path / "good"),
        config.with_overrides({"tune.study_name": "memory"}),
    )

    assert from_memory.model.channels_ == ["vib_y", "current"]
    # The trials fit on the selected channels too, not only the final refit.
    assert from_memory.best_value == from_files.best_value


@pytest.mark.parametrize(
    "recordings",
    [[make_cycle(0)], make_cycle(0)[None], "r0"],
    ids=["list", "array", "str"],
)
def test_recording_set_needs_recordings(recordings):
    with pytest.raises(TypeError, match="list of grindwatch.Recording objects"):
        RecordingSet(recordings)


def test_recording_set_invalid_kind():
    with pytest.raises(ValueError, match="kind 'signal' is invalid"):
        RecordingSet(_recordings(1).recordings, kind="signal")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_train_in_memory_rejects_nonfinite(value):
    recordings = _recordings(4)
    recordings.recordings[2].data[1, 700] = value

    with pytest.raises(InputError, match=r"r2: 1 NaN or infinite samples.*'vib_y'"):
        grindwatch.train(recordings, _config())


def test_train_in_memory_interpolates_nonfinite():
    recordings = _recordings(4)
    recordings.recordings[2].data[1, 700] = np.inf
    config = _config(**{"data.nan_policy": "interpolate"})

    result = grindwatch.train(recordings, config)

    assert np.isfinite(result.training.recordings["score"]).all()
    assert np.isinf(recordings.recordings[2].data[1, 700])


def test_empty_recording_set_named():
    model = grindwatch.train(_recordings(4), _config()).model

    with pytest.raises(InputError, match="contains no recordings"):
        grindwatch.train(RecordingSet([]), _config())
    with pytest.raises(InputError, match="contains no recordings"):
        grindwatch.score(model, RecordingSet([]))


def test_load_model_run_uri_with_dict_config(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = _config(**{"tracking.enabled": True, "tracking.uri": uri})
    result = grindwatch.train(_recordings(4), config)
    new = _recordings(1)

    loaded = grindwatch.load_model(
        f"runs:/{result.run_id}/model", {"tracking.uri": uri}
    )

    expected = grindwatch.score(result.model, new).recordings["score"][0]
    assert grindwatch.score(loaded, new).recordings["score"][0] == expected


def test_evaluate_label_dict_values():
    model = grindwatch.train(_recordings(4), _config()).model
    labeled = RecordingSet(
        [
            Recording("normal", make_cycle(10), CHANNELS, 1000.0),
            Recording("faulty", make_cycle(11, anomaly="spike"), CHANNELS, 1000.0),
        ]
    )

    numbers = grindwatch.evaluate(model, labeled, labels={"normal": 0, "faulty": 1})
    words = grindwatch.evaluate(
        model, labeled, labels={"normal": "OK", "faulty": "NOK"}
    )

    assert words.recordings == numbers.recordings
    assert numbers.recordings["n_anomalous"] == 1
    with pytest.raises(InputError, match=r"label 5 for 'faulty' is neither 1/0"):
        grindwatch.evaluate(model, labeled, labels={"normal": 0, "faulty": 5})


def test_evaluate_without_labels_names_recording():
    model = grindwatch.train(_recordings(4), _config()).model

    with pytest.raises(InputError, match=r"^r0 and 1 more: carries no labels"):
        grindwatch.evaluate(model, _recordings(2))


def test_train_transposed_with_row_names():
    recordings = RecordingSet(
        [
            Recording(f"r{seed}", make_cycle(seed).T, [f"c{i}" for i in range(2048)])
            for seed in range(3)
        ]
    )

    with pytest.raises(
        InputError, match=r"may be transposed.*\(n_channels, n_samples\)"
    ):
        grindwatch.train(recordings, _config())


def test_train_output_checked_before_training(tmp_path):
    existing_file = tmp_path / "model"
    existing_file.write_text("not a folder")

    with pytest.raises(ConfigError, match="because .*model is a file"):
        grindwatch.train(_recordings(4), _config(), output=existing_file)
    with pytest.raises(ConfigError, match="output is empty"):
        grindwatch.train(_recordings(4), _config(), output="")


def test_tune_resume_detects_changed_recordings(tmp_path):
    config = _config(
        **{
            "tune.n_trials": 1,
            "tune.space.family": ["pca"],
            "tune.storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        }
    )
    grindwatch.tune(_recordings(6), config)
    changed = RecordingSet(
        [
            Recording(f"r{seed}", make_cycle(seed + 50), CHANNELS, 1000.0)
            for seed in range(6)
        ]
    )

    with pytest.raises(
        ConfigError, match="^the in-memory recordings of study .* changed since"
    ):
        grindwatch.tune(changed, config, resume=True)


@pytest.mark.parametrize("name", [1, None])
def test_recording_name_must_be_text(name):
    with pytest.raises(TypeError, match="name must be a str"):
        Recording(name, make_cycle(0), CHANNELS, 1000.0)


def test_recording_empty_name():
    with pytest.raises(InputError, match="has an empty name"):
        Recording("", make_cycle(0), CHANNELS, 1000.0)


def test_load_recordings_accepts_config(tmp_path):
    write_cycles(tmp_path / "good", 2)
    settings = {"data.channels": ["vib_y", "current"]}

    from_dict = grindwatch.load_recordings(tmp_path / "good", settings)
    from_config = grindwatch.load_recordings(
        tmp_path / "good", Config().with_overrides(settings)
    )

    assert from_dict.channels == ["vib_y", "current"]
    assert from_config.channels == ["vib_y", "current"]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (make_cycle(0), "ndarray"),
        ([Recording("a", make_cycle(0), CHANNELS)], "Recording"),
    ],
    ids=["array", "recording list"],
)
def test_tune_data_wrong_type(tmp_path, data, kind):
    config = _config(**{"tune.storage": f"sqlite:///{tmp_path / 'optuna.db'}"})

    with pytest.raises(TypeError, match=f"not {kind}; wrap"):
        grindwatch.tune(data, config)


def test_tune_labeled_data_in_memory(tmp_path):
    config = _config(**{"tune.storage": f"sqlite:///{tmp_path / 'optuna.db'}"})

    with pytest.raises(TypeError, match="labeled_data must be files"):
        grindwatch.tune(_recordings(6), config, labeled_data=_recordings(2))


def test_recording_set_from_generator():
    recordings = RecordingSet(recording for recording in _recordings(3))

    assert len(recordings) == 3
    assert isinstance(recordings.recordings, list)


@pytest.mark.parametrize("label", [2, "bad", 0.5])
def test_recording_invalid_label(label):
    with pytest.raises(InputError, match="is neither 0 nor 1"):
        Recording("r0", make_cycle(0), CHANNELS, 1000.0, label=label)


def test_recording_bool_label_is_int():
    label = Recording("r0", make_cycle(0), CHANNELS, 1000.0, label=True).label

    assert type(label) is int
    assert label == 1


@pytest.mark.parametrize("shape", [(10,), (2048, 1)])
def test_recording_sample_labels_shape(shape):
    with pytest.raises(InputError, match=r"sample_labels has shape .*not \(2048,\)"):
        Recording("r0", make_cycle(0), CHANNELS, 1000.0, sample_labels=np.zeros(shape))


def test_train_result_repr_is_one_line():
    result = grindwatch.train(_recordings(6), _config())

    text = repr(result)

    assert "\n" not in text
    assert len(text) < 200
    assert text.startswith("TrainResult(family='pca', n_trained=6, n_flagged=")
    assert f"threshold={result.model.threshold_.value:.6g}" in text


@pytest.mark.parametrize("overrides", [["windows.length", 512], "windows.length=512"])
def test_with_overrides_needs_dict(overrides):
    with pytest.raises(TypeError, match="must be a dict of dotted settings"):
        Config().with_overrides(overrides)


def test_train_in_memory_applies_constant_policy():
    recordings = _recordings(4)
    recordings.recordings[2].data[1] = 0.25

    with pytest.raises(InputError) as raised:
        grindwatch.train(
            recordings,
            _config(**{"data.constant_policy": "raise", "data.strict": True}),
        )

    message = str(raised.value)
    assert "r2" in message
    assert "vib_y" in message
    # Without data.strict the recording is skipped and listed, as a file is.
    skipping = grindwatch.train(
        recordings, _config(**{"data.constant_policy": "raise"})
    )
    assert [r.name for r in skipping.recordings] == ["r0", "r1", "r3"]
    assert [str(s.path) for s in skipping.recordings.skipped] == ["r2"]
    assert "vib_y" in skipping.recordings.skipped[0].reason
    # Under the default policy the channel is kept and listed; the caller's
    # Recording keeps its own metadata.
    trained = grindwatch.train(recordings, _config())
    checked = {r.name: r.metadata for r in trained.recordings}
    assert checked["r2"]["constant_channels"] == ["vib_y"]
    assert "constant_channels" not in recordings.recordings[2].metadata


def test_score_in_memory_applies_clipping_policy():
    config = _config(**{"data.clipping_policy": "raise"})
    model = grindwatch.train(_recordings(4), config).model
    clipped = make_cycle(9)
    clipped[0] = np.clip(clipped[0], -0.5, 0.5)
    recordings = RecordingSet([Recording("held", clipped, CHANNELS, 1000.0)])

    with pytest.raises(InputError) as raised:
        grindwatch.score(model, recordings, strict=True)

    assert "held" in str(raised.value)
    assert "vib_x" in str(raised.value)


def test_score_in_memory_skips_clipped_recording():
    config = _config(**{"data.clipping_policy": "raise"})
    model = grindwatch.train(_recordings(4), config).model
    clipped = make_cycle(9)
    clipped[0] = np.clip(clipped[0], -0.5, 0.5)
    recordings = RecordingSet(
        [
            Recording("held", clipped, CHANNELS, 1000.0),
            Recording("fine", make_cycle(10), CHANNELS, 1000.0),
        ]
    )

    # Before, the first clipped recording raised and nothing was scored, while
    # a clipped file is skipped and listed.
    scores = grindwatch.score(model, recordings)

    assert list(scores.recordings["recording"]) == ["fine"]
    assert [entry["path"] for entry in scores.skipped] == ["held"]
    assert "vib_x" in scores.skipped[0]["reason"]


def test_train_in_memory_applies_data_match():
    recordings = _recordings(6)
    for recording in recordings:
        steel = int(recording.name[1:]) % 2 == 0
        recording.metadata["meta"] = {"material": "steel" if steel else "alu"}

    trained = grindwatch.train(
        recordings, _config(**{"data.match": {"material": "alu"}})
    )

    assert [r.name for r in trained.recordings] == ["r1", "r3", "r5"]
    with pytest.raises(InputError, match="data.match"):
        grindwatch.train(recordings, _config(**{"data.match": {"material": "brass"}}))


def test_train_in_memory_resamples_to_common_rate():
    recordings = [
        Recording(f"r{seed}", make_cycle(seed), CHANNELS, 1000.0) for seed in range(3)
    ]
    fast = make_cycle(7, n_samples=4096, rate=2000.0)
    recordings.append(Recording("fast", fast, CHANNELS, 2000.0))

    with pytest.raises(InputError, match="data.resample: true"):
        grindwatch.train(RecordingSet(recordings), _config())
    trained = grindwatch.train(
        RecordingSet(recordings), _config(**{"data.resample": True})
    )

    assert trained.model.sample_rate_ == 1000.0
    resampled = {r.name: r for r in trained.recordings}["fast"]
    assert resampled.sample_rate == 1000.0
    assert resampled.n_samples == 2048
    # The caller's recording is not changed.
    assert recordings[-1].n_samples == 4096


def test_train_in_memory_resamples_to_set_rate():
    trained = grindwatch.train(_recordings(3), _config(**{"data.resample_rate": 500.0}))

    assert trained.model.sample_rate_ == 500.0
    assert {r.n_samples for r in trained.recordings} == {1024}


@pytest.mark.parametrize(
    "channels", [tuple(CHANNELS), np.array(CHANNELS), pd.Index(CHANNELS)]
)
def test_recording_channel_sequences_become_list(channels):
    recording = Recording("r", make_cycle(0), channels, 1000.0)

    assert recording.channels == CHANNELS
    assert type(recording.channels) is list


def test_recording_channels_one_string_rejected():
    # The characters of "vib" were taken as three channel names.
    with pytest.raises(TypeError, match=r"for one channel pass \[name\]"):
        Recording("r", make_cycle(0), "vib", 1000.0)


def test_recording_channel_name_not_text():
    with pytest.raises(TypeError, match=r"channel names must be str, not 1 \(int\)"):
        Recording("r", make_cycle(0), [1, 2, 3], 1000.0)


@pytest.mark.parametrize("rate", [np.array(1000.0), np.int64(1000), 1000])
def test_recording_rate_forms_become_float(rate):
    # np.load returns the sample_rate of an .npz as a 0-d array.
    recording = Recording("r", make_cycle(0), CHANNELS, rate)

    assert recording.sample_rate == 1000.0
    assert type(recording.sample_rate) is float


@pytest.mark.parametrize("rate", [True, np.bool_(True)])
def test_recording_rate_bool_rejected(rate):
    # True counted as an int, so the recording had a rate of 1 Hz.
    with pytest.raises(
        InputError, match=r"sample rate (np\.)?True_? is not a positive"
    ):
        Recording("r", make_cycle(0), CHANNELS, rate)


def test_evaluate_labels_series_and_wrong_type():
    # A Series failed inside pathlib with "expected str, bytes or os.PathLike".
    model = grindwatch.train(_recordings(4), _config()).model
    labeled = RecordingSet(
        [
            Recording("normal", make_cycle(10), CHANNELS, 1000.0),
            Recording("faulty", make_cycle(11, anomaly="spike"), CHANNELS, 1000.0),
        ]
    )
    table = pd.DataFrame({"recording": ["normal", "faulty"], "label": [0, 1]})

    from_dict = grindwatch.evaluate(model, labeled, labels={"normal": 0, "faulty": 1})
    from_series = grindwatch.evaluate(
        model, labeled, labels=table.set_index("recording")["label"]
    )

    assert from_series.recordings == from_dict.recordings
    with pytest.raises(TypeError, match=r"not DataFrame; for a table of names"):
        grindwatch.evaluate(model, labeled, labels=table)


def test_evaluate_empty_labels_named(tmp_path):
    # Empty labels raised a bare StopIteration instead of an InputError.
    model = grindwatch.train(_recordings(4), _config()).model
    labeled = RecordingSet([Recording("normal", make_cycle(10), CHANNELS, 1000.0)])
    header_only = tmp_path / "labels.csv"
    header_only.write_text("recording,label\n")

    with pytest.raises(InputError, match="labels: contains no labels"):
        grindwatch.evaluate(model, labeled, labels={}, track=False)
    with pytest.raises(InputError, match="labels.csv: contains no labels"):
        grindwatch.evaluate(model, labeled, labels=header_only, track=False)


def test_load_recordings_bytes_path_named():
    # A bytes path was iterated as ints, and the error message read "not int".
    with pytest.raises(TypeError, match=r"not bytes; decode a path given as bytes"):
        grindwatch.load_recordings(b"recordings/week1")
