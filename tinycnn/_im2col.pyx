# Compiled im2col / col2im, and the im2col convolution of a chunk of images in one call
# (conv_forward, conv_backward: im2col and the GEMMs of every image, the GIL released
# throughout). Reference: _im2col_numpy.py (same signatures, same layout).
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
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
include "_blas.pxi"

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


cdef struct Stretch:
    Py_ssize_t oh_lo, oh_hi   # output rows whose input row (oh + i - ph) is inside [0, H)
    Py_ssize_t s0             # plane index of the stretch's entry 0: (oh_lo + i - ph)*W + w0
    Py_ssize_t a, b           # entries [a, b) of the (oh_hi - oh_lo)*W stretch lie inside the plane


cdef inline Stretch _stretch(Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t i, Py_ssize_t ph,
                             Py_ssize_t w0) noexcept nogil:
    """Stride 1 and OW == W ("same" width): output rows oh_lo..oh_hi-1 of row (c, i, j) of col
    map to one contiguous stretch of the (H, W) plane, shifted by (i - ph) rows and w0 = j - pw
    columns. Its entries in the border columns (outside the kernel column's inside range) land
    on the neighbouring row; im2col zeroes them, col2im masks them out."""
    cdef Stretch r
    cdef Py_ssize_t L
    r.oh_lo = min(max(ph - i, 0), OH)
    r.oh_hi = max(min(OH, H + ph - i), r.oh_lo)
    L = (r.oh_hi - r.oh_lo) * W
    r.s0 = (r.oh_lo + i - ph) * W + w0
    r.a = min(max(-r.s0, 0), L)                # entries before a or from b fall off the plane
    r.b = max(min(L, H * W - r.s0), r.a)
    return r


cdef inline void _same_width_rows(const floating* x_c, floating* dst, Py_ssize_t N, Py_ssize_t C,
                                  Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t i, Py_ssize_t ph,
                                  Py_ssize_t w0, Py_ssize_t ow_lo, Py_ssize_t ow_hi) noexcept nogil:
    """One row (c, i, j) of col for every image when the stride is 1 and OW == W ("same" width).

    The stretch (_stretch) is one memcpy instead of one per output row; the entries it puts in
    the border columns (ow < ow_lo or ow >= ow_hi) belong to the neighbouring row, so they are
    zeroed after. x_c: plane (0, c); dst: col row (c, i, j), N*OH*W entries.
    Measured 1.15-1.23x faster than a memcpy per output row (docs/performance.md).
    """
    cdef Py_ssize_t n, oh, ow
    cdef Stretch st = _stretch(H, W, OH, i, ph, w0)
    cdef Py_ssize_t L = (st.oh_hi - st.oh_lo) * W
    cdef const floating* plane
    cdef floating* block
    for n in range(N):
        plane = x_c + n * C * H * W
        memset(dst, 0, st.oh_lo * W * sizeof(floating))
        memset(dst + st.oh_hi * W, 0, (OH - st.oh_hi) * W * sizeof(floating))
        block = dst + st.oh_lo * W              # block[z] = plane[s0 + z] where inside
        memset(block, 0, st.a * sizeof(floating))
        memcpy(block + st.a, plane + st.s0 + st.a, (st.b - st.a) * sizeof(floating))
        memset(block + st.b, 0, (L - st.b) * sizeof(floating))
        for oh in range(st.oh_hi - st.oh_lo):   # the border columns hold the neighbouring rows' pixels
            for ow in range(ow_lo):
                block[oh * W + ow] = 0
            for ow in range(ow_hi, W):
                block[oh * W + ow] = 0
        dst += OH * W


