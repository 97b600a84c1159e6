# BLAS for the compiled kernels, through SciPy's Cython interface (no GIL needed), with the
# product stated row-major. Included by _im2col.pyx and _winograd.pyx.
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline void _matmul(char* ta, char* tb, int M, int N, int K, const floating* A, int lda,
                         const floating* B, int ldb, floating beta, floating* C, int ldc) noexcept nogil:
    """Row-major C (M, N) = op(A) @ op(B) + beta*C, op(X) = X, or X.T where the flag is "T".

    BLAS is column-major, where row-major C is C.T = op(B).T @ op(A).T: the same flags with
    the operands swapped."""
    cdef floating one = 1
    if floating is float:
        sgemm(tb, ta, &N, &M, &K, &one, <float*> B, &ldb, <float*> A, &lda, &beta, C, &ldc)
    else:
        dgemm(tb, ta, &N, &M, &K, &one, <double*> B, &ldb, <double*> A, &lda, &beta, C, &ldc)
