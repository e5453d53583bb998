"""End-to-end train and score on generated cycles and feature tables."""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grindwatch
from grindwatch.config import Config
from grindwatch.exceptions import ConfigError, InputError
from grindwatch.pipeline import Model
from tests.conftest import make_cycle


def _config(**overrides) -> Config:  # noqa: ANN003
    base = {
        "windows.length": 256,
        "frontend.kind": "spectrum",
        "frontend.n_bands": 16,
        "detector.autoencoder.epochs": 3,
        "tracking.enabled": False,
    }
    base.update(overrides)
    return Config().with_overrides(base)


@pytest.mark.parametrize(
    ("family", "frontend"),
    [
        ("autoencoder", "spectrum"),
        ("iforest", "features"),
        ("pca", "spectrum"),
        ("knn", "spectrum"),
    ],
)
def test_train_on_good_flags_bad_cycles(cycle_folders, family, frontend):
    config = _config(
        **{
            "detector.family": family,
            "frontend.kind": frontend,
            "detector.autoencoder.epochs": 15,
            "aggregate.method": "max",
        }
    )

    result = grindwatch.train(cycle_folders["good"], config)
    scored = grindwatch.score(result.model, cycle_folders["bad"])

    normal = grindwatch.score(result.model, cycle_folders["good"])
    assert scored.recordings["score"].min() > normal.recordings["score"].max()
    assert scored.recordings["flag"].all()


def test_threshold_margin_scales_the_trained_cut(cycle_folders):
    plain = _config(**{"detector.family": "pca", "threshold.method": "percentile"})
    wide = plain.with_overrides({"threshold.margin": 1.5})

    base = grindwatch.train(cycle_folders["good"], plain).model.threshold_
    scaled = grindwatch.train(cycle_folders["good"], wide).model.threshold_

    assert scaled.value == pytest.approx(1.5 * base.value)
    assert scaled.margin == 1.5
    assert scaled.share_flagged <= base.share_flagged


def test_score_tables_have_documented_columns(cycle_folders):
    result = grindwatch.train(cycle_folders["good"], _config())

    scored = grindwatch.score(result.model, cycle_folders["root"])

    assert list(scored.windows.columns[:6]) == [
        "recording",
        "window",
        "start_sample",
        "start_s",
        "end_s",
        "score",
    ]
    assert {"flag", "label"} <= set(scored.windows.columns)
    assert len(scored.recordings) == 11
    assert scored.windows["end_s"].iloc[0] == pytest.approx(0.256)
    assert set(scored.recordings["label"]) == {0, 1}


def test_feature_table_flags_outlier_rows(feature_table):
    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "iforest"}
    )

    result = grindwatch.train(feature_table, config)
    scored = result.training.recordings

    flagged = scored.loc[scored["flag"], "recording"].tolist()
    assert {f"features#{i}" for i in range(300, 304)} <= set(flagged)
    assert len(flagged) < 10


def test_table_missing_feature_listed_once(feature_table, tmp_path, caplog):
    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "iforest"}
    )
    model = grindwatch.train(feature_table, config).model
    rows = pd.read_parquet(feature_table).drop(columns=["f5", "anomaly"]).head(5)
    missing = tmp_path / "missing.csv"
    rows.to_csv(missing, index=False)

    with caplog.at_level(logging.WARNING, logger="grindwatch.pipeline"):
        with pytest.raises(InputError) as raised:
            grindwatch.score(model, missing)

    skipped = [r for r in caplog.records if r.getMessage().startswith("skipped")]
    assert len(skipped) == 1
    assert "f5" in skipped[0].getMessage()
    assert raised.value.path == str(missing)


def test_table_nan_when_scoring_names_no_training(feature_table, tmp_path):
    # The reader is shared by training and scoring, so its advice fits both.
    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "iforest"}
    )
    model = grindwatch.train(feature_table, config).model
    rows = pd.read_parquet(feature_table).drop(columns=["anomaly"]).head(5)
    rows.iloc[3, 0] = np.nan
    path = tmp_path / "new.csv"
    rows.to_csv(path, index=False)

    with pytest.raises(InputError) as raised:
        grindwatch.score(model, path)

    message = str(raised.value)
    assert "NaN or infinite values, first in row 3" in message
    assert "fill them, or drop their rows from the table" in message
    assert "training" not in message


