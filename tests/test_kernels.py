"""im2col / col2im / max-pool / ReLU kernels: compiled (Cython) vs NumPy reference, adjointness,
and im2col + GEMM against a direct loop definition of convolution."""
import importlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn
from tinycnn import _dense_numpy, _direct_numpy, _gemm_numpy, _im2col_numpy, _pool_numpy, _relu_numpy, _winograd_numpy, kernels
from conftest import conv_geometries, conv_naive, dtypes, out_size, pool_geometries, seeds


def _compiled(name, build="tinycnn"):
    try:
        return importlib.import_module(f"{build}.{name}")
    except ImportError as exc:  # pragma: no cover - depends on the build
        pytest.skip(f"compiled extension {build}.{name} is not importable ({exc}); "
                    "build it with `pip install -e .` to compare it with the NumPy reference")


def _guarded(shape, fill=7, guard=64):
    """(an array of shape filled with fill, the guard floats after it in the same buffer): a kernel
    that writes past the array's end changes the guard."""
    buf = np.full(int(np.prod(shape)) + guard, fill, np.float32)
    return buf[:-guard].reshape(shape), buf[-guard:]


@pytest.fixture(scope="module", params=["baseline", "avx2"])
def build(request):
    """The package of each compiled build (setup.py): the baseline one, and the AVX2 one where
    this CPU can run it (importing it elsewhere may crash)."""
    if request.param == "avx2" and not kernels.cpu_has_avx2():
        pytest.skip("this CPU has no AVX2, so the AVX2 build is never loaded here")
    return "tinycnn" if request.param == "baseline" else "tinycnn._avx2"


@pytest.fixture(scope="module")
def cy_im2col(build):
    return _compiled("_im2col", build)


@pytest.fixture(scope="module")
def cy_pool(build):
    return _compiled("_pool", build)


# --- backend selection -----------------------------------------------------------------

@pytest.mark.skipif(os.environ.get("TINYCNN_REQUIRE_COMPILED") != "1",
                    reason="only enforced when TINYCNN_REQUIRE_COMPILED=1 (set by CI)")
def test_compiled_backend_is_active_when_required():
    assert tinycnn.backend() == "cython", (
        f"TINYCNN_REQUIRE_COMPILED=1 but tinycnn.backend() is {tinycnn.backend()!r}")
    if kernels.instruction_set() == "avx2" and kernels._CHOICE != "cython-avx2" and kernels.cpu_has_avx512():
        assert kernels.dense_kernels() == kernels.direct_kernels() == "avx512", (
            "TINYCNN_REQUIRE_COMPILED=1 and this CPU has AVX-512F and FMA, but tinycnn._dense or "
            "tinycnn._direct did not load")
    elif kernels.instruction_set() == "avx2" and kernels.cpu_has_fma():
        assert kernels.direct_kernels() == "avx2", (
            "TINYCNN_REQUIRE_COMPILED=1 and this CPU has AVX2 and FMA, but tinycnn._avx2._direct did not load")


@pytest.mark.parametrize("name,which", [("_dense", "dense_kernels"), ("_direct", "direct_kernels")])
def test_avx512_and_fma_kernels_follow_the_cpu_and_the_build(name, which):
    """The Dense and direct convolution kernels run only beside the AVX2 build: their AVX-512
    builds on a CPU with AVX-512F and FMA (unless TINYCNN_KERNELS=cython-avx2), else the direct
    convolution's AVX2 build on a CPU with FMA."""
    expected, module = "numpy", None
    if kernels.instruction_set() == "avx2" and kernels._CHOICE != "cython-avx2" and kernels.cpu_has_avx512():
        expected, module = "avx512", f"tinycnn.{name}"
    elif kernels.instruction_set() == "avx2" and name == "_direct" and kernels.cpu_has_fma():
        expected, module = "avx2", f"tinycnn._avx2.{name}"
    if module is not None and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not built here")
    assert getattr(kernels, which)() == expected


def test_the_winograd_gemm_runs_exactly_where_the_avx2_direct_build_does():
    """tinycnn._avx2._gemm replaces BLAS in the Winograd kernels on CPUs with AVX2 and FMA but no
    AVX-512 (or TINYCNN_KERNELS=cython-avx2), the same rule as the direct convolution's AVX2 build."""
    expected = {"avx2": "avx2", "avx512": "blas", "numpy": "blas" if kernels.backend() == "cython" else "numpy"}
    if importlib.util.find_spec("tinycnn._avx2._gemm") is None:
        pytest.skip("tinycnn._avx2._gemm is not built here")
    assert kernels.winograd_gemm() == expected[kernels.direct_kernels()]
    if kernels.instruction_set() == "avx2" and kernels.cpu_has_fma():
        assert kernels._select_avx2_fma("_gemm", "cython-avx2").__name__ == "tinycnn._avx2._gemm"
        assert kernels._select_avx2_fma("_direct", "cython-avx2").__name__ == "tinycnn._avx2._direct"
        if kernels.cpu_has_avx512():
            assert kernels._select_avx2_fma("_gemm", "cython") is None


def test_backend_is_one_of_the_known_names():
    assert tinycnn.backend() in ("cython", "numpy")


def test_unknown_kernel_choice_is_rejected():
    with pytest.raises(ValueError, match=r"TINYCNN_KERNELS must be one of .*got 'fortran'"):
        kernels._select("fortran")


def test_numpy_choice_selects_reference_modules():
    choice = kernels._select("numpy")
    assert choice[:2] == ("numpy", "numpy")
    assert choice[2:] == (_im2col_numpy, _pool_numpy, _relu_numpy, pytest.importorskip('tinycnn._sgd_numpy'),
                          _winograd_numpy)


def test_the_avx2_build_is_chosen_exactly_when_the_cpu_has_avx2():
    pytest.importorskip("tinycnn._sgd")
    baseline = kernels._select("cython-baseline")
    assert baseline[:2] == ("cython", "baseline") and baseline[5].__name__ == "tinycnn._sgd"
    best = kernels._select("cython")
    if kernels.cpu_has_avx2() and importlib.util.find_spec("tinycnn._avx2._sgd"):
        assert best[:2] == ("cython", "avx2") and best[5].__name__ == "tinycnn._avx2._sgd"
    else:
        assert best[:2] == ("cython", "baseline")


def test_cython_avx2_runs_the_avx2_build_without_the_avx512_kernels():
    """What a CPU with AVX2 but no AVX-512 runs, on any CPU with AVX2."""
    pytest.importorskip("tinycnn._sgd")
    if not (kernels.cpu_has_avx2() and importlib.util.find_spec("tinycnn._avx2._sgd")):
        with pytest.raises(ImportError):
            kernels._select("cython-avx2")
        return
    assert kernels._select("cython-avx2")[:2] == ("cython", "avx2")
    assert kernels._select_avx512("_dense", _dense_numpy, choice="cython-avx2") is _dense_numpy
    assert kernels._select_avx512("_direct", _direct_numpy, choice="cython-avx2") is _direct_numpy
    if kernels.cpu_has_avx512() and kernels.instruction_set() == "avx2" and importlib.util.find_spec("tinycnn._dense"):
        assert kernels._select_avx512("_dense", _dense_numpy, choice="cython").__name__ == "tinycnn._dense"


def test_without_numpys_cpu_table_the_baseline_build_is_assumed(monkeypatch):
    real = importlib.import_module

    def no_table(name, *args):
        if name.endswith("_multiarray_umath"):
            raise ImportError(name)
        return real(name, *args)
    monkeypatch.setattr(importlib, "import_module", no_table)
    assert kernels.cpu_has_avx2() is False


def test_both_builds_round_alike():
    """No fused multiply-add in either build (setup.py), so the same inputs give the same bits."""
    if not kernels.cpu_has_avx2():
        pytest.skip("this CPU has no AVX2")
    builds = [_compiled(name, "tinycnn._avx2") for name in ("_sgd", "_winograd")]
    base = [_compiled(name) for name in ("_sgd", "_winograd")]
    results = []
    for sgd, wino in (base, builds):
        rng = np.random.default_rng(0)                 # the same inputs for both builds
        p, g, v = (rng.standard_normal(1000).astype(np.float32) for _ in range(3))
        sgd.sgd_momentum_update(p, g, v, 0.01, 0.9, 1e-4)
        M = rng.standard_normal((16, 5, 2 * 49)).astype(np.float32)
        out = np.empty((2, 5, 13, 14), np.float32)
        wino.winograd_output(M, out, rng.standard_normal(5).astype(np.float32))
        results.append((p, v, out))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_env_var_numpy_is_honoured_at_import():
    env = dict(os.environ, TINYCNN_KERNELS="numpy")
    out = subprocess.run([sys.executable, "-c", "import tinycnn; print(tinycnn.backend())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"


# --- compiled vs reference ---------------------------------------------------------------

WIDE = conv_geometries(max_k=6, max_p=3)  # kernels up to 6, paddings up to 3: windows that
                                          # start in the padding and outrun a tiny input


@settings(max_examples=100, deadline=None)
@given(geom=WIDE, dtype=dtypes, seed=seeds)
def test_im2col_compiled_matches_reference_exactly(cy_im2col, geom, dtype, seed):
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    x = np.random.default_rng(seed).standard_normal((N, C, H, W)).astype(dtype)
    ref = _im2col_numpy.im2col(x, kh, kw, sh, sw, ph, pw)
    got = cy_im2col.im2col(x, kh, kw, sh, sw, ph, pw)
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    assert ref.shape == got.shape == (C * kh * kw, N * OH * OW)
    assert ref.dtype == got.dtype == dtype
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=100, deadline=None)
@given(geom=WIDE, dtype=dtypes, seed=seeds)
def test_col2im_compiled_matches_reference(cy_im2col, geom, dtype, seed):
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    col = np.random.default_rng(seed).standard_normal((C * kh * kw, N * OH * OW)).astype(dtype)
    ref = _im2col_numpy.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw)
    got = cy_im2col.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw)
    assert ref.shape == got.shape == (N, C, H, W)
    assert ref.dtype == got.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


