"""Edge pre-processing: segment the object of each uploaded image (Section 3.2.2).

A simple, real segmentation for MNIST-like and CIFAR-like images:

1. background = per-channel median of the image's border pixels;
2. foreground mask = pixels whose largest channel difference from the background
   exceeds ``threshold`` (images in [0, 1]), dilated by ``margin`` pixels;
3. the object is the mask's bounding box, cropped, with pixels outside the mask set
   to the background (``clean=True``), stored as uint8;
4. ``restore`` turns objects back into model inputs of shape (C, H, W):
   ``mode="place"`` pastes the crop at its original position (scale 1, the default),
   ``mode="fit"`` resizes it (bilinear, aspect kept) to fill ``fit_fraction`` of the
   frame, centred, which is the classic MNIST normalisation.

What travels is the crop plus an 8-byte box and C background bytes (cloudedge.system.wire);
a raw upload is C*H*W bytes. An image with no foreground becomes a full-frame object.
"""
from dataclasses import dataclass

import numpy as np

MODES = ("place", "fit")


@dataclass(frozen=True)
class SegmentedObject:
    """One segmented object.

    pixels: (C, h, w) uint8, the crop; top, left: its position in the (H, W) frame;
    frame: (H, W) of the original image; background: (C,) uint8 fill value.
    """
    pixels: np.ndarray
    top: int
    left: int
    frame: tuple
    background: np.ndarray


def to_uint8(images):
    """(N, C, H, W) float in [0, 1] -> uint8, rounding (exact for data that came from uint8 / 255)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype not in (np.float32, np.float64):
        raise ValueError(f"expected (N, C, H, W) float images in [0, 1], got {images.dtype} {images.shape}")
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def segment(images, threshold=0.1, margin=1, clean=True):
    """images: (N, C, H, W) float in [0, 1] -> list of N SegmentedObject."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    if not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin must be an int >= 0, got {margin!r}")
    u8 = to_uint8(images)
    return [_segment_one(img, threshold, int(margin), clean) for img in u8]


def _segment_one(img, threshold, margin, clean):
    C, H, W = img.shape
    border = np.concatenate([img[:, 0, :], img[:, -1, :], img[:, :, 0], img[:, :, -1]], axis=1)
    background = np.median(border, axis=1).round().astype(np.uint8)             # (C,)
    diff = np.abs(img.astype(np.int16) - background[:, None, None].astype(np.int16)).max(axis=0)
    mask = diff > threshold * 255.0
    if not mask.any():
        return SegmentedObject(img.copy(), 0, 0, (H, W), background)
    mask = _dilate(mask, margin)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = img[:, top:bottom, left:right].copy()
    if clean:
        keep = mask[top:bottom, left:right]
        crop[:, ~keep] = background[:, None]
    return SegmentedObject(crop, int(top), int(left), (H, W), background)


def _dilate(mask, r):
    """Binary dilation of an (H, W) mask by a (2r+1)^2 square."""
    if r == 0:
        return mask
    H, W = mask.shape
    padded = np.pad(mask, r)
    out = np.zeros_like(mask)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= padded[dy:dy + H, dx:dx + W]
    return out


def restore(objects, input_shape, mode="place", fit_fraction=20 / 28):
    """Objects -> (N, C, H, W) float32 model inputs in [0, 1]; input_shape: (C, H, W)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    C, H, W = (int(v) for v in input_shape)
    out = np.empty((len(objects), C, H, W), dtype=np.float32)
    for i, obj in enumerate(objects):
        if obj.pixels.shape[0] != C:
            raise ValueError(f"object {i} has {obj.pixels.shape[0]} channels, the model input has {C}")
        canvas = np.empty((C, H, W), dtype=np.float32)
        canvas[...] = obj.background[:, None, None]
        crop = obj.pixels.astype(np.float32)
        if mode == "place":
            if tuple(obj.frame) != (H, W):
                raise ValueError(f"object {i} comes from a {obj.frame} frame, the model input is {(H, W)}; "
                                 f"use mode='fit' to resize")
            h, w = crop.shape[1:]
            canvas[:, obj.top:obj.top + h, obj.left:obj.left + w] = crop
        else:
            _paste_fitted(canvas, crop, fit_fraction)
        out[i] = canvas / 255.0
    return out


def _paste_fitted(canvas, crop, fraction):
    C, H, W = canvas.shape
    h, w = crop.shape[1:]
    scale = fraction * min(H, W) / max(h, w)
    nh, nw = max(1, min(H, int(round(h * scale)))), max(1, min(W, int(round(w * scale))))
    resized = resize_bilinear(crop, nh, nw)
    top, left = (H - nh) // 2, (W - nw) // 2
    canvas[:, top:top + nh, left:left + nw] = resized


def resize_bilinear(img, out_h, out_w):
    """img: (C, h, w) float -> (C, out_h, out_w), bilinear with half-pixel centres."""
    C, h, w = img.shape
    ys = np.clip((np.arange(out_h) + 0.5) * h / out_h - 0.5, 0, h - 1)
    xs = np.clip((np.arange(out_w) + 0.5) * w / out_w - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = img[:, y0][:, :, x0] * (1 - wx) + img[:, y0][:, :, x1] * wx
    bottom = img[:, y1][:, :, x0] * (1 - wx) + img[:, y1][:, :, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


@dataclass(frozen=True)
class Segmenter:
    """The segmentation settings an edge and the cloud agree on (see module docstring)."""
    threshold: float = 0.1
    margin: int = 1
    clean: bool = True
    mode: str = "place"
    fit_fraction: float = 20 / 28

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    def segment(self, images):
        """(N, C, H, W) float in [0, 1] -> list of N SegmentedObject."""
        return segment(images, self.threshold, self.margin, self.clean)

    def restore(self, objects, input_shape):
        """Objects -> (N, C, H, W) float32 model inputs."""
        return restore(objects, input_shape, self.mode, self.fit_fraction)

    def roundtrip(self, images):
        """What a model sees of these images after segmentation: restore(segment(images))."""
        return self.restore(self.segment(images), images.shape[1:])
