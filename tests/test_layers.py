"""Layers: gradient checks (hypothesis over shapes), hand-computed cases, the
forward/backward contract, Dropout statistics, and bad-input errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn
from tinycnn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential
from tinycnn.layers import conv as conv_module
from conftest import (away_from_zero, conv_geometries, distinct_values, dtypes, module_setting, out_size,
                      pool_geometries, seeds)

TOL = 1e-6


def assert_gradcheck(net, x, **kw):
    errors = tinycnn.gradcheck(net, x, **kw)
    assert "x" in errors
    bad = {k: v for k, v in errors.items() if not v < TOL}
    assert not bad, f"gradcheck errors above {TOL}: {bad} (all: {errors})"
    return errors


# --- gradient checks -------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(geom=conv_geometries(), F=st.integers(1, 3), seed=seeds)
def test_conv2d_gradcheck(geom, F, seed):
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    rng = np.random.default_rng(seed)
    layer = Conv2D(C, F, (kh, kw), stride=(sh, sw), padding=(ph, pw), rng=rng, dtype=np.float64)
    layer.params["b"][...] = rng.standard_normal(F)
    x = rng.standard_normal((N, C, H, W))
    errors = assert_gradcheck(layer, x)
    assert set(errors) == {"x", "W", "b"}


def winograd_always():
    """Every 3x3, stride 1, padding 1 Conv2D takes the Winograd path, however few its channels."""
    return module_setting(conv_module, "WINOGRAD_MIN_CHANNELS", 1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), f=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       seed=seeds)
def test_conv2d_winograd_gradcheck(n, c, f, h, w, seed):
    rng = np.random.default_rng(seed)
    with winograd_always():
        layer = Conv2D(c, f, 3, padding=1, rng=rng, dtype=np.float64)
        assert layer.winograd_applies()
        layer.params["b"][...] = rng.standard_normal(f)
        assert_gradcheck(layer, rng.standard_normal((n, c, h, w)))


@settings(max_examples=80, deadline=None)
@given(path=st.sampled_from(["winograd", "direct"]), n=st.integers(1, 5), c=st.integers(1, 9), f=st.integers(1, 9),
       h=st.integers(1, 9), w=st.integers(1, 20), dtype=dtypes, frozen=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=seeds)
def test_conv2d_winograd_and_direct_agree_with_im2col(path, n, c, f, h, w, dtype, frozen, threads, seed):
    """Same out, dx, dW and db from each 3x3 path as from im2col, odd and 1-pixel sizes included,
    on one thread and on two (each thread's images in its own call, dW and db summed)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    dout = rng.standard_normal((n, f, h, w)).astype(dtype)
    results = []
    for algorithm in ("auto" if path == "winograd" else "direct", "im2col"):
        layer = Conv2D(c, f, 3, padding=1, rng=seed % 1000, dtype=dtype)
        layer.params["b"][...] = np.arange(f) - 1.5
        layer.trainable = not frozen
        layer.algorithm = algorithm
        with winograd_always(), tinycnn.threads(threads):
            assert layer.winograd_applies() == (algorithm == "auto")
            assert layer.direct_applies(dtype) == (algorithm == "direct")
            out = layer.forward(x, training=True)
            results.append((out, layer.backward(dout)) + (() if frozen else (layer.grads["W"], layer.grads["b"])))
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for got, ref in zip(*results):
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("n", [1, 3])
def test_conv2d_winograd_takes_a_float64_dout_into_float32_weights(n, n_threads):
    """Batch 1 on two threads included: the transforms run in the input's dtype, as im2col's GEMMs do."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 2, 5, 6)).astype(np.float32)
    dout = rng.standard_normal((n, 3, 5, 6))                         # float64
    results = []
    for algorithm in ("auto", "im2col"):
        layer = Conv2D(2, 3, 3, padding=1, rng=0, dtype=np.float32)
        layer.params["b"][...] = [0.5, -1.0, 2.0]
        layer.algorithm = algorithm
        with winograd_always(), tinycnn.threads(n_threads):
            out = layer.forward(x, training=True)
            results.append((out, layer.backward(dout), layer.grads["W"].copy()))
    for got, ref in zip(*results):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 16, 33])
@pytest.mark.parametrize("dout_dtype", [np.float32, np.float64])
def test_dense_float32_agrees_with_float64(batch, n_threads, dout_dtype):
    """Batches on both sides of kernels.DENSE_MIN_BATCH (the compiled fully connected GEMMs,
    where this CPU runs them), a float64 dout into float32 weights included: out, dx, dW and db
    within 1e-5 of the float64 layer's."""
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 70))
    dout = rng.standard_normal((batch, 37))
    results = []
    for dtype in (np.float64, np.float32):
        layer = Dense(70, 37, rng=0, dtype=dtype)
        layer.params["b"][...] = np.linspace(-1, 1, 37)
        with tinycnn.threads(n_threads):
            out = layer.forward(x.astype(dtype), training=True)
            dx = layer.backward(dout.astype(dout_dtype if dtype == np.float32 else np.float64))
        results.append((out, dx, layer.grads["W"], layer.grads["b"]))
    for ref, got in zip(*results):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_winograd_reuses_its_weight_transform_outside_training_only_while_the_weights_are_unchanged():
    rng = np.random.default_rng(0)
    layer = Conv2D(3, 4, 3, padding=1, rng=1)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    with winograd_always():
        out = layer.forward(x).copy()
        U = layer._U[1]
        np.testing.assert_array_equal(layer.forward(x), out)
        assert layer._U[1] is U                        # W unchanged: reused
        layer.params["W"] *= -1                        # changed in place, as SGD does
        np.testing.assert_allclose(layer.forward(x), -out, rtol=1e-6, atol=1e-6)
        assert layer._U[1] is not U
        layer.forward(x, training=True)
        assert layer._U is None                        # training drops it


