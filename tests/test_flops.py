"""tinycnn.flops: a hand-counted net, and the counter against the MACs the engine's
GEMMs really perform (every np.matmul the layers call, counted by count_macs below) in
forward and backward passes."""
import json
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudedge.system.models import PAPER_PLAN, cloud_cnn, edge_cnn, shared_prefix
from tinycnn import (
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Sequential,
    kernels,
)
from tinycnn.flops import profile


@contextmanager
def count_macs():
    """with count_macs() as c: c.macs is then the multiply-adds of every np.matmul inside
    (the layers call np.matmul for each GEMM, or a stack of them, one matrix possibly shared by
    the stack, or a stack of GEMVs; a @ b would not be counted), and of the GEMMs inside the
    convolution and fully connected kernels, compiled or NumPy (per image, im2col: [W b] @ [col; 1]
    forward, [col; 1] @ dout.T and W.T @ dout backward; Winograd: 16 GEMMs (F, C) @ (C, T) forward
    and dx, (F, T) @ (T, C) dW; Dense: W @ x.T forward, dout.T @ x dW, dout @ W dx; direct: 9 taps
    per (f, c) and pixel, with the bias as one more product, as im2col counts it). A kernel's own
    np.matmul calls (its NumPy reference) are not counted again."""
    counter, real = SimpleNamespace(macs=0, calls=0), np.matmul
    real_forward, real_backward = kernels.im2col_conv_forward, kernels.im2col_conv_backward
    real_winograd, real_products = kernels.winograd_conv_task, kernels.winograd_weight_products
    real_dense_forward, real_dense_grad, real_dense_dx = kernels.dense_forward_task, kernels.dense_weight_grad, kernels.dense_input_grad
    real_direct = kernels.direct_conv_forward, kernels.direct_conv_weight_grad, kernels.direct_conv_input_grad

    def uncounted(kernel, *args):                           # a kernel counted whole, not its matmuls
        np.matmul = real
        try:
            return kernel(*args)
        finally:
            np.matmul = counting

    def counting(a, b, *args, **kwargs):
        if b.ndim == 1 and a.ndim in (2, 3):                # a stack of GEMVs: a @ vector
            counter.macs += a.size
            counter.calls += 1
            return real(a, b, *args, **kwargs)
        if a.ndim not in (2, 3) or b.ndim not in (2, 3) or (a.ndim == b.ndim == 3 and a.shape[0] != b.shape[0]):
            raise AssertionError(f"the layers' GEMMs are 2-D or stacks of them, got {a.shape} @ {b.shape}")
        stack = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        counter.macs += int(np.prod(stack)) * a.shape[-2] * a.shape[-1] * b.shape[-1]
        counter.calls += 1
        return real(a, b, *args, **kwargs)

    def forward(x, Wb, out, col, lo, hi, *geometry):
        counter.macs += (hi - lo) * Wb.size * out.shape[2]  # (F, K + 1) @ (K + 1, P) per image
        counter.calls += 1
        return uncounted(real_forward, x, Wb, out, col, lo, hi, *geometry)

    def backward(x, Wb, dout, dWbT, dx, col, lo, hi, *geometry):
        F, K1 = Wb.shape
        per_image = (K1 * F if dWbT is not None else 0) + ((K1 - 1) * F if dx is not None else 0)
        counter.macs += (hi - lo) * per_image * dout.shape[2]
        counter.calls += 1
        return uncounted(real_backward, x, Wb, dout, dWbT, dx, col, lo, hi, *geometry)

    def tiles(x):
        return kernels.winograd_tile_count(*x.shape[2:])

    def winograd(x, U, bias, out, V, M, lo, hi, tile_rows=None):  # the call, counted when it is made
        rows = tile_rows[1] - tile_rows[0] if tile_rows else (x.shape[2] + 1) // 2
        counter.macs += (hi - lo) * U.size * rows * ((x.shape[3] + 1) // 2)   # 16 GEMMs (F, C) @ (C, T) per image
        counter.calls += 1
        task = real_winograd(x, U, bias, out, V, M, lo, hi, tile_rows)
        return task if task.address else kernels.Task(uncounted, task.run)

    def products(x, dout, acc, V, D, lo, hi, tile_major=False):
        counter.macs += (hi - lo) * acc.size * tiles(x)     # 16 GEMMs (F, T) @ (T, C) per image
        counter.calls += 1
        return uncounted(real_products, x, dout, acc, V, D, lo, hi, tile_major)

    def dense_forward(W, xT, outT, lo, hi):                     # the call, counted when it is made
        counter.macs += (hi - lo) * W.shape[1] * xT.shape[1]     # W[lo:hi] @ x.T
        counter.calls += 1
        task = real_dense_forward(W, xT, outT, lo, hi)
        return task if task.address else kernels.Task(uncounted, task.run)

    def dense_weight_grad(doutT, x, dW, lo, hi):
        counter.macs += (hi - lo) * x.shape[0] * x.shape[1]      # dout[:, lo:hi].T @ x
        counter.calls += 1
        return uncounted(real_dense_grad, doutT, x, dW, lo, hi)

    def dense_input_grad(dout, W, dx, lo, hi):
        counter.macs += dout.shape[0] * dout.shape[1] * (hi - lo)  # dout @ W[:, lo:hi]
        counter.calls += 1
        return uncounted(real_dense_dx, dout, W, dx, lo, hi)

    def pixels(a):
        return a.shape[2] * a.shape[3]

    def direct_forward(x, W, b, out, lo, hi):                   # 9 taps per (f, c) and the bias, per pixel
        counter.macs += (hi - lo) * (W.size + W.shape[0]) * pixels(x)
        counter.calls += 1
        return uncounted(real_direct[0], x, W, b, out, lo, hi)

    def direct_weight_grad(x, dout, dW, db, lo, hi):            # dW's products and db's sum, per pixel
        counter.macs += (hi - lo) * (dW.size + dW.shape[0]) * pixels(x)
        counter.calls += 1
        return uncounted(real_direct[1], x, dout, dW, db, lo, hi)

    def direct_input_grad(dout, W, dx, lo, hi):
        counter.macs += (hi - lo) * W.size * pixels(dout)
        counter.calls += 1
        return uncounted(real_direct[2], dout, W, dx, lo, hi)

    np.matmul = counting
    kernels.direct_conv_forward, kernels.direct_conv_weight_grad, kernels.direct_conv_input_grad = (
        direct_forward, direct_weight_grad, direct_input_grad)
    kernels.im2col_conv_forward, kernels.im2col_conv_backward = forward, backward
    kernels.winograd_conv_task, kernels.winograd_weight_products = winograd, products
    kernels.dense_forward_task, kernels.dense_weight_grad, kernels.dense_input_grad = dense_forward, dense_weight_grad, dense_input_grad
    try:
        yield counter
    finally:
        np.matmul = real
        kernels.im2col_conv_forward, kernels.im2col_conv_backward = real_forward, real_backward
        kernels.winograd_conv_task, kernels.winograd_weight_products = real_winograd, real_products
        kernels.dense_forward_task, kernels.dense_weight_grad, kernels.dense_input_grad = real_dense_forward, real_dense_grad, real_dense_dx
        kernels.direct_conv_forward, kernels.direct_conv_weight_grad, kernels.direct_conv_input_grad = real_direct


def tiny_net():
    """(2, 5, 5) -> conv 3x3 pad 1 -> 3x5x5 -> ReLU -> pool 2 -> 3x2x2 -> fc 12 -> 4."""
    return Sequential([Conv2D(2, 3, 3, padding=1, rng=0), ReLU(), MaxPool2D(2), Flatten(),
                       Dense(12, 4, rng=0)])


def test_hand_counted_forward():
    p = profile(tiny_net(), (2, 5, 5))
    conv, relu, pool, flat, dense, soft = p.rows
    assert (conv.macs, conv.flops, conv.paper_formula, conv.params) == (3 * 2 * 9 * 25, 2 * 1350 + 75, 1350, 57)
    assert (relu.macs, relu.flops) == (0, 75)                   # one comparison per element
    assert pool.output_shape == (3, 2, 2) and pool.flops == 12 * 3  # 3 comparisons per 2x2 window
    assert flat.flops == 0
    assert (dense.macs, dense.flops, dense.params, dense.paper_formula) == (48, 2 * 48 + 4, 52, 0)
    assert soft.kind == "softmax" and soft.flops == 6 * 4 - 1
    t = p.totals
    assert (t["macs"], t["flops"], t["paper_formula"], t["params"]) == (1398, 3009, 1350, 109)
    assert t["activation_bytes"] == 4 * (75 + 75 + 12 + 12 + 4 + 4)
    assert conv.workspace_bytes == 4 * (2 * 9) * 25               # im2col matrix (C*kh*kw, OH*OW)


def test_hand_counted_backward():
    p = profile(tiny_net(), (2, 5, 5))
    conv, relu, pool, flat, dense, _ = p.rows
    assert (dense.backward_macs, dense.backward_flops) == (96, 2 * 96 + 4)  # dW, dx, db
    assert (pool.backward_flops, relu.backward_flops, flat.backward_flops) == (12, 75, 0)
    assert (conv.backward_macs, conv.backward_flops) == (1350, 2 * 1350 + 75)  # dW + db, no dx
    q = profile(tiny_net(), (2, 5, 5), need_dx=True)
    # + dcol GEMM and col2im: per channel 13 in-bounds (offset, output) pairs per axis
    assert q.rows[0].backward_flops == 2 * 2700 + 75 + 2 * 13 * 13


def test_batch_scales_everything_but_params():
    one, four = profile(tiny_net(), (2, 5, 5)), profile(tiny_net(), (2, 5, 5), batch=4)
    for key in ("macs", "flops", "paper_formula", "activation_bytes", "backward_flops"):
        assert four.totals[key] == 4 * one.totals[key]
    assert four.totals["params"] == one.totals["params"]


def test_paper_formula_for_cloudcnn_by_hand():
    # Section 1.3: sum_j c_j * f_w * f_h * c_{j+1} * w_{j+1} * h_{j+1}; same padding keeps 28x28
    channels = (1,) + PAPER_PLAN
    by_hand = sum(channels[j] * 3 * 3 * channels[j + 1] * 28 * 28 for j in range(len(PAPER_PLAN)))
    t = profile(cloud_cnn((1, 28, 28)), (1, 28, 28)).totals
    assert t["paper_formula"] == by_hand
    fc = 128 * 14 * 14 * 1024 + 1024 * 10
    assert t["macs"] == by_hand + fc               # the formula leaves out the fc layers
    assert t["flops"] > 2 * t["macs"]              # FLOPs are not MACs


@st.composite
def random_nets(draw):
    """(model, (C, H, W), batch): convs of random geometry, optional pool/dropout, 1-2 dense."""
    C, H, W = draw(st.integers(1, 3)), draw(st.integers(4, 9)), draw(st.integers(4, 9))
    layers, shape = [], (C, H, W)
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, min(3, shape[1], shape[2])))
        conv = Conv2D(shape[0], draw(st.integers(1, 4)), (k, draw(st.integers(1, min(3, shape[2])))),
                      stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                      padding=draw(st.integers(0, 1)), rng=0)
        layers += [conv, ReLU()]
        shape = conv.output_shape(shape)
    if draw(st.booleans()) and min(shape[1:]) >= 2:
        pool = MaxPool2D(2, draw(st.integers(1, 2)))
        layers.append(pool)
        shape = pool.output_shape(shape)
    layers += [Dropout(0.25), Flatten()]
    width = int(np.prod(shape))
    for _ in range(draw(st.integers(1, 2))):
        out = draw(st.integers(1, 6))
        layers += [Dense(width, out, rng=0), ReLU()]
        width = out
    # batch 17: Dense's compiled GEMMs run from batch 16 (kernels.DENSE_MIN_BATCH), where built
    return Sequential(layers[:-1]), (C, H, W), draw(st.sampled_from([1, 2, 3, 17]))


