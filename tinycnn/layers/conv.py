"""2-D convolution as im2col + GEMM, one image at a time.

For each image n, with K = C*kh*kw and P = OH*OW:
    col    = im2col(x[n])                    (K, P): column p holds the patch under output p
    out[n] = W.reshape(F, K) @ col + b       (F, P) -> (F, OH, OW), already NCHW
Backward, with dout[n] as (F, P):
    dW    += dout[n] @ col.T                 (F, K) -> (F, C, kh, kw)
    db    += dout[n].sum(axis=1)             (F,)
    dx[n]  = col2im(W.reshape(F, K).T @ dout[n])

One image's col fits in L2 cache (32 -> 32 channels at 28x28: 0.9 MB), so im2col, the
GEMM that reads col and col2im stay in cache, and the GEMM writes NCHW directly. A
single im2col of the whole batch (K, N*P) gives one bigger GEMM but streams N times
that through memory and needs a transpose back to NCHW: measured 4.3 ms vs 6.8 ms for
the forward of 32 -> 32 channels at batch 32, one thread. The images of a batch are
split over the engine's threads (tinycnn.parallel).
"""
import numpy as np

from .. import kernels
from ..parallel import get_threads, grain, parallel_for, scratch
from .base import Layer, check_positive, init_weights, pair


class Conv2D(Layer):
    """Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0).

    x: (N, C, H, W) -> out: (N, F, OH, OW), OH = (H + 2*ph - kh) // sh + 1.
    params["W"]: (out_channels, in_channels, kh, kw), params["b"]: (out_channels,).
    kernel_size, stride, padding: an int or an (h, w) pair. init: "he-normal" (default) or
    "glorot-uniform" (layers.base.init_weights); bias 0.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 rng=None, dtype=np.float32, init="he-normal"):
        super().__init__()
        self.in_channels = check_positive(in_channels, "in_channels")
        self.out_channels = check_positive(out_channels, "out_channels")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding")
        for name, value, lo in (("kernel_size", self.kernel_size, 1), ("stride", self.stride, 1),
                                ("padding", self.padding, 0)):
            if min(value) < lo:
                raise ValueError(f"{name} must be >= {lo}, got {value}")
        kh, kw = self.kernel_size
        fan_in = in_channels * kh * kw
        rng = np.random.default_rng(rng)
        W = init_weights(rng, (out_channels, in_channels, kh, kw), fan_in, out_channels * kh * kw, init)
        self.params = {"W": W.astype(dtype), "b": np.zeros(out_channels, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.x = None        # (N, C, H, W) input of the last training forward

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}

    def output_shape(self, input_shape):
        C, H, W = input_shape
        if C != self.in_channels:
            raise ValueError(f"Conv2D expected {self.in_channels} input channels, got {C} "
                             f"(input shape (N, {C}, {H}, {W}))")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if H + 2 * ph < kh or W + 2 * pw < kw:
            raise ValueError(f"Conv2D kernel {kh}x{kw} is larger than the padded input "
                             f"{H + 2 * ph}x{W + 2 * pw} (input {H}x{W}, padding {ph},{pw})")
        return self.out_channels, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1

    def forward(self, x, training=False):
        """x: (N, C, H, W) float -> (N, F, OH, OW), same dtype."""
        self._check_input(x, 4, "(N, C, H, W)")
        F, OH, OW = self.output_shape(x.shape[1:])
        N = x.shape[0]
        W2 = self.params["W"].reshape(F, -1)                   # (F, K), K = C*kh*kw
        out = np.empty((N, F, OH * OW), dtype=x.dtype)         # (N, F, P), P = OH*OW

        b = self.params["b"][:, None]                          # (F, 1)

        def images(lo, hi):                                    # images lo..hi-1, one thread
            col = scratch("col", (W2.shape[1], OH * OW), x.dtype)          # (K, P)
            for n in range(lo, hi):
                self._im2col(x[n:n + 1], out=col)
                np.matmul(W2, col, out=out[n])                 # out[n] = W @ col
                out[n] += b                                    #          + b
        macs = W2.size * OH * OW                               # per image
        if N >= get_threads():
            parallel_for(N, images, grain=grain(macs))
        else:  # fewer images than threads (batch-1 latency): split each image's output channels
            col = np.empty((W2.shape[1], OH * OW), dtype=x.dtype)
            for n in range(N):
                self._im2col(x[n:n + 1], out=col)

                def channels(lo, hi, n=n):                     # output channels lo..hi-1, one thread
                    np.matmul(W2[lo:hi], col, out=out[n, lo:hi])
                    out[n, lo:hi] += b[lo:hi]
                parallel_for(F, channels, grain=grain(macs // F))
        self.x = x
        return out.reshape(N, F, OH, OW)

    def backward(self, dout, need_dx=True):
        """dout: (N, F, OH, OW) -> dx: (N, C, H, W) (None if not need_dx)."""
        x = self._cached(self.x, "the input")
        N = x.shape[0]
        F = self.out_channels
        W2 = self.params["W"].reshape(F, -1)                   # (F, K)
        dout = np.ascontiguousarray(dout).reshape(N, F, -1)    # (N, F, P)
        dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
        trainable = self.trainable

        def images(lo, hi):                                    # images lo..hi-1, one thread
            col = scratch("col", (W2.shape[1], dout.shape[2]), x.dtype)    # (K, P)
            dWT = np.zeros(W2.T.shape, dtype=x.dtype) if trainable else None
            for n in range(lo, hi):
                if trainable:
                    # col is recomputed: one pass over an L2-sized buffer, where keeping
                    # all N of them would cost N times the memory
                    self._im2col(x[n:n + 1], out=col)
                    # dW += dout[n] @ col.T, summed as its transpose col @ dout[n].T:
                    # ~20% faster in OpenBLAS for these thin shapes (measured)
                    dWT += np.matmul(col, dout[n].T, out=scratch("dWT_n", dWT.shape, x.dtype))
                if need_dx:
                    np.matmul(W2.T, dout[n], out=col)          # dcol = W.T @ dout[n]
                    self._col2im(col, out=dx[n:n + 1])
            return dWT, (dout[lo:hi].sum(axis=(0, 2)) if trainable else None)   # db: sum of dout
        partial = parallel_for(N, images, grain=grain(W2.size * dout.shape[2]))   # per chunk: dW.T (K, F), db (F,)
        if trainable:
            self.grad_buffer("W").reshape(F, -1)[...] = sum(dWT for dWT, _ in partial).T
            self.grad_buffer("b")[...] = sum(db for _, db in partial)
        self.clear_cache()
        return dx

    def _im2col(self, x, out):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return kernels.im2col(x, kh, kw, sh, sw, ph, pw, out=out)

    def _col2im(self, col, out):
        _, C, H, W = out.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return kernels.col2im(col, 1, C, H, W, kh, kw, sh, sw, ph, pw, out=out)

    def clear_cache(self):
        self.x = None