def test_winograd_applies_only_to_3x3_stride_1_padding_1_with_enough_channels():
    wide = conv_module.WINOGRAD_MIN_CHANNELS
    assert Conv2D(wide, wide, 3, padding=1).winograd_applies()
    assert not Conv2D(wide - 1, wide, 3, padding=1).winograd_applies()
    assert not Conv2D(wide, wide - 1, 3, padding=1).winograd_applies()
    for kw in ({"kernel_size": 5, "padding": 2}, {"kernel_size": 3, "padding": 0},
               {"kernel_size": 3, "padding": 1, "stride": 2}):
        assert not Conv2D(wide, wide, **kw).winograd_applies()
    layer = Conv2D(wide, wide, 3, padding=1)
    layer.algorithm = "im2col"
    assert not layer.winograd_applies()
    with pytest.raises(ValueError, match=r"Conv2D.algorithm must be one of \('auto', 'im2col', 'direct'\), got 'fft'"):
        layer.algorithm = "fft"


def test_direct_applies_to_thin_3x3_float32_layers_where_its_kernels_are_compiled():
    compiled = tinycnn.kernels.direct_kernels() != "numpy"
    thin = conv_module.DIRECT_MAX_CHANNELS.get(tinycnn.kernels.direct_kernels(), 8)
    assert Conv2D(1, thin, 3, padding=1).direct_applies() == compiled
    wide = 40 if thin < conv_module.WINOGRAD_MIN_CHANNELS else conv_module.WINOGRAD_MIN_CHANNELS - 1
    assert Conv2D(wide, thin, 3, padding=1).direct_applies() == compiled
    assert not Conv2D(1, thin + 1, 3, padding=1).direct_applies()      # im2col's GEMMs are not thin then
    assert not Conv2D(1, thin, 3, padding=1).direct_applies(np.float64)
    for kw in ({"kernel_size": 5, "padding": 2}, {"kernel_size": 3, "padding": 0},
               {"kernel_size": 3, "padding": 1, "stride": 2}):
        assert not Conv2D(2, 2, **kw).direct_applies()
        with pytest.raises(ValueError, match="Conv2D.algorithm 'direct' needs a 3x3 kernel with stride 1 and padding 1"):
            Conv2D(2, 2, **kw).algorithm = "direct"
    layer = Conv2D(1, thin, 3, padding=1)
    layer.algorithm = "im2col"
    assert not layer.direct_applies()
    layer.algorithm = "direct"                          # any dtype, any CPU: the NumPy twin where not compiled
    assert layer.direct_applies(np.float64) and not layer.winograd_applies()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), f=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       seed=seeds)
