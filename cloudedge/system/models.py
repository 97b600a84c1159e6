"""CloudCNN and EdgeCNN-k, as described in Ding et al. 2022, Section 4.3.1.

CloudCNN: 15 conv layers, 3x3, same padding, ReLU after each, with the filter plan
    3 x 32, 2 x 48, 5 x 80, 5 x 128
then one 2x2 max-pool, dropout 0.25, fc 1024 + ReLU, fc 10 (softmax is in the loss).
EdgeCNN-k (k in 3, 5, 10): the first k entries of that plan, then the same head.

Layer indices: conv j (0-based) is layer 2j and its ReLU is 2j + 1, so sharing the
m lower conv layers means sharing layers[:2m] (``shared_prefix(m)``).

Pool stride: the paper writes 2x2 pooling with stride 1. That keeps a 27x27 map,
so CloudCNN's fc layer has 128*27*27*1024 = 95.6M weights; stride 2 (the default
here) gives 128*14*14*1024 = 25.7M. Both are supported.

Presets (same depths and plan shape; widths divided, at least 1 filter):
    paper   the filter plan above, fc 1024
    half    widths / 2 (16, 24, 40, 64 filters), fc 256
    laptop  widths / 4 (8, 12, 20, 32 filters), fc 256: the default. ~16x fewer conv
            multiply-adds than paper; one CloudCNN epoch on 5,400 digits takes ~35 s on
            one core. The study in docs/REPRODUCTION.md chose it.
    eighth  widths / 8 (4, 6, 10, 16 filters), fc 256: too narrow for the shared
            layers to help (docs/REPRODUCTION.md, factors)
    tiny    widths / 16, fc 32: for tests of the framework's mechanics, not accuracy.

Init: "he-normal" (default) or "glorot-uniform" (the Keras default of the paper's era),
for every conv and dense layer (tinycnn.layers.base.init_weights).
"""
import numpy as np

from tinycnn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential

PAPER_PLAN = (32, 32, 32, 48, 48, 80, 80, 80, 80, 80, 128, 128, 128, 128, 128)
PRESETS = {
    "paper": {"width_divisor": 1, "fc": 1024},
    "half": {"width_divisor": 2, "fc": 256},
    "laptop": {"width_divisor": 4, "fc": 256},
    "eighth": {"width_divisor": 8, "fc": 256},
    "tiny": {"width_divisor": 16, "fc": 32},
}
DEFAULT_PRESET = "laptop"
EDGE_DEPTHS = (3, 5, 10)


def filter_plan(preset="paper"):
    """The 15 conv widths of CloudCNN for a preset."""
    divisor = _preset(preset)["width_divisor"]
    return tuple(max(1, f // divisor) for f in PAPER_PLAN)


def _preset(preset):
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    return PRESETS[preset]


def _build(depth, input_shape, preset, pool_stride, num_classes, dropout, seed, init):
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
    if pool_stride not in (1, 2):
        raise ValueError(f"pool_stride must be 1 (as the paper writes) or 2, got {pool_stride!r}")
    C, H, W = input_shape
    plan = filter_plan(preset)[:depth]
    rng = np.random.default_rng(seed)
    layers, in_ch = [], C
    for out_ch in plan:
        layers += [Conv2D(in_ch, out_ch, 3, padding=1, rng=rng, init=init), ReLU()]
        in_ch = out_ch
    OH, OW = (H - 2) // pool_stride + 1, (W - 2) // pool_stride + 1
    fc = _preset(preset)["fc"]
    layers += [MaxPool2D(2, pool_stride), Dropout(dropout), Flatten(),
               Dense(in_ch * OH * OW, fc, rng=rng, init=init), ReLU(),
               Dense(fc, num_classes, rng=rng, init=init)]
    return Sequential(layers)


def cloud_cnn(input_shape=(1, 28, 28), preset="paper", pool_stride=2, num_classes=10,
              dropout=0.25, seed=None, init="he-normal"):
    """CloudCNN: 15 conv layers + pool + dropout + fc + fc. input_shape: (C, H, W)."""
    return _build(len(PAPER_PLAN), input_shape, preset, pool_stride, num_classes, dropout, seed, init)


def edge_cnn(depth, input_shape=(1, 28, 28), preset="paper", pool_stride=2, num_classes=10,
             dropout=0.25, seed=None, init="he-normal"):
    """EdgeCNN-k: CloudCNN's first k conv layers + the same head. depth: k in 1..15."""
    if not isinstance(depth, int) or not 1 <= depth <= len(PAPER_PLAN):
        raise ValueError(f"depth must be an int in 1..{len(PAPER_PLAN)}, got {depth!r}")
    return _build(depth, input_shape, preset, pool_stride, num_classes, dropout, seed, init)


def shared_prefix(m):
    """Number of Sequential layers holding the m lower conv layers (each conv + its ReLU)."""
    return 2 * m
