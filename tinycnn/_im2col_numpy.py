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
