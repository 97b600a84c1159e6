"""Shared hypothesis strategies and helpers for the engine tests.

The test modules import these with ``from conftest import ...`` (pytest's default
"prepend" import mode puts tests/ on sys.path).
"""
from contextlib import contextmanager

import numpy as np

from hypothesis import strategies as st

# Every @settings in the engine tests sets deadline=None itself (gradient checks vary a lot
# in time per example); no global hypothesis profile is loaded here, so other test modules
# keep their own settings.

FLOATS = (np.float32, np.float64)


@st.composite
def conv_geometries(draw, max_n=3, max_c=3, max_hw=8, max_k=4, max_s=3, max_p=2):
    """(N, C, H, W, kh, kw, sh, sw, ph, pw) with the kernel fitting the padded input.

    Kernels are non-square, strides and paddings differ between h and w.
    """
    N = draw(st.integers(1, max_n))
    C = draw(st.integers(1, max_c))
    H = draw(st.integers(1, max_hw))
    W = draw(st.integers(1, max_hw))
    ph = draw(st.integers(0, max_p))
    pw = draw(st.integers(0, max_p))
    kh = draw(st.integers(1, min(max_k, H + 2 * ph)))
    kw = draw(st.integers(1, min(max_k, W + 2 * pw)))
    sh = draw(st.integers(1, max_s))
    sw = draw(st.integers(1, max_s))
    return N, C, H, W, kh, kw, sh, sw, ph, pw


@st.composite
def pool_geometries(draw, max_n=3, max_c=3, max_hw=8, max_k=4, max_s=3):
    """(N, C, H, W, kh, kw, sh, sw) with the window fitting the input; strides may be
    smaller than the window (overlapping windows)."""
    N = draw(st.integers(1, max_n))
    C = draw(st.integers(1, max_c))
    H = draw(st.integers(1, max_hw))
    W = draw(st.integers(1, max_hw))
    kh = draw(st.integers(1, min(max_k, H)))
    kw = draw(st.integers(1, min(max_k, W)))
    sh = draw(st.integers(1, max_s))
    sw = draw(st.integers(1, max_s))
    return N, C, H, W, kh, kw, sh, sw


seeds = st.integers(0, 2**32 - 1)
dtypes = st.sampled_from(FLOATS)


def out_size(size, k, stride, pad=0):
    return (size + 2 * pad - k) // stride + 1


def distinct_values(shape, rng, gap=1e-2, dtype=np.float64):
    """An array whose entries are pairwise >= gap apart (a scaled random permutation),
    centred on 0: max pooling has no ties and no kink within a gradcheck's eps."""
    n = int(np.prod(shape))
    values = (rng.permutation(n) - (n - 1) / 2.0) * gap
    return values.reshape(shape).astype(dtype)


def away_from_zero(shape, rng, low=0.1, high=1.0, dtype=np.float64):
    """Random values with low <= |v| <= high and random signs (ReLU without kinks)."""
    mag = rng.uniform(low, high, size=shape)
    sign = rng.choice([-1.0, 1.0], size=shape)
    return (mag * sign).astype(dtype)


def conv_naive(x, W, b, stride, padding):
    """Direct definition of a 2-D convolution (cross-correlation), nested loops."""
    N, C, H, Wd = x.shape
    F, C2, kh, kw = W.shape
    assert C == C2
    (sh, sw), (ph, pw) = stride, padding
    OH, OW = out_size(H, kh, sh, ph), out_size(Wd, kw, sw, pw)
    out = np.zeros((N, F, OH, OW), dtype=np.float64)
    for n in range(N):
        for f in range(F):
            for oh in range(OH):
                for ow in range(OW):
                    acc = float(b[f])
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                h, w = oh * sh + i - ph, ow * sw + j - pw
                                if 0 <= h < H and 0 <= w < Wd:
                                    acc += float(x[n, c, h, w]) * float(W[f, c, i, j])
                    out[n, f, oh, ow] = acc
    return out


@contextmanager
def module_setting(module, name, value):
    """module.name = value inside the block, restored after (hypothesis tests cannot take the
    function-scoped monkeypatch fixture)."""
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)