@pytest.fixture
def table_with_copies(feature_table, tmp_path):
    """The feature table with f0 copied as "f0_copy" and f2 as "f2_again"."""
    import pandas as pd

    frame = pd.read_parquet(feature_table)
    frame.insert(1, "f0_copy", frame["f0"])
    frame["f2_again"] = frame["f2"]
    # Correlated, not equal: stays.
    frame["f3_scaled"] = frame["f3"] * 2.0
    path = tmp_path / "copies" / "features.parquet"
    path.parent.mkdir()
    frame.to_parquet(path)
    return path


def test_copied_feature_columns_are_left_out(table_with_copies, caplog):
    import pandas as pd

    config = _config(**{"data.kind": "table", "detector.family": "knn"})

    with caplog.at_level("WARNING", logger="grindwatch.pipeline"):
        result = grindwatch.train(table_with_copies, config)

    model = result.model
    assert model.duplicate_channels_ == {"f0_copy": "f0", "f2_again": "f2"}
    assert model.channels_ == ["f0", "f1", "f2", "f3", "f4", "f5", "f3_scaled"]
    assert model.describe()["duplicate_channels"] == model.duplicate_channels_
    assert "2 of the 9 feature columns repeat" in caplog.text
    # Scoring reads every column and keeps the ones the model uses.
    scored = grindwatch.score(model, table_with_copies).recordings
    flagged = set(scored.loc[scored["flag"], "recording"])
    assert {f"features#{i}" for i in range(300, 304)} <= flagged
    # The same scores as a model trained on the table without the copies.
    plain = pd.read_parquet(table_with_copies).drop(columns=["f0_copy", "f2_again"])
    plain_path = table_with_copies.parent / "plain.parquet"
    plain.to_parquet(plain_path)
    reference = grindwatch.train(plain_path, config).training.recordings
    np.testing.assert_allclose(
        result.training.recordings["score"].to_numpy(),
        reference["score"].to_numpy(),
        rtol=1e-6,
    )


def test_copied_columns_stay_when_asked(table_with_copies):
    config = _config(
        **{
            "data.kind": "table",
            "detector.family": "pca",
            "data.duplicate_channels": "keep",
        }
    )

    model = grindwatch.train(table_with_copies, config).model

    assert model.duplicate_channels_ == {}
    assert len(model.channels_) == 9


