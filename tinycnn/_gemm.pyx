# A float32 GEMM for the Winograd path's 16 products, row-major, with no packing (both operands fit
# in L1 or L2): C (M, N) = A (M, K) @ B (K, N). The forward's and dx's M_k = U_k @ V_k (K: the
# input channels), and dW's acc_k.T = V_k @ D_k with D tile-major (K: the tiles). Reference:
# _gemm_numpy.py.
#
# Written over the vectors of _vec.pxi and built with AVX2 and FMA (tinycnn._avx2._gemm, setup.py);
# tinycnn.kernels hands it to the Winograd kernels on CPUs with AVX2 and FMA but no AVX-512. There
# OpenBLAS packs both operands before its kernel, which at these shapes costs about what the
# multiplications do. 16 products, one thread, GFLOP/s of this kernel vs OpenBLAS's Haswell kernel
# (held to AVX2 on an AVX-512 Xeon, medians): 32 x 32 x 196 81-83 vs 55, 20 x 20 x 392 75-80 vs
# 44, 128 x 128 x 196 83-84 vs 78. With AVX-512, OpenBLAS's SkylakeX kernel was faster at 32 x 32
# x 196 (122 vs 107 for a 16-lane build of this kernel), so there it stays.
#
# A tile of C is 6 rows x 2 vectors (12 accumulators; with B's two vectors and one broadcast of A,
# 15 of AVX2's 16 registers): per k, two loads of B's row k and 12 FMAs.

include "_vec.pxi"

from libc.stdint cimport uintptr_t

cdef enum:
    ROWS = 6                                    # rows of a tile


cdef inline void _tile(const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc,
                       Py_ssize_t K, const int R) noexcept nogil:
    """C[r, 0:2L] = sum over k of A[r, k] * B[k, 0:2L] for r < R (L = VEC_LANES); K >= 1."""
    cdef vec_t acc[2 * ROWS]
    cdef vec_t b0, b1, a
    cdef Py_ssize_t k, r
    b0 = vec_load(B)
    b1 = vec_load(B + VEC_LANES)
    for r in range(R):                          # k = 0 (a product, so no zeroing: K >= 1)
        a = vec_set1(A[r * lda])
        acc[2 * r] = vec_mul(a, b0)
        acc[2 * r + 1] = vec_mul(a, b1)
    for k in range(1, K):
        b0 = vec_load(B + k * ldb)
        b1 = vec_load(B + k * ldb + VEC_LANES)
        for r in range(R):
            a = vec_set1(A[r * lda + k])
            acc[2 * r] = vec_fmadd(a, b0, acc[2 * r])
            acc[2 * r + 1] = vec_fmadd(a, b1, acc[2 * r + 1])
    for r in range(R):
        vec_store(C + r * ldc, acc[2 * r])
        vec_store(C + r * ldc + VEC_LANES, acc[2 * r + 1])


cdef inline void _tile_masked(const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb, float* C,
                              Py_ssize_t ldc, Py_ssize_t K, Py_ssize_t n, const int R) noexcept nogil:
    """_tile on the last n < 2L columns: B read under the masks of its two vectors, and only
    C[r, 0:n] written."""
    cdef vec_t acc[2 * ROWS]
    cdef vec_t b0, b1, a
    cdef Py_ssize_t k, r
    cdef vec_mask_t m0 = vec_mask(n), m1 = vec_mask(n - VEC_LANES)
    b0 = vec_maskz_load(m0, B)
    b1 = vec_maskz_load(m1, B + VEC_LANES)
    for r in range(R):                          # k = 0 (a product, so no zeroing: K >= 1)
        a = vec_set1(A[r * lda])
        acc[2 * r] = vec_mul(a, b0)
        acc[2 * r + 1] = vec_mul(a, b1)
    for k in range(1, K):
        b0 = vec_maskz_load(m0, B + k * ldb)
        b1 = vec_maskz_load(m1, B + k * ldb + VEC_LANES)
        for r in range(R):
            a = vec_set1(A[r * lda + k])
            acc[2 * r] = vec_fmadd(a, b0, acc[2 * r])
            acc[2 * r + 1] = vec_fmadd(a, b1, acc[2 * r + 1])
    for r in range(R):
        vec_store_first(C + r * ldc, n, acc[2 * r])
        vec_store_first(C + r * ldc + VEC_LANES, n - VEC_LANES, acc[2 * r + 1])