def test_conv2d_direct_gradcheck(n, c, f, h, w, seed):
    rng = np.random.default_rng(seed)
    layer = Conv2D(c, f, 3, padding=1, rng=rng, dtype=np.float64)
    layer.algorithm = "direct"
    layer.params["b"][...] = rng.standard_normal(f)
    assert_gradcheck(layer, rng.standard_normal((n, c, h, w)))


@pytest.mark.parametrize("kernel,stride,padding", [((3, 2), (2, 1), (1, 2)), (1, 1, 0), ((2, 4), 3, (2, 0)),
                                                   ((4, 1), (1, 3), 2)])
def test_conv2d_gradcheck_largest_shapes(kernel, stride, padding):
    rng = np.random.default_rng(7)
    layer = Conv2D(3, 3, kernel, stride=stride, padding=padding, rng=rng, dtype=np.float64)
    layer.params["b"][...] = rng.standard_normal(3)
    assert_gradcheck(layer, rng.standard_normal((3, 3, 8, 7)))


@settings(max_examples=40, deadline=None)
@given(geom=pool_geometries(max_hw=8, max_k=3, max_s=2), seed=seeds)
def test_maxpool_gradcheck(geom, seed):
    """Strides 1 (overlapping) and 2, non-square windows; distinct inputs: no ties."""
    N, C, H, W, kh, kw, sh, sw = geom
    rng = np.random.default_rng(seed)
    x = distinct_values((N, C, H, W), rng)
    errors = assert_gradcheck(MaxPool2D((kh, kw), stride=(sh, sw)), x)
    assert set(errors) == {"x"}


@pytest.mark.parametrize("size,stride", [(2, 1), (2, 2), ((2, 3), (1, 2)), (3, 1), ((3, 2), 1)])
def test_maxpool_gradcheck_fixed(size, stride):
    x = distinct_values((2, 2, 6, 7), np.random.default_rng(1))
    assert_gradcheck(MaxPool2D(size, stride=stride), x)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), seed=seeds)
def test_relu_gradcheck(shape, seed):
    x = away_from_zero(tuple(shape), np.random.default_rng(seed))
    assert_gradcheck(ReLU(), x)


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 3), fin=st.integers(1, 6), fout=st.integers(1, 5), seed=seeds)
def test_dense_gradcheck(N, fin, fout, seed):
    rng = np.random.default_rng(seed)
    layer = Dense(fin, fout, rng=rng, dtype=np.float64)
    layer.params["b"][...] = rng.standard_normal(fout)
    errors = assert_gradcheck(layer, rng.standard_normal((N, fin)))
    assert set(errors) == {"x", "W", "b"}


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), seed=seeds)
def test_flatten_gradcheck(shape, seed):
    x = np.random.default_rng(seed).standard_normal(tuple(shape))
    assert_gradcheck(Flatten(), x)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4),
       p=st.floats(0.0, 0.9), seed=seeds)
def test_dropout_gradcheck_in_training(shape, p, seed):
    x = np.random.default_rng(seed).standard_normal(tuple(shape))
    assert_gradcheck(Dropout(p), x, training=True, seed=seed % 1000)


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 2), H=st.integers(4, 7), W=st.integers(4, 7),
       p=st.sampled_from([0.0, 0.3]), seed=seeds)
def test_small_sequential_gradcheck(N, C, H, W, p, seed):
    rng = np.random.default_rng(seed)
    conv = Conv2D(C, 2, (3, 2), stride=(1, 2), padding=(1, 0), rng=rng, dtype=np.float64)
    conv.params["b"][...] = rng.standard_normal(2) * 0.1
    OH, OW = out_size(H, 3, 1, 1), out_size(W, 2, 2, 0)
    PH, PW = out_size(OH, 2, 1), out_size(OW, 1, 1)
    net = Sequential([conv, ReLU(), MaxPool2D((2, 1), stride=1), Flatten(), Dropout(p),
                      Dense(2 * PH * PW, 3, rng=rng, dtype=np.float64)])
    x = distinct_values((N, C, H, W), rng, gap=0.05)
    errors = assert_gradcheck(net, x)
    assert set(errors) == {"x", "0.W", "0.b", "5.W", "5.b"}


def test_gradcheck_of_frozen_model_checks_only_trainable_params():
    rng = np.random.default_rng(0)
    net = Sequential([Dense(4, 3, rng=rng, dtype=np.float64), ReLU(),
                      Dense(3, 2, rng=rng, dtype=np.float64)]).freeze(2)
    errors = assert_gradcheck(net, away_from_zero((2, 4), rng))
    assert set(errors) == {"x", "2.W", "2.b"}


