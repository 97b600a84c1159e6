# Compiled Winograd F(2x2, 3x3) transforms, and the Winograd convolution of a chunk of images
# in one call (conv_forward, weight_products: transforms and GEMMs, the GIL released
# throughout). Reference and the formulas: _winograd_numpy.py (same signatures). Directives (boundscheck, wraparound, cdivision, ...) are set in setup.py.
#
# B^T, A^T and G have entries 0, +-1 and +-1/2, so each transform is a few adds per tile,
# written as loops over all the tiles of a channel wherever the layout allows (gcc
# vectorises those; the baseline build has 4 float lanes).
import numpy as np
cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
include "_blas.pxi"

cnp.import_array()

# The float32 GEMM of the 16 products, row-major C (M, N) = A (M, K) @ B (K, N): the forward's
# M_k = U_k @ V_k, and dW's acc_k.T = V_k @ D_k with D tile-major. BLAS while NULL, else the
# function set_sgemm gave (tinycnn._avx2._gemm, which tinycnn.kernels sets once at import on CPUs
# where it beats BLAS).
ctypedef void (*sgemm_fn)(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float* A, Py_ssize_t lda,
                          const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc) noexcept nogil
cdef sgemm_fn _sgemm = NULL


def set_sgemm(uintptr_t address):
    """Route the float32 products of conv_forward and weight_products (D tile-major) through the
    C function at address (0: BLAS)."""
    global _sgemm
    _sgemm = <sgemm_fn> address


def sgemm_address():
    """The address set_sgemm last set (0: BLAS)."""
    return <uintptr_t> _sgemm