cdef void _rows(const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc,
                Py_ssize_t K, Py_ssize_t left) noexcept nogil:
    """The 1 to ROWS - 1 rows left below the full tiles, on one full panel."""
    if left == 1:
        _tile(A, lda, B, ldb, C, ldc, K, 1)
    elif left == 2:
        _tile(A, lda, B, ldb, C, ldc, K, 2)
    elif left == 3:
        _tile(A, lda, B, ldb, C, ldc, K, 3)
    elif left == 4:
        _tile(A, lda, B, ldb, C, ldc, K, 4)
    elif left == 5:
        _tile(A, lda, B, ldb, C, ldc, K, 5)


cdef void _rows_masked(const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc,
                       Py_ssize_t K, Py_ssize_t n, Py_ssize_t left) noexcept nogil:
    """_rows on the last, masked panel."""
    if left == 1:
        _tile_masked(A, lda, B, ldb, C, ldc, K, n, 1)
    elif left == 2:
        _tile_masked(A, lda, B, ldb, C, ldc, K, n, 2)
    elif left == 3:
        _tile_masked(A, lda, B, ldb, C, ldc, K, n, 3)
    elif left == 4:
        _tile_masked(A, lda, B, ldb, C, ldc, K, n, 4)
    elif left == 5:
        _tile_masked(A, lda, B, ldb, C, ldc, K, n, 5)


cdef void gemm_nn(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float* A, Py_ssize_t lda, const float* B,
                  Py_ssize_t ldb, float* C, Py_ssize_t ldc) noexcept nogil:
    """Row-major C (M, N) = A (M, K) @ B (K, N), rows lda, ldb, ldc floats apart, K >= 1; C is written.
    Panels of 2L columns (L = VEC_LANES), the last one masked; in each, tiles of ROWS rows, then
    one tile of the rows left."""
    cdef Py_ssize_t i, j = 0, W2 = 2 * VEC_LANES, full = M - M % ROWS
    while j + W2 <= N:
        for i in range(0, full, 6):                 # 6 = ROWS (a range step must be a literal)
            _tile(A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc, K, ROWS)
        if full < M:
            _rows(A + full * lda, lda, B + j, ldb, C + full * ldc + j, ldc, K, M - full)
        j += W2
    if j < N:
        for i in range(0, full, 6):                 # 6 = ROWS
            _tile_masked(A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc, K, N - j, ROWS)
        if full < M:
            _rows_masked(A + full * lda, lda, B + j, ldb, C + full * ldc + j, ldc, K, N - j, M - full)


def address():
    """The address of the C function gemm_nn, for the Winograd kernels (_winograd.set_sgemm)."""
    return <uintptr_t> &gemm_nn


def matmul(const float[:, ::1] A, const float[:, ::1] B, float[:, ::1] C):
    """C = A @ B: A (M, K), B (K, N), C (M, N), written; float32, C-contiguous."""
    cdef Py_ssize_t M = A.shape[0], K = A.shape[1], N = B.shape[1]
    if B.shape[0] != K or C.shape[0] != M or C.shape[1] != N:
        raise ValueError(f"matmul: A (M, K), B (K, N) and C (M, N) must agree, got A ({M}, {K}), "
                         f"B ({B.shape[0]}, {N}), C ({C.shape[0]}, {C.shape[1]})")
    if M == 0 or N == 0:
        return
    if K == 0:
        C[...] = 0
        return
    with nogil:
        gemm_nn(M, N, K, &A[0, 0], K, &B[0, 0], N, &C[0, 0], N)
