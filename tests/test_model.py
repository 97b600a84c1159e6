"""Sequential: backward skipping below the frozen prefix, freezing semantics, slicing,
parameter names, prediction, bad input, and a tiny learning sanity run."""
import copy
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycnn import (SGD, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential,
                     softmax_cross_entropy)
from conftest import seeds


def cnn(seed=0, dtype=np.float64):
    """0 conv, 1 relu, 2 pool, 3 conv, 4 relu, 5 flatten, 6 dropout, 7 dense, 8 relu, 9 dense."""
    rng = np.random.default_rng(seed)
    return Sequential([
        Conv2D(1, 2, 3, padding=1, rng=rng, dtype=dtype), ReLU(), MaxPool2D(2),
        Conv2D(2, 3, (2, 3), rng=rng, dtype=dtype), ReLU(), Flatten(), Dropout(0.2, seed=1),
        Dense(3 * 3 * 2, 5, rng=rng, dtype=dtype), ReLU(), Dense(5, 3, rng=rng, dtype=dtype),
    ])


PARAM_LAYERS = (0, 3, 7, 9)


def inputs(seed, n=4, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(dtype), rng.integers(0, 3, n)


def spy(model):
    """Wrap every layer's backward; returns the list of (index, need_dx) calls."""
    calls = []
    for i, layer in enumerate(model):
        def wrapped(dout, need_dx=True, _i=i, _orig=layer.backward, **kwargs):   # kwargs: overwrite
            calls.append((_i, need_dx))
            return _orig(dout, need_dx=need_dx, **kwargs)
        layer.backward = wrapped
    return calls


def forward_backward(model, x, y, need_dx=False, seed=0):
    model.reseed(seed)
    loss, d = softmax_cross_entropy(model.forward(x, training=True), y)
    return loss, model.backward(d, need_dx=need_dx)


# --- backward below the frozen prefix ------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(m=st.integers(0, 10), seed=seeds)
def test_backward_skips_layers_below_the_lowest_trainable(m, seed):
    model = cnn(seed).freeze(m)
    calls = spy(model)
    x, y = inputs(seed)
    _, dx = forward_backward(model, x, y)
    assert dx is None
    lowest = next((i for i in PARAM_LAYERS if i >= m), None)
    assert model.lowest_trainable() == lowest
    if lowest is None:
        assert calls == []
    else:
        # visited top-down, down to the lowest trainable layer only
        assert [i for i, _ in calls] == list(range(9, lowest - 1, -1))
        assert calls[-1] == (lowest, False)
        assert all(need for i, need in calls[:-1])
    # every layer's cache is released, visited or not
    for layer in model:
        with pytest.raises(RuntimeError, match="forward"):
            layer.backward(np.zeros(1))


# --- ReLU writing into the arrays Sequential made ---------------------------------------------

def layer_by_layer(model, x, y, seed=0):
    """Forward and backward of `model` calling each layer without overwrite: (loss, dx)."""
    model.reseed(seed)
    out = x
    for layer in model:
        out = layer.forward(out, training=True)
    loss, d = softmax_cross_entropy(out, y)
    for layer in reversed(model.layers):
        d = layer.backward(d)
    return loss, d


@settings(max_examples=25, deadline=None)
@given(seed=seeds)
def test_overwriting_relu_gives_the_layer_by_layer_results_exactly(seed):
    """Sequential lets ReLU overwrite its input and dout; loss, dx and every grad are the same
    bits as when each layer writes a new array."""
    model, reference = cnn(seed), cnn(seed)
    x, y = inputs(seed)
    loss, dx = forward_backward(model, x, y, need_dx=True)
    loss_ref, dx_ref = layer_by_layer(reference, x, y)
    assert loss == loss_ref
    np.testing.assert_array_equal(dx, dx_ref)
    for i, (layer, ref) in enumerate(zip(model, reference)):
        for key in layer.grads:
            np.testing.assert_array_equal(layer.grads[key], ref.grads[key], err_msg=f"{i}.{key}")


@pytest.mark.parametrize("first", ["relu", "flatten-relu", "dropout-relu"])
def test_sequential_never_writes_the_callers_input_or_gradient(first):
    """A ReLU that meets the caller's x (or a view of it), or the caller's dout, writes a new array."""
    rng = np.random.default_rng(0)
    head = {"relu": [ReLU()], "flatten-relu": [Flatten(), ReLU()], "dropout-relu": [Dropout(0.5), ReLU()]}[first]
    model = Sequential(head + [Flatten(), Dense(12, 4, rng=rng, dtype=np.float64), ReLU(), Flatten()])
    x = rng.standard_normal((5, 3, 2, 2))
    dout = rng.standard_normal((5, 4))
    x_copy, dout_copy = x.copy(), dout.copy()
    for run in (lambda: model.forward(x), lambda: model.infer(x),
                lambda: (model.forward(x, training=True), model.backward(dout))):
        run()
        np.testing.assert_array_equal(x, x_copy)
        np.testing.assert_array_equal(dout, dout_copy)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(0, 10), seed=seeds)