cdef void _im2col_core(const floating* x, floating* col, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                       Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """im2col of the N images at x ((N, C, H, W), C-contiguous) into col ((C*kh*kw, N*OH*OW),
    C-contiguous)."""
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1
    cdef Py_ssize_t OW = (W + 2 * pw - kw) // sw + 1
    cdef Py_ssize_t c, i, j, n, oh, ow, h, ow_lo, ow_hi, w0
    cdef const floating* src      # row h of plane (n, c) of x
    cdef floating* dst            # the OW entries of col for output row (n, oh)
    cdef bint same_width = sh == 1 and sw == 1 and OW == W
    # Plain pointers, not memoryview indexing, in the loops (the max-pool kernel ran
    # 10-25x faster that way, measured).
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                # 0 <= ow_lo <= ow_hi <= OW: a kernel overhanging the whole row can
                # give _first_inside > OW, which must not index past the row
                ow_lo = min(_first_inside(j, sw, pw), OW)
                ow_hi = max(_end_inside(j, sw, pw, W, OW), ow_lo)
                w0 = j - pw
                dst = col + ((c * kh + i) * kw + j) * N * OH * OW
                if same_width:
                    _same_width_rows(x + c * H * W, dst, N, C, H, W, OH, i, ph, w0, ow_lo, ow_hi)
                    continue
                for n in range(N):
                    for oh in range(OH):
                        h = oh * sh + i - ph
                        if h < 0 or h >= H:
                            memset(dst, 0, OW * sizeof(floating))
                        else:
                            src = x + ((n * C + c) * H + h) * W
                            for ow in range(ow_lo):
                                dst[ow] = 0
                            if sw == 1:
                                # stride 1: the inside range is one contiguous run of x's row;
                                # memcpy beat a plain loop by ~1.3x here (measured)
                                memcpy(dst + ow_lo, src + ow_lo + w0, (ow_hi - ow_lo) * sizeof(floating))
                            else:
                                for ow in range(ow_lo, ow_hi):
                                    dst[ow] = src[ow * sw + w0]
                            for ow in range(ow_hi, OW):
                                dst[ow] = 0
                        dst += OW


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
    if col_arr.size == 0:
        return col_arr
    cdef floating[:, ::1] col = col_arr
    with nogil:
        _im2col_core(&x[0, 0, 0, 0], &col[0, 0], N, C, H, W, kh, kw, sh, sw, ph, pw)
    return col_arr


cdef int _col2im_core(const floating* col, floating* dx, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                      Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                      Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """dx ((N, C, H, W), C-contiguous) = col2im of col ((C*kh*kw, N*OH*OW), C-contiguous), dx
    overwritten. Returns 0, or -1 if memory for the mask ran out (dx then holds zeros)."""
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1
    cdef Py_ssize_t OW = (W + 2 * pw - kw) // sw + 1
    cdef Py_ssize_t c, i, j, n, oh, ow, h, ow_lo, ow_hi, w0, z
    cdef Stretch st
    cdef const floating* src      # the OW entries of col for output row (n, oh)
    cdef floating* dst            # row h of plane (n, c) of dx
    cdef floating zero = 0
    cdef bint same_width = sh == 1 and sw == 1 and OW == W
    # same width: inside[j*OH*OW + z] = 1 where column z % OW of kernel column j is inside, else 0
    cdef floating* inside = NULL
    cdef floating* keep
    memset(dx, 0, N * C * H * W * sizeof(floating))
    if same_width:
        inside = <floating*> malloc(kw * OH * OW * sizeof(floating))
        if inside == NULL:
            return -1
        for j in range(kw):
            ow_lo = min(_first_inside(j, sw, pw), OW)
            ow_hi = max(_end_inside(j, sw, pw, W, OW), ow_lo)
            for z in range(OH * OW):
                ow = z % OW
                inside[j * OH * OW + z] = 1 if ow_lo <= ow < ow_hi else 0
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                ow_lo = min(_first_inside(j, sw, pw), OW)
                ow_hi = max(_end_inside(j, sw, pw, W, OW), ow_lo)
                w0 = j - pw
                src = col + ((c * kh + i) * kw + j) * N * OH * OW
                if same_width:
                    st = _stretch(H, W, OH, i, ph, w0)     # dx plane[s0 + z] += col row[oh_lo*W + z]
                    keep = inside + j * OH * OW
                    for n in range(N):
                        dst = dx + (n * C + c) * H * W
                        src += st.oh_lo * W
                        for z in range(st.a, st.b):
                            dst[st.s0 + z] += src[z] if keep[z] != zero else zero
                        src += (OH - st.oh_lo) * W
                    continue
                for n in range(N):
                    for oh in range(OH):
                        h = oh * sh + i - ph
                        if 0 <= h < H:
                            dst = dx + ((n * C + c) * H + h) * W
                            if sw == 1:
                                # unit stride: a plain contiguous add that the compiler vectorises
                                for ow in range(ow_lo, ow_hi):
                                    dst[ow + w0] += src[ow]
                            else:
                                for ow in range(ow_lo, ow_hi):
                                    dst[ow * sw + w0] += src[ow]
                        src += OW
    free(inside)
    return 0


def col2im(const floating[:, ::1] col, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
           out=None):
    """col: (C*kh*kw, N*OH*OW) -> dx: (N, C, H, W); sums overlaps, drops padding.

    out: optional C-contiguous (N, C, H, W) array of col's dtype to write into.

    With stride 1 and OW == W ("same" width), row (c, i, j) of image n adds to one contiguous
    stretch of the (H, W) plane, shifted by (i - ph) rows and j - pw columns (_stretch, as
    in im2col); the entries whose input column falls outside [0, W) would land on the
    neighbouring row, so a 0/1 mask per j (the same for every row) selects 0 for them. One
    loop per stretch instead of one per output row: 1.25-1.7x faster at 1, 8 and 32 channels,
    28x28 (measured, same values bit for bit: each dx entry gets the same adds in the same order).
    """
    dtype = np.float32 if floating is float else np.float64
    if out is None:
        dx_arr = np.zeros((N, C, H, W), dtype=dtype)
    else:
        dx_arr = out
        dx_arr.fill(0)
    if dx_arr.size == 0 or col.shape[0] * col.shape[1] == 0:
        return dx_arr
    cdef floating[:, :, :, ::1] dx = dx_arr
    cdef int status
    with nogil:
        status = _col2im_core(&col[0, 0], &dx[0, 0, 0, 0], N, C, H, W, kh, kw, sh, sw, ph, pw)
    if status != 0:
        raise MemoryError()
    return dx_arr


# --- the im2col convolution of a chunk of images, in one call -------------------------------
#
# Per image n, with K = C*kh*kw, P = OH*OW and [col; 1] its im2col matrix under a row of ones:
#     out[n]  = [W b] @ [col; 1]               (F, P)
#     dWbT   += [col; 1] @ dout[n].T           (K + 1, F): [dW.T; db]
#     dx[n]   = col2im(W.T @ dout[n])          (C, H, W)
# m images at a time share one im2col call: col is then (K + 1, m*P), image i's columns
# i*P .. i*P + P - 1 (row stride m*P), as in _im2col_numpy.conv_forward.
# One call per chunk rather than one per operation: Python holds the GIL between operations,
# and two threads queue for it (laptop EdgeCNN-3 training step, whose convs all take this path:
# 1.13x faster on one thread, 1.16x on two, measured against NumPy calls per group of images).


cdef inline void _ones_row(floating* row, Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(length):
        row[k] = 1


def conv_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] Wb, floating[:, :, ::1] out,
                 floating[:, ::1] col, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t kh, Py_ssize_t kw,
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw):
    """out[n] = [W b] @ [im2col(x[n]); 1] for the images n in lo..hi-1.

    x: (N, C, H, W); Wb: (F, K + 1) = [W.reshape(F, K) b], K = C*kh*kw; out: (N, F, OH*OW);
    col: (K + 1, m*OH*OW) scratch, m >= 1 images per im2col call. All C-contiguous, one dtype;
    tinycnn.kernels checks the shapes.
    """
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = Wb.shape[0], K1 = Wb.shape[1], P = out.shape[2]
    cdef Py_ssize_t group = col.shape[1] // P, n = lo, i
    cdef int m, ld
    cdef floating* colb
    if hi <= lo or P == 0:
        return
    with nogil:
        colb = &col[0, 0]
        while n < hi:
            m = <int> min(group, hi - n)
            ld = m * P                             # row stride of [col; 1] for these m images
            _im2col_core(&x[n, 0, 0, 0], colb, m, C, H, W, kh, kw, sh, sw, ph, pw)
            _ones_row(colb + (K1 - 1) * ld, ld)
            for i in range(m):                     # out[n + i] = [W b] @ [col_i; 1]
                _matmul("N", "N", F, P, K1, &Wb[0, 0], K1, colb + i * P, ld, 0, &out[n + i, 0, 0], P)
            n += m


def conv_backward(const floating[:, :, :, ::1] x, const floating[:, ::1] Wb, const floating[:, :, ::1] dout,
                  floating[:, ::1] dWbT, floating[:, :, :, ::1] dx, floating[:, ::1] col,
                  Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                  Py_ssize_t ph, Py_ssize_t pw, bint weights, bint inputs):
    """For the images n in lo..hi-1: dWbT += [im2col(x[n]); 1] @ dout[n].T if weights,
    dx[n] = col2im(W.T @ dout[n]) if inputs, W = Wb[:, :K].

    x: (N, C, H, W); Wb: (F, K + 1); dout: (N, F, OH*OW); dWbT: (K + 1, F) = [dW.T; db], added
    to; dx: (N, C, H, W), overwritten; col: (K + 1, m*OH*OW) scratch. All C-contiguous, one
    dtype; an unused dWbT or dx may be any array of that dtype.
    """
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = Wb.shape[0], K1 = Wb.shape[1], K = K1 - 1, P = dout.shape[2]
    cdef Py_ssize_t group = col.shape[1] // P, n = lo, i
    cdef int m, ld, status = 0
    cdef floating* colb
    if hi <= lo or P == 0:
        return
    with nogil:
        colb = &col[0, 0]
        while n < hi and status == 0:
            m = <int> min(group, hi - n)
            ld = m * P
            if weights:                            # [dW.T; db] += [col_i; 1] @ dout[n + i].T
                _im2col_core(&x[n, 0, 0, 0], colb, m, C, H, W, kh, kw, sh, sw, ph, pw)
                _ones_row(colb + K * ld, ld)
                for i in range(m):
                    _matmul("N", "T", K1, F, P, colb + i * P, ld, &dout[n + i, 0, 0], P, 1, &dWbT[0, 0], F)
            if inputs:                             # dcol_i = W.T @ dout[n + i], then col2im
                for i in range(m):
                    _matmul("T", "N", K, P, F, &Wb[0, 0], K1, &dout[n + i, 0, 0], P, 0, colb + i * P, ld)
                status = _col2im_core(colb, &dx[n, 0, 0, 0], m, C, H, W, kh, kw, sh, sw, ph, pw)
            n += m
    if status != 0:
        raise MemoryError()