def _conv_chunk_case(geom, dtype, seed, group, F):
    """Inputs of the im2col convolution kernels: x, Wb = [W b], dout, and a scratch col for
    `group` images per im2col call."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    P = out_size(H, kh, sh, ph) * out_size(W, kw, sw, pw)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wb = rng.standard_normal((F, C * kh * kw + 1)).astype(dtype)
    dout = rng.standard_normal((N, F, P)).astype(dtype)
    return x, Wb, dout, np.empty((C * kh * kw + 1, group * P), dtype)


@settings(max_examples=100, deadline=None)
@given(geom=WIDE, dtype=dtypes, seed=seeds, group=st.integers(1, 4), F=st.integers(1, 4),
       span=st.tuples(st.integers(0, 3), st.integers(0, 3)))
def test_im2col_conv_kernels_match_the_reference(cy_im2col, geom, dtype, seed, group, F, span):
    """The compiled per-chunk convolution (im2col + GEMMs + col2im in one call) agrees with its
    NumPy twin on any geometry, images-per-call count and chunk lo..hi-1; images outside the
    chunk are left alone."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    lo, hi = sorted(min(v, N) for v in span)
    x, Wb, dout, col = _conv_chunk_case(geom, dtype, seed, group, F)
    results = []
    for mod in (_im2col_numpy, cy_im2col):
        out = np.full(dout.shape, 7, dtype)
        mod.conv_forward(x, Wb, out, col, lo, hi, kh, kw, sh, sw, ph, pw)
        dWbT = np.ones((Wb.shape[1], F), dtype)                # added to
        dx = np.full(x.shape, 7, dtype)
        mod.conv_backward(x, Wb, dout, dWbT, dx, col, lo, hi, kh, kw, sh, sw, ph, pw, True, True)
        results.append((out, dWbT, dx))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for ref, got in zip(*results):
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
    out, _, dx = results[1]
    assert (np.delete(out, np.s_[lo:hi], axis=0) == 7).all() and (np.delete(dx, np.s_[lo:hi], axis=0) == 7).all()


@settings(max_examples=50, deadline=None)
@given(geom=conv_geometries(max_k=3, max_p=1), seed=seeds, group=st.integers(1, 3))
def test_im2col_conv_forward_is_the_convolution(geom, seed, group):
    """kernels.im2col_conv_forward against the nested-loop definition (float64)."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    x, Wb, _, col = _conv_chunk_case(geom, np.float64, seed, group, 3)
    out = np.empty((N, 3, out_size(H, kh, sh, ph) * out_size(W, kw, sw, pw)))
    kernels.im2col_conv_forward(x, Wb, out, col, 0, N, kh, kw, sh, sw, ph, pw)
    ref = conv_naive(x, Wb[:, :-1].reshape(3, C, kh, kw), Wb[:, -1], (sh, sw), (ph, pw))
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(geom=conv_geometries(max_k=3, max_p=1), seed=seeds, group=st.integers(1, 3))
def test_im2col_conv_backward_is_the_adjoint_of_the_forward(geom, seed, group):
    """The backward is the adjoint of the forward: <conv(x), dout> = <x, dx> + b . sum(dout) and
    = <dWbT.T, [W b]> (float64, up to rounding); dWbT is added to, not overwritten."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    x, Wb, dout, col = _conv_chunk_case(geom, np.float64, seed, group, 2)
    out = np.empty(dout.shape)
    kernels.im2col_conv_forward(x, Wb, out, col, 0, N, kh, kw, sh, sw, ph, pw)
    dWbT, dx = np.full((Wb.shape[1], 2), 0.5), np.empty(x.shape)
    kernels.im2col_conv_backward(x, Wb, dout, dWbT, dx, col, 0, N, kh, kw, sh, sw, ph, pw)
    bias_part = Wb[:, -1] @ dout.sum(axis=(0, 2))
    lhs = float((out * dout).sum())
    np.testing.assert_allclose(float((x * dx).sum()) + bias_part, lhs, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(float(((dWbT - 0.5).T * Wb).sum()), lhs, rtol=1e-9, atol=1e-9)


def test_im2col_conv_backward_computes_only_what_is_asked():
    x, Wb, dout, col = _conv_chunk_case((3, 2, 6, 5, 3, 3, 1, 1, 1, 1), np.float32, 0, 2, 4)
    dWbT = np.zeros((Wb.shape[1], 4), np.float32)
    kernels.im2col_conv_backward(x, Wb, dout, dWbT, None, col, 0, 3, 3, 3, 1, 1, 1, 1)
    assert np.abs(dWbT).sum() > 0
    dx = np.full(x.shape, 7, np.float32)
    kernels.im2col_conv_backward(x, Wb, dout, None, dx, col, 0, 3, 3, 3, 1, 1, 1, 1)
    assert not (dx == 7).any()


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(Wb=a["Wb"][:, :-1].copy()), r"Wb must be \(F, 19\) = \[W b\] for x \(3, 2, 6, 5\) .* got \(4, 18\)"),
    (lambda a: a.update(out=np.zeros(a["out"].shape, np.float64)), r"out must be a C-contiguous float32"),
    (lambda a: a.update(col=np.empty((19, 45), np.float32)), r"col must be \(19, m\*30\) scratch"),
    (lambda a: a.update(hi=4), r"images lo..hi-1 must lie in 0..2, got lo=0, hi=4"),
    (lambda a: a.update(x=np.asfortranarray(a["x"])), r"x must be a C-contiguous"),
])
def test_im2col_conv_forward_rejects_wrong_arrays(change, message):
    x, Wb, dout, col = _conv_chunk_case((3, 2, 6, 5, 3, 3, 1, 1, 1, 1), np.float32, 0, 2, 4)
    args = dict(x=x, Wb=Wb, out=np.empty(dout.shape, np.float32), col=col, lo=0, hi=3)
    change(args)
    with pytest.raises(ValueError, match=message):
        kernels.im2col_conv_forward(args["x"], args["Wb"], args["out"], args["col"], args["lo"], args["hi"],
                                    3, 3, 1, 1, 1, 1)


@settings(max_examples=40, deadline=None)
@given(geom=WIDE, seed=seeds)
def test_col2im_compiled_matches_reference_exactly_on_integers(cy_im2col, geom, seed):
    """Integer-valued columns sum exactly in any order, so the two must agree bit for bit."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    col = np.random.default_rng(seed).integers(-8, 9, (C * kh * kw, N * OH * OW)).astype(np.float64)
    np.testing.assert_array_equal(cy_im2col.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw),
                                  _im2col_numpy.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw))


@st.composite
def same_width_geometries(draw):
    """Stride 1 and kw = 2*pw + 1, so OW == W: the kernels' one-stretch-per-row path."""
    N, C, H, W, kh, _, _, _, ph, pw = draw(WIDE)
    return N, C, H, W, kh, 2 * pw + 1, 1, 1, ph, pw


