"""Standard 10-crop testing: the 4 corner crops and the centre crop of each image and
of its horizontal mirror; the model's softmax outputs over the 10 views are averaged.

The crop is (ch, cw) = round(7/8 of the image side) by default (24x24 of 28x28,
28x28 of 32x32: the 224/256 ratio of the usual ImageNet recipe). The paper does
not state its crop size. A crop feeds a net built for the full size in one of two ways:
    "pad"     the crop stays where it was cut from and everything outside it is zeroed
              (no interpolation; the net sees the object at its usual place and scale)
    "resize"  the crop is scaled back to the full size with bilinear interpolation
"""
import numpy as np

from .losses import softmax

MODES = ("pad", "resize")


def default_crop(height, width):
    return round(height * 7 / 8), round(width * 7 / 8)


def crop_offsets(height, width, crop):
    """The 5 (top, left) offsets: top-left, top-right, bottom-left, bottom-right, centre."""
    ch, cw = crop
    if not (1 <= ch <= height and 1 <= cw <= width):
        raise ValueError(f"crop {crop} must fit in the {height}x{width} image")
    return [(0, 0), (0, width - cw), (height - ch, 0), (height - ch, width - cw),
            ((height - ch) // 2, (width - cw) // 2)]


def resize_bilinear(x, height, width):
    """x: (N, C, h, w) -> (N, C, height, width), bilinear, align_corners=True."""
    N, C, h, w = x.shape
    ys = np.linspace(0, h - 1, height) if height > 1 else np.zeros(1)
    xs = np.linspace(0, w - 1, width) if width > 1 else np.zeros(1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy = (ys - y0).astype(x.dtype)[:, None]
    wx = (xs - x0).astype(x.dtype)[None, :]
    top = x[:, :, y0][:, :, :, x0] * (1 - wx) + x[:, :, y0][:, :, :, x1] * wx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - wx) + x[:, :, y1][:, :, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def ten_crops(x, crop=None, mode="pad"):
    """Yield the 10 views of x: (N, C, H, W), each (N, C, H, W): 5 crops of x, then of x mirrored."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    N, C, H, W = x.shape
    ch, cw = crop or default_crop(H, W)
    offsets = crop_offsets(H, W, (ch, cw))
    for image in (x, x[:, :, :, ::-1]):
        for top, left in offsets:
            patch = image[:, :, top:top + ch, left:left + cw]
            if mode == "pad":
                view = np.zeros_like(x)
                view[:, :, top:top + ch, left:left + cw] = patch
            else:
                view = resize_bilinear(patch, H, W)
            yield view


def ten_crop_predict_proba(model, x, crop=None, mode="pad", batch_size=256):
    """x: (N, C, H, W) -> (N, K): the mean of softmax(model(view)) over the 10 views."""
    if x.ndim != 4:
        raise ValueError(f"10-crop testing needs images (N, C, H, W), got shape {x.shape}")
    chunks = []
    for i in range(0, len(x), batch_size):
        views = ten_crops(x[i:i + batch_size], crop, mode)
        chunks.append(sum(softmax(model.infer(view)) for view in views) / 10)
    return np.concatenate(chunks)
