"""Chooses the compiled (Cython) or reference (NumPy) kernels, once, at import.

``TINYCNN_KERNELS`` selects them:
    unset / "auto"     compiled if the extension was built, else NumPy with a warning
    "cython"           compiled, or ImportError (CI uses this: no silent fallback)
    "cython-baseline"  compiled, the baseline build even where the AVX2 one would run
    "cython-avx2"      compiled, the AVX2 build without the AVX-512 kernels below (the direct
                       convolution's AVX2 build instead): what a CPU with AVX2 and FMA but no
                       AVX-512 runs (ImportError where AVX2 is missing)
    "numpy"            the NumPy reference

The compiled kernels exist in two builds of the same source on x86-64 (setup.py): the
baseline one (SSE2) and ``tinycnn._avx2``, which is loaded when the CPU has AVX2 (as NumPy
detects it). Both round alike; ``instruction_set()`` says which one runs.

The fully connected layer's float32 GEMMs at batch >= DENSE_MIN_BATCH (and its forward at
batch 1) have compiled kernels of their own, ``tinycnn._dense`` (AVX-512 and FMA), loaded with
the AVX2 build on a CPU that has AVX-512F and FMA; elsewhere (and at other batches) their
NumPy reference runs, one np.matmul each. ``dense_kernels()`` says which. The direct 3x3
convolution of thin layers, ``tinycnn._direct``, is built and loaded the same way, and built a
second time with AVX2 and FMA (``tinycnn._avx2._direct``, 8 lanes instead of 16) for CPUs with
those but no AVX-512 (``direct_kernels()`` says which); its NumPy reference is nine shifted
matrix products. On those CPUs the Winograd kernels also run their float32 products through
``tinycnn._avx2._gemm`` instead of BLAS (``winograd_gemm()``; reference ``_gemm_numpy``).

Both sets share one signature per kernel; see ``_dense_numpy``, ``_direct_numpy``, ``_im2col_numpy``,
``_pool_numpy``, ``_relu_numpy``, ``_sgd_numpy`` and ``_winograd_numpy``.
"""
import importlib
import os
import warnings

import numpy as np

from . import _dense_numpy, _direct_numpy, _im2col_numpy, _pool_numpy, _relu_numpy, _sgd_numpy, _winograd_numpy

_CHOICES = ("auto", "cython", "cython-baseline", "cython-avx2", "numpy")
_NAMES = ("_im2col", "_pool", "_relu", "_sgd", "_winograd")


def _cpu_features():
    """NumPy's table of this CPU's features (those the OS also enabled), or {} if this NumPy
    does not give it (the table is not public API)."""
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):   # NumPy 2, 1
        try:
            return importlib.import_module(module).__cpu_features__
        except (ImportError, AttributeError):
            continue
    return {}


def cpu_has_avx2():
    """True if NumPy found AVX2 on this CPU; False if not or if NumPy does not say, and then the
    baseline build runs."""
    return bool(_cpu_features().get("AVX2", False))


def cpu_has_avx512():
    """True if NumPy found AVX-512F and FMA on this CPU (what tinycnn._dense needs)."""
    features = _cpu_features()
    return bool(features.get("AVX512F", False) and features.get("FMA3", False))


def cpu_has_fma():
    """True if NumPy found FMA on this CPU (what tinycnn._avx2._direct and _gemm need beside AVX2)."""
    return bool(_cpu_features().get("FMA3", False))


def _select(choice):
    """-> (backend, instruction set, the five kernel modules)."""
    if choice not in _CHOICES:
        raise ValueError(f"TINYCNN_KERNELS must be one of {_CHOICES}, got {choice!r}")
    reference = ("numpy", "numpy", _im2col_numpy, _pool_numpy, _relu_numpy, _sgd_numpy, _winograd_numpy)
    if choice == "numpy":
        return reference
    try:
        baseline = [importlib.import_module(f"tinycnn.{name}") for name in _NAMES]
    except ImportError as exc:
        if choice != "auto":
            raise ImportError(
                f"TINYCNN_KERNELS={choice} but the compiled kernels are missing "
                f"({exc}); build them with `pip install -e .`") from exc
        warnings.warn("tinycnn: compiled kernels not built, using the NumPy reference "
                      "(slower); build them with `pip install -e .`", RuntimeWarning, stacklevel=3)
        return reference
    if choice != "cython-baseline" and cpu_has_avx2():
        try:
            return ("cython", "avx2", *[importlib.import_module(f"tinycnn._avx2.{name}") for name in _NAMES])
        except ImportError:  # not built (not x86-64 when installed): the baseline build runs
            if choice == "cython-avx2":
                raise
    if choice == "cython-avx2":
        raise ImportError("TINYCNN_KERNELS=cython-avx2 but NumPy reports no AVX2 on this CPU")
    return ("cython", "baseline", *baseline)