@settings(max_examples=60, deadline=None)
@given(geom=same_width_geometries(), dtype=dtypes, seed=seeds)
def test_same_width_im2col_and_col2im_match_the_reference(cy_im2col, geom, dtype, seed):
    """im2col exactly; col2im exactly on integer-valued columns (any order sums them exactly),
    with the entries at padding taps set huge, so one wrongly kept would show."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    assert OW == W
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    np.testing.assert_array_equal(cy_im2col.im2col(x, kh, kw, sh, sw, ph, pw),
                                  _im2col_numpy.im2col(x, kh, kw, sh, sw, ph, pw))
    col = rng.integers(-8, 9, (C * kh * kw, N * OH * OW)).astype(dtype)
    ones = _im2col_numpy.im2col(np.ones((N, C, H, W), dtype), kh, kw, sh, sw, ph, pw)
    col[ones == 0] = 1e30                                    # taps on padding: must be dropped
    np.testing.assert_array_equal(cy_im2col.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw),
                                  _im2col_numpy.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw))


@settings(max_examples=100, deadline=None)
@given(geom=pool_geometries(), dtype=dtypes, seed=seeds, ties=st.booleans())
def test_maxpool_forward_compiled_matches_reference_exactly(cy_pool, geom, dtype, seed, ties):
    """Values and argmax agree, including the tie rule (first max in row-major order)."""
    N, C, H, W, kh, kw, sh, sw = geom
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: many ties inside windows
        x = rng.integers(0, 3, (N, C, H, W)).astype(dtype)
    else:
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
    out_ref, arg_ref = _pool_numpy.maxpool_forward(x, kh, kw, sh, sw)
    out_got, arg_got = cy_pool.maxpool_forward(x, kh, kw, sh, sw)
    OH, OW = out_size(H, kh, sh), out_size(W, kw, sw)
    assert out_got.shape == arg_got.shape == out_ref.shape == (N, C, OH, OW)
    assert out_got.dtype == dtype and arg_got.dtype == arg_ref.dtype == np.int32
    np.testing.assert_array_equal(out_got, out_ref)
    np.testing.assert_array_equal(arg_got, arg_ref)
    assert arg_got.min() >= 0 and arg_got.max() < kh * kw


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(2, 9), w=st.integers(2, 9), dtype=dtypes,
       values=st.sampled_from(["normal", "ties", "special"]), seed=seeds)
def test_two_by_two_pool_compiled_matches_reference_exactly(cy_pool, n, c, h, w, dtype, values, seed):
    """The 2x2 stride-2 path of both kernels (the nets' pool; odd sizes leave a row or column
    to the general backward): values, argmax and dx bit for bit, NaN, infinities and ties included."""
    rng = np.random.default_rng(seed)
    if values == "ties":
        x = rng.integers(0, 3, (n, c, h, w)).astype(dtype)
    else:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
    if values == "special":
        x.flat[rng.integers(0, x.size, 4)] = [np.nan, np.inf, -np.inf, -0.0]
    out_ref, arg_ref = _pool_numpy.maxpool_forward(x, 2, 2, 2, 2)
    out_got, arg_got = cy_pool.maxpool_forward(x, 2, 2, 2, 2)
    np.testing.assert_array_equal(out_got, out_ref)
    np.testing.assert_array_equal(arg_got, arg_ref)
    dout = rng.standard_normal(arg_ref.shape).astype(dtype)
    dx = np.full((n, c, h, w), 7, dtype)                  # whatever was there must be overwritten
    np.testing.assert_array_equal(cy_pool.maxpool_backward(dout, arg_ref, h, w, 2, 2, 2, 2, dx),
                                  _pool_numpy.maxpool_backward(dout, arg_ref, h, w, 2, 2, 2, 2))


@settings(max_examples=100, deadline=None)
@given(geom=pool_geometries(), dtype=dtypes, seed=seeds)
def test_maxpool_backward_compiled_matches_reference(cy_pool, geom, dtype, seed):
    N, C, H, W, kh, kw, sh, sw = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    _, argmax = _pool_numpy.maxpool_forward(x, kh, kw, sh, sw)
    # integer-valued dout: overlapping windows sum exactly in any order -> bitwise equal
    dout_int = rng.integers(-8, 9, argmax.shape).astype(dtype)
    ref = _pool_numpy.maxpool_backward(dout_int, argmax, H, W, kh, kw, sh, sw)
    got = cy_pool.maxpool_backward(dout_int, argmax, H, W, kh, kw, sh, sw)
    assert got.shape == ref.shape == (N, C, H, W) and got.dtype == ref.dtype == dtype
    np.testing.assert_array_equal(got, ref)
    # general dout: equal up to the summation order of overlapping windows
    dout = rng.standard_normal(argmax.shape).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(cy_pool.maxpool_backward(dout, argmax, H, W, kh, kw, sh, sw),
                               _pool_numpy.maxpool_backward(dout, argmax, H, W, kh, kw, sh, sw),
                               rtol=tol, atol=tol)


@settings(max_examples=30, deadline=None)
@given(geom=pool_geometries(max_s=1), seed=seeds)
def test_overlapping_pool_compiled_matches_reference(cy_pool, geom, seed):
    """Stride 1: every interior input belongs to several windows."""
    N, C, H, W, kh, kw, _, _ = geom
    x = np.random.default_rng(seed).standard_normal((N, C, H, W))
    o1, a1 = cy_pool.maxpool_forward(x, kh, kw, 1, 1)
    o2, a2 = _pool_numpy.maxpool_forward(x, kh, kw, 1, 1)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(a1, a2)
    d = np.ones_like(o1)
    np.testing.assert_array_equal(cy_pool.maxpool_backward(d, a1, H, W, kh, kw, 1, 1),
                                  _pool_numpy.maxpool_backward(d, a2, H, W, kh, kw, 1, 1))


@settings(max_examples=40, deadline=None)
@given(geom=pool_geometries(), dtype=dtypes, seed=seeds)
def test_maxpool_kernels_write_into_given_arrays(cy_pool, geom, dtype, seed):
    """out=/argmax=/dx= arrays full of garbage come back equal to freshly allocated results,
    for both kernel sets (the layers pass slices of one batch array, one per thread)."""
    N, C, H, W, kh, kw, sh, sw = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    OH, OW = out_size(H, kh, sh), out_size(W, kw, sw)
    for mod in (cy_pool, _pool_numpy):
        out_ref, arg_ref = mod.maxpool_forward(x, kh, kw, sh, sw)
        out, arg = np.full((N, C, OH, OW), 7, dtype), np.full((N, C, OH, OW), 99, np.int32)
        mod.maxpool_forward(x, kh, kw, sh, sw, out, arg)
        np.testing.assert_array_equal(out, out_ref)
        np.testing.assert_array_equal(arg, arg_ref)
        dout = rng.integers(-8, 9, (N, C, OH, OW)).astype(dtype)
        dx = np.full((N, C, H, W), 5, dtype)
        mod.maxpool_backward(dout, arg, H, W, kh, kw, sh, sw, dx)
        np.testing.assert_array_equal(dx, mod.maxpool_backward(dout, arg, H, W, kh, kw, sh, sw))


SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30, -1e-30]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), dtype=dtypes, seed=seeds, special=st.booleans())
def test_relu_kernels_compiled_match_reference_exactly(build, n, dtype, seed, special):
    """Bit for bit, NaN, infinities, signed zeros and tiny values included."""
    cy_relu = _compiled("_relu", build)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(dtype)
    dout = rng.standard_normal(n).astype(dtype)
    if special and n:
        x[rng.integers(0, n, n // 2 + 1)] = rng.choice(SPECIAL, n // 2 + 1)
        dout[rng.integers(0, n, n // 4 + 1)] = rng.choice(SPECIAL, n // 4 + 1)
    outs = []
    for mod in (cy_relu, _relu_numpy):
        out, dx = np.full(n, 3, dtype), np.full(n, 3, dtype)
        mod.relu_forward(x, out)
        mod.relu_backward(dout, out, dx)
        outs.append((out, dx))
    (out1, dx1), (out2, dx2) = outs
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(dx1, dx2)
    # the formulas: out = max(x, 0) with NaN kept; dx = dout where x > 0, else 0
    np.testing.assert_array_equal(out1, np.maximum(x, 0))
    np.testing.assert_array_equal(dx1, np.where(x > 0, dout, 0))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), f=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9),
       dtype=dtypes, bias=st.booleans(), seed=seeds)
def test_winograd_kernels_compiled_match_reference(build, n, c, f, h, w, dtype, bias, seed):
    cy_wino = _compiled("_winograd", build)
    rng = np.random.default_rng(seed)
    th, tw = (h + 1) // 2, (w + 1) // 2
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    M = rng.standard_normal((16, f, n * th * tw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if bias else None
    dout = rng.standard_normal((n, f, h, w)).astype(dtype)
    W = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    Mw = rng.standard_normal((16, f, c)).astype(dtype)
    got, ref = [], []
    for mod, res in ((cy_wino, got), (_winograd_numpy, ref)):
        V, out, D, Dt = (np.full((16, c, n * th * tw), 9, dtype), np.full((n, f, h, w), 9, dtype),
                         np.full((16, f, n * th * tw), 9, dtype), np.full((16, n * th * tw, f), 9, dtype))
        U, dW = np.full((16, f, c), 9, dtype), np.full((f, c, 3, 3), 9, dtype)
        mod.winograd_input(x, V)
        mod.winograd_output(M, out, b)
        mod.winograd_dout(dout, D)
        mod.winograd_dout(dout, Dt, True)
        mod.winograd_weights(W, U)
        mod.winograd_weight_grad(Mw, dW)
        res += [V, out, D, Dt, U, dW]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 4), f=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9),
       dtype=dtypes, bias=st.booleans(), group=st.integers(1, 3), span=st.tuples(st.integers(0, 4), st.integers(0, 4)),
       tile_major=st.booleans(), seed=seeds)
def test_winograd_conv_kernels_compiled_match_reference(build, n, c, f, h, w, dtype, bias, group, span, tile_major, seed):
    """The per-chunk Winograd convolution (transforms and 16 GEMMs in one call) agrees with its
    NumPy twin for any images-per-call count and chunk lo..hi-1, U with gapped planes as
    kernels.winograd_weights makes them, D in either layout; images outside the chunk are left
    alone."""
    cy_wino = _compiled("_winograd", build)
    lo, hi = sorted(min(v, n) for v in span)
    rng = np.random.default_rng(seed)
    T = kernels.winograd_tile_count(h, w)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    dout = rng.standard_normal((n, f, h, w)).astype(dtype)
    U = kernels.winograd_weights(rng.standard_normal((f, c, 3, 3)), dtype)
    b = rng.standard_normal(f).astype(dtype) if bias else None
    results = []
    for mod in (_winograd_numpy, cy_wino):
        V, M = np.empty((16, c, group * T), dtype), np.empty((16, f, group * T), dtype)
        D = np.empty((16, group * T, f) if tile_major else (16, f, group * T), dtype)
        out, acc = np.full((n, f, h, w), 7, dtype), np.ones((16, f, c), dtype)
        mod.conv_forward(x, U, b, out, V, M, lo, hi)
        mod.weight_products(x, dout, acc, V, D, lo, hi, tile_major)
        results.append((out, acc))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for ref, got in zip(*results):
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
    assert (np.delete(results[1][0], np.s_[lo:hi], axis=0) == 7).all()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), f=st.integers(1, 4), h=st.integers(1, 11), w=st.integers(1, 9),
       rows=st.tuples(st.integers(0, 5), st.integers(1, 6)), dtype=dtypes, bias=st.booleans(), seed=seeds)
def test_winograd_tile_rows_are_those_rows_of_the_whole_image(n, c, f, h, w, rows, dtype, bias, seed):
    """With tile_rows = (ty0, ty1), the input transform gives the whole image's tiles of those
    rows, the output transform and the convolution write the whole image's output rows 2ty0 ..
    2ty1 - 1 (cropped to h) and nothing else: compiled and NumPy alike."""
    th, tw = (h + 1) // 2, (w + 1) // 2
    ty0 = min(rows[0], th - 1)
    ty1 = min(th, ty0 + rows[1])                             # 1 to 6 rows from ty0
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    M = rng.standard_normal((16, f, n * th * tw)).astype(dtype)
    U = kernels.winograd_weights(rng.standard_normal((f, c, 3, 3)), dtype)
    b = rng.standard_normal(f).astype(dtype) if bias else None
    T = (ty1 - ty0) * tw
    band = np.s_[:, :, 2 * ty0:min(h, 2 * ty1)]              # the output rows of the tile rows
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for mod in [_winograd_numpy] + ([] if kernels.backend() == "numpy" else [kernels._winograd_mod]):
        V, out = np.empty((16, c, n * th * tw), dtype), np.empty((n, f, h, w), dtype)
        mod.winograd_input(x, V)
        mod.winograd_output(M, out, b)
        Vb, outb = np.empty((16, c, n * T), dtype), np.full((n, f, h, w), 7, dtype)
        mod.winograd_input(x, Vb, (ty0, ty1))
        tiles = np.s_[:, :, :, ty0:ty1]                      # of (16, channels, n, th, tw)
        np.testing.assert_allclose(Vb.reshape(16, c, n, ty1 - ty0, tw), V.reshape(16, c, n, th, tw)[tiles],
                                   rtol=tol, atol=tol)
        mod.winograd_output(np.ascontiguousarray(M.reshape(16, f, n, th, tw)[tiles]).reshape(16, f, n * T), outb, b,
                            (ty0, ty1))
        np.testing.assert_allclose(outb[band], out[band], rtol=tol, atol=tol)
        assert (np.delete(outb, np.s_[2 * ty0:min(h, 2 * ty1)], axis=2) == 7).all()
        whole, conv = np.empty((n, f, h, w), dtype), np.full((n, f, h, w), 7, dtype)
        mod.conv_forward(x, U, b, whole, np.empty((16, c, th * tw), dtype), np.empty((16, f, th * tw), dtype), 0, n)
        mod.conv_forward(x, U, b, conv, np.empty((16, c, T), dtype), np.empty((16, f, T), dtype), 0, n, (ty0, ty1))
        np.testing.assert_allclose(conv[band], whole[band], rtol=tol, atol=tol)
        assert (np.delete(conv, np.s_[2 * ty0:min(h, 2 * ty1)], axis=2) == 7).all()


@pytest.mark.skipif(kernels.backend() != "cython", reason="the compiled task itself")
def test_the_compiled_winograd_task_rejects_scratch_that_does_not_fit_even_unwrapped():
    """ConvForwardTask works on raw pointers: scratch for no whole image (which would never
    advance) or an M shorter than V's images must fail before it runs, without kernels' checks."""
    x = np.zeros((2, 3, 5, 6), np.float32)                     # 9 tiles per image
    U = kernels.winograd_weights(np.zeros((4, 3, 3, 3)), np.float32)
    out = np.zeros((2, 4, 5, 6), np.float32)
    for V, M in [(np.zeros((16, 3, 5), np.float32), np.zeros((16, 4, 9), np.float32)),
                 (np.zeros((16, 3, 18), np.float32), np.zeros((16, 4, 9), np.float32)),
                 (np.zeros((16, 2, 9), np.float32), np.zeros((16, 4, 9), np.float32))]:
        with pytest.raises(ValueError, match=r"conv_forward: arrays that do not fit x \(2, 3, 5, 6\)"):
            kernels._winograd_mod.conv_forward(x, U, None, out, V, M, 0, 2)


def test_winograd_kernels_reject_tile_rows_outside_the_image():
    x, V = np.zeros((1, 2, 5, 6), np.float32), np.zeros((16, 2, 9), np.float32)
    for rows in [(0, 4), (2, 2), (-1, 1), (1.0, 2)]:
        with pytest.raises(ValueError, match=r"winograd_input: tile_rows must be \(ty0, ty1\) with 0 <= ty0 < ty1 <= 3 "
                                             r"\(rows of 2x2 tiles of 5 x 6\), got"):
            kernels.winograd_input(x, V, rows)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), f=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       group=st.integers(1, 3), tile_major=st.booleans(), seed=seeds)
def test_winograd_conv_kernels_are_the_convolution_and_its_weight_gradient(n, c, f, h, w, group, tile_major, seed):
    """kernels.winograd_conv_forward is the 3x3, padding 1 convolution (nested-loop definition),
    and winograd_weight_grad of winograd_weight_products is dW = sum dout * x_pad shifted
    (float64), with D in either layout."""
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal((n, c, h, w)), rng.standard_normal((n, f, h, w))
    W, b = rng.standard_normal((f, c, 3, 3)), rng.standard_normal(f)
    T = kernels.winograd_tile_count(h, w)
    V, M = np.empty((16, c, group * T)), np.empty((16, f, group * T))
    out = np.empty((n, f, h, w))
    kernels.winograd_conv_forward(x, kernels.winograd_weights(W, np.float64), b, out, V, M, 0, n)
    np.testing.assert_allclose(out, conv_naive(x, W, b, (1, 1), (1, 1)), rtol=1e-10, atol=1e-10)
    D = np.empty((16, group * T, f) if tile_major else (16, f, group * T))
    acc = kernels.winograd_weight_products(x, dout, np.zeros((16, f, c)), V, D, 0, n, tile_major)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dW = np.einsum("nfyx,ncyxij->fcij", dout, np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3)))
    np.testing.assert_allclose(kernels.winograd_weight_grad(acc, np.float64), dW, rtol=1e-10, atol=1e-10)


def test_winograd_conv_kernels_reject_wrong_arrays():
    x = np.zeros((2, 3, 5, 6), np.float32)                 # 9 tiles per image
    U = kernels.winograd_weights(np.zeros((4, 3, 3, 3)), np.float32)
    V, M, out = np.zeros((16, 3, 18), np.float32), np.zeros((16, 4, 18), np.float32), np.zeros((2, 4, 5, 6), np.float32)
    with pytest.raises(ValueError, match=r"U must be \(16, F, 2\) float32 with C-contiguous \(F, C\) planes"):
        kernels.winograd_conv_forward(np.zeros((2, 2, 5, 6), np.float32), U, None, out, V, M, 0, 2)
    with pytest.raises(ValueError, match=r"V must be \(16, 3, m\*9\) scratch for m >= 1 images, got \(16, 3, 10\)"):
        kernels.winograd_conv_forward(x, U, None, out, np.zeros((16, 3, 10), np.float32), M, 0, 2)
    with pytest.raises(ValueError, match=r"V and M must hold as many tiles"):
        kernels.winograd_conv_forward(x, U, None, out, np.zeros((16, 3, 9), np.float32), M, 0, 2)
    with pytest.raises(ValueError, match=r"images lo..hi-1 must lie in 0..1, got lo=1, hi=3"):
        kernels.winograd_conv_forward(x, U, None, out, V, M, 1, 3)
    with pytest.raises(ValueError, match=r"bias must be a C-contiguous float32 array of shape \(4,\)"):
        kernels.winograd_conv_forward(x, U, np.zeros(3, np.float32), out, V, M, 0, 2)
    acc = np.zeros((16, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"acc must be a C-contiguous float32 array of shape \(16, 4, 3\)"):
        kernels.winograd_weight_products(x, out, np.zeros((16, 3, 4), np.float32), V, M, 0, 2)
    with pytest.raises(ValueError, match=r"winograd_weight_products: dout must be \(N, F, H, W\), got shape \(2, 4, 30\)"):
        kernels.winograd_weight_products(x, out.reshape(2, 4, 30), acc, V, M, 0, 2)
    with pytest.raises(ValueError, match=r"winograd_weight_products: x must be a C-contiguous \(N, C, H, W\)"):
        kernels.winograd_weight_products(x[..., ::2], out, acc, V, M, 0, 2)
    with pytest.raises(ValueError, match=r"D \(tile-major\) must be \(16, m\*9, 4\) scratch for m >= 1 images, "
                                         r"got \(16, 4, 18\)"):
        kernels.winograd_weight_products(x, out, acc, V, M, 0, 2, tile_major=True)
    with pytest.raises(ValueError, match=r"V and D must hold as many tiles, got \(16, 3, 18\) and \(16, 9, 4\)"):
        kernels.winograd_weight_products(x, out, acc, V, np.zeros((16, 9, 4), np.float32), 0, 2, tile_major=True)


def test_winograd_computes_a_3x3_convolution_by_hand():
    """One 4x4 tile, one channel: U * V summed and transformed back is the 2x2 'same'-padded
    correlation of the tile's centre, computed here directly."""
    rng = np.random.default_rng(3)
    img, g = rng.standard_normal((2, 2)), rng.standard_normal((3, 3))
    xp = np.zeros((1, 4, 4))
    xp[0, 1:3, 1:3] = img
    V = np.empty((16, 1, 1))
    kernels.winograd_input(img[None, None], V)
    U = (kernels.WINOGRAD_G @ g @ kernels.WINOGRAD_G.T).reshape(16, 1, 1)
    out = np.empty((1, 1, 2, 2))
    kernels.winograd_output(U * V, out)
    direct = [[np.sum(xp[0, y:y + 3, x:x + 3] * g) for x in range(2)] for y in range(2)]
    np.testing.assert_allclose(out[0, 0], direct, rtol=1e-12, atol=1e-12)


