"""Normalisation statistics and seeded stratified splits."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest_datasets import isolated_data_env  # noqa: F401  (autouse fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycnn import datasets as ds


def test_normalize_stats_per_channel():
    rng = np.random.default_rng(0)
    x = rng.random((5000, 3, 4, 4), dtype=np.float32)
    x[:, 1] *= 2
    x[:, 2] += 3
    mean, std = ds.normalize_stats(x)
    assert mean.shape == (3,) and std.shape == (3,) and mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-6)
    z = ds.normalize(x, mean, std)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-5)
    assert x[:, 2].min() >= 3  # input untouched


def test_normalize_errors():
    x = np.zeros((2, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"expected an \(N, C, H, W\) array, got shape \(2, 9\)"):
        ds.normalize_stats(x.reshape(2, 9))
    with pytest.raises(ValueError, match="expected at least one pixel"):
        ds.normalize_stats(x[:0])
    with pytest.raises(ValueError, match=r"std: expected every channel > 0, got \[0.0\]"):
        ds.normalize(x, *ds.normalize_stats(x))
    with pytest.raises(ValueError, match=r"expected shape \(1,\) for 1 channels"):
        ds.normalize(x, np.zeros(3), np.ones(3))


def test_normalize_embedded_sample():
    x, _ = ds.load_mnist_sample("train")
    mean, std = ds.normalize_stats(x)
    assert 0.1 < mean[0] < 0.15 and 0.28 < std[0] < 0.33  # MNIST: about 0.13 and 0.31


def _labels(counts):
    return np.repeat(np.arange(len(counts)), counts)


def test_split_n_per_class():
    y = _labels([5, 7, 9])
    x = np.arange(len(y) * 2, dtype=np.float32).reshape(-1, 2)
    x_a, y_a, x_b, y_b = ds.split(x, y, n_per_class=3, seed=4)
    assert np.bincount(y_a).tolist() == [3, 3, 3]
    assert np.bincount(y_b).tolist() == [2, 4, 6]
    assert sorted(np.concatenate([x_a[:, 0], x_b[:, 0]]).tolist()) == x[:, 0].tolist()
    assert x_a.dtype == np.float32 and y_a.dtype == y.dtype


def test_split_fraction_largest_remainder():
    y = _labels([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    idx_a, idx_b = ds.split_indices(y, fraction=0.8, seed=0)
    assert idx_a.size == 8000 and idx_b.size == 2000
    assert np.bincount(y[idx_a]).tolist() == [784, 908, 826, 808, 786, 714, 766, 822, 779, 807]


def test_split_errors():
    y = _labels([5, 2])
    with pytest.raises(ValueError, match=r"n_per_class=3: .*got \(class, count\) \[\(1, 2\)\]"):
        ds.split(y, y, n_per_class=3)
    with pytest.raises(ValueError, match="expected exactly one of n_per_class or fraction"):
        ds.split(y, y)
    with pytest.raises(ValueError, match="expected exactly one of n_per_class or fraction"):
        ds.split(y, y, n_per_class=1, fraction=0.5)
    with pytest.raises(ValueError, match=r"fraction: expected 0 < fraction < 1, got 1.0"):
        ds.split(y, y, fraction=1.0)
    with pytest.raises(ValueError, match=r"leave a part without that class"):
        ds.split(_labels([10, 1]), _labels([10, 1]), fraction=0.5)
    with pytest.raises(ValueError, match=r"expected as many samples as labels, got 3 and 7"):
        ds.split(np.zeros(3), y, n_per_class=1)
    with pytest.raises(ValueError, match=r"expected \(N,\) integer labels"):
        ds.split_indices(np.zeros(4), fraction=0.5)
    with pytest.raises(ValueError, match="val_fraction"):
        ds.train_val_split(y, y, val_fraction=0)


def test_train_val_split_is_9_to_1_stratified():
    y = _labels([100, 50, 30])
    x = np.arange(len(y))
    x_t, y_t, x_v, y_v = ds.train_val_split(x, y, val_fraction=0.1, seed=0)
    assert np.bincount(y_v).tolist() == [10, 5, 3]
    assert np.bincount(y_t).tolist() == [90, 45, 27]
    again = ds.train_val_split(x, y, val_fraction=0.1, seed=0)
    np.testing.assert_array_equal(again[2], x_v)
    other = ds.train_val_split(x, y, val_fraction=0.1, seed=1)
    assert not np.array_equal(other[2], x_v)


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(st.integers(2, 40), min_size=1, max_size=6),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_properties(counts, fraction, seed):
    y = np.random.default_rng(seed).permutation(_labels(counts))
    try:
        idx_a, idx_b = ds.split_indices(y, fraction=fraction, seed=seed)
    except ValueError as exc:
        assert "leave a part without that class" in str(exc)
        return
    assert np.union1d(idx_a, idx_b).tolist() == list(range(len(y)))
    assert np.intersect1d(idx_a, idx_b).size == 0
    f = Fraction(fraction).limit_denominator(10**6)
    assert idx_a.size == int(f * len(y) + Fraction(1, 2))
    for c, n in enumerate(counts):
        assert abs(int(np.sum(y[idx_a] == c)) - float(f) * n) < 1
    again, _ = ds.split_indices(y, fraction=fraction, seed=seed)
    np.testing.assert_array_equal(again, idx_a)