def test_short_recording_listed_with_copied_channel(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    folder.mkdir()
    for i, n_samples in enumerate([100, 3000, 3000, 3000]):
        a, b = rng.normal(size=(2, n_samples))
        frame = pd.DataFrame({"a": a, "a_copy": a, "b": b})
        frame.to_csv(folder / f"r{i}.csv", index=False)
    config = _config(**{"detector.family": "pca", "data.sample_rate": 1000})

    result = grindwatch.train(folder, config)

    assert result.model.duplicate_channels_ == {"a_copy": "a"}
    assert [item.path.name for item in result.recordings.skipped] == ["r0.csv"]
    assert len(result.model.fingerprint_["skipped"]) == 1
    assert result.n_trained == 3


def test_duplicate_signal_channels_need_equal_samples():
    from grindwatch.io import Recording, RecordingSet

    rng = np.random.default_rng(0)
    recordings = []
    for i in range(3):
        a, b = rng.normal(size=(2, 500)).astype(np.float32)
        # "b_twin" equals "b" in every recording; "a_late" only in the first two.
        late = a.copy() if i < 2 else a + 1
        dead = np.zeros(500, dtype=np.float32)
        data = np.vstack([a, b, b, late, dead, dead])
        names = ["a", "b", "b_twin", "a_late", "dead", "dead_too"]
        recordings.append(Recording(f"r{i}", data, names, 1000.0))

    # Constant channels stay: either may come back to life on its own.
    assert RecordingSet(recordings).duplicate_channels() == {"b_twin": "b"}


def test_scoring_warns_when_a_copy_diverges(table_with_copies, tmp_path, caplog):
    import pandas as pd

    config = _config(**{"data.kind": "table", "detector.family": "knn"})
    model = grindwatch.train(table_with_copies, config).model
    frame = pd.read_parquet(table_with_copies)
    frame.loc[3, "f0_copy"] += 50.0
    changed = tmp_path / "changed.parquet"
    frame.to_parquet(changed)

    with caplog.at_level("WARNING", logger="grindwatch.pipeline"):
        grindwatch.score(model, changed)

    assert "no longer equal the channel they copied" in caplog.text
    assert "changed#3 (f0_copy != f0)" in caplog.text


def test_autoencoder_rejects_feature_tables(feature_table):
    config = _config(**{"data.kind": "table", "frontend.kind": "raw"})

    with pytest.raises(ConfigError, match="needs signal windows"):
        grindwatch.train(feature_table, config)


def test_score_skips_recording_missing_a_channel(cycle_folders, tmp_path):
    import pandas as pd

    result = grindwatch.train(cycle_folders["good"], _config())
    broken = tmp_path / "other" / "no_current.csv"
    broken.parent.mkdir()
    pd.read_csv(cycle_folders["good"] / "cycle_000.csv").drop(columns="current").to_csv(
        broken, index=False
    )

    scored = grindwatch.score(
        result.model, [cycle_folders["good"] / "cycle_000.csv", broken]
    )

    assert len(scored.recordings) == 1
    assert "current" in scored.skipped[0]["reason"]


def test_score_strict_raises_on_missing_channel(cycle_folders, tmp_path):
    import pandas as pd

    result = grindwatch.train(cycle_folders["good"], _config())
    broken = tmp_path / "no_current.csv"
    pd.read_csv(cycle_folders["good"] / "cycle_000.csv").drop(columns="current").to_csv(
        broken, index=False
    )

    with pytest.raises(InputError, match="missing channels"):
        grindwatch.score(result.model, broken, strict=True)


def test_model_bundle_round_trip_gives_same_scores(cycle_folders, tmp_path):
    result = grindwatch.train(cycle_folders["good"], _config(), output=tmp_path / "m")

    loaded = grindwatch.load_model(tmp_path / "m")
    first = grindwatch.score(result.model, cycle_folders["bad"])
    second = grindwatch.score(loaded, cycle_folders["bad"])

    np.testing.assert_array_equal(first.windows["score"], second.windows["score"])
    assert (tmp_path / "m" / "model.json").is_file()
    files = pd.read_json(tmp_path / "m" / "training_files.json")
    assert sorted(Path(path).name for path in files["path"]) == [
        f"cycle_{i:03d}.csv" for i in range(8)
    ]
    assert (files["sha256"].str.len() == 64).all()


def _two_variants(cycle_folders) -> tuple[Model, Model]:  # noqa: ANN001
    """Return two copies of one trained model whose pickles and model.json differ
    in their run id (and so in size and SHA-256)."""
    config = _config(**{"detector.family": "pca"})
    model = grindwatch.train(cycle_folders["good"], config).model
    first = pickle.loads(pickle.dumps(model))
    first.run_id_ = "first"
    second = pickle.loads(pickle.dumps(model))
    second.run_id_ = "second-longer"
    return first, second


def test_load_during_saves_sees_whole_pairs(cycle_folders, tmp_path):
    """A thread that loads the bundle while another saves over it again and again
    gets one of the saved models each time, never a pickle whose model.json
    records the other."""
    first, second = _two_variants(cycle_folders)
    folder = tmp_path / "bundle"
    first.save(folder)
    stop = threading.Event()
    loaded: list[str] = []
    errors: list[str] = []

    def load_repeatedly() -> None:
        while not stop.is_set():
            try:
                loaded.append(Model.load(folder).run_id_)
            except InputError as error:
                errors.append(str(error))

    reader = threading.Thread(target=load_repeatedly)
    reader.start()
    try:
        for number in range(300):
            (second if number % 2 == 0 else first).save(folder)
    finally:
        stop.set()
        reader.join()
    description = json.loads((folder / "model.json").read_text())

    assert errors == []
    assert set(loaded) == {"first", "second-longer"}
    assert description["run_id"] == "first"
    assert "file" not in description["model_pkl"]
    assert list(folder.glob(".model-*.pkl")) == []


def test_concurrent_saves_into_one_folder_all_succeed(cycle_folders, tmp_path):
    """Two threads saving other models into one folder at once each finish, and
    the folder then contains a whole bundle of the last save. No save removes
    the pickle that another has staged."""
    first, second = _two_variants(cycle_folders)
    folder = tmp_path / "bundle"
    errors: list[BaseException] = []

    def save_repeatedly(model: Model) -> None:
        for _ in range(150):
            try:
                model.save(folder)
            except Exception as error:  # noqa: BLE001 - collected for the assert
                errors.append(error)

    threads = [
        threading.Thread(target=save_repeatedly, args=(m,)) for m in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    description = json.loads((folder / "model.json").read_text())

    assert errors == []
    assert Model.load(folder).run_id_ == description["run_id"]
    assert list(folder.glob(".model-*.pkl")) == []


def test_save_stopped_after_commit_loads_new(cycle_folders, tmp_path, monkeypatch):
    """A save that stops once model.json names the new pickle, before it becomes
    model.pkl, leaves a bundle that loads as the new model, and the next save
    removes the staged file."""
    first, second = _two_variants(cycle_folders)
    folder = tmp_path / "bundle"
    first.save(folder)
    real_replace = os.replace

    def replace(source, target):  # noqa: ANN001, ANN202
        if Path(target).name == "model.pkl":
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace)
        with pytest.raises(OSError, match="model.pkl"):
            second.save(folder)
    stopped = Model.load(folder).run_id_
    staged = sorted(path.name for path in folder.glob(".model-*.pkl"))
    first.save(folder)

    assert stopped == "second-longer"
    assert len(staged) == 1
    assert Model.load(folder).run_id_ == "first"
    assert list(folder.glob(".model-*.pkl")) == []


def test_bundle_with_empty_channel_list_loads(cycle_folders, tmp_path):
    config = _config(**{"detector.family": "pca"})
    model = grindwatch.train(cycle_folders["good"], config).model
    # Older versions accepted data.channels: [] and used every channel. The
    # validator now rejects it, so write the value past validation.
    model.config.data.__dict__["channels"] = []
    model.save(tmp_path / "m")

    loaded = grindwatch.load_model(tmp_path / "m")

    assert loaded.config.data.channels is None
    assert loaded.channels_ == model.channels_


def test_same_seed_gives_same_scores(cycle_folders):
    first = grindwatch.train(cycle_folders["good"], _config())
    second = grindwatch.train(cycle_folders["good"], _config())

    np.testing.assert_array_equal(
        first.model.training_scores_, second.model.training_scores_
    )


def test_recording_shorter_than_window_is_skipped(cycle_folders):
    config = _config(**{"windows.length": 4096})

    with pytest.raises(InputError, match="fewer than one window"):
        grindwatch.train(cycle_folders["good"], config)


def test_saved_bundle_and_tables_follow_umask(cycle_folders, tmp_path):
    import os
    import stat

    from grindwatch.results import write_table

    previous = os.umask(0o022)
    try:
        result = grindwatch.train(
            cycle_folders["good"], _config(), output=tmp_path / "m"
        )
        table = write_table(result.training.recordings, tmp_path / "r.csv")
    finally:
        os.umask(previous)

    for path in (tmp_path / "m" / "model.pkl", table):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.skipif(os.name != "posix", reason="folders are synced on POSIX only")
def test_saved_files_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    """Each written file is synced before it replaces the old one, and its folder
    after, so a power cut leaves the old file or the whole new one."""
    from grindwatch import results

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source, target) -> None:  # noqa: ANN001
        events.append(("replace", str(target)))
        real_replace(source, target)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name a descriptor's file")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    table = results.write_table(pd.DataFrame({"a": [1.0]}), tmp_path / "t.csv")
    written = results.atomic_write_bytes(tmp_path / "b.json", b"{}")
    monkeypatch.undo()

    for path in (table, written):
        at = events.index(("replace", str(path)))
        synced_file = events[at - 1]
        assert synced_file[0] == "fsync"
        assert Path(synced_file[1]).parent == tmp_path.resolve()
        assert events[at + 1] == ("fsync", str(tmp_path.resolve()))