_CHOICE = os.environ.get("TINYCNN_KERNELS", "auto").lower()
_BACKEND, _ISA, _im2col_mod, _pool_mod, _relu_mod, _sgd_mod, _winograd_mod = _select(_CHOICE)


def _select_avx512(name, reference, choice=_CHOICE):
    """The compiled AVX-512 module tinycnn.<name> where it can run (with the AVX2 build, on a CPU
    with AVX-512F and FMA, unless TINYCNN_KERNELS=cython-avx2), else its NumPy reference."""
    if _ISA == "avx2" and choice != "cython-avx2" and cpu_has_avx512():
        try:
            return importlib.import_module(f"tinycnn.{name}")
        except ImportError:  # not built (not x86-64 when installed)
            pass
    return reference


def _select_avx2_fma(name, choice=_CHOICE):
    """tinycnn._avx2.<name>, built with AVX2 and FMA, where the AVX-512 kernels do not run: with
    the AVX2 build, on a CPU with FMA and no AVX-512F (or TINYCNN_KERNELS=cython-avx2); else None.
    The direct convolution's AVX2 build and the Winograd products' GEMM (with AVX-512, OpenBLAS's
    SkylakeX kernel was the faster GEMM: _gemm.pyx)."""
    if _ISA == "avx2" and cpu_has_fma() and (choice == "cython-avx2" or not cpu_has_avx512()):
        try:
            return importlib.import_module(f"tinycnn._avx2.{name}")
        except ImportError:  # not built (not x86-64 when installed)
            pass
    return None


_dense_mod = _select_avx512("_dense", _dense_numpy)
_direct_mod = _select_avx2_fma("_direct") or _select_avx512("_direct", _direct_numpy)
_gemm_mod = _select_avx2_fma("_gemm")
if _gemm_mod is not None:
    _winograd_mod.set_sgemm(_gemm_mod.address())

# Below this batch the fully connected GEMMs go to BLAS (the NumPy reference) even where the
# compiled kernels run: they compute 32 samples per pass, and at batch 16 that already wastes
# half of it (the forward then about matched BLAS: 6272 -> 1024 2.98 vs 3.09 ms). The forward
# at batch 1 has a matrix-vector kernel of its own, for weight matrices from
# DENSE_GEMV_MIN_WEIGHTS entries: it reads W faster than BLAS where W comes from memory
# (batch-1 forward, 1 and 2 threads: CloudCNN 1.05-1.08x, EdgeCNN-3 1.03-1.04x), but with it
# the laptop EdgeCNN-3 (1568 -> 256, in cache) ran 0.93-0.95x (measured).
DENSE_MIN_BATCH = 16
DENSE_GEMV_MIN_WEIGHTS = 1 << 20


def backend():
    """Name of the active kernel set: "cython" or "numpy"."""
    return _BACKEND


def dense_kernels():
    """Which fully connected GEMMs (forward, dW, dx) run at batch >= DENSE_MIN_BATCH in float32:
    "avx512" or "numpy"."""
    return "numpy" if _dense_mod is _dense_numpy else "avx512"


def direct_kernels():
    """Which direct 3x3 convolution kernels run in float32: "avx512", "avx2" or "numpy"."""
    if _direct_mod is _direct_numpy:
        return "numpy"
    return "avx2" if _direct_mod.__name__ == "tinycnn._avx2._direct" else "avx512"


def winograd_gemm():
    """Which GEMM the compiled Winograd kernels run their float32 products with: "avx2"
    (tinycnn._avx2._gemm), "blas", or "numpy" (the NumPy reference runs)."""
    if _BACKEND == "numpy":
        return "numpy"
    return "avx2" if _winograd_mod.sgemm_address() != 0 else "blas"


def instruction_set():
    """Which build of the compiled kernels runs: "avx2", "baseline", or "numpy" (none)."""
    return _ISA