@settings(max_examples=25, deadline=None)
@given(random_nets())
def test_forward_macs_equal_the_engines_gemm_work(net):
    model, shape, batch = net
    x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    with count_macs() as c:
        model.forward(x)
    p = profile(model, shape, batch=batch)
    assert c.macs == p.totals["macs"] + conv_bias_products(model, p, batch, trainable_only=False)


def conv_bias_products(model, p, batch, trainable_only):
    """F*OH*OW per image of each Conv2D: its GEMM adds the bias as [W b] @ [col; 1] in the
    forward, and the backward sums db against a row of ones ([col; 1] @ dout.T on im2col,
    dout @ ones on Winograd; trainable layers only); flops.py counts those as bias adds."""
    return sum(batch * int(np.prod(row.output_shape)) for layer, row in zip(model.layers, p.rows)
               if isinstance(layer, Conv2D) and (layer.trainable or not trainable_only))


@settings(max_examples=25, deadline=None)
@given(random_nets(), st.integers(0, 20), st.booleans())
def test_backward_macs_equal_the_engines_gemm_work(net, frozen, need_dx):
    model, shape, batch = net
    model.freeze(min(frozen, len(model)))
    x = np.random.default_rng(1).random((batch, *shape), dtype=np.float32)
    out = model.forward(x, training=True)
    with count_macs() as c:
        model.backward(np.ones_like(out), need_dx=need_dx)
    p = profile(model, shape, batch=batch, need_dx=need_dx)
    assert c.macs == p.totals["backward_macs"] + conv_bias_products(model, p, batch, trainable_only=True)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.integers(1, 2), st.integers(0, 2))
