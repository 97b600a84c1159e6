"""NumPy reference for the Winograd products' GEMM of ``_gemm.pyx``; the same signature."""
import numpy as np


def matmul(A, B, C):
    """C = A @ B: A (M, K), B (K, N), C (M, N), written."""
    np.matmul(A, B, out=C)
