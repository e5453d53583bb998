"""One contract run over every registered detector, plus family-specific checks."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from grindwatch.detectors import DETECTORS, AutoencoderDetector, make_detector
from grindwatch.exceptions import ConfigError, InputError, NotFittedError
from grindwatch.thresholds import fit_threshold

FAST = {
    "autoencoder": {"epochs": 5, "filters": (8, 8), "kernel_sizes": (5, 3)},
    "iforest": {"n_estimators": 50},
    "pca": {},
    "knn": {},
}


def _windows(seed: int, n: int = 120, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 32, dtype=np.float32)
    base = np.stack([np.sin(2 * np.pi * 3 * t), np.cos(2 * np.pi * 5 * t)])
    X = base[None] + 0.1 * rng.standard_normal((n, 2, 32)).astype(np.float32)
    return (X + shift).astype(np.float32)


@pytest.mark.parametrize("family", sorted(DETECTORS))
def test_detector_contract(family):
    params = FAST[family]
    detector = make_detector(family, **params)
    given = copy.deepcopy(detector.get_params())
    normal, shifted = _windows(0), _windows(1, n=20, shift=2.0)

    with pytest.raises(NotFittedError, match="call fit"):
        detector.anomaly_score(normal)
    detector.fit(normal)
    scores_normal = detector.anomaly_score(_windows(2, n=20))
    scores_shifted = detector.anomaly_score(shifted)

    assert detector.get_params() == given
    assert scores_normal.shape == (20,)
    assert detector.training_scores_.shape == (120,)
    assert np.isfinite(scores_normal).all()
    # Higher is more anomalous.
    assert scores_shifted.min() > np.median(scores_normal)
    assert detector.explain(shifted).shape == shifted.shape


@pytest.mark.parametrize("family", sorted(DETECTORS))
def test_detector_scores_are_float64(family):
    detector = make_detector(family, **FAST[family]).fit(_windows(0))
    windows = _windows(2, n=20)

    scores, _ = detector.score_and_explain(windows)

    # Thresholds are float64. NumPy compares a float32 array with a Python
    # float in float32, which rounds the threshold onto nearby scores.
    assert detector.training_scores_.dtype == np.float64
    assert detector.anomaly_score(windows).dtype == np.float64
    assert scores.dtype == np.float64


@pytest.mark.parametrize("family", sorted(DETECTORS))
def test_detector_same_seed_same_scores(family):
    first = make_detector(family, **FAST[family]).fit(_windows(0))
    second = make_detector(family, **FAST[family]).fit(_windows(0))

    np.testing.assert_array_equal(
        first.anomaly_score(_windows(3)), second.anomaly_score(_windows(3))
    )


@pytest.mark.parametrize("family", sorted(DETECTORS))
def test_detector_rejects_other_window_shape(family):
    detector = make_detector(family, **FAST[family]).fit(_windows(0))

    with pytest.raises(InputError, match="do not match the training shape"):
        detector.anomaly_score(np.zeros((3, 2, 16), dtype=np.float32))


def test_detector_rejects_nan_windows():
    windows = _windows(0)
    windows[3, 1, 7] = np.nan

    with pytest.raises(InputError, match="NaN"):
        make_detector("pca").fit(windows)


def test_unknown_family_and_parameter_rejected():
    with pytest.raises(ConfigError, match="unknown"):
        make_detector("lstm")
    with pytest.raises(ConfigError, match="takes no parameter"):
        make_detector("pca", n_neighbors=3)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_autoencoder_losses_train_and_record_history(loss):
    detector = AutoencoderDetector(
        epochs=4,
        loss=loss,
        filters=(8,),
        kernel_sizes=(5,),
        strides=(2,),
        latent_size=None,
    )

    detector.fit(_windows(0))

    assert len(detector.history_) == 4
    assert detector.history_[-1]["train_loss"] < detector.history_[0]["train_loss"]
    assert detector.history_[0]["val_loss"] is not None


def test_autoencoder_stops_early_and_keeps_best():
    detector = AutoencoderDetector(
        epochs=200,
        patience=2,
        learning_rate=0.05,
        filters=(4,),
        kernel_sizes=(3,),
        strides=(1,),
    )

    detector.fit(_windows(0))

    assert len(detector.history_) < 200
    losses = [row["val_loss"] for row in detector.history_]
    assert detector.best_epoch_ == int(np.argmin(losses))


def test_autoencoder_diverging_names_learning_rate():
    detector = AutoencoderDetector(
        epochs=3, learning_rate=1e3, filters=(8,), kernel_sizes=(3,), strides=(2,)
    )

    with pytest.raises(ConfigError, match="learning_rate=1000"):
        detector.fit(_windows(0) * 1e6)


def test_autoencoder_epoch_callback_can_stop_training():
    seen = []

    def stop_after_two(epoch, train_loss, val_loss):  # noqa: ANN001
        seen.append(epoch)
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        AutoencoderDetector(epochs=10).fit(_windows(0), on_epoch=stop_after_two)
    assert seen == [0, 1]


def test_autoencoder_rejects_mismatched_layers_and_short_windows():
    with pytest.raises(ConfigError, match="one entry per layer"):
        AutoencoderDetector(filters=(8, 8), kernel_sizes=(3,)).fit(_windows(0))
    with pytest.raises(ConfigError, match="total stride"):
        AutoencoderDetector(strides=(8, 8)).fit(_windows(0))


def test_knn_clamps_neighbours_with_warning():
    detector = make_detector("knn", n_neighbors=50)

    with pytest.warns(UserWarning, match="using 9"):
        detector.fit(_windows(0, n=10))
    assert detector.n_neighbors == 50
    assert detector.n_neighbors_ == 9


def test_knn_with_one_window_names_the_fix():
    detector = make_detector("knn")

    with pytest.raises(ConfigError, match="the data gives 1; .*--window"):
        detector.fit(np.zeros((1, 4, 8), dtype=np.float32))


def test_knn_training_scores_leave_self_match_out():
    windows = _windows(0, n=30)
    detector = make_detector("knn", n_neighbors=3).fit(windows)

    assert (detector.training_scores_ > 0).all()


def test_knn_scores_training_windows_as_in_training():
    windows = _windows(0, n=30)
    detector = make_detector("knn", n_neighbors=3).fit(windows)
    shifted = windows + 0.5

    np.testing.assert_allclose(
        detector.anomaly_score(windows), detector.training_scores_
    )
    # A window that matches no training window keeps all k neighbours.
    distances = np.sort(
        np.linalg.norm(shifted.reshape(30, 1, -1) - windows.reshape(1, 30, -1), axis=2),
        axis=1,
    )
    np.testing.assert_allclose(
        detector.anomaly_score(shifted), distances[:, :3].mean(axis=1), rtol=1e-6
    )


def test_autoencoder_fused_adam_matches_loop(monkeypatch: pytest.MonkeyPatch):
    import torch

    windows = _windows(0)
    fused = AutoencoderDetector(**FAST["autoencoder"]).fit(windows)
    reference_adam = torch.optim.Adam

    def loop_adam(params, lr, fused=None):  # noqa: ANN001, ANN202
        return reference_adam(params, lr=lr, foreach=False)

    monkeypatch.setattr(torch.optim, "Adam", loop_adam)
    looped = AutoencoderDetector(**FAST["autoencoder"]).fit(windows)

    fused_losses = [row["train_loss"] for row in fused.history_]
    looped_losses = [row["train_loss"] for row in looped.history_]
    np.testing.assert_allclose(fused_losses, looped_losses, rtol=1e-4)
    np.testing.assert_allclose(
        fused.training_scores_, looped.training_scores_, rtol=1e-3
    )


def test_autoencoder_parallel_fits_match_sequential():
    import threading

    windows = _windows(0, n=64)
    settings = {"filters": (4,), "kernel_sizes": (3,), "strides": (2,), "epochs": 1}
    seeds = (0, 1)
    alone = {
        seed: AutoencoderDetector(**settings, random_state=seed)
        .fit(windows)
        .anomaly_score(windows)
        for seed in seeds
    }

    def fit(seed: int, barrier: threading.Barrier, out: dict) -> None:
        barrier.wait()
        detector = AutoencoderDetector(**settings, random_state=seed)
        out[seed] = detector.fit(windows).anomaly_score(windows)

    # Parallel tune trials fit in threads. A barrier starts both fits together,
    # and several rounds make it likely that their weight initialisations overlap.
    for _ in range(5):
        parallel: dict[int, np.ndarray] = {}
        barrier = threading.Barrier(len(seeds))
        threads = [
            threading.Thread(target=fit, args=(seed, barrier, parallel))
            for seed in seeds
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        for seed in seeds:
            np.testing.assert_array_equal(parallel[seed], alone[seed])


@pytest.mark.parametrize("length", [1, 2, 7, 31, 64, 127])
def test_conv_autoencoder_keeps_window_length(length):
    import itertools

    import torch

    from grindwatch.nets import ConvAutoencoder

    shapes = itertools.product([1, 2, 3, 4, 5, 8], [1, 2, 3], [1, 2, 3])
    for kernel, first_stride, second_stride in shapes:
        if first_stride * second_stride > length:
            continue
        net = ConvAutoencoder(
            2, length, [3, 4], [kernel, 3], [first_stride, second_stride], None
        )
        windows = torch.zeros(1, 2, length)

        with torch.no_grad():
            decoded = net.decoder(net.encoder(windows))
            rebuilt = net(windows)

        assert decoded.shape[-1] >= length, (kernel, first_stride, second_stride)
        assert rebuilt.shape == windows.shape, (kernel, first_stride, second_stride)


def test_autoencoder_batch_size_found_alone_in_threads():
    from concurrent.futures import ThreadPoolExecutor

    detector = AutoencoderDetector(**FAST["autoencoder"]).fit(_windows(0))
    expected = detector.inference_step_
    windows = _windows(4, n=2000)
    found = []

    # Bundles saved before the step was stored compute it on first use, which
    # in the service happens while other threads are scoring. The race depends
    # on timing, so it runs a few times.
    for _ in range(5):
        del detector.inference_step_
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: detector.anomaly_score(windows), range(16)))
        found.append(detector.inference_step_)

    assert found == [expected] * 5


@pytest.mark.parametrize("family", sorted(DETECTORS))
def test_detector_rejects_one_training_window(family):
    detector = make_detector(family, **FAST[family])

    with pytest.raises(ConfigError, match=f"{family} needs at least 2 training"):
        detector.fit(_windows(0, n=1))


def test_pca_keeps_one_dimension_out(caplog):
    # Six independent features: a variance share of 0.9 needs all six
    # components, which rebuild every window up to rounding.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6, 1)).astype(np.float32)
    detector = make_detector("pca")

    with caplog.at_level("WARNING", logger="grindwatch.detectors"):
        detector.fit(X)

    assert detector.n_components_ == 5
    assert "keeps all 6 dimensions" in caplog.text
    # Scores now measure each window along the left-out dimension, not float
    # rounding noise of about 1e-15.
    assert np.median(detector.training_scores_) > 1e-3


def _noisy_sine_windows(seed: int, n: int) -> np.ndarray:
    """Windows of a 50 Hz sine at random phase in white noise, 2 x 256 samples."""
    rng = np.random.default_rng(seed)
    t = np.arange(256) / 1000
    phase = rng.uniform(0, 2 * np.pi, (n, 2, 1))
    X = np.sin(2 * np.pi * 50 * t + phase) + 0.3 * rng.standard_normal((n, 2, 256))
    return X.astype(np.float32)


def test_pca_threshold_passes_new_normal_windows():
    # Keeping 90 % of the variance of 100 noisy raw windows takes about 20
    # components, which also rebuild part of each training window's noise.
    # Scored on themselves, the training windows came out near 0.058 and new
    # windows of the same process near 0.091, and the threshold flagged all.
    detector = make_detector("pca", random_state=0).fit(_noisy_sine_windows(0, 100))
    threshold = fit_threshold(detector.training_scores_)
    new = detector.anomaly_score(_noisy_sine_windows(1, 200))

    training_median = np.median(detector.training_scores_)
    assert training_median == pytest.approx(np.median(new), rel=0.1)
    assert (new > threshold.value).mean() < 0.05


def test_pca_training_scores_repeat_with_seed():
    X = _noisy_sine_windows(0, 40)

    first = make_detector("pca", random_state=3).fit(X).training_scores_
    second = make_detector("pca", random_state=3).fit(X).training_scores_

    np.testing.assert_array_equal(first, second)


def test_pca_training_scores_with_few_windows():
    # Two windows leave one to fit each fold: its rebuild is that window.
    X = _noisy_sine_windows(0, 2)

    scores = make_detector("pca").fit(X).training_scores_

    assert scores.shape == (2,)
    assert (scores > 0).all()
    assert scores[0] == pytest.approx(((X[0] - X[1]) ** 2).mean(), rel=1e-5)


def test_pca_scores_training_windows_as_in_training():
    # train scores its training recordings again for its report and warnings;
    # they must get the scores the threshold came from, also after pickling.
    X = _noisy_sine_windows(0, 60)
    detector = make_detector("pca").fit(X)
    restored = pickle.loads(pickle.dumps(detector))
    new = _noisy_sine_windows(1, 5)

    np.testing.assert_array_equal(detector.anomaly_score(X), detector.training_scores_)
    np.testing.assert_array_equal(restored.anomaly_score(X), detector.training_scores_)
    scores, contributions = restored.score_and_explain(np.concatenate([new, X[:3]]))
    np.testing.assert_array_equal(scores[5:], detector.training_scores_[:3])
    np.testing.assert_array_equal(scores[:5], detector.anomaly_score(new))
    # Explanations of training windows add up to the same scores.
    np.testing.assert_allclose(contributions.mean(axis=(1, 2)), scores, rtol=1e-5)


def test_iforest_warns_on_identical_windows(caplog):
    detector = make_detector("iforest", n_estimators=20)

    with caplog.at_level("WARNING", logger="grindwatch.detectors"):
        detector.fit(np.ones((20, 2, 16), dtype=np.float32))

    far_off = np.full((1, 2, 16), 100.0, dtype=np.float32)
    # The forest scores the far-off window like the training windows, as warned.
    assert detector.anomaly_score(far_off)[0] == detector.training_scores_.max()
    assert "all 20 training windows are identical" in caplog.text
    assert "use pca or knn" in caplog.text


def test_iforest_silent_on_varied_windows(caplog):
    with caplog.at_level("WARNING", logger="grindwatch.detectors"):
        make_detector("iforest", n_estimators=20).fit(_windows(0, n=20))

    assert "identical" not in caplog.text