def test_col2im_adds_are_the_in_bounds_taps(C, H, W, kh, kw, sh, sw, pad):
    conv = Conv2D(C, 2, (kh, kw), stride=(sh, sw), padding=pad, rng=0)
    if H + 2 * pad < kh or W + 2 * pad < kw:
        return
    _, OH, OW = conv.output_shape((C, H, W))
    # col2im of all-ones makes one add per in-bounds tap, so the sum counts them
    adds = kernels.col2im(np.ones((C * kh * kw, OH * OW), np.float32), 1, C, H, W,
                          kh, kw, sh, sw, pad, pad).sum()
    model = Sequential([conv])
    with_dx = profile(model, (C, H, W), softmax=False, need_dx=True).totals["backward_flops"]
    without = profile(model, (C, H, W), softmax=False).totals["backward_flops"]
    assert with_dx - without == 2 * conv.out_channels * C * kh * kw * OH * OW + adds


@pytest.mark.parametrize("H,W", [(8, 8), (7, 5)])
def test_winograd_convs_multiply_16_per_tile_where_the_count_says_36(H, W):
    """The counted MACs are the direct convolution's; on the Winograd path the engine's GEMMs
    do 16*F*C per 2x2 output tile in the forward, in dx and in dW."""
    from tinycnn.layers import conv as conv_module
    C = F = conv_module.WINOGRAD_MIN_CHANNELS
    layer = Conv2D(C, F, 3, padding=1, rng=0)
    assert layer.winograd_applies()
    x = np.random.default_rng(0).random((2, C, H, W), dtype=np.float32)
    tiles = 2 * ((H + 1) // 2) * ((W + 1) // 2)
    with count_macs() as c:
        out = layer.forward(x, training=True)
    assert c.macs == 16 * F * C * tiles
    with count_macs() as c:
        layer.backward(np.ones_like(out))
    assert c.macs == 2 * 16 * F * C * tiles + 2 * F * H * W            # dW and dx; db = dout @ ones
    assert profile(Sequential([layer]), (C, H, W), batch=2, softmax=False).totals["macs"] == 9 * F * C * 2 * H * W


def test_freezing_the_shared_prefix_saves_what_the_engine_skips():
    model = edge_cnn(3, (1, 12, 12), preset="laptop", seed=0)
    x = np.random.default_rng(0).random((2, 1, 12, 12), dtype=np.float32)

    def engine_backward_macs():
        out = model.forward(x, training=True)
        with count_macs() as c:
            model.backward(np.ones_like(out), need_dx=False)
        return c.macs

    full = engine_backward_macs()
    model.freeze(shared_prefix(2))
    frozen = engine_backward_macs()
    p = profile(model, (1, 12, 12), batch=2)
    assert p.frozen_prefix == shared_prefix(2)
    assert (p.totals["backward_macs"] + conv_bias_products(model, p, 2, trainable_only=True),
            p.totals["backward_macs_unfrozen"] + conv_bias_products(model, p, 2, trainable_only=False)) == (frozen, full)
    assert frozen < full
    # the frozen= argument gives the same numbers without touching the model
    model.unfreeze()
    q = profile(model, (1, 12, 12), batch=2, frozen=shared_prefix(2))
    assert q.totals == p.totals and all(layer.trainable for layer in model)


def test_frozen_everything_means_no_backward_work():
    p = profile(tiny_net(), (2, 5, 5), frozen=5)
    assert p.totals["backward_flops"] == 0 and p.totals["trainable_params"] == 0


def test_json_and_table():
    p = profile(tiny_net(), (2, 5, 5))
    d = json.loads(json.dumps(p.to_dict()))
    assert len(d["layers"]) == 6 and d["totals"]["paper_formula"] == 1350
    assert "total" in p.table() and "1,398" in p.table()


class Custom(Layer):
    def output_shape(self, input_shape):
        return input_shape


def test_errors_say_what_was_expected():
    with pytest.raises(TypeError, match="no cost rule for layer 1 .Custom."):
        profile(Sequential([Flatten(), Custom()]), (4,), softmax=False)
    with pytest.raises(ValueError, match="expected 2 input channels, got 3"):
        profile(tiny_net(), (3, 5, 5))
    with pytest.raises(ValueError, match="positive ints"):
        profile(tiny_net(), (2, 0, 5))
    with pytest.raises(ValueError, match="batch must be"):
        profile(tiny_net(), (2, 5, 5), batch=0)
    with pytest.raises(ValueError, match="frozen must be"):
        profile(tiny_net(), (2, 5, 5), frozen=9)
    with pytest.raises(ValueError, match="softmax needs a .K,. model output"):
        profile(Sequential([Conv2D(1, 1, 1)]), (1, 2, 2))
    with pytest.raises(TypeError, match="Sequential"):
        profile([Conv2D(1, 1, 1)], (1, 2, 2))