def test_gradcheck_detects_a_wrong_gradient():
    """The checker itself must fail on a broken backward (else every gradcheck is vacuous)."""
    layer = Dense(3, 2, rng=0, dtype=np.float64)
    original = layer.backward

    def wrong_backward(dout, need_dx=True):
        dx = original(dout, need_dx)
        layer.grads["W"] = layer.grads["W"] * 1.01
        return dx
    layer.backward = wrong_backward
    errors = tinycnn.gradcheck(layer, np.random.default_rng(0).standard_normal((2, 3)))
    assert errors["W"] > 1e-3 and errors["x"] < TOL


def test_gradcheck_rejects_float32_input():
    with pytest.raises(TypeError, match="float64.*float32"):
        tinycnn.gradcheck(ReLU(), np.ones((2, 2), dtype=np.float32))


# --- hand-computed cases -----------------------------------------------------------------------

def test_conv2d_hand_computed_3x3_input_2x2_kernel():
    layer = Conv2D(1, 1, 2, dtype=np.float64)
    layer.params["W"][...] = [[[[1, 2], [3, 4]]]]
    layer.params["b"][...] = [0.5]
    x = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)   # [[1,2,3],[4,5,6],[7,8,9]]
    out = layer.forward(x)
    # out[oh, ow] = sum_ij x[oh+i, ow+j] * k[i, j] + b (cross-correlation, no flip):
    # (0,0): 1*1 + 2*2 + 4*3 + 5*4 = 37; (0,1): 2 + 6 + 15 + 24 = 47
    # (1,0): 4 + 10 + 21 + 32 = 67;      (1,1): 5 + 12 + 24 + 36 = 77
    np.testing.assert_array_equal(out, [[[[37.5, 47.5], [67.5, 77.5]]]])
    dx = layer.backward(np.ones_like(out))
    # dW[i, j] = sum of the inputs under k[i, j] over the 4 windows
    np.testing.assert_array_equal(layer.grads["W"], [[[[12, 16], [24, 28]]]])
    np.testing.assert_array_equal(layer.grads["b"], [4])
    # dx[h, w] = sum of the kernel entries that touch (h, w)
    np.testing.assert_array_equal(dx, [[[[1, 3, 2], [4, 10, 6], [3, 7, 4]]]])


def test_conv2d_hand_computed_padding_and_stride():
    layer = Conv2D(1, 1, (1, 2), stride=(2, 1), padding=(0, 1), dtype=np.float64)
    layer.params["W"][...] = [[[[1, -1]]]]
    x = np.array([[[[1, 2], [3, 4], [5, 6]]]], dtype=np.float64)
    # rows 0 and 2 (stride 2), each padded to [0, a, b, 0]: [0-a, a-b, b-0]
    np.testing.assert_array_equal(layer.forward(x), [[[[-1, -1, 2], [-5, -1, 6]]]])


def test_maxpool_hand_computed_2x2_stride_1_on_3x3():
    x = np.array([[[[1, 5, 2],
                    [3, 4, 9],
                    [8, 0, 6]]]], dtype=np.float64)
    pool = MaxPool2D(2, stride=1)
    out = pool.forward(x)
    np.testing.assert_array_equal(out, [[[[5, 9], [8, 9]]]])
    dx = pool.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    # 9 wins the two right-hand windows: it receives 2 + 4
    np.testing.assert_array_equal(dx, [[[[0, 1, 0],
                                         [0, 0, 6],
                                         [3, 0, 0]]]])


def test_maxpool_overlapping_accumulation_center_wins_all():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0  # the centre is in all four 2x2 stride-1 windows
    pool = MaxPool2D(2, stride=1)
    out = pool.forward(x)
    np.testing.assert_array_equal(out, np.ones((1, 1, 2, 2)))
    dx = pool.backward(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]))
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 1111.0
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_ties_route_to_first_max():
    pool = MaxPool2D(2)
    out = pool.forward(np.full((1, 1, 2, 2), 3.0))
    assert out.item() == 3.0
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1))), [[[[1, 0], [0, 0]]]])