@pytest.mark.skipif(os.name != "posix", reason="folders are synced on POSIX only")
def test_unreadable_folder_still_takes_files(tmp_path, monkeypatch):
    """A folder that can be written but not opened (mode 0o300 for its owner)
    only skips the folder sync, because the file is already in place."""
    from grindwatch import results

    real_open = os.open

    def open_file(path, flags, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_file)
    table = results.write_table(pd.DataFrame({"a": [1.0]}), tmp_path / "t.csv")
    written = results.atomic_write_bytes(tmp_path / "b.json", b"{}")
    monkeypatch.undo()

    assert pd.read_csv(table)["a"].tolist() == [1.0]
    assert written.read_bytes() == b"{}"


def _idle_axis_recordings():  # noqa: ANN202
    """Twelve noisy channels and one axis that is still except in short moves."""
    from grindwatch.io import Recording, RecordingSet

    rng = np.random.default_rng(5)
    recordings = []
    for index in range(6):
        samples = rng.normal(size=(12, 2048)).astype(np.float32)
        axis = rng.normal(scale=0.01, size=2048)
        for start in range(100, 2048, 400):
            axis[start : start + 40] += 20 * np.sin(np.linspace(0, np.pi, 40))
        samples[3] = axis
        names = [f"c{i}" for i in range(12)]
        recordings.append(Recording(f"r{index}", samples, names, 1000.0))
    return RecordingSet(recordings)