cdef int _input_core(const floating* x, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                     floating* V, Py_ssize_t ldV, Py_ssize_t ty0, Py_ssize_t ty1) noexcept nogil:
    """winograd_input of the tile rows ty0..ty1-1 of the N images at x ((N, C, H, W), C-contiguous)
    into V: plane k, channel c, tile t of those rows of image n at V[(k*C + c)*ldV + n*T + t],
    T = (ty1 - ty0)*tw. Returns 0, or -1 if memory ran out."""
    cdef Py_ssize_t tw = (W + 1) // 2, T = (ty1 - ty0) * tw
    cdef Py_ssize_t R = ty1 - ty0 + 1, L = 2 * tw, S = R * tw   # rows per plane, plane row length, plane tiles
    cdef Py_ssize_t ncopy = min(W, L - 1)                  # x columns that fit in a plane row (after its 0)
    cdef bint has_last = W == L                            # x column 2tw - 1 = padded column 2tw exists
    cdef Py_ssize_t n, c, i, k, m, t, u
    # the two planes (+ 2 floats the last tile of the last row reads), then d B of each
    cdef floating* buf = <floating*> malloc((2 * (R * L + 2) + 8 * S) * sizeof(floating))
    if buf == NULL:
        return -1
    cdef floating* planes[2]
    planes[0] = buf                    # padded rows 2m at + m*L: padded columns 0 .. 2tw - 1
    planes[1] = buf + R * L + 2        # padded rows 2m + 1
    cdef floating* ev = planes[1] + R * L + 2   # d B of the even rows: column k at ev + k*S, row m at + m*tw
    cdef floating* od = ev + 4 * S              # d B of the odd rows, the same layout
    cdef floating* p
    cdef floating* q
    cdef floating* e
    cdef floating* o
    cdef floating* v
    cdef floating d0, d1, d2
    for u in range(2 * (R * L + 2)):           # padding rows and column 0 stay zero
        buf[u] = 0
    for n in range(N):
        for c in range(C):
            # padded rows 2ty0 .. 2ty1 + 1 (plane i % 2, row i // 2 - ty0); padded row i = x row i - 1
            # from padded column 1, and rows 0 and H + 1 on stay zero
            for i in range(max(1, 2 * ty0), min(H, 2 * ty1 + 1) + 1):
                memcpy(planes[i % 2] + (i // 2 - ty0) * L + 1, x + ((n * C + c) * H + i - 1) * W, ncopy * sizeof(floating))
            for k in range(2):                  # d B: columns d0 - d2, d1 + d2, d2 - d1, d1 - d3
                p = planes[k]
                q = ev if k == 0 else od
                for u in range(S):
                    q[u] = p[2 * u] - p[2 * u + 2]
                    q[S + u] = p[2 * u + 1] + p[2 * u + 2]
                    q[2 * S + u] = p[2 * u + 2] - p[2 * u + 1]
                    q[3 * S + u] = p[2 * u + 1] - p[2 * u + 3]
                for m in range(R):              # last tile column: d2 = padded column 2tw, d3 = 0
                    i = 2 * (ty0 + m) + k
                    u = m * tw + tw - 1
                    d0 = p[2 * u]
                    d1 = p[2 * u + 1]
                    d2 = x[((n * C + c) * H + i - 1) * W + L - 1] if has_last and 1 <= i <= H else 0
                    q[u] = d0 - d2
                    q[S + u] = d1 + d2
                    q[2 * S + u] = d2 - d1
                    q[3 * S + u] = d1
            for k in range(4):                  # B^T (d B): rows 2ty .. 2ty + 3 of tile t are e[t], o[t], e[t + tw], o[t + tw]
                e = ev + k * S
                o = od + k * S
                v = V + (k * C + c) * ldV + n * T
                for t in range(T):
                    v[t] = e[t] - e[t + tw]
                v = V + ((4 + k) * C + c) * ldV + n * T
                for t in range(T):
                    v[t] = o[t] + e[t + tw]
                v = V + ((8 + k) * C + c) * ldV + n * T
                for t in range(T):
                    v[t] = e[t + tw] - o[t]
                v = V + ((12 + k) * C + c) * ldV + n * T
                for t in range(T):
                    v[t] = o[t] - o[t + tw]
    free(buf)
    return 0


def winograd_input(const floating[:, :, :, ::1] x, floating[:, :, ::1] V, tile_rows=None):
    """x: (N, C, H, W) -> V: (16, C, N*th*tw) = B^T d B of each 4x4 tile d (stride 2) of each
    image zero-padded by 1, th = ceil(H/2); image n's tiles in columns n*th*tw onwards. With
    tile_rows = (ty0, ty1), only the tiles of rows ty0..ty1-1: V is (16, C, N*(ty1 - ty0)*tw).

    Rows first: d B for every padded row, with the even rows and the odd rows in two planes, so
    that B^T (d B) is 16 loops over all th*tw tiles of a channel at once (row 2ty + 2 of tile t is
    row ty + 1 of its parity, t + tw). Each plane stores 2*tw padded columns per row, so d B of
    all its rows is one loop over u = row*tw + tile column, reading columns 2u .. 2u + 3; only
    the last tile column, which reads the padded columns 2tw and 2tw + 1, is redone on its own.
    Long contiguous loops let gcc vectorise: one loop per plane instead of one per row was 1.55x
    to 1.6x faster at 20, 32 and 128 channels, 28x28 (measured, same values bit for bit)."""
    cdef int status
    cdef Py_ssize_t ty0, ty1
    ty0, ty1 = tile_rows if tile_rows is not None else (0, (x.shape[2] + 1) // 2)
    if x.shape[0] * x.shape[1] * V.shape[2] == 0:
        return
    with nogil:
        status = _input_core(&x[0, 0, 0, 0], x.shape[0], x.shape[1], x.shape[2], x.shape[3], &V[0, 0, 0], V.shape[2],
                             ty0, ty1)
    if status != 0:
        raise MemoryError()


cdef int _output_core(const floating* M, Py_ssize_t ldM, floating* out, Py_ssize_t N, Py_ssize_t F,
                      Py_ssize_t H, Py_ssize_t W, const floating* bias, Py_ssize_t ty0, Py_ssize_t ty1) noexcept nogil:
    """winograd_output of the tile rows ty0..ty1-1 (output rows 2ty0 .. 2ty1 - 1, cropped to H): out
    ((N, F, H, W), C-contiguous) from M, plane k, channel f, tile t of those rows of image n at
    M[(k*F + f)*ldM + n*T + t], T = (ty1 - ty0)*tw; bias (F,) or NULL. Returns 0, or -1 if memory
    ran out."""
    cdef Py_ssize_t tw = (W + 1) // 2, W2 = W // 2, T = (ty1 - ty0) * tw
    cdef Py_ssize_t n, f, ty, tx, t, j, r, y
    cdef const floating* p0
    cdef const floating* p1
    cdef const floating* p2
    cdef const floating* p3
    cdef floating* a
    cdef floating* o
    cdef floating* u0
    cdef floating* u1
    cdef floating* u2
    cdef floating* u3
    cdef floating bf
    cdef floating* u = <floating*> malloc(8 * T * sizeof(floating))   # A^T m: row r, column j at u + (4r + j)*T
    if u == NULL:
        return -1
    for n in range(N):
        for f in range(F):
            bf = bias[f] if bias != NULL else 0
            for j in range(4):                  # rows of A^T m: m0j + m1j + m2j, m1j - m2j - m3j
                p0 = M + (j * F + f) * ldM + n * T
                p1 = M + ((4 + j) * F + f) * ldM + n * T
                p2 = M + ((8 + j) * F + f) * ldM + n * T
                p3 = M + ((12 + j) * F + f) * ldM + n * T
                a = u + j * T
                for t in range(T):
                    a[t] = p0[t] + p1[t] + p2[t]
                a = u + (4 + j) * T
                for t in range(T):
                    a[t] = p1[t] - p2[t] - p3[t]
            for ty in range(ty0, ty1):          # (A^T m) A: output rows 2ty, 2ty + 1, cropped to H, W
                for r in range(2):
                    y = 2 * ty + r
                    if y >= H:
                        break
                    u0 = u + 4 * r * T + (ty - ty0) * tw
                    u1 = u0 + T
                    u2 = u1 + T
                    u3 = u2 + T
                    o = out + ((n * F + f) * H + y) * W
                    for tx in range(W2):
                        o[2 * tx] = u0[tx] + u1[tx] + u2[tx] + bf
                        o[2 * tx + 1] = u1[tx] - u2[tx] - u3[tx] + bf
                    if W2 < tw:
                        o[2 * W2] = u0[W2] + u1[W2] + u2[W2] + bf
    free(u)
    return 0


def winograd_output(const floating[:, :, ::1] M, floating[:, :, :, ::1] out, bias=None, tile_rows=None):
    """M: (16, F, N*th*tw) -> out: (N, F, H, W) = A^T m A per tile (+ bias (F,) if given); image
    n's tiles in columns n*th*tw onwards. With tile_rows = (ty0, ty1), M holds only the tiles of
    rows ty0..ty1-1, (16, F, N*(ty1 - ty0)*tw), and only their output rows 2ty0 .. 2ty1 - 1 are written.

    Per output channel, A^T m first as 8 loops over all th*tw tiles (contiguous in every plane,
    so gcc vectorises them), then the columns, written out interleaved: 2x faster than
    transforming tile by tile at 28x28, 1.6x at 14x14 (measured, 20 to 80 channels)."""
    cdef const floating[::1] b
    cdef const floating* bp = NULL
    cdef int status
    cdef Py_ssize_t ty0, ty1
    ty0, ty1 = tile_rows if tile_rows is not None else (0, (out.shape[2] + 1) // 2)
    if bias is not None:
        b = bias
        bp = &b[0] if b.shape[0] > 0 else NULL
    if out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] == 0 or ty1 <= ty0:
        return
    with nogil:
        status = _output_core(&M[0, 0, 0], M.shape[2], &out[0, 0, 0, 0], out.shape[0], out.shape[1],
                              out.shape[2], out.shape[3], bp, ty0, ty1)
    if status != 0:
        raise MemoryError()


cdef inline void _pairs(const floating* row, floating* even, floating* odd, Py_ssize_t W,
                        Py_ssize_t step) noexcept nogil:
    """even[i*step] = row[2i], odd[i*step] = row[2i + 1] for the ceil(W/2) pairs of a row of W
    floats (odd is 0 past the end when W is odd); step 1 for arrays over the tiles, the channel
    count for channels-last ones."""
    cdef Py_ssize_t i, W2 = W // 2
    for i in range(W2):
        even[i * step] = row[2 * i]
        odd[i * step] = row[2 * i + 1]
    if 2 * W2 < W:
        even[W2 * step] = row[2 * W2]
        odd[W2 * step] = 0


cdef int _dout_core(const floating* dout, Py_ssize_t N, Py_ssize_t F, Py_ssize_t H, Py_ssize_t W,
                    floating* D, Py_ssize_t ldD) noexcept nogil:
    """winograd_dout of the N images at dout ((N, F, H, W), C-contiguous) into D, channel-major:
    plane k, channel f, tile t of image n at D[(k*F + f)*ldD + n*th*tw + t]. Returns 0, or -1
    if memory ran out."""
    cdef Py_ssize_t th = (H + 1) // 2, tw = (W + 1) // 2, T = th * tw
    cdef Py_ssize_t n, f, ty, tx, t, k
    cdef floating half = 0.5
    cdef floating* g = <floating*> malloc(12 * T * sizeof(floating))
    if g == NULL:
        return -1
    cdef floating* g00 = g             # g[0, 0] of every tile, then g[0, 1], g[1, 0], g[1, 1]
    cdef floating* g01 = g + T
    cdef floating* g10 = g + 2 * T
    cdef floating* g11 = g + 3 * T
    cdef floating* r = g + 4 * T       # G2 g: row k, column j at r + (2k + j)*T (rows 1 to 3; row 0 is g00, g01)
    cdef floating* a
    cdef floating* c0
    cdef floating* c1
    for n in range(N):
        for f in range(F):
            for ty in range(th):
                t = ty * tw
                _pairs(dout + ((n * F + f) * H + 2 * ty) * W, g00 + t, g01 + t, W, 1)
                if 2 * ty + 1 < H:
                    _pairs(dout + ((n * F + f) * H + 2 * ty + 1) * W, g10 + t, g11 + t, W, 1)
                else:
                    for tx in range(tw):
                        g10[t + tx] = 0
                        g11[t + tx] = 0
            for t in range(T):                  # rows of G2 g: g0, (g0 + g1) / 2, (g0 - g1) / 2, -g1
                r[2 * T + t] = half * (g00[t] + g10[t])
            for t in range(T):
                r[3 * T + t] = half * (g01[t] + g11[t])
            for t in range(T):
                r[4 * T + t] = half * (g00[t] - g10[t])
            for t in range(T):
                r[5 * T + t] = half * (g01[t] - g11[t])
            for t in range(T):
                r[6 * T + t] = -g10[t]
            for t in range(T):
                r[7 * T + t] = -g11[t]
            for k in range(4):                  # (G2 g) G2^T: the same combinations of columns
                c0 = g00 if k == 0 else r + 2 * k * T
                c1 = g01 if k == 0 else r + (2 * k + 1) * T
                a = D + ((4 * k) * F + f) * ldD + n * T
                for t in range(T):
                    a[t] = c0[t]
                a = D + ((4 * k + 1) * F + f) * ldD + n * T
                for t in range(T):
                    a[t] = half * (c0[t] + c1[t])
                a = D + ((4 * k + 2) * F + f) * ldD + n * T
                for t in range(T):
                    a[t] = half * (c0[t] - c1[t])
                a = D + ((4 * k + 3) * F + f) * ldD + n * T
                for t in range(T):
                    a[t] = -c1[t]
    free(g)
    return 0


cdef inline void _g2_columns(floating* a, Py_ssize_t ldF, Py_ssize_t f, floating c0, floating c1) noexcept nogil:
    """Channel f of one row (c0, c1) of G2 g times G2^T: c0, (c0 + c1) / 2, (c0 - c1) / 2, -c1
    into four planes of D, ldF apart."""
    cdef floating half = 0.5
    a[f] = c0
    a[ldF + f] = half * (c0 + c1)
    a[2 * ldF + f] = half * (c0 - c1)
    a[3 * ldF + f] = -c1


cdef int _dout_core_tiles(const floating* dout, Py_ssize_t N, Py_ssize_t F, Py_ssize_t H, Py_ssize_t W,
                          floating* D, Py_ssize_t ldD) noexcept nogil:
    """winograd_dout of the N images at dout ((N, F, H, W), C-contiguous) into D, tile-major:
    plane k, tile t of image n, channel f at D[(k*ldD + n*th*tw + t)*F + f]. Returns 0, or -1
    if memory ran out."""
    cdef Py_ssize_t th = (H + 1) // 2, tw = (W + 1) // 2, T = th * tw
    cdef Py_ssize_t n, f, ty, tx, t, i, ldF = ldD * F   # ldF: from one plane of D to the next
    cdef floating half = 0.5
    cdef floating* g = <floating*> malloc(4 * tw * F * sizeof(floating))
    if g == NULL:
        return -1
    cdef floating* g00 = g             # one row of tiles, channels last: g[0, 0] of tile tx, channel f
    cdef floating* g01 = g + tw * F    # at g00[tx*F + f], then g[0, 1], g[1, 0], g[1, 1]
    cdef floating* g10 = g + 2 * tw * F
    cdef floating* g11 = g + 3 * tw * F
    cdef const floating* row0
    for n in range(N):
        for ty in range(th):
            for f in range(F):                  # gather the row's tiles, channels last
                row0 = dout + ((n * F + f) * H + 2 * ty) * W
                _pairs(row0, g00 + f, g01 + f, W, F)
                if 2 * ty + 1 < H:
                    _pairs(row0 + W, g10 + f, g11 + f, W, F)
                else:
                    for tx in range(tw):
                        g10[tx * F + f] = 0
                        g11[tx * F + f] = 0
            for tx in range(tw):
                i = tx * F
                t = n * T + ty * tw + tx        # this tile's row of D
                # row k of G2 g is (c0, c1): g0, (g0 + g1) / 2, (g0 - g1) / 2, -g1 for g's rows
                # g0, g1; (G2 g) G2^T combines c0 and c1 alike into planes 4k to 4k + 3
                for f in range(F):
                    _g2_columns(D + t * F, ldF, f, g00[i + f], g01[i + f])
                for f in range(F):
                    _g2_columns(D + (4 * ldD + t) * F, ldF, f, half * (g00[i + f] + g10[i + f]),
                                half * (g01[i + f] + g11[i + f]))
                for f in range(F):
                    _g2_columns(D + (8 * ldD + t) * F, ldF, f, half * (g00[i + f] - g10[i + f]),
                                half * (g01[i + f] - g11[i + f]))
                for f in range(F):
                    _g2_columns(D + (12 * ldD + t) * F, ldF, f, -g10[i + f], -g11[i + f])
    free(g)
    return 0


def winograd_dout(const floating[:, :, :, ::1] dout, floating[:, :, ::1] D, bint tile_major=False):
    """dout: (N, F, H, W) -> D = G2 g G2^T of each 2x2 tile g (zero beyond H, W): (16, F, N*th*tw),
    image n's tiles in columns n*th*tw onwards, or tile-major (16, N*th*tw, F), image n's tiles in
    rows n*th*tw onwards, channels last.

    Channel-major: per channel, the tiles' four entries gathered into four arrays over all th*tw
    tiles, then G2 g and (G2 g) G2^T as loops over those arrays (gcc vectorises them): 2x faster
    than tile by tile (measured, 20 to 80 channels). Tile-major: per row of tiles, their entries
    gathered channels last, then the same combinations as loops over the channels."""
    cdef int status
    cdef Py_ssize_t tiles = D.shape[1] if tile_major else D.shape[2]
    if dout.shape[0] * dout.shape[1] * tiles == 0:
        return
    with nogil:
        if tile_major:
            status = _dout_core_tiles(&dout[0, 0, 0, 0], dout.shape[0], dout.shape[1], dout.shape[2],
                                      dout.shape[3], &D[0, 0, 0], tiles)
        else:
            status = _dout_core(&dout[0, 0, 0, 0], dout.shape[0], dout.shape[1], dout.shape[2], dout.shape[3],
                                &D[0, 0, 0], tiles)
    if status != 0:
        raise MemoryError()


def winograd_weights(const floating[:, :, :, ::1] W, floating[:, :, :] U):
    """W: (F, C, 3, 3) -> U: (16, F, C) = G g G^T of every 3x3 kernel g."""
    cdef Py_ssize_t F = W.shape[0], C = W.shape[1], f, c, k
    cdef floating half = 0.5
    cdef floating r[4][3]     # r = G g
    cdef const floating* g
    with nogil:
        for f in range(F):
            for c in range(C):
                g = &W[f, c, 0, 0]
                for k in range(3):                     # rows of G g
                    r[0][k] = g[k]
                    r[1][k] = half * (g[k] + g[3 + k] + g[6 + k])
                    r[2][k] = half * (g[k] - g[3 + k] + g[6 + k])
                    r[3][k] = g[6 + k]
                for k in range(4):                     # (G g) G^T
                    U[4 * k + 0, f, c] = r[k][0]
                    U[4 * k + 1, f, c] = half * (r[k][0] + r[k][1] + r[k][2])
                    U[4 * k + 2, f, c] = half * (r[k][0] - r[k][1] + r[k][2])
                    U[4 * k + 3, f, c] = r[k][2]


def winograd_weight_grad(const floating[:, :, :] M, floating[:, :, :, ::1] dW):
    """M: (16, F, C) -> dW: (F, C, 3, 3) = A3^T m A3 per (f, c)."""
    cdef Py_ssize_t F = M.shape[1], C = M.shape[2], f, c, k
    cdef floating m[4][4]
    cdef floating u[3][4]     # u = A3^T m
    with nogil:
        for f in range(F):
            for c in range(C):
                for k in range(16):
                    m[k // 4][k % 4] = M[k, f, c]
                for k in range(4):                     # rows of A3^T m
                    u[0][k] = m[0][k] + m[1][k] + m[2][k]
                    u[1][k] = m[1][k] - m[2][k]
                    u[2][k] = m[1][k] + m[2][k] + m[3][k]
                for k in range(3):                     # (A3^T m) A3
                    dW[f, c, k, 0] = u[k][0] + u[k][1] + u[k][2]
                    dW[f, c, k, 1] = u[k][1] - u[k][2]
                    dW[f, c, k, 2] = u[k][1] + u[k][2] + u[k][3]



# --- the Winograd convolution of a chunk of images, in one call -------------------------------
#
# m images at a time: V = B^T d B of their tiles (16, C, m*T), then 16 GEMMs, then the output
# transform, as _winograd_numpy.conv_forward and weight_products spell out. One call per chunk
# rather than one per operation, so that threads do not queue for the GIL between them.


cdef int _conv_forward_core(const floating* x, const floating* U, Py_ssize_t ldk, Py_ssize_t ldU,
                            const floating* bias, floating* out, floating* V, floating* M, Py_ssize_t C,
                            Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, Py_ssize_t lo, Py_ssize_t hi,
                            Py_ssize_t ty0, Py_ssize_t ty1, Py_ssize_t group) noexcept nogil:
    """conv_forward on raw C-contiguous arrays: U's plane k at U + k*ldk, its rows ldU apart; V and
    M hold `group` images of (ty1 - ty0)*ceil(W/2) tiles. Returns 0, or -1 if memory ran out."""
    cdef Py_ssize_t T = (ty1 - ty0) * ((W + 1) // 2), n = lo
    cdef int m, ld, k, status = 0
    while n < hi:
        m = <int> min(group, hi - n)
        ld = m * <int> T                           # row stride of V and M for these m images
        status = _input_core(x + n * C * H * W, m, C, H, W, V, ld, ty0, ty1)
        if status != 0:
            return status
        for k in range(16):                        # M_k = U_k @ V_k
            if floating is float and _sgemm != NULL:
                _sgemm(F, ld, C, U + k * ldk, ldU, V + k * C * ld, ld, M + k * F * ld, ld)
            else:
                _matmul("N", "N", <int> F, ld, <int> C, U + k * ldk, <int> ldU, V + k * C * ld, ld, 0,
                        M + k * F * ld, ld)
        status = _output_core(M, ld, out + n * F * H * W, m, F, H, W, bias, ty0, ty1)
        if status != 0:
            return status
        n += m
    return 0


cdef struct ConvForwardArgs:                       # one conv_forward call, on raw pointers
    const void* x
    const void* U
    const void* bias                               # NULL: no bias
    void* out
    void* V
    void* M
    Py_ssize_t ldk, ldU, C, H, W, F, lo, hi, ty0, ty1, group
    bint double_precision
    int status                                     # 0, or -1 if memory ran out


cdef int _conv_forward_task(void* arg) noexcept nogil:
    """The task function of ConvForwardTask (a _gate.task_fn): runs the call its argument holds."""
    cdef ConvForwardArgs* a = <ConvForwardArgs*> arg
    if a.double_precision:
        a.status = _conv_forward_core(<const double*> a.x, <const double*> a.U, a.ldk, a.ldU, <const double*> a.bias,
                                      <double*> a.out, <double*> a.V, <double*> a.M, a.C, a.H, a.W, a.F,
                                      a.lo, a.hi, a.ty0, a.ty1, a.group)
    else:
        a.status = _conv_forward_core(<const float*> a.x, <const float*> a.U, a.ldk, a.ldU, <const float*> a.bias,
                                      <float*> a.out, <float*> a.V, <float*> a.M, a.C, a.H, a.W, a.F,
                                      a.lo, a.hi, a.ty0, a.ty1, a.group)
    return a.status


cdef void* _data(cnp.ndarray arr, object dtype, str name, bint contiguous=True) except NULL:
    """The address of arr's first element, once arr is known to be of dtype (and C-contiguous)."""
    if arr.dtype != dtype or (contiguous and not cnp.PyArray_IS_C_CONTIGUOUS(arr)):
        raise ValueError(f"conv_forward: {name} must be {'C-contiguous ' if contiguous else ''}{dtype}, "
                         f"got {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"conv_forward: {name} is empty")
    return cnp.PyArray_DATA(arr)


cdef class ConvForwardTask:
    """conv_forward's arguments held for one run: by run() on this thread, or by a pool thread
    without the GIL (address: the task function and its argument, for _gate.Gate.post_task).
    Holds its arrays, so the addresses stay valid while the task lives."""
    cdef ConvForwardArgs a
    cdef tuple arrays

    def __init__(self, cnp.ndarray x, cnp.ndarray U, bias, cnp.ndarray out, cnp.ndarray V, cnp.ndarray M,
                 Py_ssize_t lo, Py_ssize_t hi, tile_rows=None):
        cdef Py_ssize_t itemsize = x.itemsize
        if x.ndim != 4 or U.ndim != 3 or out.ndim != 4 or V.ndim != 3 or M.ndim != 3:
            raise ValueError("conv_forward: x and out must be 4-D, U, V and M 3-D")
        if x.dtype != np.float32 and x.dtype != np.float64:
            raise ValueError(f"conv_forward: x must be float32 or float64, got {x.dtype}")
        self.arrays = (x, U, bias, out, V, M)
        self.a.C, self.a.H, self.a.W, self.a.F = x.shape[1], x.shape[2], x.shape[3], U.shape[1]
        self.a.ty0, self.a.ty1 = tile_rows if tile_rows is not None else (0, (self.a.H + 1) // 2)
        T = (self.a.ty1 - self.a.ty0) * ((self.a.W + 1) // 2)
        self.a.lo, self.a.hi = lo, hi
        self.a.group = V.shape[2] // T if T > 0 else 0
        self.a.double_precision = x.dtype == np.float64
        self.a.status = 0
        if hi <= lo or T == 0:
            self.a.lo = self.a.hi = 0                # nothing to do
            return
        if (not 0 <= lo <= hi <= x.shape[0] or self.a.group < 1 or V.shape[0] != 16 or V.shape[1] != self.a.C
                or M.shape[0] != 16 or M.shape[1] != self.a.F or M.shape[2] < self.a.group * T
                or U.shape[0] != 16 or U.shape[2] != self.a.C or out.shape[0] != x.shape[0]
                or out.shape[1] != self.a.F or out.shape[2] != self.a.H or out.shape[3] != self.a.W):
            raise ValueError(f"conv_forward: arrays that do not fit x {np.shape(x)} and U {np.shape(U)}: out "
                             f"{np.shape(out)}, V {np.shape(V)}, M {np.shape(M)}, images {lo}..{hi - 1}, "
                             f"{T} tiles per image (kernels.winograd_conv_task says which)")
        self.a.x = _data(x, x.dtype, "x")
        self.a.U = _data(U, x.dtype, "U", contiguous=False)
        if ((self.a.C > 1 and U.strides[2] != itemsize) or (self.a.F > 1 and U.strides[1] != self.a.C * itemsize)
                or U.strides[0] % itemsize):
            raise ValueError("conv_forward: U's (F, C) planes must be C-contiguous")
        self.a.ldk, self.a.ldU = U.strides[0] // itemsize, self.a.C
        self.a.bias = _data(bias, x.dtype, "bias") if bias is not None else NULL
        self.a.out = _data(out, x.dtype, "out")
        self.a.V = _data(V, x.dtype, "V")
        self.a.M = _data(M, x.dtype, "M")

    @property
    def address(self):
        """(task function, argument) addresses, for _gate.Gate.post_task."""
        return <uintptr_t> &_conv_forward_task, <uintptr_t> &self.a

    def run(self):
        """Run the call here, without the GIL; raises MemoryError if memory ran out."""
        with nogil:
            _conv_forward_task(&self.a)
        self.check()

    def check(self):
        """Raise MemoryError if the last run (here or on a pool thread) ran out of memory."""
        if self.a.status != 0:
            raise MemoryError("conv_forward: out of memory for the transforms' buffers")


def conv_forward(x, U, bias, out, V, M, Py_ssize_t lo, Py_ssize_t hi, tile_rows=None):
    """out[n] = conv(x[n], W) (+ bias) for the images n in lo..hi-1: 3x3, stride 1, padding 1.

    x: (N, C, H, W); U: (16, F, C) = G W G^T, each (F, C) plane C-contiguous; bias: (F,) or None;
    out: (N, F, H, W); V: (16, C, m*T) and M: (16, F, m*T) scratch for m >= 1 images per call,
    T = ceil(H/2)*ceil(W/2), or (ty1 - ty0)*ceil(W/2) with tile_rows = (ty0, ty1): then only the
    output rows 2ty0 .. 2ty1 - 1 are computed. One dtype; tinycnn.kernels checks the shapes.
    Runs ConvForwardTask, which a pool thread can also run without the GIL.
    """
    ConvForwardTask(x, U, bias, out, V, M, lo, hi, tile_rows).run()


def weight_products(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dout, floating[:, :, ::1] acc,
                    floating[:, :, ::1] V, floating[:, :, ::1] D, Py_ssize_t lo, Py_ssize_t hi, bint tile_major=False):
    """acc_k += D_k @ V_k.T for k < 16, summed over the images n in lo..hi-1: D = G2 g G2^T of the
    2x2 tiles of dout[n], V = B^T d B of the 4x4 tiles of x[n] (the weight gradient's 16 GEMMs).

    x: (N, C, H, W); dout: (N, F, H, W); acc: (16, F, C), added to; V: (16, C, m*T) and D scratch
    for m >= 1 images per call: (16, F, m*T), or (16, m*T, F) if tile_major, and then each GEMM
    reads D_k transposed (acc_k += D_k.T @ V_k.T; through the GEMM set_sgemm gave, acc_k.T +=
    V_k @ D_k). One dtype.
    """
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], W = x.shape[3], Fs = dout.shape[1]
    cdef Py_ssize_t T = ((H + 1) // 2) * ((W + 1) // 2), group = V.shape[2] // T, n = lo
    cdef int F = Fs, Ci = C, m, ld, k, status = 0
    cdef Py_ssize_t c, f
    cdef floating* Vp
    cdef floating* Dp
    cdef float* prod = NULL                        # (C, F): one product of the GEMM set_sgemm gave
    if hi <= lo or T == 0:
        return
    if floating is float and _sgemm != NULL and tile_major:
        prod = <float*> malloc(max(Ci * F, 1) * sizeof(float))
        if prod == NULL:
            raise MemoryError()
    with nogil:
        Vp = &V[0, 0, 0]
        Dp = &D[0, 0, 0]
        while n < hi:
            m = <int> min(group, hi - n)
            ld = m * <int> T
            status = _input_core(&x[n, 0, 0, 0], m, C, H, W, Vp, ld, 0, (H + 1) // 2)
            if status == 0:
                if tile_major:
                    status = _dout_core_tiles(&dout[n, 0, 0, 0], m, Fs, H, W, Dp, ld)
                else:
                    status = _dout_core(&dout[n, 0, 0, 0], m, Fs, H, W, Dp, ld)
            if status != 0:
                break
            for k in range(16):                    # acc_k += D_k @ V_k.T
                if floating is float and _sgemm != NULL and tile_major:
                    _sgemm(Ci, F, ld, <float*> Vp + k * C * ld, ld, <float*> Dp + k * Fs * ld, F, <float*> prod, F)
                    for c in range(Ci):            # prod (C, F) = V_k @ D_k = acc_k.T's increment
                        for f in range(F):
                            acc[k, f, c] += prod[c * F + f]
                elif tile_major:
                    _matmul("T", "T", F, Ci, ld, Dp + k * Fs * ld, F, Vp + k * C * ld, ld, 1, &acc[k, 0, 0], Ci)
                else:
                    _matmul("N", "T", F, Ci, ld, Dp + k * Fs * ld, ld, Vp + k * C * ld, ld, 1, &acc[k, 0, 0], Ci)
            n += m
    free(prod)
    if status != 0:
        raise MemoryError()
