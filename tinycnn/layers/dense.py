"""Fully connected layer: out = x @ W + b."""
import numpy as np

from ..parallel import WEIGHT_READ_WORK, grain, parallel_for
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
        W, b = self.params["W"], self.params["b"]
        N = x.shape[0]
        if N < WEIGHT_READ_WORK:
            # A few rows (batch-1 latency): the GEMV streams W from memory. Split W by rows (input
            # features), so each thread reads one contiguous block, and add the partial products
            # in chunk order. Splitting by columns instead, EdgeCNN-3's batch-1 forward on two
            # threads took 1.16-1.26x as long (alternating blocks, measured).
            def inputs(lo, hi):                        # input features lo..hi-1, one thread
                return np.matmul(x[:, lo:hi], W[lo:hi])                 # (N, out_features)
            parts = parallel_for(self.in_features, inputs, grain=grain(WEIGHT_READ_WORK * self.out_features))
            out = parts[0]
            for part in parts[1:]:
                out += part                            # out = x @ W, summed over row blocks
        else:
            out = np.empty((N, self.out_features), dtype=x.dtype)

            def features(lo, hi):                      # output features lo..hi-1, one thread
                np.matmul(x, W[:, lo:hi], out=out[:, lo:hi])
            parallel_for(self.out_features, features, grain=grain(N * self.in_features))
        out += b                                       # out = x @ W + b
        self.x = x
        return out

    def backward(self, dout, need_dx=True):
        """dout: (N, out_features) -> dx: (N, in_features) (None if not need_dx)."""
        x = self._cached(self.x, "the input")
        W = self.params["W"]
        dW = self.grad_buffer("W") if self.trainable else None
        # dx = dout @ W.T, computed as its transpose W @ dout.T: 1.4-1.8x faster in OpenBLAS
        # at batch 32 for the nets' fc shapes (alternating blocks, one thread, measured)
        dxT = np.empty(x.shape[::-1], dtype=x.dtype) if need_dx else None    # (in_features, N)

        def inputs(lo, hi):                            # input features lo..hi-1, one thread
            if dW is not None:
                np.matmul(x[:, lo:hi].T, dout, out=dW[lo:hi])           # dW = x.T @ dout
            if dxT is not None:
                np.matmul(W[lo:hi], dout.T, out=dxT[lo:hi])             # dx.T = W @ dout.T
        parallel_for(self.in_features, inputs, grain=grain(2 * x.shape[0] * self.out_features))
        if dW is not None:
            np.sum(dout, axis=0, out=self.grad_buffer("b"))             # db = dout.sum(0)
        self.clear_cache()
        return None if dxT is None else np.ascontiguousarray(dxT.T)

    def clear_cache(self):
        self.x = None
