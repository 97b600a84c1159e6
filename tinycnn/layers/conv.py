"""2-D convolution as im2col + GEMM, one image at a time.

For each image n, with K = C*kh*kw and P = OH*OW:
    col    = im2col(x[n])                    (K, P): column p holds the patch under output p
    out[n] = W.reshape(F, K) @ col + b       (F, P) -> (F, OH, OW), already NCHW
Backward, with dout[n] as (F, P):
    dW    += dout[n] @ col.T                 (F, K) -> (F, C, kh, kw)
    db    += dout[n].sum(axis=1)             (F,)
    dx[n]  = col2im(W.reshape(F, K).T @ dout[n])
The bias rides in the GEMMs, against a row of ones under col: [W b] @ [col; 1] = W @ col + b,
and [col; 1] @ dout[n].T = [dW.T; db] (the dW line transposed, db its last row), so neither
takes a pass of its own over out or dout.

One image's col fits in L2 cache (32 -> 32 channels at 28x28: 0.9 MB), so im2col, the
GEMM that reads col and col2im stay in cache, and the GEMM writes NCHW directly. A
single im2col of the whole batch (K, N*P) gives one bigger GEMM but streams N times
that through memory and needs a transpose back to NCHW: measured 4.3 ms vs 6.8 ms for
the forward of 32 -> 32 channels at batch 32, one thread. Thin layers, whose col is
much smaller, share one im2col call (images_per_call); so do thin layers on the Winograd
path below. The images of a batch are split over the engine's threads (tinycnn.parallel),
and each thread runs its images' im2col, GEMMs and col2im as one compiled call without the
GIL (kernels.im2col_conv_forward and im2col_conv_backward; _im2col_numpy.conv_forward and
conv_backward are the same loops in NumPy), so that threads do not queue for the GIL
between the steps.

3x3 kernels with stride 1 and padding 1 (every conv of the paper's plan) take the
Winograd path instead (tinycnn/_winograd_numpy.py has the formulas): per image,
    V      = B^T d B of each 4x4 input tile       (16, C, T), T = ceil(OH/2)*ceil(OW/2)
    M      = U @ V, U = G W G^T                   (16, F, T): 16 GEMMs (F, C) @ (C, T)
    out[n] = A^T m A of each tile + b             (F, OH, OW)
2.25x fewer multiplies than im2col + GEMM. dx is the same convolution of dout with the
kernel flipped and its channel axes swapped (stride 1, padding 1 keep the size):
    dx[n] = conv(dout[n], W'),  W'[c, f, i, j] = W[f, c, 2 - i, 2 - j]
and dW is Winograd F(3x3, 2x2) over the same input tiles and 2x2 tiles of dout:
    dW = A3^T [ sum over images and tiles of (G2 g G2^T) * (B^T d B) ] A3
Each thread runs its images' transforms and GEMMs as one compiled call too
(kernels.winograd_conv_forward and winograd_weight_products; _winograd_numpy.conv_forward
and weight_products in NumPy). The path is taken when both channel counts reach
WINOGRAD_MIN_CHANNELS; Conv2D.algorithm = "im2col" turns it off. With fewer images than
threads (batch-1 latency), the Winograd path splits each image's rows of 2x2 output tiles over
the threads (each transforms, multiplies and writes its own rows, with no hand-off between),
and the im2col path its output channels.

3x3 layers (stride 1, padding 1) with at most DIRECT_MAX_CHANNELS output channels are too thin
for either: where the compiled kernels run (float32, AVX-512 or AVX2), they compute the convolution
directly from the input zero-padded by 1 (tinycnn/_direct_numpy.py has the formulas):
    out[n] = b + sum over taps (i, j) of W[:, :, i, j] @ xp[n, :, i:i+H, j:j+W]
    dW[:, :, i, j] = sum over n of dout[n] . xp[n, :, i:i+H, j:j+W],  db = sum of dout
    dx[n] = the same convolution of dout[n] with W flipped and its channel axes swapped
(kernels.direct_conv_forward, direct_conv_weight_grad, direct_conv_input_grad), each thread's
images in one call without the GIL.
"""
import numpy as np

from .. import kernels
from ..parallel import get_threads, grain, parallel_for, run_tasks, same_bytes, scratch, split
from .base import Layer, check_positive, init_weights, pair

