"""Uploaded pixels -> model input, and model-sized objects <-> uint8 for storage and upload."""
import numpy as np


def _bins(size, out):
    """Start index of each of `out` near-equal bins over `size` positions (size >= out)."""
    return np.floor(np.arange(out) * (size / out)).astype(np.intp)


def to_model_input(images, input_shape):
    """images (N, H, W, C) uint8, C in {1, 3} -> (N, C', H', W') float32 in [0, 1] for a model
    whose per-sample input is input_shape = (C', H', W').

    Downscaling averages each source area (bins of near-equal size); upscaling repeats
    pixels (nearest). RGB -> grey is the channel mean when C' == 1; grey -> RGB repeats it.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"images must be (N, H, W, C) uint8 with C in (1, 3), got "
                         f"{images.dtype}{images.shape}")
    c_out, h_out, w_out = input_shape
    if c_out not in (1, 3):
        raise ValueError(f"model input must have 1 or 3 channels, got input_shape {input_shape}")
    h, w, c = images.shape[1:]
    x = images.astype(np.float32)
    if h >= h_out:
        x = np.add.reduceat(x, _bins(h, h_out), axis=1) / np.diff(np.append(_bins(h, h_out), h))[None, :, None, None]
    else:
        x = x[:, (np.arange(h_out) * h) // h_out]
    if w >= w_out:
        x = np.add.reduceat(x, _bins(w, w_out), axis=2) / np.diff(np.append(_bins(w, w_out), w))[None, None, :, None]
    else:
        x = x[:, :, (np.arange(w_out) * w) // w_out]
    if c_out == 1 and c == 3:
        x = x.mean(axis=3, keepdims=True)
    elif c_out == 3 and c == 1:
        x = np.repeat(x, 3, axis=3)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) / np.float32(255), dtype=np.float32)


def to_uint8(x):
    """(N, C, H, W) float in [0, 1] -> uint8 (round to nearest; values outside are clipped)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255), 0, 255).astype(np.uint8)


def to_float(x):
    """(N, C, H, W) uint8 -> float32 in [0, 1]."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 objects, got {x.dtype}")
    return x.astype(np.float32) / np.float32(255)


def upscale(digits, side, channels=3):
    """digits (N, H, W) uint8 -> (N, side, side, channels) uint8 by nearest-neighbour
    repetition: a real image made `side` pixels wide, for uploads of a chosen size."""
    digits = np.asarray(digits)
    if digits.dtype != np.uint8 or digits.ndim != 3:
        raise ValueError(f"digits must be (N, H, W) uint8, got {digits.dtype}{digits.shape}")
    if side < 1 or channels not in (1, 3):
        raise ValueError(f"need side >= 1 and channels in (1, 3), got side={side}, channels={channels}")
    _, h, w = digits.shape
    rows, cols = (np.arange(side) * h) // side, (np.arange(side) * w) // side
    out = digits[:, rows][:, :, cols]
    return np.ascontiguousarray(np.repeat(out[..., None], channels, axis=3))
