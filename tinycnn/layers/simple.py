"""Parameter-free layers: ReLU, Flatten, Dropout."""
import numpy as np

from .. import kernels
from ..parallel import ELEMENT_WORK, grain, parallel_for
from .base import Layer


class ReLU(Layer):
    """out = max(x, 0), any shape. Backward: dx = dout where out > 0, else 0 (out > 0 iff x > 0).

    The forward's output is what backward reads, so it is kept instead of a mask: the next
    layer usually keeps the same array as its input, which then costs no memory. The images
    of a batch are split over the engine's threads (tinycnn.parallel).

    With overwrite=True (Sequential passes it for the arrays it made) out is written into x and
    dx into dout: no new array to allocate, and one fewer to stream through the cache. After a
    32 -> 32 conv at batch 32, one thread: 0.30-0.44 ms in place against 0.75-0.84 ms into a
    new array (measured).
    """

    can_overwrite_input = True

    def __init__(self):
        super().__init__()
        self.out = None  # x.shape: the output of the last forward

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False, overwrite=False):
        """x: (N, ...) float -> same shape; x itself (overwritten) if overwrite and x is writeable."""
        self._check_input(x, None, "(N, ...)")
        x = np.ascontiguousarray(x)
        out = x if overwrite and x.flags.writeable else np.empty_like(x)

        def images(lo, hi):
            kernels.relu_forward(x[lo:hi], out[lo:hi])               # out = max(x, 0)
        parallel_for(len(x), images, grain=grain(ELEMENT_WORK * x[:1].size))
        self.out = out
        return out

    def backward(self, dout, need_dx=True, overwrite=False):
        """dout: the forward's output shape -> dx, same shape (dout itself if overwrite and writeable)."""
        out = self._cached(self.out, "the forward's output")
        self.clear_cache()
        if not need_dx:
            return None
        dout = np.ascontiguousarray(dout, dtype=out.dtype)
        dx = dout if overwrite and dout.flags.writeable and dout.shape == out.shape else np.empty_like(out)

        def images(lo, hi):
            kernels.relu_backward(dout[lo:hi], out[lo:hi], dx[lo:hi])   # dx = dout where out > 0, else 0
        parallel_for(len(out), images, grain=grain(ELEMENT_WORK * out[:1].size))
        return dx

    def clear_cache(self):
        self.out = None


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), C-order (PyTorch's torch.flatten(x, 1))."""

    def __init__(self):
        super().__init__()
        self.x_shape = None

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self._check_input(x, None, "(N, ...)")
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_dx=True):
        x_shape = self._cached(self.x_shape, "the input shape")
        self.clear_cache()
        return dout.reshape(x_shape) if need_dx else None

    def clear_cache(self):
        self.x_shape = None


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability p and scale the
    survivors by 1/(1-p), so evaluation is the identity. Any shape.

    Draws come from the layer's own Generator; ``reseed(s)`` makes them repeatable.
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        if not (isinstance(p, (int, float)) and 0.0 <= p < 1.0):
            raise ValueError(f"Dropout p must be a float in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)
        self.mask = None  # after a training forward: x.shape, 0 or 1/(1-p); after an eval forward: 1

    def config(self):
        return {"p": self.p}

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def reseed(self, seed):
        self.rng = np.random.default_rng(seed)

    def forward(self, x, training=False):
        self._check_input(x, None, "(N, ...)")
        if not training or self.p == 0.0:
            self.mask = np.ones((), dtype=x.dtype)  # identity; broadcasts in backward
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
        self.mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self.mask

    def backward(self, dout, need_dx=True):
        mask = self._cached(self.mask, "the dropout mask")
        self.clear_cache()
        return dout * mask if need_dx else None

    def clear_cache(self):
        self.mask = None