def test_skipping_does_not_change_the_trainable_grads(m, seed):
    """Grads of trainable layers are those of the full backward of an unfrozen copy."""
    frozen = cnn(seed).freeze(m)
    full = cnn(seed)
    x, y = inputs(seed)
    l1, _ = forward_backward(frozen, x, y, seed=seed)
    l2, dx = forward_backward(full, x, y, need_dx=True, seed=seed)
    assert l1 == l2
    assert dx.shape == x.shape
    for i in PARAM_LAYERS:
        if i >= m:
            for key in ("W", "b"):
                np.testing.assert_allclose(frozen[i].grads[key], full[i].grads[key],
                                           rtol=1e-12, atol=1e-15)


def test_need_dx_true_visits_every_layer():
    model = cnn().freeze(4)
    calls = spy(model)
    x, y = inputs(0)
    _, dx = forward_backward(model, x, y, need_dx=True)
    assert [i for i, _ in calls] == list(range(9, -1, -1))
    assert all(need for _, need in calls)
    assert dx.shape == x.shape


def test_backward_defaults_to_the_layer_contract():
    """model.backward(dout) returns dL/dx like layer.backward(dout): both default to need_dx=True."""
    model = cnn().freeze(4)
    x, y = inputs(0)
    _, dx = forward_backward(model, x, y, need_dx=True)
    model.reseed(0)
    _, d = softmax_cross_entropy(model.forward(x, training=True), y)
    np.testing.assert_array_equal(model.backward(d), dx)


def test_frozen_layer_above_a_trainable_one_passes_dx():
    rng = np.random.default_rng(5)
    model = Sequential([Dense(4, 6, rng=rng, dtype=np.float64), ReLU(),
                        Dense(6, 5, rng=rng, dtype=np.float64), ReLU(),
                        Dense(5, 3, rng=rng, dtype=np.float64)])
    reference = copy.deepcopy(model)
    model[2].trainable = False
    sentinel = {k: np.full_like(v, -7.0) for k, v in model[2].params.items()}
    model[2].grads = {k: v.copy() for k, v in sentinel.items()}
    assert model.lowest_trainable() == 0 and model.frozen_prefix == 0
    calls = spy(model)
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    forward_backward(model, x, y)
    forward_backward(reference, x, y)
    assert (2, True) in calls and calls[-1] == (0, False)
    for key in ("W", "b"):
        np.testing.assert_allclose(model[0].grads[key], reference[0].grads[key], rtol=1e-12)
        np.testing.assert_allclose(model[4].grads[key], reference[4].grads[key], rtol=1e-12)
        np.testing.assert_array_equal(model[2].grads[key], sentinel[key])
    # the optimizer leaves the frozen middle layer alone but trains layer 0
    W2, W0 = model[2].params["W"].copy(), model[0].params["W"].copy()
    SGD(model, lr=0.1, momentum=0.9, weight_decay=0.1).step()
    np.testing.assert_array_equal(model[2].params["W"], W2)
    assert not np.array_equal(model[0].params["W"], W0)


# --- freezing, slicing, names -------------------------------------------------------------------------

def test_freeze_sets_prefix_and_unfreeze_resets():
    model = cnn()
    assert model.freeze(4) is model
    assert [layer.trainable for layer in model] == [False] * 4 + [True] * 6
    assert model.frozen_prefix == 4
    model.freeze(2)  # freezing fewer leaves the rest as they are
    assert model.frozen_prefix == 4
    model.unfreeze()
    assert model.frozen_prefix == 0 and all(layer.trainable for layer in model)
    model.freeze(0)
    assert model.frozen_prefix == 0
    model.freeze(len(model))
    assert model.frozen_prefix == len(model) and model.lowest_trainable() is None
    assert "[frozen]" in repr(model)


@pytest.mark.parametrize("m", [-1, 11, 2.0, "3", None])
def test_freeze_out_of_range(m):
    with pytest.raises(ValueError, match=r"freeze\(m\) needs 0 <= m <= 10, got " + re.escape(repr(m))):
        cnn().freeze(m)


def test_freeze_message_names_the_bad_value():
    with pytest.raises(ValueError, match=r"freeze\(m\) needs 0 <= m <= 10, got 11"):
        cnn().freeze(11)


