# Compiled im2col / col2im. Reference: _im2col_numpy.py (same signatures, same layout).
# Directives (boundscheck, wraparound, cdivision, ...) are set for all kernels in setup.py.
#
# col[(c*kh + i)*kw + j, (n*OH + oh)*OW + ow] = x_pad[n, c, oh*sh + i, ow*sw + j]
#
# For each row (c, i, j) and each output row (n, oh), the output columns ow whose
# input column w = ow*sw + j - pw falls inside [0, W) form one contiguous range
# [ow_lo, ow_hi); everything outside it reads padding (zero). Computing that range
# once keeps the innermost loop free of bounds tests.
import numpy as np
cimport numpy as cnp
from cython cimport floating
from libc.string cimport memcpy, memset

cnp.import_array()


cdef inline Py_ssize_t _first_inside(Py_ssize_t j, Py_ssize_t sw, Py_ssize_t pw) noexcept nogil:
    """Smallest ow >= 0 with ow*sw + j - pw >= 0."""
    if j >= pw:
        return 0
    return (pw - j + sw - 1) // sw


cdef inline Py_ssize_t _end_inside(Py_ssize_t j, Py_ssize_t sw, Py_ssize_t pw,
                                   Py_ssize_t W, Py_ssize_t OW) noexcept nogil:
    """One past the largest ow < OW with ow*sw + j - pw <= W - 1 (0 if none)."""
    cdef Py_ssize_t last = W - 1 + pw - j
    if last < 0:
        return 0
    return min(last // sw + 1, OW)


cdef inline void _add_run(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    """dst[k] += src[k] for k < n."""
    cdef Py_ssize_t k
    for k in range(n):
        dst[k] += src[k]


def im2col(const floating[:, :, :, ::1] x, Py_ssize_t kh, Py_ssize_t kw,
           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, out=None):
    """x: (N, C, H, W) float32/float64, C-contiguous -> col: (C*kh*kw, N*OH*OW).

    out: optional C-contiguous array of that shape and x's dtype to write into.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1
    cdef Py_ssize_t OW = (W + 2 * pw - kw) // sw + 1
    dtype = np.float32 if floating is float else np.float64
    col_arr = np.empty((C * kh * kw, N * OH * OW), dtype=dtype) if out is None else out
    cdef floating[:, ::1] col = col_arr
    cdef Py_ssize_t c, i, j, n, oh, ow, h, row, base, ow_lo, ow_hi, w0
    with nogil:
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    # 0 <= ow_lo <= ow_hi <= OW: a kernel overhanging the whole row can
                    # give _first_inside > OW, which must not index past the row
                    ow_lo = min(_first_inside(j, sw, pw), OW)
                    ow_hi = max(_end_inside(j, sw, pw, W, OW), ow_lo)
                    w0 = j - pw
                    for n in range(N):
                        for oh in range(OH):
                            base = (n * OH + oh) * OW
                            h = oh * sh + i - ph
                            if h < 0 or h >= H:
                                memset(&col[row, base], 0, OW * sizeof(floating))
                                continue
                            for ow in range(ow_lo):
                                col[row, base + ow] = 0
                            if sw == 1 and ow_hi > ow_lo:
                                # stride 1: the inside range is one contiguous run of x's row
                                memcpy(&col[row, base + ow_lo], &x[n, c, h, ow_lo + w0],
                                       (ow_hi - ow_lo) * sizeof(floating))
                            else:
                                for ow in range(ow_lo, ow_hi):
                                    col[row, base + ow] = x[n, c, h, ow * sw + w0]
                            for ow in range(ow_hi, OW):
                                col[row, base + ow] = 0
    return col_arr


def col2im(const floating[:, ::1] col, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
           out=None):
    """col: (C*kh*kw, N*OH*OW) -> dx: (N, C, H, W); sums overlaps, drops padding.

    out: optional C-contiguous (N, C, H, W) array of col's dtype to write into.
    """
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1
    cdef Py_ssize_t OW = (W + 2 * pw - kw) // sw + 1
    dtype = np.float32 if floating is float else np.float64
    if out is None:
        dx_arr = np.zeros((N, C, H, W), dtype=dtype)
    else:
        dx_arr = out
        dx_arr.fill(0)
    cdef floating[:, :, :, ::1] dx = dx_arr
    cdef Py_ssize_t c, i, j, n, oh, ow, h, row, base, ow_lo, ow_hi, w0
    with nogil:
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    ow_lo = min(_first_inside(j, sw, pw), OW)
                    ow_hi = max(_end_inside(j, sw, pw, W, OW), ow_lo)
                    w0 = j - pw
                    for n in range(N):
                        for oh in range(OH):
                            h = oh * sh + i - ph
                            if h < 0 or h >= H:
                                continue
                            base = (n * OH + oh) * OW
                            if sw == 1 and ow_hi > ow_lo:
                                # unit stride: a plain contiguous add that the compiler vectorises
                                _add_run(&dx[n, c, h, ow_lo + w0], &col[row, base + ow_lo], ow_hi - ow_lo)
                            else:
                                for ow in range(ow_lo, ow_hi):
                                    dx[n, c, h, ow * sw + w0] += col[row, base + ow]
    return dx_arr