# Below this many input or output channels the 16 GEMMs of Winograd are too thin to pay for
# its transforms. Forward + dx + dW at batch 32, one thread, Winograd vs im2col (ms, quiet
# machine): 8 -> 8 1.71 vs 1.50, 12 -> 12 2.51 vs 3.36, 20 -> 20 4.55 vs 7.00, 32 -> 32 8.78
# vs 12.58. With both paths in one compiled call per thread since (forward + dx + dW, batch
# 32, Winograd's speed-up over im2col, medians of 6 alternating rounds): 8 -> 8 1.21x on one
# thread and 1.10x on two, but 8 -> 12 0.82x and 0.71x, 12 -> 12 1.80x and 1.67x.
WINOGRAD_MIN_CHANNELS = 12

# Layers with at most this many output channels (3x3, stride 1, padding 1, float32, not Winograd's)
# take the direct path, by the build of its kernels that runs (kernels.direct_kernels()): im2col's
# GEMMs are then (F, 9C) @ (9C, P) with few rows, which OpenBLAS runs far below its rate. Forward
# + dW + dx at batch 32, 28x28, one thread, direct vs im2col, medians (ms):
#   AVX-512 (Xeon, OpenBLAS SkylakeX): F <= 8 1.27x to 3.4x for every C from 1 to 32 (8 -> 8
#   1.81 -> 1.16 ms, 1 -> 8 1.27x, 2 -> 2 3.40x), but F = 12 0.91x to 1.12x, F = 16 0.84x to
#   1.48x, F = 32 0.64x to 1.14x (1 -> 32 0.71x).
#   AVX2 (the same Xeon held to AVX2, OpenBLAS Haswell): F <= 8 1.72x to 3.31x (8 -> 8 3.44 ->
#   1.99 ms), F = 12 1.31x to 1.83x, F = 16 1.03x to 1.51x, 8 -> 20 1.05x, 3 -> 32 0.90x, 8 -> 32
#   0.86x.
DIRECT_MAX_CHANNELS = {"avx512": 8, "avx2": 16}

# Up to this many input channels the dW GEMMs read D tile-major, (16, tiles, F), as D_k.T @ V_k.T,
# which OpenBLAS runs faster than D_k @ V_k.T at these widths. Per image, one thread, batch 32,
# transforms and GEMMs (us, medians, same run): 32 -> 32 83 vs 106, 32 -> 48 121 vs 153,
# 48 -> 48 165 vs 206, 48 -> 80 300 vs 328; but 80 -> 80 609 vs 524, 80 -> 128 881 vs 738,
# 128 -> 128 1219 vs 1080 (AVX-512 Xeon, 2 MiB L2). Where tinycnn._avx2._gemm runs the products
# (kernels.winograd_gemm()), it computes dW's as acc_k.T = V_k @ D_k from the tile-major D, and
# wider layers keep BLAS for them (held to AVX2, 128 -> 128 with it and a tile-major D: 0.96x).
WINOGRAD_TILE_MAJOR_MAX_CHANNELS = 64