def test_slice_shares_layer_objects():
    model = cnn()
    head = model[:4]
    assert isinstance(head, Sequential) and len(head) == 4
    for a, b in zip(head, model):
        assert a is b
    head[0].params["W"][...] = 0.25  # modifying the slice's params changes the model
    np.testing.assert_array_equal(model[0].params["W"], 0.25)
    head.freeze(4)
    assert model.frozen_prefix == 4
    assert model[3] is model.layers[3] and model[-1] is model.layers[-1]


def test_named_params_names():
    model = cnn()
    names = [name for name, _ in model.named_params()]
    assert names == ["0.W", "0.b", "3.W", "3.b", "7.W", "7.b", "9.W", "9.b"]
    shapes = {name: p.shape for name, p in model.named_params()}
    assert shapes["0.W"] == (2, 1, 3, 3) and shapes["3.W"] == (3, 2, 2, 3)
    assert shapes["7.W"] == (5, 18) and shapes["9.b"] == (3,)   # Dense W: (out, in)
    assert model.num_params() == sum(int(np.prod(s)) for s in shapes.values())
    model.freeze(4)
    assert [n for n, _, _ in model.trainable_slots()] == ["7.W", "7.b", "9.W", "9.b"]
    assert [n for n, _ in model.named_params()] == names  # frozen ones are still named
    assert [n for n, _ in model[:4].named_params()] == ["0.W", "0.b", "3.W", "3.b"]


def test_output_shape_chain():
    assert cnn().output_shape((1, 8, 8)) == (3,)
    with pytest.raises(ValueError, match="Conv2D expected 1 input channels, got 3"):
        cnn().output_shape((3, 8, 8))
    with pytest.raises(ValueError, match=r"Dense expected 18 input features, got per-sample shape \(36,\)"):
        cnn().output_shape((1, 10, 10))


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match="Sequential expects tinycnn Layer objects, item 1 is function"):
        Sequential([ReLU(), lambda x: x])


def test_astype_casts_the_whole_model():
    model = cnn(dtype=np.float32).astype(np.float64)
    assert all(p.dtype == np.float64 for _, p in model.named_params())
    out = model.forward(np.zeros((1, 1, 8, 8)))
    assert out.dtype == np.float64


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 13), bs=st.integers(1, 5), seed=seeds)
def test_predict_is_batch_size_independent(n, bs, seed):
    model = cnn(seed, dtype=np.float32)
    x = np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype(np.float32)
    p_all = model.predict_proba(x, batch_size=256)
    p_bat = model.predict_proba(x, batch_size=bs)
    assert p_all.shape == (n, 3)
    np.testing.assert_allclose(p_bat, p_all, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p_all.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(x), p_all.argmax(axis=1))
    # eval mode: dropout off, so repeated predictions agree exactly
    np.testing.assert_array_equal(model.predict_proba(x), p_all)


def test_reseed_makes_training_forward_repeatable():
    model = cnn()
    x, _ = inputs(1)
    model.reseed([3, 1])
    a = model.forward(x, training=True)
    model.reseed([3, 1])
    b = model.forward(x, training=True)
    model.reseed([3, 2])
    c = model.forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# --- learning sanity --------------------------------------------------------------------------------

def bars_dataset(n, rng):
    """8x8 images with one vertical (class 0) or horizontal (class 1) bar, plus noise."""
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    pos = rng.integers(1, 7, n)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, :, pos[i]] += 1.0
        else:
            x[i, 0, pos[i], :] += 1.0
    return x, y


def test_small_cnn_learns_a_separable_problem():
    rng = np.random.default_rng(0)
    x, y = bars_dataset(256, rng)
    model = Sequential([Conv2D(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2),
                        Flatten(), Dense(4 * 4 * 4, 2, rng=rng)])
    opt = SGD(model, lr=0.05, momentum=0.9)
    initial_loss, _ = softmax_cross_entropy(model.forward(x), y)
    for epoch in range(15):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 32):
            idx = order[i:i + 32]
            loss, d = softmax_cross_entropy(model.forward(x[idx], training=True), y[idx])
            model.backward(d, need_dx=False)
            opt.step()
    acc = (model.predict(x) == y).mean()
    final_loss, _ = softmax_cross_entropy(model.forward(x), y)
    model.clear_cache()
    assert acc >= 0.97, f"train accuracy {acc}"
    assert final_loss < initial_loss / 4
    x_test, y_test = bars_dataset(128, np.random.default_rng(1))
    assert (model.predict(x_test) == y_test).mean() >= 0.9