def test_maxpool_drops_remainder_rows_and_cols():
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    out = MaxPool2D(2).forward(x)
    np.testing.assert_array_equal(out, [[[[6, 8], [16, 18]]]])


def test_relu_hand_computed():
    relu = ReLU()
    x = np.array([[-2.0, -0.0, 0.0, 1e-30, 3.0]])
    np.testing.assert_array_equal(relu.forward(x), [[0, 0, 0, 1e-30, 3]])
    np.testing.assert_array_equal(relu.backward(np.full((1, 5), 7.0)), [[0, 0, 0, 7, 7]])


def test_relu_overwrite_writes_into_its_input_and_dout():
    relu = ReLU()
    x = np.array([[-2.0, 0.5, 3.0]])
    out = relu.forward(x, overwrite=True)
    assert out is x
    np.testing.assert_array_equal(x, [[0, 0.5, 3]])
    dout = np.array([[7.0, 8.0, 9.0]])
    assert relu.backward(dout, overwrite=True) is dout
    np.testing.assert_array_equal(dout, [[0, 8, 9]])
    frozen = np.array([[-1.0, 1.0]])
    frozen.flags.writeable = False                        # read-only: a new array instead
    out = relu.forward(frozen, overwrite=True)
    assert out is not frozen and np.array_equal(out, [[0, 1]]) and np.array_equal(frozen, [[-1, 1]])
    wrong = np.ones((1, 3))                                # a dout of the wrong shape still raises
    with pytest.raises(ValueError, match="relu_backward"):
        relu.backward(wrong, overwrite=True)


