"""NumPy reference for the fully connected layer's GEMMs; same signatures as ``_dense.pyx``."""
import numpy as np


def forward(W, xT, outT, lo, hi):
    """outT[lo:hi] = W[lo:hi] @ xT. W: (M, K), xT: (K, N), outT: (M, N)."""
    np.matmul(W[lo:hi], xT, out=outT[lo:hi])


def weight_grad(doutT, x, dW, lo, hi):
    """dW[lo:hi] = doutT[lo:hi] @ x. doutT: (M, K), x: (K, N), dW: (M, N)."""
    np.matmul(doutT[lo:hi], x, out=dW[lo:hi])


def input_grad(dout, W, dx, lo, hi):
    """dx[:, lo:hi] = dout @ W[:, lo:hi]. dout: (N, K), W: (K, M), dx: (N, M)."""
    np.matmul(dout, W[:, lo:hi], out=dx[:, lo:hi])
