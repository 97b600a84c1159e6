# Compiled direct 3x3 convolution (stride 1, padding 1) for float32, written once over the
# vectors of _vec.pxi and built twice (setup.py): tinycnn._direct with -mavx512f -mfma (16
# lanes) and tinycnn._avx2._direct with -mavx2 -mfma (8 lanes); tinycnn.kernels imports the
# widest one this CPU runs. Reference and the formulas: _direct_numpy.py (same signatures).
#
# For 3x3 layers with few output channels (Conv2D's DIRECT_MAX_CHANNELS: 8 with AVX-512, 16 with
# AVX2), whose im2col GEMMs have so few rows, and which are too thin for Winograd. Each image is first copied into a
# zero-padded buffer xp (C, H + 2, Wp), so no tap needs a bounds check. An output tile is one
# vector of pixels of one row times T or T / 2 output channels (T = VEC_TILE_CHANNELS, one
# accumulator each): per input channel and tap, one load of the shifted pixels and one FMA per
# output channel with the weight broadcast. The fewer than T / 4 channels left over after those
# blocks take tiles of 4 rows of one channel. Every tile stores whole vectors (_convolve).
# The GIL is released throughout; one call per thread covers that thread's images.

include "_vec.pxi"

from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy


cdef inline Py_ssize_t _row_length(Py_ssize_t W) noexcept nogil:
    """Wp: a padded row holds column -1 (zero), the W columns, and zeros up to what the last
    vector's taps read (column max(W, L), L = VEC_LANES)."""
    return VEC_LANES * ((W + VEC_LANES - 1) // VEC_LANES) + 2


cdef inline void _pad(const float* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, float* xp, Py_ssize_t Wp) noexcept nogil:
    """x (C, H, W) into the interior of xp (C, H + 2, Wp): row y + 1, from column 1. The rest of
    xp stays as it was (zero, from calloc)."""
    cdef Py_ssize_t c, y
    for c in range(C):
        for y in range(H):
            memcpy(xp + (c * (H + 2) + y + 1) * Wp + 1, x + (c * H + y) * W, W * sizeof(float))


cdef inline void _tile(const float* xp, Py_ssize_t C, Py_ssize_t H, Py_ssize_t Wp, const float* Wt, Py_ssize_t Fp,
                       const float* b, float* out, Py_ssize_t F, Py_ssize_t ldo, Py_ssize_t y, Py_ssize_t x0,
                       Py_ssize_t f0, const int G) noexcept nogil:
    """out[f0 + k, y, x0:x0 + VEC_LANES] for k < G (those below F), out's rows ldo floats apart:
    b[f] + sum over c, taps t of Wt[c, t, f] * xp[c, y + t // 3, x0 + t % 3 + lane]."""
    cdef vec_t acc[VEC_TILE_CHANNELS]
    cdef vec_t v
    cdef Py_ssize_t c, t, k
    cdef const float* w
    for k in range(G):
        acc[k] = vec_set1(b[f0 + k])
    for c in range(C):
        w = Wt + c * 9 * Fp + f0
        for t in range(9):
            v = vec_load(xp + (c * (H + 2) + y + t // 3) * Wp + x0 + t % 3)
            for k in range(G):
                acc[k] = vec_fmadd(v, vec_set1(w[t * Fp + k]), acc[k])
    for k in range(G):
        if f0 + k < F:
            vec_store(out + ((f0 + k) * H + y) * ldo + x0, acc[k])


cdef inline void _tile_rows(const float* xp, Py_ssize_t C, Py_ssize_t H, Py_ssize_t Wp, const float* Wt, Py_ssize_t Fp,
                            const float* b, float* out, Py_ssize_t ldo, Py_ssize_t y, Py_ssize_t x0,
                            Py_ssize_t f, const int R) noexcept nogil:
    """out[f, y + r, x0:x0 + VEC_LANES] for r < R, out's rows ldo floats apart: one output
    channel, R rows at once (each weight broadcast once for R FMAs)."""
    cdef vec_t acc[4]
    cdef vec_t wv
    cdef Py_ssize_t c, t, r
    cdef const float* base
    for r in range(R):
        acc[r] = vec_set1(b[f])
    for c in range(C):
        for t in range(9):
            wv = vec_set1(Wt[(c * 9 + t) * Fp + f])
            base = xp + (c * (H + 2) + y + t // 3) * Wp + x0 + t % 3
            for r in range(R):
                acc[r] = vec_fmadd(vec_load(base + r * Wp), wv, acc[r])
    for r in range(R):
        vec_store(out + (f * H + y + r) * ldo + x0, acc[r])


cdef inline Py_ssize_t _vector_start(Py_ssize_t blk, Py_ssize_t W) noexcept nogil:
    """The first column of vector blk of a row W wide: blk * L, but the last vector of a row at
    least L wide ends at the row's end, overlapping the one before (whose columns it writes
    again, with the same values), so that no store is partial (L = VEC_LANES). 0 if W < L."""
    return min(blk * VEC_LANES, W - VEC_LANES) if W >= VEC_LANES else 0


cdef void _conv_image(const float* xp, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Wp,
                      const float* Wt, Py_ssize_t Fp, const float* b, float* out, Py_ssize_t ldo,
                      Py_ssize_t F) noexcept nogil:
    """out (F, H, ldo) = conv of the padded image xp (C, H + 2, Wp) with Wt (C, 9, Fp) + b (Fp,),
    in full vectors: columns 0..W-1 if W >= L (ldo >= W), else the L columns of one vector
    (ldo >= L), those from W on made of padding."""
    cdef Py_ssize_t y, x0, f0, f, full, blk, T = VEC_TILE_CHANNELS, half = VEC_TILE_CHANNELS // 2
    cdef Py_ssize_t blocks = (W + VEC_LANES - 1) // VEC_LANES
    # channels in blocks of T and T / 2; the last block may run past F (Wt is zero there)
    full = F if F % half >= half // 2 or F % half == 0 else F - F % half
    for y in range(H):
        for blk in range(blocks):
            x0 = _vector_start(blk, W)
            f0 = 0
            while f0 + T <= full:
                _tile(xp, C, H, Wp, Wt, Fp, b, out, F, ldo, y, x0, f0, VEC_TILE_CHANNELS)
                f0 += T
            while f0 < full:
                _tile(xp, C, H, Wp, Wt, Fp, b, out, F, ldo, y, x0, f0, VEC_TILE_CHANNELS // 2)
                f0 += half
    for f in range(full, F):                                  # the few left: 4 rows at a time
        for blk in range(blocks):
            x0 = _vector_start(blk, W)
            y = 0
            while y + 4 <= H:
                _tile_rows(xp, C, H, Wp, Wt, Fp, b, out, ldo, y, x0, f, 4)
                y += 4
            while y < H:
                _tile_rows(xp, C, H, Wp, Wt, Fp, b, out, ldo, y, x0, f, 1)
                y += 1


cdef int _convolve(const float* x, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                   const float* Wt, Py_ssize_t Fp, const float* b, float* out, Py_ssize_t F) noexcept nogil:
    """out[n] = conv(x[n]) for images lo..hi-1 of x (N, C, H, W) into out (N, F, H, W).
    The tiles store full vectors only: AMD's Zen 1 to 3 run the AVX2 masked store as microcode,
    and with a partial store in the tile the AVX2 8 -> 8 forward at 28 x 28, batch 32, took
    0.67-0.68 ms instead of 0.60-0.62 on an Intel Xeon (the last vector of a row overlaps
    instead, _vector_start). Rows narrower than one vector go through a buffer of L-wide rows,
    and only the copies out of it store W < L lanes. Returns 0, or -1 if memory ran out."""
    cdef Py_ssize_t Wp = _row_length(W), n, y
    cdef float* xp = <float*> calloc(C * (H + 2) * Wp + VEC_LANES, sizeof(float))
    cdef float* narrow = NULL
    if xp == NULL:
        return -1
    if W < VEC_LANES:
        narrow = <float*> malloc(F * H * VEC_LANES * sizeof(float))
        if narrow == NULL:
            free(xp)
            return -1
    for n in range(lo, hi):
        _pad(x + n * C * H * W, C, H, W, xp, Wp)
        if narrow == NULL:
            _conv_image(xp, C, H, W, Wp, Wt, Fp, b, out + n * F * H * W, W, F)
        else:
            _conv_image(xp, C, H, W, Wp, Wt, Fp, b, narrow, VEC_LANES, F)
            for y in range(F * H):                            # row y of the image's (F, H) rows
                vec_store_first(out + (n * F * H + y) * W, W, vec_load(narrow + y * VEC_LANES))
    free(narrow)
    free(xp)
    return 0


cdef inline Py_ssize_t _blocks8(Py_ssize_t n) noexcept nogil:
    return 8 * ((n + 7) // 8)


def conv_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] W, const float[::1] b,
                 float[:, :, :, ::1] out, Py_ssize_t lo, Py_ssize_t hi):
    """out[lo:hi] = conv(x[lo:hi], W) + b. x: (N, C, H, W); W: (F, C, 3, 3); b: (F,);
    out: (N, F, H, W); float32, C-contiguous (kernels.direct_conv_forward checks the shapes)."""
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], Wd = x.shape[3], F = W.shape[0], Fp = _blocks8(F)
    cdef Py_ssize_t f, c, t
    cdef int status = 0
    if hi <= lo or C == 0 or H == 0 or Wd == 0:
        if hi > lo:
            out[lo:hi] = 0
            for f in range(F):
                out[lo:hi, f] = b[f]
        return
    # Wt (C, 9, Fp): Wt[c, t, f] = W[f, c, t // 3, t % 3], zero for f >= F; bias likewise
    cdef float* Wt = <float*> calloc(C * 9 * Fp + Fp, sizeof(float))
    if Wt == NULL:
        raise MemoryError("direct conv_forward: out of memory for the packed weights")
    cdef float* bp = Wt + C * 9 * Fp
    for f in range(F):
        bp[f] = b[f]
        for c in range(C):
            for t in range(9):
                Wt[(c * 9 + t) * Fp + f] = W[f, c, t // 3, t % 3]
    with nogil:
        status = _convolve(&x[0, 0, 0, 0], lo, hi, C, H, Wd, Wt, Fp, bp, &out[0, 0, 0, 0], F)
    free(Wt)
    if status != 0:
        raise MemoryError("direct conv_forward: out of memory for the padded image")


def conv_input_grad(const float[:, :, :, ::1] dout, const float[:, :, :, ::1] W, float[:, :, :, ::1] dx,
                    Py_ssize_t lo, Py_ssize_t hi):
    """dx[lo:hi] = conv(dout[lo:hi], W flipped, channels swapped). dout: (N, F, H, W);
    W: (F, C, 3, 3); dx: (N, C, H, W); float32, C-contiguous."""
    cdef Py_ssize_t F = dout.shape[1], H = dout.shape[2], Wd = dout.shape[3], C = W.shape[1], Cp = _blocks8(C)
    cdef Py_ssize_t f, c, t
    cdef int status = 0
    if hi <= lo or H == 0 or Wd == 0 or C == 0:
        return
    if F == 0:
        dx[lo:hi] = 0
        return
    # Wt (F, 9, Cp): Wt[f, t, c] = W[f, c, 2 - t // 3, 2 - t % 3], zero for c >= C; no bias
    cdef float* Wt = <float*> calloc(F * 9 * Cp + Cp, sizeof(float))
    if Wt == NULL:
        raise MemoryError("direct conv_input_grad: out of memory for the packed weights")
    for f in range(F):
        for c in range(C):
            for t in range(9):
                Wt[(f * 9 + t) * Cp + c] = W[f, c, 2 - t // 3, 2 - t % 3]
    with nogil:
        status = _convolve(&dout[0, 0, 0, 0], lo, hi, F, H, Wd, Wt, Cp, Wt + F * 9 * Cp, &dx[0, 0, 0, 0], C)
    free(Wt)
    if status != 0:
        raise MemoryError("direct conv_input_grad: out of memory for the padded image")


cdef inline void _grad_tile(const float* xp, Py_ssize_t H, Py_ssize_t Wp, const float* d, Py_ssize_t W,
                            float* lanes, Py_ssize_t stride, float* db_lanes, const int G, const bint bias) noexcept nogil:
    """For G output channels k and one input channel: lanes[k * stride + t * L + lane] += the sum
    over rows and L-pixel blocks (L = VEC_LANES) of d[k] (G, H, W) times the padded input xp
    (H + 2, Wp) shifted by tap t; with bias, db_lanes[k * L + lane] += the sum of d[k]. Pixels past
    W count as zero. Two rows at a time: 12 loads of xp and 2G of d for 18G FMAs, where one row
    took 9 and G for 9G (dW alone at batch 32, one thread, 7 alternating rounds, AVX-512: 8 -> 8
    channels 0.41 vs 0.49 ms, 1.14x-1.19x at 1 -> 8, 4 -> 4 and 8 -> 2; the laptop EdgeCNN-3's
    training step 1.02x, 1.03x on two)."""
    cdef vec_t acc[9 * VEC_GRAD_CHANNELS]
    cdef vec_t bacc[VEC_GRAD_CHANNELS]
    cdef vec_t dv[2 * VEC_GRAD_CHANNELS]
    cdef vec_t v
    cdef Py_ssize_t y, x0, t, k, r, xr, i, j, blk
    cdef vec_mask_t m
    cdef float* p
    for k in range(G * 9):
        acc[k] = vec_zero()
    for k in range(G):
        bacc[k] = vec_zero()
    y = 0
    while y + 2 <= H:                                   # two rows: each load of xp serves both
        for blk in range((W + VEC_LANES - 1) // VEC_LANES):
            x0 = blk * VEC_LANES
            m = vec_mask(W - x0)
            for r in range(2):
                for k in range(G):
                    dv[r * G + k] = vec_maskz_load(m, d + (k * H + y + r) * W + x0)
                    if bias:
                        bacc[k] = vec_add(bacc[k], dv[r * G + k])
            for xr in range(4):                          # xp rows y .. y + 3; row y + r takes tap row xr - r
                for j in range(3):
                    v = vec_maskz_load(m, xp + (y + xr) * Wp + x0 + j)
                    for r in range(2):
                        i = xr - r
                        if 0 <= i <= 2:
                            for k in range(G):
                                acc[k * 9 + i * 3 + j] = vec_fmadd(dv[r * G + k], v, acc[k * 9 + i * 3 + j])
        y += 2
    if y < H:                                            # an odd last row
        for blk in range((W + VEC_LANES - 1) // VEC_LANES):
            x0 = blk * VEC_LANES
            m = vec_mask(W - x0)
            for k in range(G):
                dv[k] = vec_maskz_load(m, d + (k * H + y) * W + x0)
                if bias:
                    bacc[k] = vec_add(bacc[k], dv[k])
            for t in range(9):
                v = vec_maskz_load(m, xp + (y + t // 3) * Wp + x0 + t % 3)
                for k in range(G):
                    acc[k * 9 + t] = vec_fmadd(dv[k], v, acc[k * 9 + t])
    for k in range(G):
        for t in range(9):
            p = lanes + k * stride + t * VEC_LANES
            vec_store(p, vec_add(vec_load(p), acc[k * 9 + t]))
        if bias:
            p = db_lanes + k * VEC_LANES
            vec_store(p, vec_add(vec_load(p), bacc[k]))


cdef int _weight_grad(const float* x, const float* dout, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t C, Py_ssize_t H,
                      Py_ssize_t W, Py_ssize_t F, float* dW, float* db) noexcept nogil:
    """dW (F, C, 9) and db (F,) from images lo..hi-1. Returns 0, or -1 if memory ran out."""
    cdef Py_ssize_t Wp = _row_length(W), n, c, f0, blk, i, l, L = VEC_LANES, G = VEC_GRAD_CHANNELS
    cdef Py_ssize_t stride = C * 9 * L                      # lanes: (F, C, 9, L), then db's (F, L)
    cdef float* xp = <float*> calloc(C * (H + 2) * Wp + L, sizeof(float))
    cdef float* lanes = <float*> calloc(F * stride + F * L, sizeof(float))
    cdef float* db_lanes
    cdef const float* d
    cdef const float* xc
    cdef float* lc
    cdef float s
    if xp == NULL or lanes == NULL:
        free(xp)
        free(lanes)
        return -1
    db_lanes = lanes + F * stride
    for n in range(lo, hi):
        _pad(x + n * C * H * W, C, H, W, xp, Wp)
        for c in range(C):
            for blk in range((F + G - 1) // G):           # G output channels at a time, db with c = 0
                f0 = blk * G
                d = dout + (n * F + f0) * H * W
                xc = xp + c * (H + 2) * Wp
                lc = lanes + f0 * stride + c * 9 * L
                if F - f0 >= G and c == 0:
                    _grad_tile(xc, H, Wp, d, W, lc, stride, db_lanes + f0 * L, VEC_GRAD_CHANNELS, True)
                elif F - f0 >= G:
                    _grad_tile(xc, H, Wp, d, W, lc, stride, NULL, VEC_GRAD_CHANNELS, False)
                elif c == 0:
                    _grad_tile(xc, H, Wp, d, W, lc, stride, db_lanes + f0 * L, 1, True)
                else:
                    _grad_tile(xc, H, Wp, d, W, lc, stride, NULL, 1, False)
    for i in range(F * C * 9):                               # each sum over its L lanes
        s = 0
        for l in range(L):
            s = s + lanes[i * L + l]
        dW[i] = s
    for i in range(F):
        s = 0
        for l in range(L):
            s = s + db_lanes[i * L + l]
        db[i] = s
    free(xp)
    free(lanes)
    return 0


def conv_weight_grad(const float[:, :, :, ::1] x, const float[:, :, :, ::1] dout, float[:, :, :, ::1] dW,
                     float[::1] db, Py_ssize_t lo, Py_ssize_t hi):
    """dW, db = the gradients from images lo..hi-1 (written, not added to). x: (N, C, H, W);
    dout: (N, F, H, W); dW: (F, C, 3, 3); db: (F,); float32, C-contiguous."""
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], Wd = x.shape[3], F = dout.shape[1]
    cdef int status = 0
    if hi <= lo or H == 0 or Wd == 0 or C == 0 or F == 0:
        dW[...] = 0
        db[...] = 0
        return
    with nogil:
        status = _weight_grad(&x[0, 0, 0, 0], &dout[0, 0, 0, 0], lo, hi, C, H, Wd, F, &dW[0, 0, 0, 0], &db[0])
    if status != 0:
        raise MemoryError("direct conv_weight_grad: out of memory for its buffers")