def _check_out(name, arr, shape, dtype):
    """An out= array must be C-contiguous with exactly this shape and dtype (it is written in place)."""
    if arr is not None and (arr.shape != tuple(shape) or arr.dtype != dtype or not arr.flags.c_contiguous):
        raise ValueError(f"{name} must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}, "
                         f"got {arr.dtype} {arr.shape} (contiguous={arr.flags.c_contiguous})")


def _dense_checks(name, A, B, C, lo, hi, axis=0):
    """C (M, N) = A (M, K) @ B (K, N) on C's rows lo..hi-1 (axis 0) or columns (axis 1): shapes,
    one float dtype, C-contiguous."""
    for label, arr in (("A", A), ("B", B)):
        if arr.ndim != 2 or not arr.flags.c_contiguous or arr.dtype not in (np.float32, np.float64):
            raise ValueError(f"{name}: {label} must be a C-contiguous 2-D float array, got {arr.dtype} {arr.shape} "
                             f"(contiguous={arr.flags.c_contiguous})")
    if A.shape[1] != B.shape[0] or A.dtype != B.dtype:
        raise ValueError(f"{name}: A (M, K) and B (K, N) must agree in K and dtype, got {A.dtype} {A.shape} "
                         f"and {B.dtype} {B.shape}")
    _check_out(f"{name} out", C, (A.shape[0], B.shape[1]), A.dtype)
    if not 0 <= lo <= hi <= C.shape[axis]:
        raise ValueError(f"{name}: {('rows', 'columns')[axis]} lo..hi-1 must lie in 0..{C.shape[axis] - 1}, "
                         f"got lo={lo}, hi={hi}")


def dense_forward(W, xT, outT, lo, hi):
    """outT[lo:hi] = W[lo:hi] @ xT: the fully connected layer's forward, transposed, for W's rows
    (output features) lo..hi-1. W: (out, in), xT: (in, N), outT: (out, N), written; one float
    dtype, C-contiguous. Compiled for float32 at N >= DENSE_MIN_BATCH, and at N = 1 (a
    matrix-vector product) for W of DENSE_GEMV_MIN_WEIGHTS or more (dense_kernels())."""
    dense_forward_task(W, xT, outT, lo, hi).run()
    return outT


def dense_forward_task(W, xT, outT, lo, hi):
    """dense_forward's call, checked now and run later by task.run() or by
    tinycnn.parallel.run_tasks (a pool thread starts a compiled one without the GIL)."""
    _dense_checks("dense_forward", W, xT, outT, lo, hi)
    N = xT.shape[1]
    compiled = N >= DENSE_MIN_BATCH or (N == 1 and W.size >= DENSE_GEMV_MIN_WEIGHTS)
    if W.dtype == np.float32 and compiled and _dense_mod is not _dense_numpy:
        return _dense_mod.ForwardTask(W, xT, outT, lo, hi)
    return Task(_dense_numpy.forward, W, xT, outT, lo, hi)


def dense_weight_grad(doutT, x, dW, lo, hi):
    """dW[lo:hi] = doutT[lo:hi] @ x: the fully connected layer's weight gradient, for the output
    features lo..hi-1. doutT: (out, N), x: (N, in), dW: (out, in), written; one float dtype,
    C-contiguous. Compiled for float32 at N >= DENSE_MIN_BATCH (dense_kernels())."""
    _dense_checks("dense_weight_grad", doutT, x, dW, lo, hi)
    mod = _dense_mod if x.dtype == np.float32 and x.shape[0] >= DENSE_MIN_BATCH else _dense_numpy
    mod.weight_grad(doutT, x, dW, lo, hi)
    return dW


def dense_input_grad(dout, W, dx, lo, hi):
    """dx[:, lo:hi] = dout @ W[:, lo:hi]: the fully connected layer's input gradient, for the input
    features lo..hi-1. dout: (N, out), W: (out, in), dx: (N, in), written; one float dtype,
    C-contiguous. Compiled for float32 at N >= DENSE_MIN_BATCH (dense_kernels())."""
    _dense_checks("dense_input_grad", dout, W, dx, lo, hi, axis=1)
    mod = _dense_mod if W.dtype == np.float32 and dout.shape[0] >= DENSE_MIN_BATCH else _dense_numpy
    mod.input_grad(dout, W, dx, lo, hi)
    return dx