def test_winograd_weight_gradient_of_one_tile_by_hand():
    """F(3x3, 2x2): one 2x2 dout tile g over the 4x4 input tile d gives the 3x3 correlation
    dW[i, j] = sum_ab g[a, b] d[a + i, b + j], computed here directly."""
    rng = np.random.default_rng(4)
    img, g = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    xp = np.zeros((1, 4, 4))
    xp[0, 1:3, 1:3] = img
    V, D = np.empty((16, 1, 1)), np.empty((16, 1, 1))
    kernels.winograd_input(img[None, None], V)
    kernels.winograd_dout(g[None, None], D)
    A3T = kernels.WINOGRAD_A3T
    dW = A3T @ (D * V).reshape(4, 4) @ A3T.T
    direct = [[np.sum(g * xp[0, i:i + 2, j:j + 2]) for j in range(3)] for i in range(3)]
    np.testing.assert_allclose(dW, direct, rtol=1e-12, atol=1e-12)


def test_kernel_wrappers_reject_out_arrays_of_the_wrong_shape_dtype_or_layout():
    x = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"relu_forward out must be a C-contiguous float32 array of shape \(2, 3, 4, 4\)"):
        kernels.relu_forward(x, np.zeros((2, 3, 4, 4), np.float64))
    with pytest.raises(ValueError, match=r"maxpool_forward out .*shape \(2, 3, 2, 2\), got float32 \(2, 3, 4, 4\)"):
        kernels.maxpool_forward(x, 2, 2, 2, 2, out=x)
    with pytest.raises(ValueError, match=r"maxpool_forward argmax must be a C-contiguous int32"):
        kernels.maxpool_forward(x, 2, 2, 2, 2, argmax=np.zeros((2, 3, 2, 2), np.int64))
    with pytest.raises(ValueError, match=r"maxpool_backward out .*contiguous=False"):
        kernels.maxpool_backward(np.zeros((2, 3, 2, 2), np.float32), np.zeros((2, 3, 2, 2), np.int32), 4, 4,
                                 2, 2, 2, 2, out=np.zeros((2, 3, 4, 8), np.float32)[..., ::2])
    with pytest.raises(ValueError, match=r"relu_backward: dout has shape \(3,\), the forward's output \(2,\)"):
        kernels.relu_backward(np.zeros(3, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32))
    x = np.zeros((2, 3, 5, 6), np.float32)                 # 3 x 3 = 9 tiles per image
    with pytest.raises(ValueError, match=r"winograd_input V must be a C-contiguous float32 array of shape "
                                         r"\(16, 3, 18\), got float32 \(16, 3, 9\)"):
        kernels.winograd_input(x, np.zeros((16, 3, 9), np.float32))
    with pytest.raises(ValueError, match=r"winograd_dout D must be .* shape \(16, 3, 18\), got float64"):
        kernels.winograd_dout(x, np.zeros((16, 3, 18), np.float64))
    with pytest.raises(ValueError, match=r"winograd_dout D must be .* shape \(16, 18, 3\), got float32 \(16, 3, 18\)"):
        kernels.winograd_dout(x, np.zeros((16, 3, 18), np.float32), tile_major=True)
    with pytest.raises(ValueError, match=r"winograd_output: M has shape \(16, 4, 9\), expected \(16, 4, 18\) "
                                         r"for out \(2, 4, 5, 6\)"):
        kernels.winograd_output(np.zeros((16, 4, 9), np.float32), np.zeros((2, 4, 5, 6), np.float32))