# Images per im2col or Winograd call, on both paths: as many as fill this much of the call's
# scratch (at least 1): the im2col matrix col, or the Winograd tiles V with the products M (dW:
# V with D). When the layer looped over the groups in Python, each group cost a few
# microseconds holding the GIL, which two threads then queued for (8 -> 8 channels at batch
# 32 on 2 threads: 0.61 ms forward with one image per call, 0.30 with 4). The loop now runs
# inside one compiled call per thread, and 256 KiB to 1 MiB gave the laptop nets' training
# steps within 10% of each other; 2 MiB was slower (laptop CloudCNN 0.75x on one thread, 0.79x
# on two), measured in alternating blocks. Counting M (or D) beside V halves the Winograd
# groups (32 -> 32 channels: 1 image per call instead of 2, whose V and M outgrew a 2 MiB L2).
# On an Intel Xeon that made training steps 1.05-1.06x faster for EdgeCNN-3 and 1.11-1.17x
# for laptop CloudCNN, on one thread and on two; CloudCNN 1.00x (medians of 11 alternating
# rounds, docs/performance.md).
GROUP_BYTES = 1 << 20


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
        self._U = None       # outside training: (copy of W, U = G W G^T made from it)
        # "auto": Winograd where it applies (winograd_applies), else direct where it applies
        # (direct_applies), else im2col; "im2col": always im2col; "direct": the direct kernels
        # (3x3, stride 1, padding 1 only), compiled or not. Not part of config(): it changes
        # rounding, not the function.
        self.algorithm = "auto"

    ALGORITHMS = ("auto", "im2col", "direct")

    @property
    def algorithm(self):
        return self._algorithm

    @algorithm.setter
    def algorithm(self, value):
        if value not in self.ALGORITHMS:
            raise ValueError(f"Conv2D.algorithm must be one of {self.ALGORITHMS}, got {value!r}")
        if value == "direct" and not self._three_by_three():
            raise ValueError(f"Conv2D.algorithm 'direct' needs a 3x3 kernel with stride 1 and padding 1, got "
                             f"kernel {self.kernel_size}, stride {self.stride}, padding {self.padding}")
        self._algorithm = value

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
        x = np.ascontiguousarray(x)
        F, OH, OW = self.output_shape(x.shape[1:])
        N = x.shape[0]
        W2 = self.params["W"].reshape(F, -1)                   # (F, K), K = C*kh*kw
        out = np.empty((N, F, OH * OW), dtype=x.dtype)         # (N, F, P), P = OH*OW
        K, P = W2.shape[1], OH * OW
        group = images_per_call(K * P * x.itemsize)            # col of one image: K*P numbers
        # W @ col + b as one GEMM: [W b] @ [col; 1], the bias a column of W against a row of ones.
        # A separate out += b is one more pass over out: forward at batch 32, one thread, that
        # and this in alternating blocks, 1 -> 32 channels 0.33 vs 0.18 ms, 8 -> 8 0.50 vs 0.45.
        winograd = self.winograd_applies()
        direct = not winograd and self.direct_applies(x.dtype)
        Wb = None if winograd or direct else self._weights_and_bias(x.dtype)   # (F, K + 1) = [W b]
        geometry = (*self.kernel_size, *self.stride, *self.padding)

        def images(lo, hi):                                    # images lo..hi-1, one thread
            col = scratch("col", (K + 1, group * P), x.dtype)  # [col; 1] of `group` images side by side
            # out[n] = [W b] @ [im2col(x[n]); 1] for each n, in one call without the GIL
            kernels.im2col_conv_forward(x, Wb, out, col, lo, hi, *geometry)
        macs = W2.size * P                                     # per image
        out4 = out.reshape(N, F, OH, OW)
        U = self._winograd_weights(x.dtype, training) if winograd else None   # (16, F, C) = G W G^T
        bias = self.params["b"].astype(x.dtype, copy=False)   # (F,), the transforms' dtype
        if direct:                                     # each thread's images in one call without the GIL
            W = np.ascontiguousarray(self.params["W"], dtype=x.dtype)   # (F, C, 3, 3)

            def direct_images(lo, hi):                 # out = b + sum over taps (i, j) of W[:, :, i, j] @ xp shifted
                kernels.direct_conv_forward(x, W, bias, out4, lo, hi)
            parallel_for(N, direct_images, grain=grain(macs))
        elif N >= get_threads() and winograd:          # each thread's images are one compiled task
            run_tasks([winograd_conv_task(x, U, out4, lo, hi, bias, slot=i)
                       for i, (lo, hi) in enumerate(split(N, grain(macs, compiled_task=True)))])
        elif N >= get_threads():
            parallel_for(N, images, grain=grain(macs))
        elif winograd:  # fewer images than threads (batch-1 latency): split the rows of 2x2 output tiles
            th = (OH + 1) // 2                         # each thread's rows are one compiled task
            run_tasks([winograd_conv_task(x, U, out4, 0, N, bias, tile_rows=rows, slot=i)
                       for i, rows in enumerate(split(th, grain(N * macs // th, compiled_task=True)))])
        else:  # fewer images than threads: split each image's output channels
            col = np.empty((K + 1, P), dtype=x.dtype)          # [col; 1]
            for n in range(N):
                self._im2col(x[n:n + 1], out=col[:K])
                col[K] = 1

                def channels(lo, hi, n=n):                     # output channels lo..hi-1, one thread
                    np.matmul(Wb[lo:hi], col, out=out[n, lo:hi])   # W @ col + b
                parallel_for(F, channels, grain=grain(macs // F))
        self.x = x
        return out4

    def backward(self, dout, need_dx=True):
        """dout: (N, F, OH, OW) -> dx: (N, C, H, W) (None if not need_dx)."""
        x = self._cached(self.x, "the input")
        N = x.shape[0]
        F = self.out_channels
        W2 = self.params["W"].reshape(F, -1)                   # (F, K)
        dout = np.ascontiguousarray(dout, dtype=x.dtype).reshape(N, F, -1)   # (N, F, P)
        dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
        trainable = self.trainable
        K, P = W2.shape[1], dout.shape[2]
        group = images_per_call(K * P * x.itemsize)            # im2col path: col of one image
        winograd = self.winograd_applies()
        direct = not winograd and self.direct_applies(x.dtype)
        if winograd or direct:
            dout4 = dout.reshape(N, F, *x.shape[2:])           # (N, F, H, W)
        if direct:
            W = np.ascontiguousarray(self.params["W"], dtype=x.dtype)   # (F, C, 3, 3)
        elif winograd:
            if need_dx:   # dx = conv(dout, W'), W'[c, f] = W[f, c] flipped: U_flip (16, C, F)
                U_flip = kernels.winograd_weights(self.params["W"].transpose(1, 0, 2, 3)[:, :, ::-1, ::-1], x.dtype)
        else:
            geometry = (*self.kernel_size, *self.stride, *self.padding)
            Wb = self._weights_and_bias(x.dtype)               # (F, K + 1); dx reads its W part

        def images(lo, hi):                                    # images lo..hi-1, one thread
            if direct:                                         # dW, db and dx of these images, directly
                dWd, db = (np.empty(W.shape, x.dtype), np.empty(F, x.dtype)) if trainable else (None, None)
                if trainable:   # dW[:, :, i, j] = sum of dout . xp shifted by (i, j); db = sum of dout
                    kernels.direct_conv_weight_grad(x, dout4, dWd, db, lo, hi)
                if need_dx:     # dx = conv(dout, W flipped, channels swapped)
                    kernels.direct_conv_input_grad(dout4, W, dx, lo, hi)
                return dWd, db
            if winograd:
                dWw = winograd_weight_grad(x, dout4, lo, hi) if trainable else None   # (16, F, C)
                if need_dx:
                    winograd_conv(dout4, U_flip, dx, lo, hi)
                return dWw, (bias_grad(dout[lo:hi]) if trainable else None)
            dWbT = np.zeros((K + 1, F), dtype=x.dtype) if trainable else None   # [dW.T; db]
            col = scratch("col", (K + 1, group * P), x.dtype)  # the forward's [col; 1], recomputed
            # [dW.T; db] += [col_i; 1] @ dout[i].T: the transpose of dW += dout[i] @ col_i.T, whose
            # row of ones sums dout[i] into db; dx[i] = col2im(W.T @ dout[i]). col is recomputed
            # (one pass over an L2-sized buffer) where keeping all N would cost N times the memory.
            kernels.im2col_conv_backward(x, Wb, dout, dWbT, dx, col, lo, hi, *geometry)
            return (dWbT[:K], dWbT[K]) if trainable else (None, None)
        partial = parallel_for(N, images, grain=grain(W2.size * P))   # per chunk: dW part, db (F,)
        if trainable:
            dW = sum(part for part, _ in partial)
            if winograd:                                       # dW = A3^T m A3 per (f, c)
                dW = kernels.winograd_weight_grad(dW, x.dtype)
            elif not direct:
                dW = dW.T                                      # (K, F) -> (F, K)
            self.grad_buffer("W")[...] = dW.reshape(self.params["W"].shape)
            self.grad_buffer("b")[...] = sum(db for _, db in partial)
        self.clear_cache()
        return dx

    def _three_by_three(self):
        return self.kernel_size == (3, 3) and self.stride == (1, 1) and self.padding == (1, 1)

    def winograd_applies(self):
        """True if forward, dx and dW take the Winograd path: algorithm "auto", 3x3, stride 1,
        padding 1, at least WINOGRAD_MIN_CHANNELS input and output channels."""
        return (self.algorithm == "auto" and self._three_by_three()
                and min(self.in_channels, self.out_channels) >= WINOGRAD_MIN_CHANNELS)

    def direct_applies(self, dtype=np.float32):
        """True if forward, dx and dW take the direct path for inputs of dtype: algorithm "direct";
        or "auto" for a float32 3x3 layer (stride 1, padding 1) with at most
        DIRECT_MAX_CHANNELS[build] output channels, where a compiled build of the direct kernels
        runs (kernels.direct_kernels())."""
        if self.algorithm == "direct":
            return True
        return (self.algorithm == "auto" and self._three_by_three() and not self.winograd_applies()
                and self.out_channels <= DIRECT_MAX_CHANNELS.get(kernels.direct_kernels(), 0)
                and np.dtype(dtype) == np.float32)

    def _winograd_weights(self, dtype, training):
        """U = G W G^T: (16, F, C) of dtype. Outside training (inference, evaluation) W stays
        the same from call to call, so U is kept beside a copy of the W it came from and reused
        while W still holds the same bytes (parallel.same_bytes, on all threads): at 128 x 128
        channels the comparison takes 15 us in cache, the transform 76 us (measured), once per
        forward. At batch 1, where W comes from memory, the comparisons were 5% of the CloudCNN
        forward on one thread and 10% on two (against reusing U unchecked, measured)."""
        W = self.params["W"]
        if training:
            self._U = None
            return kernels.winograd_weights(W, dtype)
        if self._U is None or self._U[1].dtype != dtype or not same_bytes(self._U[0], np.ascontiguousarray(W)):
            self._U = (W.copy(), kernels.winograd_weights(W, dtype))
        return self._U[1]

    def _weights_and_bias(self, dtype):
        """[W b]: (F, C*kh*kw + 1) of dtype, C-contiguous; the bias a last column of W, against the
        row of ones under im2col's col."""
        F = self.out_channels
        return np.concatenate([self.params["W"].reshape(F, -1), self.params["b"][:, None]], axis=1).astype(
            dtype, copy=False)

    def _im2col(self, x, out):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return kernels.im2col(x, kh, kw, sh, sw, ph, pw, out=out)

    def clear_cache(self):
        self.x = None


def bias_grad(dout):
    """db = sum of dout over images and pixels. dout: (N, F, P) -> (F,).

    Summed as dout @ ones(P), then over images: the GEMV ran 3x faster than
    dout.sum(axis=(0, 2)) on (32, 32, 784) and (32, 128, 784) float32 (0.042 vs 0.129 ms,
    0.173 vs 0.526 ms, measured, one thread)."""
    return np.matmul(dout, np.ones(dout.shape[2], dtype=dout.dtype)).sum(axis=0)


def images_per_call(bytes_per_image):
    """Images per im2col + GEMM or Winograd call: as many as fill GROUP_BYTES, at least 1."""
    return max(1, GROUP_BYTES // bytes_per_image)


def winograd_conv(x, U, out, lo, hi, bias=None):
    """out[n] = conv(x[n], W) + bias for images lo..hi-1 (3x3, stride 1, padding 1), one thread.

    x: (N, C, H, W); U: (16, F, C) from kernels.winograd_weights(W); out: (N, F, H, W); bias: (F,)
    or None. U, out and bias have x's dtype. A few images per call (images_per_call), all of
    them in one compiled call without the GIL: V = B^T d B per tile, M = U @ V (16 GEMMs),
    out[n] = A^T m A per tile + bias (_winograd_numpy.conv_forward spells it out in NumPy).
    """
    winograd_conv_task(x, U, out, lo, hi, bias).run()


def winograd_conv_task(x, U, out, lo, hi, bias=None, tile_rows=None, slot=0):
    """winograd_conv's call as a task to run later (kernels.winograd_conv_task), on the calling
    thread's scratch buffers number `slot` (one per task it hands out at once). tile_rows =
    (ty0, ty1): only the rows ty0..ty1-1 of 2x2 output tiles (out's rows 2ty0 .. 2ty1 - 1)."""
    C, H, W = x.shape[1:]
    F = U.shape[1]
    ty0, ty1 = tile_rows if tile_rows is not None else (0, (H + 1) // 2)
    T = (ty1 - ty0) * ((W + 1) // 2)
    group = images_per_call(16 * T * (C + F) * x.itemsize)   # V and M of one image
    V = scratch(f"winograd_V{slot or ''}", (16, C, group * T), x.dtype)
    M = scratch(f"winograd_M{slot or ''}", (16, F, group * T), x.dtype)
    return kernels.winograd_conv_task(x, U, bias, out, V, M, lo, hi, tile_rows)


def winograd_weight_grad(x, dout, lo, hi):
    """sum over images lo..hi-1 of (G2 g G2^T) * (B^T d B), as 16 GEMMs: (16, F, C); one thread.

    x: (N, C, H, W); dout: (N, F, H, W). dW = A3^T m A3 of the sum (kernels.winograd_weight_grad).
    Per group of images: V = B^T d B of x's 4x4 tiles, D = G2 g G2^T of dout's 2x2 tiles
    (tile-major when C <= WINOGRAD_TILE_MAJOR_MAX_CHANNELS), sum += D_k @ V_k.T, in one
    compiled call (_winograd_numpy.weight_products in NumPy).
    """
    C, H, W = x.shape[1:]
    F = dout.shape[1]
    T = kernels.winograd_tile_count(H, W)
    group = images_per_call(16 * T * (C + F) * x.itemsize)   # V and D of one image
    acc = np.zeros((16, F, C), dtype=x.dtype)
    V = scratch("winograd_V", (16, C, group * T), x.dtype)
    tile_major = C <= WINOGRAD_TILE_MAJOR_MAX_CHANNELS
    D = scratch("winograd_D", (16, group * T, F) if tile_major else (16, F, group * T), x.dtype)
    return kernels.winograd_weight_products(x, dout, acc, V, D, lo, hi, tile_major)
