"""Fully connected layer: out = x @ W.T + b, W stored (out_features, in_features) as in PyTorch."""
import numpy as np

from .. import kernels
from ..parallel import WEIGHT_READ_WORK, grain, parallel_for, run_tasks, split
from .base import Layer, check_positive, init_weights


class Dense(Layer):
    """Dense(in_features, out_features).

    x: (N, in_features) -> out: (N, out_features).
    params["W"]: (out_features, in_features), params["b"]: (out_features,). init: "he-normal"
    (default) or "glorot-uniform" (layers.base.init_weights); bias 0.
    Backward: dW = dout.T @ x, db = dout.sum(0), dx = dout @ W.
    The three GEMMs run in kernels.dense_forward (as one task per thread, dense_forward_task),
    dense_weight_grad and dense_input_grad (each one np.matmul in _dense_numpy; compiled with
    AVX-512 for float32 at batch >= 16, and for the batch-1 forward of a large W, where the CPU
    has it: kernels.dense_kernels()).

    Why (out, in): each output feature's weights are one contiguous row, which the GEMMs read
    faster than the (in, out) layout this layer had before, at 6272 -> 1024 and batch 32 on one
    thread: forward 7.24 -> 6.57 ms, backward 15.1 -> 12.6 ms (dW alone 8.4 -> 5.4 ms); at
    25088 -> 1024 28.7 -> 25.7 and 58.4 -> 52.1 ms; 1568 -> 256 the same within 0.03 ms
    (medians, measured). The price is at batch 1 on one thread, where BLAS streams W faster
    as x @ W over (in, out) rows than as dot products of (out, in) rows: 25088 -> 1024 5.2
    vs 5.9 ms, 6272 -> 1024 0.98 vs 1.05-1.10 ms (alternating blocks, measured).
    """

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32, init="he-normal"):
        super().__init__()
        self.in_features = check_positive(in_features, "in_features")
        self.out_features = check_positive(out_features, "out_features")
        rng = np.random.default_rng(rng)
        # drawn as (in, out) and transposed, so a seed gives the same weights as when W was
        # stored (in, out)
        W = init_weights(rng, (in_features, out_features), in_features, out_features, init).T
        self.params = {"W": np.ascontiguousarray(W, dtype=dtype), "b": np.zeros(out_features, dtype=dtype)}
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
        # computed as its transpose out.T = W @ x.T, so each thread reads whole rows of W (at
        # batch 1 a GEMV, the dot-product form). Each thread writes rows of outT; writing its
        # block of out directly would be a strided write, slower (6272 -> 1024 at batch 32, half
        # of W, one BLAS thread: 4.1-5.3 vs 3.6-3.8 ms, measured). One pass then adds b.
        xT = np.ascontiguousarray(x.T)                 # (in_features, N)
        outT = np.empty((self.out_features, N), dtype=x.dtype)    # (out_features, N)

        # outT[lo:hi] = W[lo:hi] @ x.T for each thread's output features lo..hi-1, one compiled
        # task each (per output feature: N * in multiply-adds, or at small N the weights it reads)
        features = split(self.out_features, grain(max(N, WEIGHT_READ_WORK) * self.in_features))
        run_tasks([kernels.dense_forward_task(W, xT, outT, lo, hi) for lo, hi in features])
        out = np.empty((N, self.out_features), dtype=x.dtype)
        np.add(outT.T, b, out=out)                     # out = x @ W.T + b
        self.x = x
        return out

    def backward(self, dout, need_dx=True):
        """dout: (N, out_features) -> dx: (N, in_features) (None if not need_dx)."""
        x = np.ascontiguousarray(self._cached(self.x, "the input"))
        W = self.params["W"]
        dW = self.grad_buffer("W") if self.trainable else None
        dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
        I, O = self.in_features, self.out_features
        dout = np.ascontiguousarray(dout, dtype=x.dtype)                  # (N, out_features)
        doutT = np.ascontiguousarray(dout.T) if dW is not None else None   # (out_features, N)

        def share(lo, hi):                             # one thread's share lo/O..hi/O of the work:
            if dW is not None:                         # dW's rows (output features) lo..hi-1
                kernels.dense_weight_grad(doutT, x, dW, lo, hi)         # dW = dout.T @ x
            if dx is not None:                         # dx's columns (input features), same share
                kernels.dense_input_grad(dout, W, dx, lo * I // O, hi * I // O)   # dx = dout @ W
        parallel_for(O, share, grain=grain(2 * x.shape[0] * I))
        if dW is not None:
            np.sum(dout, axis=0, out=self.grad_buffer("b"))             # db = dout.sum(0)
        self.clear_cache()
        return dx

    def clear_cache(self):
        self.x = None
