"""NumPy reference for ReLU; same signatures and values as ``_relu.pyx``."""
import numpy as np


def relu_forward(x, out):
    """out = max(x, 0) (NaN stays NaN). x, out: 1-D, equal length."""
    np.maximum(x, x.dtype.type(0), out=out)


def relu_backward(dout, out, dx):
    """dx = dout where out > 0, else 0 (out: the forward's output; out > 0 iff x > 0)."""
    dx[...] = np.where(out > 0, dout, dout.dtype.type(0))
