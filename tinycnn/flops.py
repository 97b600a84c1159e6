"""Analytic cost of a Sequential: MACs, FLOPs, params, memory, per layer and in total.

``profile(model, (C, H, W))`` walks the layers with their ``output_shape`` and counts,
per sample (times ``batch``), what the engine does with im2col convolutions:

MACs (multiply-accumulates) are the GEMM work only, exactly the products of the layers'
``np.matmul`` calls when every Conv2D runs im2col (tests/test_flops.py counts them):
    Conv2D  F*C*kh*kw*OH*OW   (taps on padding included: the im2col GEMM multiplies them)
    Dense   in*out
except a Conv2D's bias: its GEMMs also add it ([W b] @ [col; 1]) and sum db against a row
of ones ([col; 1] @ dout.T on im2col, dout @ ones on Winograd), F*OH*OW products per sample
each, which are counted below as bias adds, not as MACs.

FLOPs count every arithmetic operation as 1: a MAC is 2 (multiply + add), and
    Conv2D     2*MACs + F*OH*OW bias adds
    Dense      2*MACs + out bias adds
    ReLU       1 comparison per element
    MaxPool2D  kh*kw - 1 comparisons per output
    Dropout    0 (identity at inference), Flatten 0
    softmax    6K - 1 for K logits, as ``tinycnn.softmax`` computes exp(log_softmax):
               K-1 max comparisons, K subtractions, K exps, K-1 adds, 1 log,
               K subtractions, K exps (each exp and log counted as 1 FLOP)

Convs that take the Winograd path (3x3, stride 1, padding 1, enough channels:
tinycnn.layers.conv) multiply less: 16*F*C*ceil(OH/2)*ceil(OW/2) MACs per GEMM pass, 4/9
of the count above at even sizes, plus their transforms. The counts here stay the direct
convolution's, the convention GFLOP/s figures are compared by ("effective" GFLOP/s).

``paper_formula`` is Ding et al.'s Section 1.3 cost of a conv layer,
c_j*f_w*f_h*c_{j+1}*w_{j+1}*h_{j+1}, summed over conv layers only: it equals the
conv MACs and leaves out the fc layers, biases, activations and pooling.

Backward (one ``Sequential.backward(dout, need_dx)`` call, given the forward was
done in training mode) visits layers from the top down to the lowest trainable
layer; that layer computes no dx unless need_dx. Per visited layer:
    Conv2D     if trainable: dW GEMM F*K*P MACs + db F*P adds  (K = C*kh*kw, P = OH*OW)
               if dx: dcol GEMM K*F*P MACs + col2im adds (one per in-bounds tap)
    Dense      if trainable: dW in*out MACs + db out adds; if dx: out*in MACs
    ReLU       if dx: 1 select per element
    MaxPool2D  if dx: 1 add per output (routing into dx)
    Dropout    if dx: 1 multiply per element;  Flatten 0
The loss gradient (softmax cross-entropy) is not part of it.

Memory: ``activation_bytes`` is a layer's output (times batch); ``workspace_bytes`` the
im2col matrix of one image (K*P elements) that a Conv2D fills per image, one per engine
thread, whatever the batch.
"""
from dataclasses import asdict, dataclass

import numpy as np

from .layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from .model import Sequential

