"""Chooses the compiled (Cython) or reference (NumPy) kernels, once, at import.

``TINYCNN_KERNELS`` selects them:
    unset / "auto"  compiled if the extension was built, else NumPy with a warning
    "cython"        compiled, or ImportError (CI uses this: no silent fallback)
    "numpy"         the NumPy reference

Both sets share one signature per kernel; see ``_im2col_numpy`` / ``_pool_numpy``.
"""
import os
import warnings

import numpy as np

from . import _im2col_numpy, _pool_numpy

_CHOICES = ("auto", "cython", "numpy")


def _select(choice):
    if choice not in _CHOICES:
        raise ValueError(f"TINYCNN_KERNELS must be one of {_CHOICES}, got {choice!r}")
    if choice == "numpy":
        return "numpy", _im2col_numpy, _pool_numpy
    try:
        from . import _im2col, _pool
    except ImportError as exc:
        if choice == "cython":
            raise ImportError(
                "TINYCNN_KERNELS=cython but the compiled kernels are missing "
                f"({exc}); build them with `pip install -e .`") from exc
        warnings.warn("tinycnn: compiled kernels not built, using the NumPy reference "
                      "(slower); build them with `pip install -e .`", RuntimeWarning, stacklevel=3)
        return "numpy", _im2col_numpy, _pool_numpy
    return "cython", _im2col, _pool


_BACKEND, _im2col_mod, _pool_mod = _select(os.environ.get("TINYCNN_KERNELS", "auto").lower())


def backend():
    """Name of the active kernel set: "cython" or "numpy"."""
    return _BACKEND


def im2col(x, kh, kw, sh, sw, ph, pw):
    """x: (N, C, H, W) float -> col: (C*kh*kw, N*OH*OW)."""
    return _im2col_mod.im2col(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw)


def col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw):
    """col: (C*kh*kw, N*OH*OW) -> dx: (N, C, H, W)."""
    return _im2col_mod.col2im(np.ascontiguousarray(col), N, C, H, W, kh, kw, sh, sw, ph, pw)


def maxpool_forward(x, kh, kw, sh, sw):
    """x: (N, C, H, W) -> (out: (N, C, OH, OW), argmax: (N, C, OH, OW) int32)."""
    return _pool_mod.maxpool_forward(np.ascontiguousarray(x), kh, kw, sh, sw)


def maxpool_backward(dout, argmax, H, W, kh, kw, sh, sw):
    """dout, argmax: (N, C, OH, OW) -> dx: (N, C, H, W)."""
    return _pool_mod.maxpool_backward(np.ascontiguousarray(dout), argmax, H, W, kh, kw, sh, sw)