@pytest.mark.parametrize("C,H,W,kh,kw,sh,sw,ph,pw", [
    (1, 1, 1, 5, 5, 1, 1, 2, 2),    # 1x1 input, 5x5 kernel: every row but the centre is padding
    (2, 1, 1, 9, 9, 1, 1, 4, 4),
    (1, 1, 2, 3, 9, 1, 1, 1, 4),
    (3, 2, 1, 7, 9, 2, 3, 3, 4),
])
def test_im2col_kernel_much_larger_than_input(cy_im2col, C, H, W, kh, kw, sh, sw, ph, pw):
    """Windows whose first in-bounds column lies beyond the last output column."""
    N = 2
    x = np.random.default_rng(0).standard_normal((N, C, H, W))
    ref = _im2col_numpy.im2col(x, kh, kw, sh, sw, ph, pw)
    np.testing.assert_array_equal(cy_im2col.im2col(x, kh, kw, sh, sw, ph, pw), ref)
    c = np.random.default_rng(1).standard_normal(ref.shape)
    np.testing.assert_allclose(cy_im2col.col2im(c, N, C, H, W, kh, kw, sh, sw, ph, pw),
                               _im2col_numpy.col2im(c, N, C, H, W, kh, kw, sh, sw, ph, pw), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), dtype=dtypes, lr=st.floats(0, 1), mu=st.floats(0, 0.99),
       wd=st.sampled_from([0.0, 1e-4, 0.1]), seed=seeds)
def test_sgd_kernel_compiled_matches_reference(build, n, dtype, lr, mu, wd, seed):
    cy_sgd = _compiled("_sgd", build)
    ref_sgd = pytest.importorskip("tinycnn._sgd_numpy")
    rng = np.random.default_rng(seed)
    p, g, v = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    p1, v1, p2, v2 = p.copy(), v.copy(), p.copy(), v.copy()
    cy_sgd.sgd_momentum_update(p1, g, v1, lr, mu, wd)
    ref_sgd.sgd_momentum_update(p2, g, v2, lr, mu, wd)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(v1, v2, rtol=tol, atol=tol)
    np.testing.assert_allclose(p1, p2, rtol=tol, atol=tol)
    # and both are the documented formula
    v_exp = mu * v.astype(np.float64) + (g + wd * p.astype(np.float64))
    np.testing.assert_allclose(v1, v_exp, rtol=10 * tol, atol=10 * tol)
    np.testing.assert_allclose(p1, p - lr * v_exp, rtol=10 * tol, atol=10 * tol)