TOTAL_KEYS = ("params", "trainable_params", "macs", "flops", "paper_formula",
              "activation_bytes", "workspace_bytes", "backward_macs", "backward_flops",
              "backward_macs_unfrozen", "backward_flops_unfrozen")


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer for one forward (and one backward) of ``batch`` samples."""
    index: int            # position in the Sequential; -1 for the softmax row
    kind: str             # layer class name, or "softmax"
    output_shape: tuple   # per sample
    params: int
    trainable: bool
    macs: int
    flops: int
    paper_formula: int    # conv layers only, else 0
    activation_bytes: int
    workspace_bytes: int
    backward_macs: int    # with the freezing the profile was asked for
    backward_flops: int
    backward_macs_unfrozen: int   # with every layer trainable
    backward_flops_unfrozen: int


@dataclass(frozen=True)
class Profile:
    """Per-layer rows and their totals; see the module docstring for the conventions."""
    input_shape: tuple
    batch: int
    frozen_prefix: int
    need_dx: bool
    rows: tuple
    totals: dict

    def to_dict(self):
        """JSON-able: {"input_shape", "batch", ..., "layers": [row dicts], "totals": {...}}."""
        layers = [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.rows]
        return {"input_shape": list(self.input_shape), "batch": self.batch,
                "frozen_prefix": self.frozen_prefix, "need_dx": self.need_dx,
                "layers": layers, "totals": dict(self.totals)}

    def table(self):
        """The rows and totals as fixed-width text."""
        head = (f"{'#':>3} {'layer':<10} {'output':<14} {'params':>11} {'MACs':>14} "
                f"{'FLOPs':>14} {'paper':>14} {'act KiB':>9} {'bwd FLOPs':>14}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            idx = "" if r.index < 0 else str(r.index)
            kind = r.kind + ("" if r.trainable or not r.params else "*")
            lines.append(f"{idx:>3} {kind:<10} {'x'.join(map(str, r.output_shape)):<14} "
                         f"{r.params:>11,} {r.macs:>14,} {r.flops:>14,} {r.paper_formula:>14,} "
                         f"{r.activation_bytes / 1024:>9.1f} {r.backward_flops:>14,}")
        t = self.totals
        lines += ["-" * len(head),
                  (f"{'':>3} {'total':<10} {'':<14} {t['params']:>11,} {t['macs']:>14,} "
                  f"{t['flops']:>14,} {t['paper_formula']:>14,} {t['activation_bytes'] / 1024:>9.1f} "
                  f"{t['backward_flops']:>14,}")]
        saved = t["backward_flops_unfrozen"] - t["backward_flops"]
        lines.append(f"batch {self.batch}, input {tuple(self.input_shape)}; * = frozen. "
                     f"backward with {self.frozen_prefix} frozen layer(s): "
                     f"{t['backward_flops']:,} FLOPs vs {t['backward_flops_unfrozen']:,} with none "
                     f"frozen (saves {saved:,})")
        return "\n".join(lines)


def profile(model, input_shape, batch=1, softmax=True, frozen=None, need_dx=False):
    """Cost table of ``model`` for inputs (batch, *input_shape).

    model: a Sequential of Conv2D, Dense, MaxPool2D, ReLU, Flatten, Dropout.
    input_shape: per-sample shape, e.g. (C, H, W).
    softmax: add a row for the softmax over the (K,) output (``predict_proba``).
    frozen: None = backward with the layers' current ``trainable`` flags;
            an int m = as after ``model.freeze(m)`` on an unfrozen model (model unchanged).
    need_dx: count backward as ``model.backward(dout, need_dx)`` with that flag.
    Raises TypeError for an unknown layer type, ValueError for a bad shape or argument.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"profile expects a tinycnn Sequential, got {type(model).__name__}")
    input_shape = _check_shape(input_shape)
    if not isinstance(batch, (int, np.integer)) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    layers = list(model)
    if frozen is None:
        flags = [layer.trainable for layer in layers]
    elif isinstance(frozen, (int, np.integer)) and 0 <= frozen <= len(layers):
        flags = [i >= frozen for i in range(len(layers))]
    else:
        raise ValueError(f"frozen must be None or an int in 0..{len(layers)}, got {frozen!r}")

    shapes = [input_shape]
    for layer in layers:
        shapes.append(tuple(int(d) for d in layer.output_shape(shapes[-1])))
    bwd = _backward(layers, shapes, flags, need_dx)
    bwd_all = _backward(layers, shapes, [True] * len(layers), need_dx)

    rows = []
    for i, layer in enumerate(layers):
        fwd = _forward_rule(layer, i)(layer, shapes[i], shapes[i + 1])
        rows.append(LayerCost(
            index=i, kind=type(layer).__name__, output_shape=shapes[i + 1],
            params=sum(int(p.size) for p in layer.params.values()), trainable=flags[i],
            macs=batch * fwd["macs"], flops=batch * fwd["flops"],
            paper_formula=batch * fwd.get("paper", 0),
            activation_bytes=batch * 4 * int(np.prod(shapes[i + 1])),
            workspace_bytes=4 * fwd.get("workspace", 0),
            backward_macs=batch * bwd[i][0], backward_flops=batch * bwd[i][1],
            backward_macs_unfrozen=batch * bwd_all[i][0],
            backward_flops_unfrozen=batch * bwd_all[i][1]))
    if softmax:
        if len(shapes[-1]) != 1:
            raise ValueError(f"softmax needs a (K,) model output, got per-sample shape {shapes[-1]}; "
                             "pass softmax=False")
        K = shapes[-1][0]
        rows.append(LayerCost(-1, "softmax", (K,), 0, False, 0, batch * (6 * K - 1), 0,
                              batch * 4 * K, 0, 0, 0, 0, 0))
    totals = {key: sum(getattr(r, key) for r in rows) for key in TOTAL_KEYS if key != "trainable_params"}
    totals["trainable_params"] = sum(r.params for r in rows if r.trainable)
    frozen_prefix = next((i for i, f in enumerate(flags) if f), len(flags))
    return Profile(input_shape, int(batch), frozen_prefix, bool(need_dx), tuple(rows), totals)