def _direct_checks(name, x, W, lo, hi, labels=("W", "x", "C"), axis=1):
    """x: a C-contiguous float (N, C, H, W) array with 0 <= lo <= hi <= N, and W: a C-contiguous
    (F, C', 3, 3) array of its dtype whose axis `axis` has x's channels; -> (F, C').
    labels: the names of W, x and that axis in the messages."""
    _chunk_input(name, x, lo, hi)
    if W.ndim != 4 or W.shape[2:] != (3, 3):
        raise ValueError(f"{name}: {labels[0]} must be (F, C, 3, 3), got {W.shape}")
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name}: expected a float32 or float64 array, got {x.dtype}")
    _check_out(f"{name} {labels[0]}", W, W.shape, x.dtype)
    if W.shape[axis] != x.shape[1]:
        raise ValueError(f"{name}: {labels[0]} {W.shape} does not fit {labels[1]} {x.shape} "
                         f"({labels[2]} = {x.shape[1]})")
    return W.shape[:2]


def direct_conv_forward(x, W, b, out, lo, hi):
    """out[lo:hi] = b + sum over taps (i, j) of W[:, :, i, j] @ xp[:, :, i:i + H, j:j + W]: the 3x3
    convolution (stride 1, padding 1, xp zero-padded) of images lo..hi-1, computed directly.
    x: (N, C, H, W); W: (F, C, 3, 3); b: (F,); out: (N, F, H, W), written. One float dtype,
    C-contiguous. Compiled for float32 (direct_kernels())."""
    F, C = _direct_checks("direct_conv_forward", x, W, lo, hi)
    _check_out("direct_conv_forward b", b, (F,), x.dtype)
    _check_out("direct_conv_forward out", out, (x.shape[0], F, *x.shape[2:]), x.dtype)
    (_direct_mod if x.dtype == np.float32 else _direct_numpy).conv_forward(x, W, b, out, lo, hi)
    return out


def direct_conv_weight_grad(x, dout, dW, db, lo, hi):
    """dW[:, :, i, j] = sum over images lo..hi-1 of dout[n] . xp[n, :, i:i + H, j:j + W], db = the
    sum of their dout: written, not added to. x: (N, C, H, W); dout: (N, F, H, W); dW: (F, C, 3, 3);
    db: (F,). One float dtype, C-contiguous. Compiled for float32 (direct_kernels())."""
    F, C = _direct_checks("direct_conv_weight_grad", x, dW, lo, hi, labels=("dW", "x", "C"))
    _check_out("direct_conv_weight_grad dout", dout, (x.shape[0], F, *x.shape[2:]), x.dtype)
    _check_out("direct_conv_weight_grad db", db, (F,), x.dtype)
    (_direct_mod if x.dtype == np.float32 else _direct_numpy).conv_weight_grad(x, dout, dW, db, lo, hi)
    return dW, db


def direct_conv_input_grad(dout, W, dx, lo, hi):
    """dx[lo:hi] = the 3x3 convolution of dout[lo:hi] with W flipped and its channel axes swapped:
    sum over taps (i, j) of W[:, :, i, j].T @ doutp[:, :, 2 - i:2 - i + H, 2 - j:2 - j + W].
    dout: (N, F, H, W); W: (F, C, 3, 3); dx: (N, C, H, W), written. One float dtype,
    C-contiguous. Compiled for float32 (direct_kernels())."""
    F, C = _direct_checks("direct_conv_input_grad", dout, W, lo, hi, labels=("W", "dout", "F"), axis=0)
    _check_out("direct_conv_input_grad dx", dx, (dout.shape[0], C, *dout.shape[2:]), dout.dtype)
    (_direct_mod if dout.dtype == np.float32 else _direct_numpy).conv_input_grad(dout, W, dx, lo, hi)
    return dx


def im2col(x, kh, kw, sh, sw, ph, pw, out=None):
    """x: (N, C, H, W) float -> col: (C*kh*kw, N*OH*OW), written into out if given.

    out must then be C-contiguous with exactly that shape and x's dtype.
    """
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    _check_out("im2col out", out, (C * kh * kw, N * ((H + 2 * ph - kh) // sh + 1) * ((W + 2 * pw - kw) // sw + 1)),
               x.dtype)
    return _im2col_mod.im2col(x, kh, kw, sh, sw, ph, pw, out)


def col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw, out=None):
    """col: (C*kh*kw, N*OH*OW) -> dx: (N, C, H, W), written into out if given.

    out must then be C-contiguous with exactly that shape and col's dtype.
    """
    col = np.ascontiguousarray(col)
    _check_out("col2im out", out, (N, C, H, W), col.dtype)
    return _im2col_mod.col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw, out)