@pytest.mark.parametrize(("method", "warned"), [("robust", True), ("standard", False)])
def test_idle_channel_dominating_scores_warns(caplog, method, warned):
    from grindwatch.pipeline import Model

    config = Config().with_overrides(
        {
            "tracking.enabled": False,
            "windows.length": 128,
            "frontend.kind": "raw",
            "detector.family": "pca",
            "scaling.method": method,
        }
    )

    Model(config).fit(_idle_axis_recordings())

    dominant = [r for r in caplog.records if "carries" in r.getMessage()]
    assert bool(dominant) == warned
    if warned:
        assert "channel c3 carries" in dominant[0].getMessage()


def test_hop_longer_than_window_warns(caplog):
    from grindwatch.pipeline import Model

    config = Config().with_overrides(
        {
            "tracking.enabled": False,
            "windows.length": 128,
            "windows.hop": 512,
            "frontend.kind": "raw",
            "detector.family": "pca",
        }
    )

    Model(config).fit(_idle_axis_recordings())

    assert "75% of the samples fall between windows" in caplog.text


def test_fingerprint_counts_trained_recordings(tmp_path):
    from tests.conftest import write_cycles

    (first,) = write_cycles(tmp_path / "data", 1)
    write_cycles(tmp_path / "data", 3, start_seed=1)
    short = tmp_path / "data" / "short.csv"
    short.write_text("".join(first.read_text().splitlines(keepends=True)[:101]))
    config = Config().with_overrides(
        {"tracking.enabled": False, "windows.length": 256, "detector.family": "pca"}
    )

    model = grindwatch.train(tmp_path / "data", config).model

    assert model.fingerprint_["n_recordings"] == 5
    assert model.fingerprint_["n_trained"] == 4
    assert [s["path"] for s in model.fingerprint_["skipped"]] == [str(short)]


@pytest.mark.parametrize(
    ("family", "frontend"),
    [("autoencoder", "raw"), ("autoencoder", "spectrum"), ("knn", "features")],
)
def test_reading_far_off_scale_scores_finite_and_flagged(
    cycle_folders, family, frontend
):
    from grindwatch.io import Recording, RecordingSet

    config = _config(**{"detector.family": family, "frontend.kind": frontend})
    model = grindwatch.train(cycle_folders["good"], config).model
    channels = list(model.channels_)
    huge = Recording("huge", make_cycle(50) * np.float32(1e30), channels, 1000.0)
    normal = Recording("normal", make_cycle(51), channels, 1000.0)

    scored = grindwatch.score(model, RecordingSet([huge, normal]))

    table = scored.recordings.set_index("recording")
    assert np.isfinite(scored.windows["score"]).all()
    assert table.loc["huge", "flag"]
    assert not table.loc["normal", "flag"]


