"""2-D max pooling, with overlapping windows allowed (stride < size)."""
from .. import kernels
from .base import Layer, pair


class MaxPool2D(Layer):
    """MaxPool2D(size, stride=None): max over size windows; stride defaults to size.

    x: (N, C, H, W) -> out: (N, C, OH, OW), OH = (H - kh) // sh + 1 (no padding).
    Backward routes each dout entry to its window's (first) maximum; with
    stride < size an input that wins several windows receives their sum.
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
        self.output_shape(x.shape[1:])
        (kh, kw), (sh, sw) = self.size, self.stride
        out, self.argmax = kernels.maxpool_forward(x, kh, kw, sh, sw)
        self.x_shape = x.shape
        return out

    def backward(self, dout, need_dx=True):
        """dout: (N, C, OH, OW) -> dx: (N, C, H, W) (None if not need_dx)."""
        argmax = self._cached(self.argmax, "the argmax map")
        dx = None
        if need_dx:
            (kh, kw), (sh, sw) = self.size, self.stride
            dx = kernels.maxpool_backward(dout, argmax, self.x_shape[2], self.x_shape[3], kh, kw, sh, sw)
        self.clear_cache()
        return dx

    def clear_cache(self):
        self.x_shape = self.argmax = None