def _check_shape(input_shape):
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be a tuple of positive ints, got {input_shape!r}") from None
    if not shape or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
                            for d in shape):
        raise ValueError(f"input_shape must be a tuple of positive ints, e.g. (1, 28, 28), "
                         f"got {input_shape!r}")
    return tuple(int(d) for d in shape)


# --- forward rules: (layer, in_shape, out_shape) -> {"macs", "flops", ...} per sample ------

def _conv_forward(layer, in_shape, out_shape):
    C = in_shape[0]
    F, OH, OW = out_shape
    kh, kw = layer.kernel_size
    macs = F * C * kh * kw * OH * OW
    return {"macs": macs, "flops": 2 * macs + F * OH * OW, "paper": macs,
            "workspace": C * kh * kw * OH * OW}


def _dense_forward(layer, in_shape, out_shape):
    macs = layer.in_features * layer.out_features
    return {"macs": macs, "flops": 2 * macs + layer.out_features}


def _relu_forward(layer, in_shape, out_shape):
    return {"macs": 0, "flops": int(np.prod(out_shape))}


def _pool_forward(layer, in_shape, out_shape):
    kh, kw = layer.size
    return {"macs": 0, "flops": int(np.prod(out_shape)) * (kh * kw - 1)}


def _free_forward(layer, in_shape, out_shape):
    return {"macs": 0, "flops": 0}


_FORWARD = {Conv2D: _conv_forward, Dense: _dense_forward, ReLU: _relu_forward,
            MaxPool2D: _pool_forward, Dropout: _free_forward, Flatten: _free_forward}


def _forward_rule(layer, index):
    rule = _FORWARD.get(type(layer))
    if rule is None:
        known = ", ".join(sorted(cls.__name__ for cls in _FORWARD))
        raise TypeError(f"tinycnn.flops has no cost rule for layer {index} "
                        f"({type(layer).__name__}); known layer types: {known}")
    return rule


# --- backward ---------------------------------------------------------------------------

def _inside(size, k, stride, pad, out):
    """Number of (kernel offset, output position) pairs that land inside [0, size)."""
    return sum(1 for i in range(k) for o in range(out) if 0 <= o * stride + i - pad < size)


def _layer_backward(layer, in_shape, out_shape, trainable, dx):
    """(MACs, FLOPs) per sample of layer.backward(dout, need_dx=dx)."""
    kind = type(layer)
    n_out = int(np.prod(out_shape))
    if kind is Conv2D:
        C, H, W = in_shape
        F, OH, OW = out_shape
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
        gemm = F * C * kh * kw * OH * OW
        macs = (gemm if trainable else 0) + (gemm if dx else 0)
        flops = 2 * macs + (F * OH * OW if trainable else 0)
        if dx:
            flops += C * _inside(H, kh, sh, ph, OH) * _inside(W, kw, sw, pw, OW)
        return macs, flops
    if kind is Dense:
        gemm = layer.in_features * layer.out_features
        macs = (gemm if trainable else 0) + (gemm if dx else 0)
        return macs, 2 * macs + (layer.out_features if trainable else 0)
    if kind in (ReLU, MaxPool2D, Dropout):
        return 0, n_out if dx else 0
    if kind is Flatten:
        return 0, 0
    raise TypeError(f"tinycnn.flops has no backward rule for {kind.__name__}")


def _backward(layers, shapes, flags, need_dx):
    """Per-layer (MACs, FLOPs) of Sequential.backward with these trainable flags.

    Mirrors Sequential.backward: stop at the lowest trainable layer with params
    (or visit all if need_dx); only layers above the stop pass dx down.
    """
    costs = [(0, 0)] * len(layers)
    stop = 0 if need_dx else next((i for i, layer in enumerate(layers)
                                   if flags[i] and layer.params), None)
    if stop is None:
        return costs
    for i in range(len(layers) - 1, stop - 1, -1):
        costs[i] = _layer_backward(layers[i], shapes[i], shapes[i + 1],
                                   flags[i], need_dx or i > stop)
    return costs