def test_most_flagged_training_recordings_warned(caplog):
    from grindwatch.io import Recording, RecordingSet

    recordings = []
    for seed in range(8):
        data = make_cycle(seed)
        # Every cycle starts with the same loud run-in phase.
        data[:, :256] += 4.0 * np.random.default_rng(seed).standard_normal((3, 256))
        recordings.append(Recording(f"c{seed}", data, ["a", "b", "c"], 1000.0))
    config = _config(**{"detector.family": "iforest", "aggregate.method": "max"})

    with caplog.at_level("WARNING", logger="grindwatch.pipeline"):
        result = grindwatch.train(RecordingSet(recordings), config)

    assert result.training.recordings["flag"].sum() > 4
    warned = [
        r.getMessage() for r in caplog.records if "training recordings" in r.message
    ]
    assert len(warned) == 1
    assert "starting at 0 s from a recording's start" in warned[0]


def test_few_flagged_training_recordings_not_warned(cycle_folders, caplog):
    with caplog.at_level("WARNING", logger="grindwatch.pipeline"):
        grindwatch.train(cycle_folders["good"], _config(**{"detector.family": "pca"}))

    assert not [r for r in caplog.records if "training recordings" in r.getMessage()]


def test_bundle_from_older_version_loads_with_new_defaults(cycle_folders, tmp_path):
    model = grindwatch.train(
        cycle_folders["good"], _config(**{"detector.family": "pca"})
    ).model
    # An older version's pickle: a setting added since is missing, and one
    # removed since is still there.
    del model.config.data.__dict__["encoding"]
    model.config.data.__dict__["retired_setting"] = 3
    model.save(tmp_path / "old")

    loaded = grindwatch.load_model(tmp_path / "old")
    scored = grindwatch.score(loaded, cycle_folders["bad"])

    assert loaded.config.data.encoding == "utf-8"
    assert "retired_setting" not in vars(loaded.config.data)
    assert len(scored.recordings) == 3


