"""Vectorised NumPy reference for 2-D max pooling, forward and backward.

Same signatures as the compiled kernels in ``_pool.pyx``. ``argmax`` holds, for
each output, the offset k = i*kw + j of the winning input inside its window;
ties go to the first maximum in row-major window order (strict ``>``), which
the Cython kernel reproduces exactly.
"""
import numpy as np

from ._im2col_numpy import out_size


def maxpool_forward(x, kh, kw, sh, sw, out_arr=None, arg_arr=None):
    """x: (N, C, H, W) -> out: (N, C, OH, OW) same dtype, argmax: (N, C, OH, OW) int32,
    written into out_arr and arg_arr if given."""
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, 0), out_size(W, kw, sw, 0)
    out = np.empty((N, C, OH, OW), dtype=x.dtype) if out_arr is None else out_arr
    argmax = np.empty((N, C, OH, OW), dtype=np.int32) if arg_arr is None else arg_arr
    out[...] = x[:, :, 0:sh * OH:sh, 0:sw * OW:sw]
    argmax[...] = 0
    for i in range(kh):
        for j in range(kw):
            if i == 0 and j == 0:
                continue
            window = x[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw]
            better = window > out
            np.copyto(out, window, where=better)
            np.copyto(argmax, i * kw + j, where=better)
    return out, argmax


def maxpool_backward(dout, argmax, H, W, kh, kw, sh, sw, dx_arr=None):
    """dout, argmax: (N, C, OH, OW) -> dx: (N, C, H, W), written into dx_arr if given;
    dout routed to each window's max.

    With overlapping windows (stride < size) one input can win several windows;
    its gradient is the sum of theirs.
    """
    N, C, OH, OW = dout.shape
    dx = np.empty((N, C, H, W), dtype=dout.dtype) if dx_arr is None else dx_arr
    dx[...] = 0
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw] += np.where(argmax == i * kw + j, dout, 0)
    return dx
