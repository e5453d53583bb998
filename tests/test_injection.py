"""Synthetic anomaly injection: each type changes what it claims and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grindwatch.signals.injection import (
    SIGNAL_INJECTIONS,
    TABLE_INJECTIONS,
    add_amplitude_change,
    add_broad_shift,
    add_dropout,
    add_feature_mix,
    add_feature_shift,
    add_frequency_shift,
    add_harmonic,
    add_level_shift,
    add_noise_burst,
    add_spike,
    describe_injections,
    inject_recurring,
    inject_windows,
    robust_scale,
)

LENGTH = 512
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def _signal(seed: int) -> np.ndarray:
    """Two sines plus noise, float32, like one channel of a window."""
    rng = np.random.default_rng(seed)
    n = np.arange(LENGTH)
    wave = np.sin(2 * np.pi * 0.02 * n) + 0.5 * np.sin(2 * np.pi * 0.11 * n)
    return (wave + 0.1 * rng.standard_normal(LENGTH)).astype(np.float32)


def _outside(length: int, start: int, stop: int) -> np.ndarray:
    mask = np.ones(length, dtype=bool)
    mask[start:stop] = False
    return mask


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_spike_changes_only_its_samples(seed):
    x = _signal(seed)

    out, info = add_spike(x, np.random.default_rng(seed), scale=2.0)

    changed = np.flatnonzero(out != x)
    assert changed.tolist() == info["positions"]
    assert 1 <= len(changed) <= 3
    np.testing.assert_allclose(
        out[changed] - x[changed], np.array(info["heights"]) * 2.0, rtol=1e-5
    )
    assert all(3.0 <= abs(h) <= 8.0 for h in info["heights"])


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_noise_burst_changes_only_its_segment(seed):
    x = _signal(seed)

    out, info = add_noise_burst(x, np.random.default_rng(seed), scale=1.0)

    start, stop = info["start"], info["stop"]
    assert np.array_equal(
        out[_outside(LENGTH, start, stop)], x[_outside(LENGTH, start, stop)]
    )
    assert 0.05 * LENGTH - 1 <= stop - start <= 0.25 * LENGTH + 1
    added = out[start:stop] - x[start:stop]
    assert np.count_nonzero(added) == stop - start
    assert 0.5 <= info["noise"] <= 2.0


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_level_shift_offsets_the_tail_by_a_constant(seed):
    x = _signal(seed)

    out, info = add_level_shift(x, np.random.default_rng(seed), scale=0.5)

    start = info["start"]
    assert np.array_equal(out[:start], x[:start])
    np.testing.assert_allclose(out[start:] - x[start:], info["offset"] * 0.5, atol=1e-5)
    assert 1.0 <= abs(info["offset"]) <= 3.0
    assert 0.1 * LENGTH - 1 <= start <= 0.75 * LENGTH


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_dropout_freezes_its_segment(seed):
    x = _signal(seed)

    out, info = add_dropout(x, np.random.default_rng(seed), scale=1.0)

    start, stop = info["start"], info["stop"]
    assert np.all(out[start:stop] == x[start])
    assert np.array_equal(
        out[_outside(LENGTH, start, stop)], x[_outside(LENGTH, start, stop)]
    )
    assert 0.1 * LENGTH - 1 <= stop - start <= 0.4 * LENGTH + 1


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_amplitude_change_scales_deviations_in_its_segment(seed):
    x = _signal(seed)

    out, info = add_amplitude_change(x, np.random.default_rng(seed), scale=1.0)

    start, stop, factor = info["start"], info["stop"], info["factor"]
    segment = x[start:stop].astype(np.float64)
    expected = segment.mean() + (segment - segment.mean()) * factor
    np.testing.assert_allclose(out[start:stop], expected, atol=1e-5)
    assert np.array_equal(
        out[_outside(LENGTH, start, stop)], x[_outside(LENGTH, start, stop)]
    )
    assert 0.3 <= factor <= 0.6 or 1.6 <= factor <= 2.5


def test_harmonic_adds_a_multiple_of_the_dominant_frequency():
    n = np.arange(LENGTH)
    x = np.sin(2 * np.pi * (16 / LENGTH) * n).astype(np.float32)

    out, info = add_harmonic(x, np.random.default_rng(3), scale=2.0)

    assert info["multiple"] in (2, 3, 4)
    assert info["frequency"] == pytest.approx(info["multiple"] * 16 / LENGTH)
    expected = (
        info["amplitude"]
        * 2.0
        * np.sin(2 * np.pi * info["frequency"] * n + info["phase"])
    )
    np.testing.assert_allclose(out - x, expected, atol=1e-5)


def test_harmonic_near_nyquist_uses_a_random_frequency():
    n = np.arange(LENGTH)
    x = np.sin(2 * np.pi * 0.3 * n).astype(np.float32)

    _, info = add_harmonic(x, np.random.default_rng(0), scale=1.0)

    assert info["multiple"] == 0
    assert 2 / LENGTH <= info["frequency"] <= 0.25


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_frequency_shift_changes_only_its_segment(seed):
    x = _signal(seed)

    out, info = add_frequency_shift(x, np.random.default_rng(seed), scale=1.0)

    start, stop, factor = info["start"], info["stop"], info["factor"]
    assert np.array_equal(
        out[_outside(LENGTH, start, stop)], x[_outside(LENGTH, start, stop)]
    )
    positions = start + np.arange(stop - start) * factor
    assert positions[-1] <= LENGTH - 1
    np.testing.assert_allclose(
        out[start:stop], np.interp(positions, np.arange(LENGTH), x), atol=1e-5
    )
    assert 1.15 <= factor <= 1.5 or 1 / 1.5 <= factor <= 1 / 1.15


def test_frequency_shift_moves_the_segments_frequency():
    n = np.arange(4096)
    x = np.sin(2 * np.pi * (64 / 1024) * n).astype(np.float32)

    out, info = add_frequency_shift(
        x, np.random.default_rng(1), scale=1.0, share=(0.5, 0.5), factor=(1.3, 1.3)
    )

    segment = out[info["start"] : info["start"] + 1024]
    peak = np.argmax(np.abs(np.fft.rfft(segment * np.hanning(1024))))
    assert peak / 1024 == pytest.approx(64 / 1024 * info["factor"], abs=1.5 / 1024)


def _check_moved_features(row, out, info, scale, bounds) -> np.ndarray:  # noqa: ANN001
    """Check that only the reported features moved, by their shift times scale."""
    changed = np.flatnonzero(out != row)
    assert changed.tolist() == info["features"]
    np.testing.assert_allclose(
        out[changed] - row[changed],
        np.array(info["shifts"]) * scale[changed],
        rtol=1e-4,
    )
    assert all(bounds[0] <= abs(s) <= bounds[1] for s in info["shifts"])
    return changed


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_feature_shift_moves_only_its_features(seed):
    rng = np.random.default_rng(seed)
    row = rng.normal(size=40).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, size=40)

    out, info = add_feature_shift(row, np.random.default_rng(seed), scale)

    changed = _check_moved_features(row, out, info, scale, (3.0, 6.0))
    assert 1 <= changed.size <= 3


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_broad_shift_moves_feature_share(seed):
    rng = np.random.default_rng(seed)
    row = rng.normal(size=50).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, size=50)

    out, info = add_broad_shift(row, np.random.default_rng(seed), scale)

    changed = _check_moved_features(row, out, info, scale, (3.0, 10.0))
    assert 0.2 * 50 - 1 <= changed.size <= 0.6 * 50 + 1


def test_feature_mix_takes_values_from_another_row():
    rng = np.random.default_rng(5)
    pool = rng.normal(size=(20, 30)).astype(np.float32)
    row = pool[0].copy()

    out, info = add_feature_mix(row, rng, np.ones(30), pool, exclude=0)

    features = np.array(info["features"])
    assert info["donor"] != 0
    assert np.array_equal(out[features], pool[info["donor"], features])
    assert np.array_equal(np.delete(out, features), np.delete(row, features))
    assert 0.3 * 30 - 1 <= len(features) <= 0.6 * 30 + 1


def test_inject_windows_balances_types_and_touches_one_channel():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(70, 3, 128)).astype(np.float32)
    original = X.copy()

    injected = inject_windows(X, "signals", np.random.default_rng(1))

    assert np.array_equal(X, original)
    assert injected.counts() == {name: 10 for name in SIGNAL_INJECTIONS}
    for i in range(len(X)):
        changed = np.flatnonzero((injected.X[i] != X[i]).any(axis=1))
        assert set(changed) <= {injected.channels[i]}


def test_inject_windows_is_repeatable_with_a_seed():
    X = np.random.default_rng(0).normal(size=(14, 2, 64)).astype(np.float32)

    first = inject_windows(X, "signals", np.random.default_rng(9))
    second = inject_windows(X, "signals", np.random.default_rng(9))

    assert np.array_equal(first.X, second.X)
    assert first.types.tolist() == second.types.tolist()


def test_inject_windows_on_table_rows_uses_table_types():
    X = np.random.default_rng(0).normal(size=(60, 12, 1)).astype(np.float32)

    injected = inject_windows(X, "table", np.random.default_rng(2))

    assert injected.counts() == {name: 20 for name in TABLE_INJECTIONS}
    assert (injected.channels == -1).all()
    assert all((injected.X[i] != X[i]).any() for i in range(len(X)))


def test_inject_windows_rejects_unknown_type():
    X = np.zeros((4, 1, 16), dtype=np.float32)

    with pytest.raises(ValueError, match="unknown injection types"):
        inject_windows(
            X, "signals", np.random.default_rng(0), types=["spike", "glitch"]
        )


def test_describe_injections_lists_parameter_ranges():
    described = {entry["type"]: entry for entry in describe_injections("signals")}

    assert set(described) == set(SIGNAL_INJECTIONS)
    assert described["spike"]["parameters"]["height"] == [3.0, 8.0]
    assert "spike" in described["spike"]["summary"]


def test_robust_scale_of_flat_and_spiky_data():
    flat = np.zeros((100, 1))
    spiky = np.zeros((100, 1))
    spiky[::10] = 5.0

    assert robust_scale(flat, axis=0)[0] == 1.0
    assert robust_scale(spiky, axis=0)[0] == pytest.approx(spiky.std())


def test_recurring_pattern_repeats_exactly():
    rng = np.random.default_rng(0)
    fit = rng.normal(size=(200, 2, 64)).astype(np.float32)
    held_out_windows = rng.normal(size=(30, 2, 64)).astype(np.float32)
    fit_before, held_before = fit.copy(), held_out_windows.copy()

    recurring = inject_recurring(
        fit,
        held_out_windows,
        "signals",
        np.random.default_rng(3),
        0.05,
        ["level_shift"],
    )

    assert np.array_equal(fit, fit_before)
    assert np.array_equal(held_out_windows, held_before)
    assert recurring.fit_rows.size == 10
    untouched = np.setdiff1d(np.arange(200), recurring.fit_rows)
    assert np.array_equal(recurring.fit[untouched], fit[untouched])
    # One pattern: the same channel, start and offset in every window carrying it.
    (pattern,) = recurring.patterns
    channel, other = pattern["channel"], 1 - pattern["channel"]
    changes = np.concatenate(
        [
            recurring.fit[recurring.fit_rows] - fit[recurring.fit_rows],
            recurring.held_out - held_out_windows,
        ]
    )
    assert not changes[:, other].any()
    assert np.allclose(changes[:, channel], changes[0, channel], atol=1e-5)
    assert np.abs(changes[0, channel]).max() > 0
    assert recurring.types.tolist() == ["level_shift"] * 30


def test_recurring_table_patterns_take_turns():
    rng = np.random.default_rng(1)
    fit = rng.normal(size=(300, 20, 1)).astype(np.float32)
    held_out_windows = rng.normal(size=(40, 20, 1)).astype(np.float32)

    default = inject_recurring(
        fit, held_out_windows, "table", np.random.default_rng(2), 0.01
    )
    assert [p["type"] for p in default.patterns] == ["broad_shift"]
    assert default.fit_rows.size == 3
    shifted = np.flatnonzero((default.held_out[0] != held_out_windows[0]).ravel())
    assert shifted.tolist() == default.patterns[0]["parameters"]["features"]

    two = inject_recurring(
        fit,
        held_out_windows,
        "table",
        np.random.default_rng(2),
        0.01,
        ["feature_shift", "broad_shift"],
    )
    assert sorted(np.unique(two.types, return_counts=True)[1]) == [20, 20]


def test_recurring_on_few_windows():
    rng = np.random.default_rng(4)
    fit = rng.normal(size=(7, 1, 32)).astype(np.float32)
    held_out_windows = rng.normal(size=(3, 1, 32)).astype(np.float32)

    recurring = inject_recurring(fit, held_out_windows, "signals", rng, 0.3)

    assert recurring.fit_rows.size == 2
    assert len(recurring.patterns) == 2
    assert set(recurring.types) <= {p["type"] for p in recurring.patterns}


def test_recurring_rejects_bad_arguments():
    X = np.zeros((10, 1, 16), dtype=np.float32)
    with pytest.raises(ValueError, match="share"):
        inject_recurring(X, X, "signals", np.random.default_rng(0), 0.0)
    with pytest.raises(ValueError, match="unknown injection types"):
        inject_recurring(X, X, "table", np.random.default_rng(0), 0.1, ["spike"])


def test_recurring_feature_mix_never_donates_to_itself():
    data = np.random.default_rng(5).normal(size=(12, 6, 1)).astype(np.float32)
    held_out_rows = data[:4].copy()

    for seed in range(10):
        recurring = inject_recurring(
            data,
            held_out_rows,
            "table",
            np.random.default_rng(seed),
            0.9,
            ["feature_mix"],
        )
        changed = (recurring.fit[recurring.fit_rows] != data[recurring.fit_rows]).any(
            axis=(1, 2)
        )

        # Every feature comes from the normal distribution, so a row mixed with
        # another row always changes; only a row that is its own donor stays.
        assert changed.all(), f"seed {seed}: a row was mixed with itself"
