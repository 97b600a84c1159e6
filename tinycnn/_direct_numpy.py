"""NumPy reference for the direct 3x3 convolution (stride 1, padding 1); same signatures as
``_direct.pyx``.

With xp the input zero-padded by 1, each output is 9 shifted products summed over channels:
    out[n, f, y, x] = b[f] + sum over c, i, j of W[f, c, i, j] * xp[n, c, y + i, x + j]
so the whole forward is 9 matrix products, one per tap (i, j):
    out[n] = b + sum over (i, j) of W[:, :, i, j] @ xp[n, :, i:i + H, j:j + W]     (F, C) @ (C, H, W)
Backward, with dout zero-padded by 1 as doutp:
    dW[:, :, i, j] = sum over n of dout[n] . xp[n, :, i:i + H, j:j + W]              (F, C)
    db             = sum of dout over images and pixels
    dx[n]          = sum over (i, j) of W[:, :, i, j].T @ doutp[n, :, 2 - i:2 - i + H, 2 - j:2 - j + W]
dx is the same convolution of dout, with the kernel flipped and its channel axes swapped.
"""
import numpy as np


def _padded(a):
    """(N, C, H, W) -> (N, C, H + 2, W + 2), zero-padded by 1."""
    return np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))


def conv_forward(x, W, b, out, lo, hi):
    """out[lo:hi] = conv(x[lo:hi], W) + b. x: (N, C, H, W); W: (F, C, 3, 3); b: (F,); out: (N, F, H, W)."""
    H, Wd = x.shape[2:]
    xp = _padded(x[lo:hi])
    acc = np.zeros((hi - lo, W.shape[0], H, Wd), dtype=x.dtype)
    for i in range(3):
        for j in range(3):
            acc += np.einsum("fc,nchw->nfhw", W[:, :, i, j], xp[:, :, i:i + H, j:j + Wd])
    out[lo:hi] = acc + b[:, None, None]


def conv_weight_grad(x, dout, dW, db, lo, hi):
    """dW, db = the gradients from images lo..hi-1 (written, not added to). x: (N, C, H, W);
    dout: (N, F, H, W); dW: (F, C, 3, 3); db: (F,)."""
    H, Wd = x.shape[2:]
    xp = _padded(x[lo:hi])
    for i in range(3):
        for j in range(3):
            dW[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout[lo:hi], xp[:, :, i:i + H, j:j + Wd])
    db[...] = dout[lo:hi].sum(axis=(0, 2, 3))


def conv_input_grad(dout, W, dx, lo, hi):
    """dx[lo:hi] = conv(dout[lo:hi], W flipped, channels swapped). dout: (N, F, H, W);
    W: (F, C, 3, 3); dx: (N, C, H, W)."""
    H, Wd = dout.shape[2:]
    doutp = _padded(dout[lo:hi])
    acc = np.zeros((hi - lo, W.shape[1], H, Wd), dtype=dout.dtype)
    for i in range(3):
        for j in range(3):
            acc += np.einsum("fc,nfhw->nchw", W[:, :, i, j], doutp[:, :, 2 - i:2 - i + H, 2 - j:2 - j + Wd])
    dx[lo:hi] = acc