def test_score_keeps_model_channel_named_like_time(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(6)
    train_folder = tmp_path / "train"
    train_folder.mkdir()
    for index in range(4):
        frame = pd.DataFrame(make_cycle(index, 512).T, columns=["a", "b", "c"])
        frame["T"] = 40 + rng.standard_normal(512)
        frame.to_csv(train_folder / f"run{index}.csv", index=False)
    config = _config(**{"detector.family": "pca", "windows.length": 64})
    model = grindwatch.train(train_folder, config).model
    # A steadily warming machine: T rises at every sample, like a time column.
    frame = pd.DataFrame(make_cycle(9, 512).T, columns=["a", "b", "c"])
    frame["T"] = np.linspace(40, 45, 512)
    warming = tmp_path / "warming.csv"
    frame.to_csv(warming, index=False)

    scored = grindwatch.score(model, warming)

    assert model.channels_ == ["a", "b", "c", "T"]
    assert scored.skipped == []
    assert len(scored.recordings) == 1


def test_chunk_samples_on_csv_says_read_whole(cycle_folders, caplog):
    model = grindwatch.train(
        cycle_folders["good"], _config(**{"detector.family": "pca"})
    ).model
    model.config = model.config.with_overrides({"data.chunk_samples": 1000})
    path = cycle_folders["bad"] / "cycle_100.csv"

    with caplog.at_level("WARNING", logger="grindwatch.pipeline"):
        scored = grindwatch.score(model, path)

    assert len(scored.recordings) == 1
    warned = [r.getMessage() for r in caplog.records if "read whole" in r.message]
    assert len(warned) == 1
    assert "cycle_100.csv" in warned[0]


def test_shifted_batch_warns_of_operating_point(cycle_folders, caplog):
    from grindwatch.io import Recording, RecordingSet

    model = grindwatch.train(
        cycle_folders["good"], _config(**{"detector.family": "pca"})
    ).model
    shifted = []
    for seed in range(60, 65):
        data = make_cycle(seed)
        data[1] *= 6.0  # another gain on vib_y, in every recording of the batch
        shifted.append(Recording(f"s{seed}", data, model.channels_, 1000.0))

    with caplog.at_level("WARNING", logger="grindwatch.pipeline"):
        scored = grindwatch.score(model, RecordingSet(shifted))

    assert scored.recordings["flag"].all()
    warned = [r.getMessage() for r in caplog.records if "operating point" in r.message]
    assert len(warned) == 1
    assert "5 of the 5 scored recordings are flagged" in warned[0]
    assert "Channel 'vib_y' is the top channel" in warned[0]


def test_few_faults_give_no_operating_warning(cycle_folders, caplog):
    model = grindwatch.train(
        cycle_folders["good"], _config(**{"detector.family": "pca"})
    ).model

    with caplog.at_level("WARNING", logger="grindwatch.pipeline"):
        scored = grindwatch.score(model, cycle_folders["root"])

    assert scored.recordings["flag"].any()
    assert not [r for r in caplog.records if "operating point" in r.getMessage()]


def test_threshold_flagging_a_third_of_training_warns(cycle_folders, caplog):
    config = _config(
        **{
            "detector.family": "pca",
            "threshold.method": "percentile",
            "threshold.percentile": 70.0,
            "aggregate.method": "max",
        }
    )

    with caplog.at_level("WARNING", logger="grindwatch.pipeline"):
        result = grindwatch.train(cycle_folders["good"], config)

    scores = result.training.recordings["score"]
    n_flagged = int((scores > result.model.threshold_.value).sum())
    warned = [r.getMessage() for r in caplog.records if "assumes most" in r.message]
    # More than a quarter of the 8 recordings: the warning's limit.
    assert n_flagged > 2
    assert len(warned) == 1
    assert f"flags {n_flagged} of the 8 training recordings" in warned[0]
    assert "the max of its window scores" in warned[0]


def test_table_threshold_counts_rows(feature_table):
    config = _config(
        **{"data.kind": "table", "frontend.kind": "raw", "detector.family": "pca"}
    )

    model = grindwatch.train(feature_table, config).model

    assert model.threshold_.unit == "rows"
    assert "training rows" in model.threshold_.describe()
    assert "training windows" not in model.threshold_.describe()


def test_score_rejects_arrays_and_bare_recordings(cycle_folders):
    config = _config(**{"detector.family": "pca"})
    model = grindwatch.train(cycle_folders["good"], config).model
    data = make_cycle(100, 1024)
    recording = grindwatch.Recording("cycle", data, ["vib_x", "vib_y", "current"])

    with pytest.raises(TypeError, match="not ndarray"):
        grindwatch.score(model, data)
    with pytest.raises(TypeError, match="grindwatch.RecordingSet") as raised:
        grindwatch.score(model, [recording])
    scored = grindwatch.score(model, grindwatch.RecordingSet([recording]))

    assert "not Recording" in str(raised.value)
    assert len(scored.recordings) == 1


def test_score_just_above_threshold_flagged():
    from dataclasses import replace

    from grindwatch.pipeline import Model

    config = Config().with_overrides(
        {
            "tracking.enabled": False,
            "windows.length": 128,
            "frontend.kind": "raw",
            "detector.family": "pca",
        }
    )
    recordings = _idle_axis_recordings()
    model = Model(config).fit(recordings)
    top = float(model.score(recordings).windows["score"].max())
    # A cut closer below the top score than float32 resolves.
    model.threshold_ = replace(model.threshold_, value=float(np.nextafter(top, 0.0)))

    scored = model.score(recordings)

    assert scored.windows["flag"].sum() == 1
    assert scored.windows["score"].dtype == np.float64


def test_score_matches_each_recording_once(caplog, monkeypatch):
    import grindwatch.io.samples as samples
    from grindwatch.io import Recording, RecordingSet
    from grindwatch.pipeline import Model

    rng = np.random.default_rng(4)

    def recording(name: str, rate: float, diverged: bool) -> Recording:
        data = rng.normal(size=(2, 512)).astype(np.float32)
        copy = data[0].copy()
        copy[5] += float(diverged)
        return Recording(name, np.vstack([data, copy]), ["a", "b", "a_copy"], rate)

    config = Config().with_overrides(
        {
            "tracking.enabled": False,
            "windows.length": 64,
            "frontend.kind": "raw",
            "detector.family": "pca",
            "data.resample": True,
        }
    )
    model = Model(config).fit(
        RecordingSet([recording(f"r{i}", 100.0, False) for i in range(5)])
    )
    calls = []
    real_resample = samples.resample

    def counted_resample(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args[0].name)
        return real_resample(*args, **kwargs)

    monkeypatch.setattr(samples, "resample", counted_resample)
    batch = [recording("copy_moved", 100.0, True), recording("fast", 200.0, False)]

    with caplog.at_level("WARNING", logger="grindwatch.pipeline"):
        scored = model.score(RecordingSet(batch))

    diverged = [r for r in caplog.records if "no longer equal the" in r.getMessage()]
    assert len(diverged) == 1
    assert "copy_moved (a_copy != a)" in diverged[0].getMessage()
    assert calls == ["fast"]
    assert scored.recordings["n_windows"].tolist() == [8, 4]


def test_score_skips_recording_with_nan():
    from grindwatch.io import Recording, RecordingSet
    from grindwatch.pipeline import Model

    rng = np.random.default_rng(6)
    recordings = [
        Recording(f"r{i}", rng.normal(size=(2, 1024)), ["a", "b"], 100.0)
        for i in range(4)
    ]
    config = Config().with_overrides(
        {
            "tracking.enabled": False,
            "windows.length": 128,
            "frontend.kind": "raw",
            "detector.family": "pca",
        }
    )
    model = Model(config).fit(RecordingSet(recordings))
    data = rng.normal(size=(2, 1024))
    data[1, 10] = np.nan
    gap = Recording("gap", data, ["a", "b"], 100.0)

    scored = model.score(RecordingSet([recordings[0], gap]))

    assert scored.recordings["recording"].tolist() == ["r0"]
    assert scored.skipped[0]["path"] == "gap"
    assert "NaN" in scored.skipped[0]["reason"]
    assert "b" in scored.skipped[0]["reason"]
    with pytest.raises(InputError, match="^gap: .*NaN"):
        grindwatch.score(model, RecordingSet([gap]), strict=True)


def test_fit_orders_channels_by_name():
    from grindwatch.io import Recording, RecordingSet
    from grindwatch.pipeline import Model

    rng = np.random.default_rng(8)
    data = [
        np.vstack([100 + 10 * rng.normal(size=1024), rng.normal(size=1024)])
        for _ in range(4)
    ]
    in_order = [Recording(f"r{i}", d, ["a", "b"], 100.0) for i, d in enumerate(data)]
    # Every second recording lists its channels the other way round.
    mixed = [
        Recording(r.name, r.data[::-1].copy(), ["b", "a"], 100.0) if i % 2 else r
        for i, r in enumerate(in_order)
    ]
    config = Config().with_overrides(
        {
            "tracking.enabled": False,
            "windows.length": 128,
            "frontend.kind": "raw",
            "detector.family": "pca",
        }
    )

    expected = Model(config).fit(RecordingSet(in_order))
    model = Model(config).fit(RecordingSet(mixed))

    assert model.channels_ == ["a", "b"]
    np.testing.assert_array_equal(model.scaler_.center_, expected.scaler_.center_)
    assert model.threshold_.value == expected.threshold_.value


def test_fit_rejects_mixed_sample_rates():
    from grindwatch.io import Recording, RecordingSet
    from grindwatch.pipeline import Model

    rng = np.random.default_rng(9)
    recordings = [
        Recording(f"r{i}", rng.normal(size=(2, 1024)), ["a", "b"], rate)
        for i, rate in enumerate([100.0, 100.0, 200.0])
    ]
    config = Config().with_overrides(
        {"tracking.enabled": False, "windows.length": 128, "detector.family": "pca"}
    )

    with pytest.raises(InputError, match="^r2: sample rate 200 differs from 100"):
        Model(config).fit(RecordingSet(recordings))
