"""softmax_cross_entropy / log_softmax / softmax: gradients by central differences,
hand-computed values, stability at extreme logits, batch-mean semantics, bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycnn import log_softmax, softmax, softmax_cross_entropy
from conftest import dtypes, seeds
from tinycnn.gradcheck import numeric_grad


@st.composite
def logits_and_labels(draw, max_n=4, max_k=6):
    N = draw(st.integers(1, max_n))
    K = draw(st.integers(2, max_k))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, K)) * draw(st.sampled_from([0.1, 1.0, 5.0]))
    labels = rng.integers(0, K, N)
    soft = rng.random((N, K)) + 1e-3
    soft /= soft.sum(axis=1, keepdims=True)
    return logits, labels, soft


# --- gradients -----------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(data=logits_and_labels(), soft=st.booleans())
def test_loss_gradient_matches_central_differences(data, soft):
    logits, labels, probs = data
    targets = probs if soft else labels
    _, dlogits = softmax_cross_entropy(logits, targets)
    numeric = numeric_grad(lambda: softmax_cross_entropy(logits, targets)[0], logits)
    scale = max(np.abs(dlogits).max(), np.abs(numeric).max())
    # 1e-8: the resolution of a float64 central difference with eps=1e-6 on an O(1) loss
    # (~1e-16 / 1e-6 per evaluation); soft targets near softmax(z) give true gradients
    # smaller than that, where only the absolute bound is meaningful
    assert np.abs(dlogits - numeric).max() <= 1e-6 * scale + 1e-8


@settings(max_examples=40, deadline=None)
@given(data=logits_and_labels(), dtype=dtypes)
def test_hard_labels_equal_one_hot_soft_targets(data, dtype):
    logits, labels, _ = data
    logits = logits.astype(dtype)
    onehot = np.eye(logits.shape[1], dtype=dtype)[labels]
    l1, d1 = softmax_cross_entropy(logits, labels)
    l2, d2 = softmax_cross_entropy(logits, onehot)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert l1 == pytest.approx(l2, rel=tol, abs=tol)
    np.testing.assert_allclose(d1, d2, rtol=tol, atol=tol)
    assert d1.dtype == d2.dtype == dtype


@settings(max_examples=40, deadline=None)
@given(data=logits_and_labels(), soft=st.booleans())
def test_loss_properties(data, soft):
    """loss = -mean log p[target] >= 0; each dlogits row sums to 0; dlogits = (p - t)/N."""
    logits, labels, probs = data
    N, K = logits.shape
    targets = probs if soft else labels
    loss, d = softmax_cross_entropy(logits, targets)
    t = probs if soft else np.eye(K)[labels]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert loss >= 0
    assert loss == pytest.approx(-(t * np.log(p)).sum(1).mean(), rel=1e-10)
    np.testing.assert_allclose(d.sum(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(d, (p - t) / N, rtol=1e-10, atol=1e-14)


@settings(max_examples=30, deadline=None)
@given(data=logits_and_labels(), shift=st.floats(-50, 50), reps=st.integers(2, 4))
def test_loss_is_mean_over_batch(data, shift, reps):
    """Duplicating the batch keeps the loss (a mean, not a sum) and divides each row's
    gradient by the factor; adding a constant to a row changes nothing."""
    logits, labels, _ = data
    loss, d = softmax_cross_entropy(logits, labels)
    loss2, d2 = softmax_cross_entropy(np.tile(logits, (reps, 1)), np.tile(labels, reps))
    assert loss2 == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(d2[:len(labels)] * reps, d, rtol=1e-10, atol=1e-15)
    loss3, d3 = softmax_cross_entropy(logits + shift, labels)
    assert loss3 == pytest.approx(loss, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(d3, d, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(data=logits_and_labels(), dtype=dtypes)
def test_softmax_rows_are_distributions(data, dtype):
    logits = data[0].astype(dtype)
    p = softmax(logits)
    assert p.dtype == dtype
    assert (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(np.exp(log_softmax(logits)), p, rtol=1e-6)
    np.testing.assert_array_equal(p.argmax(1), logits.argmax(1))


# --- hand-computed ------------------------------------------------------------------------------------

@pytest.mark.parametrize("N,K", [(1, 2), (3, 4), (5, 10)])
def test_zero_logits(N, K):
    labels = np.arange(N) % K
    loss, d = softmax_cross_entropy(np.zeros((N, K)), labels)
    assert loss == pytest.approx(np.log(K), rel=1e-12)
    np.testing.assert_allclose(d, (1.0 / K - np.eye(K)[labels]) / N, rtol=1e-12, atol=1e-15)


def test_known_two_class_case():
    # softmax([0, ln 3]) = [1/4, 3/4]
    logits = np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    loss, d = softmax_cross_entropy(logits, np.array([0, 1]))
    assert loss == pytest.approx((np.log(4) + np.log(4 / 3)) / 2, rel=1e-12)
    np.testing.assert_allclose(d, [[(0.25 - 1) / 2, 0.75 / 2], [0.25 / 2, (0.75 - 1) / 2]], rtol=1e-12)


def test_known_soft_target_case():
    loss, d = softmax_cross_entropy(np.zeros((1, 2)), np.array([[0.3, 0.7]]))
    assert loss == pytest.approx(np.log(2), rel=1e-12)
    np.testing.assert_allclose(d, [[0.2, -0.2]], rtol=1e-12)


# --- stability ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("big", [1e4, 1e30])
def test_extreme_logits_give_finite_loss_and_grad(dtype, big):
    logits = np.array([[big, -big, 0.0],
                       [-big, big, big],
                       [big, big, big],
                       [-big, -big, -big]], dtype=dtype)
    labels = np.array([0, 0, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings either
        loss, d = softmax_cross_entropy(logits, labels)
        soft_loss, soft_d = softmax_cross_entropy(logits, np.full((4, 3), 1 / 3, dtype=dtype))
    for value in (loss, soft_loss):
        assert np.isfinite(value)
    assert np.isfinite(d).all() and np.isfinite(soft_d).all()
    assert d.dtype == soft_d.dtype == dtype
    # row 0 is confidently right (loss 0), row 1 confidently wrong (loss 2*big + log 2),
    # rows 2, 3 are uniform (loss log 3)
    expected = (0 + 2 * big + np.log(2) + 2 * np.log(3)) / 4
    assert loss == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(d[0], [0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(d[1], [-1 / 4, 1 / 8, 1 / 8], rtol=1e-5)
    np.testing.assert_allclose(d[2], np.array([1, 1, -2]) / 12, rtol=1e-5)


def test_extreme_logits_softmax_is_finite():
    p = softmax(np.array([[1e30, -1e30]], dtype=np.float32))
    np.testing.assert_array_equal(p, [[1, 0]])


# --- bad input --------------------------------------------------------------------------------------

def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values in \[0, 3\]"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values in \[-1, 1\]"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([-1, 1]))


def test_label_count_mismatch():
    with pytest.raises(ValueError, match="targets must have N=2 labels, got 3"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))


def test_soft_target_shape_mismatch():
    with pytest.raises(ValueError, match=r"soft targets must have shape \(2, 3\), got \(2, 4\)"):
        softmax_cross_entropy(np.zeros((2, 3)), np.full((2, 4), 0.25))


def test_bad_logits():
    with pytest.raises(ValueError, match=r"logits must be \(N, K\), got shape \(3,\)"):
        softmax_cross_entropy(np.zeros(3), np.array([0]))
    with pytest.raises(TypeError, match="logits must be a float32/float64 array, got int64"):
        softmax_cross_entropy(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]))
    with pytest.raises(TypeError, match="logits must be a float32/float64 array, got list"):
        softmax_cross_entropy([[0.0, 1.0]], np.array([0]))


def test_float_labels_are_rejected():
    with pytest.raises(TypeError, match=r"targets must be \(N,\) integer labels or \(N, K\) float "
                                        r"probabilities, got shape \(2,\) dtype float64"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
