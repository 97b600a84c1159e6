"""2-D convolution as im2col + one GEMM (see docs/conv_im2col.md).

Forward, with K = C*kh*kw and P = N*OH*OW:
    col = im2col(x)                 (K, P)
    out = W.reshape(F, K) @ col + b (F, P) -> (N, F, OH, OW)
Backward, with dout2 = dout as (F, P):
    dW  = dout2 @ col.T             (F, K) -> (F, C, kh, kw)
    db  = dout2.sum(axis=1)         (F,)
    dx  = col2im(W.reshape(F, K).T @ dout2)
"""
import numpy as np

from .. import kernels
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
        self.x_shape = None  # (N, C, H, W) of the last forward
        self.col = None      # (C*kh*kw, N*OH*OW) of the last forward
        # Training reuses one (C*kh*kw, N*OH*OW) buffer: col after forward, dcol in
        # backward. A fresh 72 MB array costs ~8 ms of page faults per step (measured
        # at 80->80 channels, batch 32, 28x28), as much as filling it.
        self.workspace = None

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
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        out_buf = self._workspace((self.in_channels * kh * kw, N * OH * OW), x.dtype) if training else None
        col = kernels.im2col(x, kh, kw, sh, sw, ph, pw, out=out_buf)
        out2 = kernels.matmul(self.params["W"].reshape(F, -1), col)      # (F, N*OH*OW)
        out = np.empty((N, F, OH, OW), dtype=x.dtype)
        # transpose to NCHW and add the bias in one pass
        np.add(out2.reshape(F, N, OH, OW).transpose(1, 0, 2, 3),
               self.params["b"].reshape(1, F, 1, 1), out=out)
        self.x_shape, self.col = x.shape, col
        return out

    def backward(self, dout, need_dx=True):
        """dout: (N, F, OH, OW) -> dx: (N, C, H, W) (None if not need_dx)."""
        col = self._cached(self.col, "the im2col matrix")
        N, C, H, W = self.x_shape
        F = self.out_channels
        dout2 = dout.transpose(1, 0, 2, 3).reshape(F, -1)              # (F, N*OH*OW)
        if self.trainable:
            kernels.matmul(dout2, col.T, out=self.grad_buffer("W").reshape(F, -1))
            np.sum(dout2, axis=1, out=self.grad_buffer("b"))
        dx = None
        if need_dx:
            # col is used up: dcol (same shape) overwrites it
            dcol = kernels.matmul(self.params["W"].reshape(F, -1).T, dout2, out=col)  # (C*kh*kw, N*OH*OW)
            (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
            dx = kernels.col2im(dcol, N, C, H, W, kh, kw, sh, sw, ph, pw)
        self.clear_cache()
        return dx

    def _workspace(self, shape, dtype):
        if self.workspace is None or self.workspace.shape != shape or self.workspace.dtype != dtype:
            self.workspace = np.empty(shape, dtype=dtype)
        return self.workspace

    def clear_cache(self):
        self.x_shape = self.col = None
