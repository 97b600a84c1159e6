"""Fully connected layer: out = x @ W + b."""
import numpy as np

from .. import kernels
from .base import Layer, check_positive, init_weights


class Dense(Layer):
    """Dense(in_features, out_features).

    x: (N, in_features) -> out: (N, out_features).
    params["W"]: (in_features, out_features), params["b"]: (out_features,). init: "he-normal"
    (default) or "glorot-uniform" (layers.base.init_weights); bias 0.
    Backward: dW = x.T @ dout, db = dout.sum(0), dx = dout @ W.T.
    """

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32, init="he-normal"):
        super().__init__()
        self.in_features = check_positive(in_features, "in_features")
        self.out_features = check_positive(out_features, "out_features")
        rng = np.random.default_rng(rng)
        W = init_weights(rng, (in_features, out_features), in_features, out_features, init)
        self.params = {"W": W.astype(dtype), "b": np.zeros(out_features, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.x = None  # (N, in_features) input of the last forward

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            raise ValueError(f"Dense expected {self.in_features} input features, "
                             f"got per-sample shape {tuple(input_shape)}")
        return (self.out_features,)

    def forward(self, x, training=False):
        """x: (N, in_features) float -> (N, out_features)."""
        self._check_input(x, 2, "(N, in_features)")
        self.output_shape(x.shape[1:])
        self.x = x
        out = kernels.matmul(x, self.params["W"])
        out += self.params["b"]
        return out

    def backward(self, dout, need_dx=True):
        """dout: (N, out_features) -> dx: (N, in_features) (None if not need_dx)."""
        x = self._cached(self.x, "the input")
        if self.trainable:
            kernels.matmul(x.T, dout, out=self.grad_buffer("W"))
            np.sum(dout, axis=0, out=self.grad_buffer("b"))
        dx = kernels.matmul(dout, self.params["W"].T) if need_dx else None
        self.clear_cache()
        return dx

    def clear_cache(self):
        self.x = None
