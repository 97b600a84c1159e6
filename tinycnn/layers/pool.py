"""2-D max pooling, with overlapping windows allowed (stride < size)."""
import numpy as np

from .. import kernels
from ..parallel import ELEMENT_WORK, grain, parallel_for
from .base import Layer, pair


class MaxPool2D(Layer):
    """MaxPool2D(size, stride=None): max over size windows; stride defaults to size.

    x: (N, C, H, W) -> out: (N, C, OH, OW), OH = (H - kh) // sh + 1 (no padding).
    Backward routes each dout entry to its window's (first) maximum; with
    stride < size an input that wins several windows receives their sum. The images of a
    batch are split over the engine's threads (tinycnn.parallel).
    """

    def __init__(self, size=2, stride=None):
        super().__init__()
        self.size = pair(size, "size")
        self.stride = self.size if stride is None else pair(stride, "stride")
        if min(self.size) < 1 or min(self.stride) < 1:
            raise ValueError(f"size and stride must be >= 1, got size={self.size}, stride={self.stride}")
        self.x_shape = None  # (N, C, H, W) of the last forward
        self.argmax = None   # (N, C, OH, OW) int32: offset i*kw + j of each window's max

    def config(self):
        return {"size": list(self.size), "stride": list(self.stride)}

    def output_shape(self, input_shape):
        C, H, W = input_shape
        (kh, kw), (sh, sw) = self.size, self.stride
        if H < kh or W < kw:
            raise ValueError(f"MaxPool2D window {kh}x{kw} is larger than the input {H}x{W}")
        return C, (H - kh) // sh + 1, (W - kw) // sw + 1

    def forward(self, x, training=False):
        """x: (N, C, H, W) float -> (N, C, OH, OW)."""
        self._check_input(x, 4, "(N, C, H, W)")
        shape = (len(x),) + self.output_shape(x.shape[1:])
        (kh, kw), (sh, sw) = self.size, self.stride
        x = np.ascontiguousarray(x)
        out, argmax = np.empty(shape, dtype=x.dtype), np.empty(shape, dtype=np.int32)

        def images(lo, hi):                  # out = max over each window, argmax = where
            kernels.maxpool_forward(x[lo:hi], kh, kw, sh, sw, out=out[lo:hi], argmax=argmax[lo:hi])
        parallel_for(len(x), images, grain=grain(ELEMENT_WORK * x[:1].size))
        self.x_shape, self.argmax = x.shape, argmax
        return out

    def backward(self, dout, need_dx=True):
        """dout: (N, C, OH, OW) -> dx: (N, C, H, W) (None if not need_dx)."""
        argmax = self._cached(self.argmax, "the argmax map")
        x_shape = self.x_shape
        self.clear_cache()
        if not need_dx:
            return None
        (kh, kw), (sh, sw) = self.size, self.stride
        dout = np.ascontiguousarray(dout)
        dx = np.empty(x_shape, dtype=dout.dtype)

        def images(lo, hi):                  # dx[window max] += dout, zero elsewhere
            kernels.maxpool_backward(dout[lo:hi], argmax[lo:hi], x_shape[2], x_shape[3], kh, kw, sh, sw,
                                     out=dx[lo:hi])
        parallel_for(len(dout), images, grain=grain(ELEMENT_WORK * dx[:1].size))
        return dx

    def clear_cache(self):
        self.x_shape = self.argmax = None
