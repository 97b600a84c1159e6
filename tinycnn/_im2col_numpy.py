"""Vectorised NumPy reference for im2col / col2im.

Same signatures as the compiled kernels in ``_im2col.pyx``; ``tinycnn.kernels``
picks one. Each loops over the kh x kw kernel offsets and moves a whole strided
slice of the (padded) input per offset, so the Python loop runs kh*kw times.

Column layout (shared with the Cython kernels):
    col[(c*kh + i)*kw + j, (n*OH + oh)*OW + ow] = x_pad[n, c, oh*sh + i, ow*sw + j]
i.e. col: (C*kh*kw, N*OH*OW), rows ordered like W.reshape(F, C*kh*kw).
"""
import numpy as np


def out_size(size, k, stride, pad):
    """Output length of a sliding window: floor((size + 2*pad - k) / stride) + 1."""
    return (size + 2 * pad - k) // stride + 1


def im2col(x, kh, kw, sh, sw, ph, pw, out=None):
    """x: (N, C, H, W) float -> col: (C*kh*kw, N*OH*OW), same dtype.

    out: optional C-contiguous array of that shape and dtype to write into.
    """
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    if out is None:
        out = np.empty((C * kh * kw, N * OH * OW), dtype=x.dtype)
    col = out.reshape(C, kh, kw, N, OH, OW)  # a view: writes land in out
    for i in range(kh):
        for j in range(kw):
            # (N, C, OH, OW) window of offset (i, j) -> (C, N, OH, OW)
            col[:, i, j] = x_pad[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw].transpose(1, 0, 2, 3)
    return out


def col2im(col, N, C, H, W, kh, kw, sh, sw, ph, pw, out=None):
    """col: (C*kh*kw, N*OH*OW) -> dx: (N, C, H, W); the adjoint of im2col.

    out: optional C-contiguous (N, C, H, W) array of col's dtype to write into.

    Entries of col that came from the same input pixel (overlapping windows)
    are summed; entries that came from padding are dropped.
    """
    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    col6 = col.reshape(C, kh, kw, N, OH, OW)
    dx_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            dx_pad[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw] += col6[:, i, j].transpose(1, 0, 2, 3)
    if out is None:
        return np.ascontiguousarray(dx_pad[:, :, ph:ph + H, pw:pw + W])
    out[...] = dx_pad[:, :, ph:ph + H, pw:pw + W]
    return out


# The im2col convolution of a chunk of images, as the compiled kernels run it (_im2col.pyx):
# m images share one im2col call, col = (K + 1, m*P), image i's columns i*P .. i*P + P - 1.

def _group_col(col, m, P):
    """The first (K + 1) * m*P entries of the scratch col as a C-contiguous (K + 1, m*P) array."""
    return col.reshape(-1)[:col.shape[0] * m * P].reshape(col.shape[0], m * P)


def conv_forward(x, Wb, out, col, lo, hi, kh, kw, sh, sw, ph, pw):
    """out[n] = [W b] @ [im2col(x[n]); 1] for the images n in lo..hi-1.

    x: (N, C, H, W); Wb: (F, K + 1) = [W.reshape(F, K) b], K = C*kh*kw; out: (N, F, OH*OW);
    col: (K + 1, m*OH*OW) scratch, m images per im2col call.
    """
    K, P = Wb.shape[1] - 1, out.shape[2]
    group = col.shape[1] // P
    for n in range(lo, hi, group):
        m = min(group, hi - n)
        colb = _group_col(col, m, P)                          # [col; 1] of images n..n+m-1
        im2col(x[n:n + m], kh, kw, sh, sw, ph, pw, out=colb[:K])
        colb[K] = 1
        np.matmul(Wb, colb.reshape(K + 1, m, P).transpose(1, 0, 2), out=out[n:n + m])   # [W b] @ [col_i; 1]


def conv_backward(x, Wb, dout, dWbT, dx, col, lo, hi, kh, kw, sh, sw, ph, pw, weights, inputs):
    """For the images n in lo..hi-1: dWbT += [im2col(x[n]); 1] @ dout[n].T if weights,
    dx[n] = col2im(W.T @ dout[n]) if inputs, W = Wb[:, :K].

    x: (N, C, H, W); Wb: (F, K + 1); dout: (N, F, OH*OW); dWbT: (K + 1, F) = [dW.T; db], added
    to; dx: (N, C, H, W), overwritten; col: (K + 1, m*OH*OW) scratch.
    """
    N, C, H, W = x.shape
    K, P = Wb.shape[1] - 1, dout.shape[2]
    group = col.shape[1] // P
    for n in range(lo, hi, group):
        m = min(group, hi - n)
        colb = _group_col(col, m, P)
        cols = colb.reshape(K + 1, m, P).transpose(1, 0, 2)  # (m, K + 1, P): [col_i; 1]
        if weights:
            im2col(x[n:n + m], kh, kw, sh, sw, ph, pw, out=colb[:K])
            colb[K] = 1
            dWbT += np.matmul(cols, dout[n:n + m].transpose(0, 2, 1)).sum(axis=0)   # [col_i; 1] @ dout_i.T
        if inputs:
            np.matmul(Wb[:, :K].T, dout[n:n + m], out=cols[:, :K])   # dcol_i = W.T @ dout_i
            col2im(colb[:K], m, C, H, W, kh, kw, sh, sw, ph, pw, out=dx[n:n + m])