def test_dense_hand_computed():
    layer = Dense(2, 3, dtype=np.float64)
    layer.params["W"][...] = [[1, 4], [2, 5], [3, 6]]   # (out, in)
    layer.params["b"][...] = [0.5, 0, -1]
    out = layer.forward(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(out, [[9.5, 12, 14]])
    dx = layer.backward(np.array([[1.0, 0.0, -1.0]]))
    np.testing.assert_array_equal(dx, [[-2, -2]])
    np.testing.assert_array_equal(layer.grads["W"], [[1, 2], [0, 0], [-1, -2]])
    np.testing.assert_array_equal(layer.grads["b"], [1, 0, -1])


def test_flatten_is_c_order():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    f = Flatten()
    out = f.forward(x)
    np.testing.assert_array_equal(out, x.reshape(2, 12))
    np.testing.assert_array_equal(f.backward(out), x)


# --- shapes, dtypes and the contract --------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(geom=conv_geometries(), F=st.integers(1, 4), dtype=dtypes, seed=seeds)
def test_conv2d_shapes_dtypes_and_output_shape(geom, F, dtype, seed):
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    rng = np.random.default_rng(seed)
    layer = Conv2D(C, F, (kh, kw), stride=(sh, sw), padding=(ph, pw), rng=rng, dtype=dtype)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    out = layer.forward(x)
    assert out.shape == (N, *layer.output_shape((C, H, W)))
    assert out.shape == (N, F, out_size(H, kh, sh, ph), out_size(W, kw, sw, pw))
    assert out.dtype == dtype
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == dtype
    for key in ("W", "b"):
        assert layer.grads[key].shape == layer.params[key].shape
        assert layer.grads[key].dtype == dtype


@settings(max_examples=25, deadline=None)
@given(geom=conv_geometries(), F=st.integers(1, 3), batches=st.lists(st.integers(1, 3), min_size=2, max_size=4),
       dtype=dtypes, seed=seeds)
def test_conv2d_training_and_eval_paths_agree(geom, F, batches, dtype, seed):
    """Training forwards reuse per-thread scratch buffers (col, then dcol in backward); over
    a sequence of batches of varying size, outputs, grads and dx equal those of the eval path."""
    _, C, H, W, kh, kw, sh, sw, ph, pw = geom
    rng = np.random.default_rng(seed)
    a = Conv2D(C, F, (kh, kw), stride=(sh, sw), padding=(ph, pw), rng=seed, dtype=dtype)
    b = Conv2D(C, F, (kh, kw), stride=(sh, sw), padding=(ph, pw), rng=seed, dtype=dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for n in batches:
        x = rng.standard_normal((n, C, H, W)).astype(dtype)
        x_copy = x.copy()
        out_t, out_e = a.forward(x, training=True), b.forward(x, training=False)
        np.testing.assert_array_equal(out_t, out_e)
        dout = rng.standard_normal(out_t.shape).astype(dtype)
        dx_t, dx_e = a.backward(dout), b.backward(dout)
        np.testing.assert_allclose(dx_t, dx_e, rtol=tol, atol=tol)
        for key in ("W", "b"):
            np.testing.assert_allclose(a.grads[key], b.grads[key], rtol=tol, atol=tol)
        np.testing.assert_array_equal(x, x_copy)  # the input is never written
        # a second training forward does not disturb the previous output
        out_again = a.forward(x, training=True)
        np.testing.assert_array_equal(out_t, out_again)
        a.clear_cache()


def test_grads_never_share_memory_between_layers_or_with_params():
    l1, l2 = Dense(3, 3, rng=0, dtype=np.float64), Dense(3, 3, rng=1, dtype=np.float64)
    x = np.ones((2, 3))
    for layer in (l1, l2):
        layer.forward(x)
        layer.backward(np.ones((2, 3)))
    assert not np.shares_memory(l1.grads["W"], l2.grads["W"])
    assert not np.shares_memory(l1.grads["W"], l1.params["W"])


@settings(max_examples=30, deadline=None)
@given(geom=pool_geometries(), dtype=dtypes, seed=seeds)
def test_maxpool_shapes_and_dtype(geom, dtype, seed):
    N, C, H, W, kh, kw, sh, sw = geom
    pool = MaxPool2D((kh, kw), stride=(sh, sw))
    x = np.random.default_rng(seed).standard_normal((N, C, H, W)).astype(dtype)
    out = pool.forward(x)
    assert out.shape == (N, *pool.output_shape((C, H, W))) and out.dtype == dtype
    dx = pool.backward(np.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == dtype
    assert dx.sum() == out.size  # each output routes exactly one unit of gradient


def _make(kind, dtype=np.float64):
    return {
        "conv": (lambda: Conv2D(2, 3, 2, rng=0, dtype=dtype), (2, 2, 4, 4)),
        "dense": (lambda: Dense(4, 3, rng=0, dtype=dtype), (2, 4)),
        "pool": (lambda: MaxPool2D(2), (2, 2, 4, 4)),
        "relu": (ReLU, (2, 3)),
        "flatten": (Flatten, (2, 2, 3)),
        "dropout": (lambda: Dropout(0.5, seed=0), (2, 3)),
    }[kind]


KINDS = ["conv", "dense", "pool", "relu", "flatten", "dropout"]


@pytest.mark.parametrize("kind", KINDS)
def test_backward_without_forward_raises(kind):
    factory, shape = _make(kind)
    layer = factory()
    with pytest.raises(RuntimeError, match=r"call forward\(\) first"):
        layer.backward(np.ones(shape))


@pytest.mark.parametrize("kind", KINDS)
def test_each_forward_serves_one_backward(kind):
    factory, shape = _make(kind)
    layer = factory()
    x = np.random.default_rng(0).standard_normal(shape)
    out = layer.forward(x, training=True)
    layer.backward(np.ones_like(out))
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(np.ones_like(out))


@pytest.mark.parametrize("kind", KINDS)
def test_need_dx_false_returns_none_but_fills_grads(kind):
    factory, shape = _make(kind)
    a, b = factory(), factory()
    x = np.random.default_rng(0).standard_normal(shape)
    out = a.forward(x, training=True)
    b.forward(x, training=True)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    assert a.backward(dout, need_dx=False) is None
    assert b.backward(dout, need_dx=True).shape == x.shape
    assert set(a.grads) == set(a.params)
    for key in a.params:
        np.testing.assert_array_equal(a.grads[key], b.grads[key])


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_frozen_layer_keeps_grads_but_passes_dx(kind):
    factory, shape = _make(kind)
    frozen, live = factory(), factory()
    frozen.trainable = False
    sentinel = {k: np.full_like(v, 42.0) for k, v in frozen.grads.items()}
    frozen.grads = {k: v.copy() for k, v in sentinel.items()}
    x = np.random.default_rng(0).standard_normal(shape)
    out = frozen.forward(x)
    live.forward(x)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    np.testing.assert_allclose(frozen.backward(dout), live.backward(dout), rtol=1e-12)
    for key in sentinel:
        np.testing.assert_array_equal(frozen.grads[key], sentinel[key])


def test_astype_casts_params_and_grads():
    layer = Conv2D(1, 2, 3, rng=0)
    assert layer.params["W"].dtype == np.float32
    layer.astype(np.float64)
    assert all(v.dtype == np.float64 for v in (*layer.params.values(), *layer.grads.values()))


def test_config_rebuilds_an_equal_layer():
    for layer in (Conv2D(2, 3, (3, 1), stride=(2, 1), padding=(0, 2)), Dense(5, 4),
                  MaxPool2D((2, 3), stride=(1, 2)), ReLU(), Flatten(), Dropout(0.25)):
        clone = type(layer)(**layer.config())
        assert clone.spec() == layer.spec()


# --- Dropout ----------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), p=st.floats(0.0, 0.95),
       dtype=dtypes, seed=seeds)
def test_dropout_is_identity_in_eval(shape, p, dtype, seed):
    d = Dropout(p, seed=seed)
    x = np.random.default_rng(seed).standard_normal(tuple(shape)).astype(dtype)
    out = d.forward(x, training=False)
    np.testing.assert_array_equal(out, x)
    assert out.dtype == dtype
    dout = np.random.default_rng(seed + 1).standard_normal(tuple(shape)).astype(dtype)
    np.testing.assert_array_equal(d.backward(dout), dout)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_rate_and_inverted_scaling(p, dtype):
    n = 200_000
    d = Dropout(p, seed=123)
    x = np.ones((1, n), dtype=dtype)
    out = d.forward(x, training=True)
    assert out.dtype == dtype
    dropped = out == 0
    rate = dropped.mean()
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(rate - p) < 5 * sigma, f"drop rate {rate} vs p={p}"
    # survivors are scaled by exactly 1/(1-p) (in the layer's dtype)
    np.testing.assert_array_equal(out[~dropped], dtype(1.0 / (1.0 - p)))
    assert abs(out.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)  # E[out] = x
    # backward uses the same mask
    dx = d.backward(np.full((1, n), 2.0, dtype=dtype))
    np.testing.assert_array_equal(dx == 0, dropped)
    np.testing.assert_array_equal(dx[~dropped], dtype(2.0) * dtype(1.0 / (1.0 - p)))


def test_dropout_expectation_per_entry():
    """Averaged over many draws, out ~ x entrywise (inverted dropout is unbiased)."""
    d = Dropout(0.5, seed=7)
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    mean = np.mean([d.forward(x, training=True) for _ in range(4000)], axis=0)
    np.testing.assert_allclose(mean, x, atol=0.2)


def test_dropout_zero_p_is_identity_in_training():
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(Dropout(0.0).forward(x, training=True), x)


def test_dropout_reseed_repeats_draws():
    d = Dropout(0.5)
    x = np.ones((4, 50))
    d.reseed(3)
    a = d.forward(x, training=True)
    d.reseed(3)
    b = d.forward(x, training=True)
    c = d.forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


# --- bad input ----------------------------------------------------------------------------------

def test_wrong_rank_is_rejected():
    with pytest.raises(ValueError, match=r"Conv2D expected a 4-D input \(N, C, H, W\), got shape \(3, 5, 5\)"):
        Conv2D(3, 2, 3).forward(np.zeros((3, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2D expected a 4-D input .*got shape \(2, 4\)"):
        MaxPool2D(2).forward(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Dense expected a 2-D input .*got shape \(2, 3, 4\)"):
        Dense(12, 2).forward(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"ReLU expected an input of rank >= 2 .*got shape \(5,\)"):
        ReLU().forward(np.zeros(5, dtype=np.float32))


def test_channel_mismatch_is_rejected():
    with pytest.raises(ValueError, match="Conv2D expected 3 input channels, got 1"):
        Conv2D(3, 2, 3).forward(np.zeros((2, 1, 5, 5), dtype=np.float32))


@pytest.mark.parametrize("layer", [Conv2D(1, 1, 1), Dense(2, 1), MaxPool2D(1), ReLU(), Flatten(),
                                   Dropout(0.1)], ids=lambda l: type(l).__name__)
def test_integer_dtype_is_rejected(layer):
    x = np.zeros((1, 1, 2, 2) if isinstance(layer, (Conv2D, MaxPool2D)) else (1, 2), dtype=np.int64)
    with pytest.raises(TypeError, match="expected a float32 or float64 array, got dtype int64"):
        layer.forward(x)


def test_non_array_input_is_rejected():
    with pytest.raises(TypeError, match="expected a numpy array.*got list"):
        Dense(2, 1).forward([[1.0, 2.0]])


def test_float32_input_to_float64_layer_is_rejected():
    with pytest.raises(TypeError, match="float64 params and expected a float64 input, got float32"):
        Conv2D(1, 1, 2, dtype=np.float64).forward(np.zeros((1, 1, 3, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="float32 params and expected a float32 input, got float64"):
        Dense(2, 1).forward(np.zeros((1, 2)))


def test_kernel_larger_than_padded_input_is_rejected():
    with pytest.raises(ValueError, match=r"kernel 5x3 is larger than the padded input 4x6"):
        Conv2D(1, 1, (5, 3), padding=1).forward(np.zeros((1, 1, 2, 4), dtype=np.float32))


def test_pool_window_larger_than_input_is_rejected():
    with pytest.raises(ValueError, match=r"MaxPool2D window 3x3 is larger than the input 2x5"):
        MaxPool2D(3).forward(np.zeros((1, 1, 2, 5), dtype=np.float32))


def test_dense_feature_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"Dense expected 4 input features, got per-sample shape \(3,\)"):
        Dense(4, 2).forward(np.zeros((2, 3), dtype=np.float32))


@pytest.mark.parametrize("make,match", [
    (lambda: Conv2D(1, 1, 3, stride=-1), r"stride must be >= 1, got \(-1, -1\)"),
    (lambda: Conv2D(1, 1, 3, stride=(1, 0)), r"stride must be >= 1, got \(1, 0\)"),
    (lambda: Conv2D(1, 1, 0), r"kernel_size must be >= 1, got \(0, 0\)"),
    (lambda: Conv2D(1, 1, 3, padding=-1), r"padding must be >= 0, got \(-1, -1\)"),
    (lambda: Conv2D(0, 1, 3), r"in_channels must be an int >= 1, got 0"),
    (lambda: Conv2D(1, 2.5, 3), r"out_channels must be an int >= 1, got 2.5"),
    (lambda: Dense(0, 3), r"in_features must be an int >= 1, got 0"),
    (lambda: MaxPool2D(2, stride=-1), r"size and stride must be >= 1, got size=\(2, 2\), stride=\(-1, -1\)"),
    (lambda: MaxPool2D(0), r"size and stride must be >= 1"),
    (lambda: Dropout(1), r"Dropout p must be a float in \[0, 1\), got 1"),
    (lambda: Dropout(1.0), r"Dropout p must be a float in \[0, 1\), got 1.0"),
    (lambda: Dropout(-0.1), r"Dropout p must be a float in \[0, 1\), got -0.1"),
    (lambda: Dropout("0.5"), r"Dropout p must be a float in \[0, 1\), got '0.5'"),
])
def test_bad_constructor_args_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make,match", [
    (lambda: Conv2D(1, 1, (3, 3, 3)), r"kernel_size must be an int or a pair of ints, got \(3, 3, 3\)"),
    (lambda: Conv2D(1, 1, 3, stride=1.5), r"stride must be an int or a pair of ints, got 1.5"),
    (lambda: MaxPool2D(True), r"size must be an int or a pair of ints, got True"),
])
def test_bad_constructor_arg_types_raise_type_error(make, match):
    with pytest.raises(TypeError, match=match):
        make()


# --- initialisation ------------------------------------------------------------------------------

def test_he_normal_and_glorot_uniform_init_statistics():
    conv = Conv2D(64, 128, 3, rng=0)                               # fan_in 576, fan_out 1152
    assert conv.params["W"].std() == pytest.approx(np.sqrt(2 / 576), rel=0.02)
    conv = Conv2D(64, 128, 3, rng=0, init="glorot-uniform")
    limit = np.sqrt(6 / (576 + 1152))
    W = conv.params["W"]
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.99 * limit
    assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)  # U(-a, a) has sd a / sqrt(3)
    dense = Dense(300, 200, rng=0, init="glorot-uniform")
    assert np.abs(dense.params["W"]).max() <= np.sqrt(6 / 500)
    assert not dense.params["b"].any() and not conv.params["b"].any()
    with pytest.raises(ValueError, match="init must be one of"):
        Dense(3, 2, init="xavier")