# --- the dispatch layer (tinycnn.kernels) ------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(geom=conv_geometries(), dtype=dtypes, seed=seeds)
def test_im2col_out_buffer_is_filled_in_place(geom, dtype, seed):
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    x = np.random.default_rng(seed).standard_normal((N, C, H, W)).astype(dtype)
    fresh = kernels.im2col(x, kh, kw, sh, sw, ph, pw)
    buf = np.full(fresh.shape, np.nan, dtype=dtype)  # garbage in the buffer must be overwritten
    got = kernels.im2col(x, kh, kw, sh, sw, ph, pw, out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, fresh)


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 9), W=st.integers(1, 9),
       k=st.sampled_from([1, 3, 5, 7]), ph=st.integers(0, 3), dtype=dtypes, seed=seeds)
def test_same_width_im2col_matches_reference_exactly(cy_im2col, N, C, H, W, k, ph, dtype, seed):
    """Stride 1 and OW == W (pw = (k - 1) / 2) take the compiled kernel's one-memcpy path,
    with any row padding, kernels taller than the image included."""
    pw = (k - 1) // 2
    if H + 2 * ph < k:
        return
    x = np.random.default_rng(seed).standard_normal((N, C, H, W)).astype(dtype)
    np.testing.assert_array_equal(cy_im2col.im2col(x, k, k, 1, 1, ph, pw),
                                  _im2col_numpy.im2col(x, k, k, 1, 1, ph, pw))


@settings(max_examples=30, deadline=None)
@given(geom=conv_geometries(), dtype=dtypes, seed=seeds)
def test_col2im_out_buffer_is_overwritten_in_place(geom, dtype, seed):
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    col = np.random.default_rng(seed).standard_normal((C * kh * kw, N * OH * OW)).astype(dtype)
    fresh = kernels.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw)
    buf = np.full((N, C, H, W), np.nan, dtype=dtype)  # garbage in the buffer must not leak in
    got = kernels.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw, out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, fresh)
    with pytest.raises(ValueError, match="col2im out must be a C-contiguous"):
        kernels.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw, out=np.empty((N, C, H, W + 1), dtype))