def _chunk_input(name, x, lo, hi):
    """The checks of every per-chunk convolution kernel on x and lo..hi; -> x.shape."""
    if x.ndim != 4 or not x.flags.c_contiguous:
        raise ValueError(f"{name}: x must be a C-contiguous (N, C, H, W) array, got shape {x.shape}")
    if not 0 <= lo <= hi <= x.shape[0]:
        raise ValueError(f"{name}: images lo..hi-1 must lie in 0..{x.shape[0] - 1}, got lo={lo}, hi={hi}")
    return x.shape


def _conv_chunk_checks(name, x, Wb, images, col, lo, hi, kh, kw, sh, sw, ph, pw):
    """The shapes both im2col convolution kernels need; -> P = OH*OW."""
    N, C, H, W = _chunk_input(name, x, lo, hi)
    P = ((H + 2 * ph - kh) // sh + 1) * ((W + 2 * pw - kw) // sw + 1)
    K1 = C * kh * kw + 1
    if Wb.ndim != 2 or Wb.shape[1] != K1:
        raise ValueError(f"{name}: Wb must be (F, {K1}) = [W b] for x {x.shape} and a {kh}x{kw} kernel, "
                         f"got {Wb.shape}")
    F = Wb.shape[0]
    _check_out(f"{name} Wb", Wb, (F, K1), x.dtype)
    _check_out(f"{name} {images[0]}", images[1], (N, F, P), x.dtype)
    if col.ndim != 2 or col.shape[0] != K1 or P == 0 or col.shape[1] < P or col.shape[1] % P:
        raise ValueError(f"{name}: col must be ({K1}, m*{P}) scratch for m >= 1 images, got {col.shape}")
    _check_out(f"{name} col", col, col.shape, x.dtype)
    if max(K1, F) * col.shape[1] >= 2 ** 31:
        raise ValueError(f"{name}: col {col.shape} is too large for 32-bit BLAS dimensions")
    return P


def im2col_conv_forward(x, Wb, out, col, lo, hi, kh, kw, sh, sw, ph, pw):
    """out[n] = [W b] @ [im2col(x[n]); 1] for the images n in lo..hi-1, in one call.

    x: (N, C, H, W); Wb: (F, C*kh*kw + 1) = [W.reshape(F, -1) b]; out: (N, F, OH*OW), written;
    col: (C*kh*kw + 1, m*OH*OW) scratch, m >= 1 images per im2col call. All C-contiguous, x's dtype.
    """
    _conv_chunk_checks("im2col_conv_forward", x, Wb, ("out", out), col, lo, hi, kh, kw, sh, sw, ph, pw)
    _im2col_mod.conv_forward(x, Wb, out, col, lo, hi, kh, kw, sh, sw, ph, pw)
    return out


def im2col_conv_backward(x, Wb, dout, dWbT, dx, col, lo, hi, kh, kw, sh, sw, ph, pw):
    """For the images n in lo..hi-1, in one call: dWbT += [im2col(x[n]); 1] @ dout[n].T unless
    dWbT is None, dx[n] = col2im(W.T @ dout[n]) unless dx is None (W = Wb[:, :-1]).

    x: (N, C, H, W); Wb: (F, C*kh*kw + 1); dout: (N, F, OH*OW); dWbT: (C*kh*kw + 1, F) = [dW.T; db];
    dx: (N, C, H, W); col: (C*kh*kw + 1, m*OH*OW) scratch. All C-contiguous, x's dtype.
    """
    _conv_chunk_checks("im2col_conv_backward", x, Wb, ("dout", dout), col, lo, hi, kh, kw, sh, sw, ph, pw)
    unused2, unused4 = np.empty((1, 1), x.dtype), np.empty((1, 1, 1, 1), x.dtype)
    if dWbT is not None:
        _check_out("im2col_conv_backward dWbT", dWbT, (Wb.shape[1], Wb.shape[0]), x.dtype)
    if dx is not None:
        _check_out("im2col_conv_backward dx", dx, x.shape, x.dtype)
    _im2col_mod.conv_backward(x, Wb, dout, unused2 if dWbT is None else dWbT, unused4 if dx is None else dx,
                              col, lo, hi, kh, kw, sh, sw, ph, pw, dWbT is not None, dx is not None)


def maxpool_forward(x, kh, kw, sh, sw, out=None, argmax=None):
    """x: (N, C, H, W) -> (out: (N, C, OH, OW), argmax: (N, C, OH, OW) int32), written into
    out and argmax if given."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    shape = (N, C, (H - kh) // sh + 1, (W - kw) // sw + 1)
    _check_out("maxpool_forward out", out, shape, x.dtype)
    _check_out("maxpool_forward argmax", argmax, shape, np.int32)
    return _pool_mod.maxpool_forward(x, kh, kw, sh, sw, out, argmax)


def maxpool_backward(dout, argmax, H, W, kh, kw, sh, sw, out=None):
    """dout, argmax: (N, C, OH, OW) -> dx: (N, C, H, W), written into out if given."""
    dout = np.ascontiguousarray(dout)
    _check_out("maxpool_backward out", out, dout.shape[:2] + (H, W), dout.dtype)
    return _pool_mod.maxpool_backward(dout, argmax, H, W, kh, kw, sh, sw, out)


def relu_forward(x, out):
    """out = max(x, 0) elementwise (NaN stays NaN). x: any shape, C-contiguous; out: same shape and dtype."""
    _check_out("relu_forward out", out, x.shape, x.dtype)
    _relu_mod.relu_forward(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


def relu_backward(dout, out, dx):
    """dx = dout where out > 0, else 0; out: the forward's output. All the same shape and dtype."""
    _check_out("relu_backward dx", dx, out.shape, out.dtype)
    dout = np.ascontiguousarray(dout, dtype=out.dtype)
    if dout.shape != out.shape:
        raise ValueError(f"relu_backward: dout has shape {dout.shape}, the forward's output {out.shape}")
    _relu_mod.relu_backward(dout.reshape(-1), np.ascontiguousarray(out).reshape(-1), dx.reshape(-1))
    return dx


def sgd_momentum_update(p, g, v, lr, momentum, weight_decay):
    """In place: v = momentum*v + (g + weight_decay*p); p -= lr*v. p, g, v: same shape and dtype."""
    if not (p.flags.c_contiguous and v.flags.c_contiguous):
        raise ValueError("sgd_momentum_update needs C-contiguous p and v (updated in place)")
    g = np.ascontiguousarray(g, dtype=p.dtype)
    _sgd_mod.sgd_momentum_update(p.reshape(-1), g.reshape(-1), v.reshape(-1),
                                 lr, momentum, weight_decay)


WINOGRAD_G = _winograd_numpy.G      # (4, 3) float64: U = G g G^T
WINOGRAD_A3T = _winograd_numpy.A3T  # (3, 4) float64: dW = A3^T m A3


def winograd_tile_count(H, W):
    """2x2 output tiles of an H x W image: ceil(H/2) * ceil(W/2)."""
    return ((H + 1) // 2) * ((W + 1) // 2)


def _tile_rows(name, tile_rows, H, W):
    """(ty0, ty1, tiles per image) for tile_rows = (ty0, ty1), rows of 2x2 output tiles with
    0 <= ty0 < ty1 <= ceil(H/2); None is all of them."""
    th, tw = (H + 1) // 2, (W + 1) // 2
    if tile_rows is None:
        return 0, th, th * tw
    ty0, ty1 = tile_rows
    if not (isinstance(ty0, (int, np.integer)) and isinstance(ty1, (int, np.integer)) and 0 <= ty0 < ty1 <= th):
        raise ValueError(f"{name}: tile_rows must be (ty0, ty1) with 0 <= ty0 < ty1 <= {th} "
                         f"(rows of 2x2 tiles of {H} x {W}), got {tile_rows!r}")
    return int(ty0), int(ty1), (int(ty1) - int(ty0)) * tw


def winograd_input(x, V, tile_rows=None):
    """x: (N, C, H, W) -> V: (16, C, N*th*tw) = B^T d B of each 4x4 tile (stride 2) of each image
    zero-padded by 1, th = ceil(H/2), image n's tiles from column n*th*tw; written into V
    (C-contiguous, x's dtype). With tile_rows = (ty0, ty1) only the tiles of rows ty0..ty1-1
    (th = ty1 - ty0)."""
    N, C, H, W = x.shape
    ty0, ty1, T = _tile_rows("winograd_input", tile_rows, H, W)
    _check_out("winograd_input V", V, (16, C, N * T), x.dtype)
    _winograd_mod.winograd_input(np.ascontiguousarray(x), V, (ty0, ty1))
    return V


def winograd_output(M, out, bias=None, tile_rows=None):
    """M: (16, F, N*th*tw) -> out: (N, F, H, W) = A^T m A of each tile (+ bias (F,)), th = ceil(H/2),
    image n's tiles from column n*th*tw. With tile_rows = (ty0, ty1), M holds the tiles of rows
    ty0..ty1-1 (th = ty1 - ty0) and only out's rows 2ty0 .. 2ty1 - 1 are written."""
    N, F, H, W = out.shape
    _check_out("winograd_output out", out, out.shape, M.dtype)
    ty0, ty1, T = _tile_rows("winograd_output", tile_rows, H, W)
    expected = (16, F, N * T)
    if M.shape != expected:
        raise ValueError(f"winograd_output: M has shape {M.shape}, expected {expected} for out {out.shape}"
                         + (f" and tile rows {ty0}..{ty1 - 1}" if tile_rows is not None else ""))
    _winograd_mod.winograd_output(np.ascontiguousarray(M), out, bias, (ty0, ty1))
    return out


def winograd_dout(dout, D, tile_major=False):
    """dout: (N, F, H, W), output gradients -> D: (16, F, N*th*tw) = G2 g G2^T of each 2x2 tile
    (the weight gradient's transform, _winograd_numpy), image n's tiles from column n*th*tw; or
    tile-major, (16, N*th*tw, F) with image n's tiles from row n*th*tw. Written into D."""
    N, F, H, W = dout.shape
    tiles = N * winograd_tile_count(H, W)
    _check_out("winograd_dout D", D, (16, tiles, F) if tile_major else (16, F, tiles), dout.dtype)
    _winograd_mod.winograd_dout(np.ascontiguousarray(dout), D, tile_major)
    return D


def _winograd_chunk_checks(name, x, maps, buffers, T=None):
    """The shapes both Winograd convolution kernels need, after _chunk_input. maps: (name, array,
    channels) of the (N, channels, H, W) array beside x; buffers: (name, array, channels,
    tile_major) of the (16, channels, m*T) scratch, or (16, m*T, channels) if tile_major, T the
    tiles per image (default: all of them). Every buffer must hold the same m*T tiles."""
    N, C, H, W = x.shape
    _check_out(f"{name} {maps[0]}", maps[1], (N, maps[2], H, W), x.dtype)
    T = winograd_tile_count(H, W) if T is None else T
    held = set()
    for label, buf, rows, tile_major in buffers:
        shape = f"(16, m*{T}, {rows})" if tile_major else f"(16, {rows}, m*{T})"
        tiles = buf.shape[1 if tile_major else 2] if buf.ndim == 3 else 0
        if (buf.ndim != 3 or buf.shape[0] != 16 or buf.shape[2 if tile_major else 1] != rows
                or T == 0 or tiles < T or tiles % T):
            raise ValueError(f"{name}: {label}{' (tile-major)' if tile_major else ''} must be {shape} scratch "
                             f"for m >= 1 images, got {buf.shape}")
        _check_out(f"{name} {label}", buf, buf.shape, x.dtype)
        if rows * tiles >= 2 ** 31:
            raise ValueError(f"{name}: {label} {buf.shape} is too large for 32-bit BLAS dimensions")
        held.add(tiles)
    if len(held) > 1:
        raise ValueError(f"{name}: " + " and ".join(b[0] for b in buffers) + " must hold as many tiles, got "
                         + " and ".join(str(b[1].shape) for b in buffers))


class Task:
    """A kernel call kept to run later (the NumPy reference's form of a compiled task): run()
    runs it; check() has nothing to report, since run() raises."""
    address = None                                   # not a compiled task: a pool thread runs it as Python

    def __init__(self, kernel, *args):
        self.kernel, self.args = kernel, args

    def run(self):
        self.kernel(*self.args)

    def check(self):
        pass


def winograd_conv_task(x, U, bias, out, V, M, lo, hi, tile_rows=None):
    """winograd_conv_forward's call, checked now and run later by task.run() or by
    tinycnn.parallel.run_tasks (a pool thread starts a compiled one without the GIL)."""
    C = _chunk_input("winograd_conv_forward", x, lo, hi)[1]
    if (U.ndim != 3 or U.shape[0] != 16 or U.shape[2] != C or U.dtype != x.dtype
            or (C > 1 and U.strides[2] != x.itemsize) or (U.shape[1] > 1 and U.strides[1] != C * x.itemsize)):
        raise ValueError(f"winograd_conv_forward: U must be (16, F, {C}) {x.dtype} with C-contiguous "
                         f"(F, C) planes, got {U.dtype} {U.shape}")
    F = U.shape[1]
    if bias is not None:
        _check_out("winograd_conv_forward bias", bias, (F,), x.dtype)
    ty0, ty1, T = _tile_rows("winograd_conv_forward", tile_rows, *x.shape[2:])
    _winograd_chunk_checks("winograd_conv_forward", x, ("out", out, F), (("V", V, C, False), ("M", M, F, False)), T)
    if _BACKEND == "numpy":
        return Task(_winograd_mod.conv_forward, x, U, bias, out, V, M, lo, hi, (ty0, ty1))
    return _winograd_mod.ConvForwardTask(x, U, bias, out, V, M, lo, hi, (ty0, ty1))


def winograd_conv_forward(x, U, bias, out, V, M, lo, hi, tile_rows=None):
    """out[n] = conv(x[n], W) (+ bias) for the images n in lo..hi-1 (3x3, stride 1, padding 1),
    in one call: V = B^T d B of m images' tiles, M = U @ V (16 GEMMs), out = A^T m A.

    x: (N, C, H, W); U: (16, F, C) from winograd_weights(W); bias: (F,) or None; out: (N, F, H, W),
    written; V: (16, C, m*T) and M: (16, F, m*T) scratch, T = winograd_tile_count(H, W). x's dtype.
    With tile_rows = (ty0, ty1) only the rows ty0..ty1-1 of 2x2 output tiles (out's rows 2ty0 ..
    2ty1 - 1) are computed, and T = (ty1 - ty0)*ceil(W/2): threads can split one image this way.
    """
    winograd_conv_task(x, U, bias, out, V, M, lo, hi, tile_rows).run()
    return out


def winograd_weight_products(x, dout, acc, V, D, lo, hi, tile_major=False):
    """acc_k += D_k @ V_k.T (k < 16) over the images n in lo..hi-1, in one call: D = G2 g G2^T
    of dout[n]'s 2x2 tiles, V = B^T d B of x[n]'s 4x4 tiles; winograd_weight_grad(acc) is then dW.

    x: (N, C, H, W); dout: (N, F, H, W); acc: (16, F, C), added to; V: (16, C, m*T) and
    D: (16, F, m*T) scratch, or (16, m*T, F) if tile_major (each GEMM then reads D_k
    transposed). x's dtype, C-contiguous.
    """
    C = _chunk_input("winograd_weight_products", x, lo, hi)[1]
    if dout.ndim != 4:
        raise ValueError(f"winograd_weight_products: dout must be (N, F, H, W), got shape {dout.shape}")
    F = dout.shape[1]
    _winograd_chunk_checks("winograd_weight_products", x, ("dout", dout, F),
                           (("V", V, C, False), ("D", D, F, tile_major)))
    _check_out("winograd_weight_products acc", acc, (16, F, C), x.dtype)
    _winograd_mod.weight_products(x, dout, acc, V, D, lo, hi, tile_major)
    return acc


def _planes(shape, dtype):
    """An empty (16, F, C) array whose 16 planes do not sit a power of two bytes apart (each
    plane contiguous, 64 bytes of gap after it). The weight transforms touch all 16 planes for
    every (f, c); 64 KiB apart, as at 128 x 128 channels, those accesses share cache sets and
    G W G^T took 568 us instead of 99 (measured)."""
    n = shape[1] * shape[2]
    return np.empty((shape[0], n + 16), dtype=dtype)[:, :n].reshape(shape)


def winograd_weights(W, dtype):
    """W: (F, C, 3, 3) -> U: (16, F, C) of dtype, U[4i + j] = (G g G^T)[i, j] of every 3x3 kernel g."""
    W = np.ascontiguousarray(W, dtype=dtype)
    U = _planes((16,) + W.shape[:2], dtype)
    _winograd_mod.winograd_weights(W, U)
    return U


def winograd_weight_grad(M, dtype):
    """M: (16, F, C), the summed products of the weight gradient's transforms -> dW: (F, C, 3, 3)
    of dtype, A3^T m A3 per (f, c)."""
    planes = _planes(M.shape, dtype)
    planes[...] = M
    dW = np.empty(M.shape[1:] + (3, 3), dtype=dtype)
    _winograd_mod.winograd_weight_grad(planes, dW)
    return dW