def test_im2col_rejects_a_wrong_out_buffer():
    x = np.zeros((2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"im2col out must be a C-contiguous float64 array of shape "
                                         r"\(9, 8\), got float64 \(9, 7\)"):
        kernels.im2col(x, 3, 3, 1, 1, 0, 0, out=np.empty((9, 7)))
    with pytest.raises(ValueError, match=r"got float32 \(9, 8\)"):
        kernels.im2col(x, 3, 3, 1, 1, 0, 0, out=np.empty((9, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=r"contiguous=False"):
        kernels.im2col(x, 3, 3, 1, 1, 0, 0, out=np.empty((8, 9)).T)


# --- properties of each kernel set ----------------------------------------------------------

def _kernel_sets():
    sets = [pytest.param(_im2col_numpy, _pool_numpy, id="numpy")]
    try:
        from tinycnn import _im2col, _pool
        sets.append(pytest.param(_im2col, _pool, id="cython"))
    except ImportError:  # pragma: no cover
        sets.append(pytest.param(None, None, id="cython",
                                 marks=pytest.mark.skip(reason="compiled kernels not built")))
    return sets


@pytest.mark.parametrize("im2col_mod,pool_mod", _kernel_sets())
@settings(max_examples=40, deadline=None)
@given(geom=WIDE, seed=seeds)
def test_col2im_is_adjoint_of_im2col(im2col_mod, pool_mod, geom, seed):
    """<im2col(x), c> == <x, col2im(c)> for all x, c."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    rng = np.random.default_rng(seed)
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    x = rng.standard_normal((N, C, H, W))
    c = rng.standard_normal((C * kh * kw, N * OH * OW))
    lhs = np.vdot(im2col_mod.im2col(x, kh, kw, sh, sw, ph, pw), c)
    rhs = np.vdot(x, im2col_mod.col2im(c, N, C, H, W, kh, kw, sh, sw, ph, pw))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("im2col_mod,pool_mod", _kernel_sets())
@settings(max_examples=40, deadline=None)
@given(geom=WIDE, seed=seeds)
def test_im2col_matches_its_layout_definition(im2col_mod, pool_mod, geom, seed):
    """col[(c*kh + i)*kw + j, (n*OH + oh)*OW + ow] = x_pad[n, c, oh*sh + i, ow*sw + j]."""
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    x = np.random.default_rng(seed).standard_normal((N, C, H, W))
    col = im2col_mod.im2col(x, kh, kw, sh, sw, ph, pw)
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    x_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    expected = np.empty_like(col)
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                for n in range(N):
                    for oh in range(OH):
                        for ow in range(OW):
                            expected[(c * kh + i) * kw + j, (n * OH + oh) * OW + ow] = \
                                x_pad[n, c, oh * sh + i, ow * sw + j]
    np.testing.assert_array_equal(col, expected)


@pytest.mark.parametrize("im2col_mod,pool_mod", _kernel_sets())
@settings(max_examples=40, deadline=None)
@given(geom=pool_geometries(), seed=seeds)
def test_maxpool_matches_window_max_definition(im2col_mod, pool_mod, geom, seed):
    """out = max of each window; argmax points at an input equal to it; backward of ones
    counts how many windows each input wins."""
    N, C, H, W, kh, kw, sh, sw = geom
    x = np.random.default_rng(seed).standard_normal((N, C, H, W))
    out, argmax = pool_mod.maxpool_forward(x, kh, kw, sh, sw)
    OH, OW = out_size(H, kh, sh), out_size(W, kw, sw)
    wins = np.zeros((N, C, H, W))
    for oh in range(OH):
        for ow in range(OW):
            win = x[:, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw]
            np.testing.assert_array_equal(out[:, :, oh, ow], win.max(axis=(2, 3)))
            k = argmax[:, :, oh, ow]
            np.testing.assert_array_equal(k, win.reshape(N, C, -1).argmax(axis=2))
            for n in range(N):
                for c in range(C):
                    wins[n, c, oh * sh + k[n, c] // kw, ow * sw + k[n, c] % kw] += 1
    dx = pool_mod.maxpool_backward(np.ones_like(out), argmax, H, W, kh, kw, sh, sw)
    np.testing.assert_array_equal(dx, wins)
    assert dx.sum() == out.size


# --- im2col + GEMM is convolution -------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(geom=conv_geometries(max_n=2, max_c=2, max_hw=5, max_k=3), F=st.integers(1, 3), seed=seeds)
def test_im2col_gemm_equals_direct_convolution(geom, F, seed):
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    Wt = rng.standard_normal((F, C, kh, kw))
    b = rng.standard_normal(F)
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    col = kernels.im2col(x, kh, kw, sh, sw, ph, pw)
    out = (Wt.reshape(F, -1) @ col + b[:, None]).reshape(F, N, OH, OW).transpose(1, 0, 2, 3)
    expected = conv_naive(x, Wt, b, (sh, sw), (ph, pw))
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    # and the Conv2D layer computes the same thing
    layer = tinycnn.Conv2D(C, F, (kh, kw), stride=(sh, sw), padding=(ph, pw), dtype=np.float64)
    layer.params["W"][...] = Wt
    layer.params["b"][...] = b
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-10, atol=1e-10)


def test_dispatch_accepts_non_contiguous_input():
    """kernels.* make their input contiguous before handing it to the compiled code."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5)).transpose(0, 1, 3, 2)  # non-contiguous view
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(kernels.im2col(x, 2, 3, 1, 2, 1, 0),
                                  _im2col_numpy.im2col(np.ascontiguousarray(x), 2, 3, 1, 2, 1, 0))
    out, arg = kernels.maxpool_forward(x, 2, 2, 1, 1)
    ref_out, ref_arg = _pool_numpy.maxpool_forward(np.ascontiguousarray(x), 2, 2, 1, 1)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(arg, ref_arg)


def _dense_compiled():
    if kernels.dense_kernels() != "avx512":
        pytest.skip("tinycnn._dense (AVX-512) is loaded only on an x86-64 CPU with AVX-512F and FMA; "
                    f"here the fully connected GEMMs run as {kernels.dense_kernels()}")
    return importlib.import_module("tinycnn._dense")


@settings(max_examples=80, deadline=None)
@given(M=st.integers(1, 21), K=st.integers(0, 40), N=st.one_of(st.integers(1, 150), st.sampled_from([16, 64, 144])),
       span=st.tuples(st.integers(0, 150), st.integers(0, 150)), offset=st.integers(0, 15), seed=seeds)
def test_dense_kernels_compiled_match_reference(M, K, N, span, offset, seed):
    """tinycnn._dense's forward (outT = W @ xT) and weight_grad (dW = doutT @ x) on rows lo..hi-1,
    and input_grad (dx = dout @ W) on columns lo..hi-1, agree with their NumPy twins and with
    float64 products, for shapes inside and across its blocks (8 and 4 rows, 32 samples, 64
    columns) and C at any alignment (offset floats into a buffer: dW's streaming stores need
    64-byte boundaries); nothing outside the chunk is written."""
    compiled = _dense_compiled()
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((M, K)).astype(np.float32)         # W, doutT, or dout
    B = rng.standard_normal((K, N)).astype(np.float32)         # xT, x, or W
    ref = A.astype(np.float64) @ B.astype(np.float64)
    for name, axis in (("forward", 0), ("weight_grad", 0), ("input_grad", 1)):
        lo, hi = sorted(min(v, (M, N)[axis]) for v in span)
        chunk = np.s_[lo:hi] if axis == 0 else np.s_[:, lo:hi]
        buf = np.full(M * N + 16, 7, np.float32)
        C = buf[offset:offset + M * N].reshape(M, N)
        getattr(compiled, name)(A, B, C, lo, hi)
        np.testing.assert_allclose(C[chunk], ref[chunk], rtol=1e-5, atol=1e-5 * max(1, K))
        assert (np.delete(C, np.s_[lo:hi], axis=axis) == 7).all()
        assert (buf[:offset] == 7).all() and (buf[offset + M * N:] == 7).all()
        reference = np.full((M, N), 7, np.float32)
        getattr(_dense_numpy, name)(A, B, reference, lo, hi)
        np.testing.assert_allclose(C, reference, rtol=1e-5, atol=1e-5 * max(1, K))


def test_dense_wrappers_send_float32_from_dense_min_batch_and_large_gemvs_to_the_compiled_kernels(monkeypatch):
    calls = []

    class Spy:                                                 # records what reaches the compiled module
        def __getattr__(self, name):
            def kernel(*args):
                calls.append((name, args[1].shape))
                return getattr(_dense_numpy, name)(*args)

            def forward_task(*args):                           # the forward, made as a compiled task
                calls.append(("forward", args[1].shape))
                return kernels.Task(_dense_numpy.forward, *args)
            return forward_task if name == "ForwardTask" else kernel

    monkeypatch.setattr(kernels, "_dense_mod", Spy())
    small, big = np.zeros((5, 7), np.float32), np.zeros((kernels.DENSE_GEMV_MIN_WEIGHTS // 512, 512), np.float32)
    for W in (small, big):
        for batch in (1, 2, kernels.DENSE_MIN_BATCH - 1, kernels.DENSE_MIN_BATCH):
            x = np.zeros((batch, W.shape[1]), np.float32)
            kernels.dense_forward(W, x.T.copy(), np.empty((W.shape[0], batch), np.float32), 0, W.shape[0])
            kernels.dense_weight_grad(np.zeros((W.shape[0], batch), np.float32), x, np.empty_like(W), 0, W.shape[0])
            kernels.dense_input_grad(np.zeros((batch, W.shape[0]), np.float32), W, np.empty_like(x), 0, W.shape[1])
    kernels.dense_forward(small.astype(np.float64), np.zeros((7, 32)), np.empty((5, 32)), 0, 5)   # float64: BLAS
    n = kernels.DENSE_MIN_BATCH
    assert calls == [("forward", (7, n)), ("weight_grad", (n, 7)), ("input_grad", (5, 7)),
                     ("forward", (512, 1)),
                     ("forward", (512, n)), ("weight_grad", (n, 512)), ("input_grad", big.shape)]


def test_dense_kernels_compute_and_reject_wrong_arrays():
    """The fully connected GEMMs through kernels' wrappers, on either side of DENSE_MIN_BATCH and
    at batch 1 with a large W, on row (forward, dW) or column (dx) chunks; each wrapper checks
    its arrays."""
    rng = np.random.default_rng(0)
    big = rng.standard_normal((kernels.DENSE_GEMV_MIN_WEIGHTS // 512, 512)).astype(np.float32)
    x1 = rng.standard_normal((512, 1)).astype(np.float32)
    out = kernels.dense_forward(big, x1, np.empty((big.shape[0], 1), np.float32), 0, big.shape[0])
    np.testing.assert_allclose(out, big.astype(np.float64) @ x1, rtol=1e-4, atol=1e-4)
    W = rng.standard_normal((5, 7)).astype(np.float32)
    for batch in (1, kernels.DENSE_MIN_BATCH - 1, kernels.DENSE_MIN_BATCH, 40):
        xT = rng.standard_normal((7, batch)).astype(np.float32)
        out = kernels.dense_forward(W, xT, np.empty((5, batch), np.float32), 0, 5)
        np.testing.assert_allclose(out, W @ xT, rtol=1e-5, atol=1e-5)
        dout_T = rng.standard_normal((5, batch)).astype(np.float32)
        dW = kernels.dense_weight_grad(dout_T, xT.T.copy(), np.empty((5, 7), np.float32), 1, 4)
        np.testing.assert_allclose(dW[1:4], dout_T[1:4] @ xT.T, rtol=1e-5, atol=1e-5)
        dx = kernels.dense_input_grad(dout_T.T.copy(), W, np.empty((batch, 7), np.float32), 2, 6)
        np.testing.assert_allclose(dx[:, 2:6], dout_T.T @ W[:, 2:6], rtol=1e-5, atol=1e-5)
    xT = np.zeros((7, 3), np.float32)
    with pytest.raises(ValueError, match=r"dense_forward: A \(M, K\) and B \(K, N\) must agree in K and dtype, "
                                         r"got float32 \(5, 7\) and float64 \(7, 3\)"):
        kernels.dense_forward(W, xT.astype(np.float64), np.empty((5, 3), np.float32), 0, 5)
    with pytest.raises(ValueError, match=r"dense_forward: B must be a C-contiguous 2-D float array"):
        kernels.dense_forward(W, np.zeros((3, 7), np.float32).T, np.empty((5, 3), np.float32), 0, 5)
    with pytest.raises(ValueError, match=r"dense_weight_grad out must be a C-contiguous float32 array of shape \(5, 3\)"):
        kernels.dense_weight_grad(W, xT, np.empty((5, 4), np.float32), 0, 5)
    with pytest.raises(ValueError, match=r"dense_weight_grad: rows lo..hi-1 must lie in 0..4, got lo=2, hi=6"):
        kernels.dense_weight_grad(W, xT, np.empty((5, 3), np.float32), 2, 6)
    with pytest.raises(ValueError, match=r"dense_input_grad: columns lo..hi-1 must lie in 0..2, got lo=0, hi=4"):
        kernels.dense_input_grad(W, xT, np.empty((5, 3), np.float32), 0, 4)


# --- the Winograd products' GEMM (AVX2 and FMA) ------------------------------------------------

def _gemm_build():
    if not (kernels.cpu_has_avx2() and kernels.cpu_has_fma()):
        pytest.skip("tinycnn._avx2._gemm needs AVX2 and FMA on this CPU")
    return _compiled("_gemm", "tinycnn._avx2")


@settings(max_examples=80, deadline=None)
@given(M=st.integers(1, 20), N=st.integers(1, 70), K=st.integers(1, 40), seed=seeds)
def test_winograd_gemm_compiled_matches_reference(M, N, K, seed):
    """tinycnn._avx2._gemm's matmul and its NumPy twin equal the float64 product (float32, to
    rounding) across its tiles: 6 rows and the 1 to 5 left, panels of 16 columns and the masked
    last one; nothing is written past C."""
    compiled = _gemm_build()
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
    ref = A.astype(np.float64) @ B.astype(np.float64)
    for mod in (compiled, _gemm_numpy):
        C, guard = _guarded((M, N))
        mod.matmul(A, B, C)
        np.testing.assert_allclose(C, ref, rtol=1e-5, atol=1e-6 * K)
        assert (guard == 7).all()


def test_winograd_gemm_handles_empty_operands_and_rejects_mismatches():
    compiled = _gemm_build()
    C = np.full((3, 4), 7, np.float32)
    compiled.matmul(np.empty((3, 0), np.float32), np.empty((0, 4), np.float32), C)
    assert (C == 0).all()
    with pytest.raises(ValueError, match=r"matmul: A \(M, K\), B \(K, N\) and C \(M, N\) must agree, got A \(3, 2\), "
                                         r"B \(5, 4\), C \(3, 4\)"):
        compiled.matmul(np.ones((3, 2), np.float32), np.ones((5, 4), np.float32), C)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 8), f=st.integers(1, 14), h=st.integers(1, 12), w=st.integers(1, 12),
       group=st.integers(1, 3), bias=st.booleans(), tile_major=st.booleans(), seed=seeds)
def test_winograd_kernels_through_their_own_gemm_match_reference(n, c, f, h, w, group, bias, tile_major, seed):
    """The AVX2 build's conv_forward and weight_products with their products routed through
    tinycnn._avx2._gemm (set_sgemm, as tinycnn.kernels does on CPUs with AVX2 and FMA but no
    AVX-512; dW takes it with D tile-major) agree with the NumPy twins; set_sgemm(0) routes them
    back to BLAS."""
    gemm, wino = _gemm_build(), _compiled("_winograd", "tinycnn._avx2")
    rng = np.random.default_rng(seed)
    T = kernels.winograd_tile_count(h, w)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    dout = rng.standard_normal((n, f, h, w)).astype(np.float32)
    U = kernels.winograd_weights(rng.standard_normal((f, c, 3, 3)), np.float32)
    b = rng.standard_normal(f).astype(np.float32) if bias else None

    def run(mod):
        out, acc = np.empty((n, f, h, w), np.float32), np.ones((16, f, c), np.float32)
        V, M = np.empty((16, c, group * T), np.float32), np.empty((16, f, group * T), np.float32)
        D = np.empty((16, group * T, f) if tile_major else (16, f, group * T), np.float32)
        mod.conv_forward(x, U, b, out, V, M, 0, n)
        mod.weight_products(x, dout, acc, V, D, 0, n, tile_major)
        return out, acc

    ref_out, ref_acc = run(_winograd_numpy)
    previous = wino.sgemm_address()
    try:
        for address in (gemm.address(), 0):
            wino.set_sgemm(address)
            assert wino.sgemm_address() == address
            out, acc = run(wino)
            np.testing.assert_allclose(out, ref_out, rtol=1e-5,
                                       atol=1e-5 * np.sqrt(9 * c) * max(1, np.abs(ref_out).max()))
            np.testing.assert_allclose(acc, ref_acc, rtol=1e-5,
                                       atol=1e-5 * np.sqrt(n * T) * max(1, np.abs(ref_acc).max()))
    finally:
        wino.set_sgemm(previous)


# --- direct 3x3 convolution ------------------------------------------------------------------

def _direct_builds():
    """The compiled builds of the direct convolution this CPU can run (both on an AVX-512 one)."""
    builds = []
    if kernels.cpu_has_avx512():
        builds.append("tinycnn._direct")
    if kernels.cpu_has_avx2() and kernels.cpu_has_fma():
        builds.append("tinycnn._avx2._direct")
    return [b for b in builds if importlib.util.find_spec(b) is not None]


def _direct_build(name):
    if name not in _direct_builds():
        pytest.skip(f"{name} needs {'AVX-512F' if name == 'tinycnn._direct' else 'AVX2'} and FMA on this CPU, "
                    "and to be built")
    return importlib.import_module(name)


def _direct_case(N, C, F, H, W, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, C, H, W)).astype(dtype), rng.standard_normal((F, C, 3, 3)).astype(dtype),
            rng.standard_normal(F).astype(dtype), rng.standard_normal((N, F, H, W)).astype(dtype))


@settings(max_examples=30, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 3), F=st.integers(1, 4), H=st.integers(1, 6), W=st.integers(1, 6),
       seed=seeds)
def test_direct_reference_is_the_convolution_and_its_gradients(N, C, F, H, W, seed):
    """_direct_numpy against the nested-loop convolution (float64): the forward, dx as its
    adjoint (<conv(x), dout> = <x, dx>) and dW, db by their definitions."""
    x, Wt, b, dout = _direct_case(N, C, F, H, W, seed, np.float64)
    out = np.empty((N, F, H, W))
    _direct_numpy.conv_forward(x, Wt, b, out, 0, N)
    np.testing.assert_allclose(out, conv_naive(x, Wt, b, (1, 1), (1, 1)), rtol=1e-12, atol=1e-12)
    dx = np.empty_like(x)
    _direct_numpy.conv_input_grad(dout, Wt, dx, 0, N)
    conv = conv_naive(x, Wt, np.zeros(F), (1, 1), (1, 1))
    np.testing.assert_allclose(np.vdot(conv, dout), np.vdot(x, dx), rtol=1e-10)
    dW, db = np.empty_like(Wt), np.empty(F)
    _direct_numpy.conv_weight_grad(x, dout, dW, db, 0, N)
    for f, c, i, j in [(F - 1, 0, 0, 2), (0, C - 1, 1, 1), (F // 2, C // 2, 2, 0)]:
        e = np.zeros_like(Wt)
        e[f, c, i, j] = 1                                   # dW[f, c, i, j] = <conv(x, e), dout>
        np.testing.assert_allclose(dW[f, c, i, j], np.vdot(conv_naive(x, e, np.zeros(F), (1, 1), (1, 1)), dout),
                                   rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, dout.sum(axis=(0, 2, 3)), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 4), C=st.integers(1, 10), F=st.one_of(st.integers(1, 20), st.sampled_from([8, 16, 32])),
       H=st.integers(1, 9), W=st.one_of(st.integers(1, 40), st.sampled_from([16, 28, 32])),
       span=st.tuples(st.integers(0, 4), st.integers(0, 4)), seed=seeds)
@pytest.mark.parametrize("build", ["tinycnn._direct", "tinycnn._avx2._direct"])
def test_direct_kernels_compiled_match_reference(build, N, C, F, H, W, span, seed):
    """Each build's forward, weight_grad and input_grad equal their NumPy twins (float32, to
    rounding) on images lo..hi-1, across its blocks (16 and 8 output channels with AVX-512, 8 and 4
    with AVX2; the few left over as 4-row tiles; vectors of 16 or 8 pixels, a row's last one
    overlapping the one before, rows narrower than a vector through a buffer), and write nothing
    outside those images, nor past the output's end."""
    compiled = _direct_build(build)
    x, Wt, b, dout = _direct_case(N, C, F, H, W, seed)
    lo, hi = sorted(min(v, N) for v in span)
    tol = 1e-5 * np.sqrt(9 * max(C, F))
    for name, args, shape in (("conv_forward", (x, Wt, b), (N, F, H, W)),
                              ("conv_input_grad", (dout, Wt), (N, C, H, W))):
        (got, guard), ref = _guarded(shape), np.full(shape, 7, np.float32)
        getattr(compiled, name)(*args, got, lo, hi)
        getattr(_direct_numpy, name)(*args, ref, lo, hi)
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * max(1, np.abs(ref).max()))
        assert (got[:lo] == 7).all() and (got[hi:] == 7).all() and (guard == 7).all()
    got, ref = (np.full(Wt.shape, 7, np.float32), np.full(F, 7, np.float32)), (np.empty_like(Wt), np.empty_like(b))
    compiled.conv_weight_grad(x, dout, *got, lo, hi)
    _direct_numpy.conv_weight_grad(x, dout, *ref, lo, hi)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * max(1, np.abs(r).max(initial=0)) * np.sqrt(H * W * N))


def test_direct_kernels_reject_arrays_that_do_not_fit():
    x, Wt, b, dout = _direct_case(2, 3, 4, 5, 6, 0)
    out = np.empty((2, 4, 5, 6), np.float32)
    with pytest.raises(ValueError, match=r"direct_conv_forward: W must be \(F, C, 3, 3\), got \(4, 3, 2, 2\)"):
        kernels.direct_conv_forward(x, Wt[:, :, :2, :2].copy(), b, out, 0, 2)
    with pytest.raises(ValueError, match=r"direct_conv_forward: W \(4, 2, 3, 3\) does not fit x"):
        kernels.direct_conv_forward(x, Wt[:, :2].copy(), b, out, 0, 2)
    with pytest.raises(ValueError, match="direct_conv_forward out must be a C-contiguous float32 array of shape"):
        kernels.direct_conv_forward(x, Wt, b, np.empty((2, 4, 6, 5), np.float32), 0, 2)
    with pytest.raises(ValueError, match="images lo..hi-1 must lie in 0..1, got lo=1, hi=3"):
        kernels.direct_conv_forward(x, Wt, b, out, 1, 3)
    with pytest.raises(ValueError, match=r"direct_conv_weight_grad: dW \(4, 2, 3, 3\) does not fit x .* \(C = 3\)"):
        kernels.direct_conv_weight_grad(x, dout, np.empty((4, 2, 3, 3), np.float32), np.empty(4, np.float32), 0, 2)
    with pytest.raises(ValueError, match="direct_conv_weight_grad db must be"):
        kernels.direct_conv_weight_grad(x, dout, np.empty_like(Wt), np.empty(3, np.float32), 0, 2)
    with pytest.raises(ValueError, match=r"direct_conv_input_grad: W \(4, 3, 3, 3\) does not fit dout"):
        kernels.direct_conv_input_grad(dout[:, :3].copy(), Wt, np.empty_like(x), 0, 2)
    with pytest.raises(ValueError, match="direct_conv_input_grad W must be a C-contiguous float32"):
        kernels.direct_conv_input_grad(dout, Wt.astype(np.float64), np.empty_like(x), 0, 2)
