"""Bodies of the prototype's HTTP API and their strict checks. Never pickle.

raw images    ``application/octet-stream``: the bytes of a C-order uint8 array, described
              by headers ``X-Dtype: uint8`` and ``X-Shape``: "H,W" (grey), "H,W,C"
              (C = 1 or 3) or "N,H,W,C" (a batch). Decoded to (N, H, W, C) uint8.
objects       ``application/x-cloudedge-objects``: cloudedge.system.wire's objects message
              (segmented crops + boxes), edge -> cloud.
labels        ``application/x-cloudedge-labels``: cloudedge.system.wire's labels message.
layers        ``application/x-cloudedge-package``: cloudedge.system.package's layer package.

Every check raises PayloadError (a ValueError) saying what was expected and what came;
the servers answer it with 400.
"""
import struct

import numpy as np

from ..system import wire

RAW = "application/octet-stream"
OBJECTS = "application/x-cloudedge-objects"
LABELS = "application/x-cloudedge-labels"
PACKAGE = "application/x-cloudedge-package"
MAX_SIDE = 8192
MIN_SIDE = 8          # smaller images are refused, not upscaled: each would still cost a store file
MAX_BATCH = 256


class PayloadError(ValueError):
    """A body that does not match its declared format."""


def content_type(headers):
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


def expect_type(headers, expected):
    got = content_type(headers)
    if got != expected:
        raise PayloadError(f"expected Content-Type {expected}, got {got or 'none'!r}")


# --- raw images -----------------------------------------------------------------------------

def encode_images(images):
    """images: (H, W), (H, W, C) or (N, H, W, C) uint8 -> (body bytes, headers dict)."""
    images = np.ascontiguousarray(images)
    if images.dtype != np.uint8:
        raise PayloadError(f"images must be uint8, got {images.dtype}")
    if images.ndim not in (2, 3, 4):
        raise PayloadError(f"images must be (H, W), (H, W, C) or (N, H, W, C), got shape {images.shape}")
    headers = {"Content-Type": RAW, "X-Dtype": "uint8", "X-Shape": ",".join(map(str, images.shape))}
    return images.tobytes(), headers


def decode_images(headers, body, max_batch=MAX_BATCH, max_side=MAX_SIDE, min_side=MIN_SIDE):
    """Raw request -> (N, H, W, C) uint8 with C in {1, 3} (a read-only view of body)."""
    expect_type(headers, RAW)
    dtype = (headers.get("X-Dtype") or "").strip().lower()
    if dtype != "uint8":
        raise PayloadError(f"expected header X-Dtype: uint8, got {dtype or 'none'!r}")
    text = headers.get("X-Shape") or ""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise PayloadError(f"expected header X-Shape like 'H,W', 'H,W,C' or 'N,H,W,C', got {text!r}") from None
    if len(shape) not in (2, 3, 4) or min(shape) < 1:
        raise PayloadError(f"X-Shape must have 2, 3 or 4 positive sizes, got {text!r}")
    if len(shape) == 2:
        shape = (1, *shape, 1)
    elif len(shape) == 3:
        shape = (1, *shape)
    n, h, w, c = shape
    if c not in (1, 3):
        raise PayloadError(f"images must have 1 or 3 channels (last axis), got {c}")
    if n > max_batch:
        raise PayloadError(f"at most {max_batch} images per request, got {n}")
    if h > max_side or w > max_side:
        raise PayloadError(f"image sides must be <= {max_side}, got {h}x{w}")
    if h < min_side or w < min_side:
        raise PayloadError(f"image sides must be >= {min_side} (smaller ones are refused, not upscaled), "
                           f"got {h}x{w}")
    expected = n * h * w * c
    if len(body) != expected:
        raise PayloadError(f"X-Shape {text} needs {expected} bytes of uint8, got {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


# --- objects and labels (cloudedge.system.wire) ----------------------------------------------------

def decode_objects(body, input_shape, max_batch=MAX_BATCH):
    """An objects message for a model with per-sample input (C, H, W) -> (ids, objects).

    Checks the count, the frame and channels against input_shape and every box against
    the frame, so that nothing malformed reaches the model.
    """
    C, H, W = input_shape
    try:
        kind = wire.message_kind(body)
        if kind != "objects":
            raise PayloadError(f"expected an objects message, got a {kind} message")
        count, c, h, w = wire.objects_header(body)        # limits first, from the header alone
        if not 1 <= count <= max_batch:
            raise PayloadError(f"expected 1..{max_batch} objects, got {count}")
        if (c, h, w) != (C, H, W):
            raise PayloadError(f"expected objects with {C} channels in a {H}x{W} frame, the header says "
                               f"{c} in {h}x{w}")
        ids, objects = wire.decode_objects(body, max_count=max_batch)
    except PayloadError:
        raise
    except (ValueError, struct.error) as exc:   # truncated or inconsistent framing
        raise PayloadError(f"expected a well-formed objects message, got a damaged one: {exc}") from None
    if len(set(ids.tolist())) != len(ids):
        raise PayloadError("object ids in one message must be distinct, got repeats")
    for i, obj in zip(ids, objects):
        c, h, w = obj.pixels.shape
        if tuple(obj.frame) != (H, W) or c != C:
            raise PayloadError(f"object {i}: expected {C} channels in a {H}x{W} frame, got {c} in "
                               f"{obj.frame[0]}x{obj.frame[1]}")
        if h < 1 or w < 1 or obj.top + h > H or obj.left + w > W:
            raise PayloadError(f"object {i}: box top={obj.top} left={obj.left} {h}x{w} does not fit "
                               f"the {H}x{W} frame")
    return ids, objects


def decode_labels(body, ids, num_classes=None):
    """A labels message answering `ids` -> wire.LabelReply in the order of ids."""
    try:
        reply = wire.decode_labels(body)
    except (ValueError, struct.error) as exc:
        raise PayloadError(f"expected a labels message, got a damaged one: {exc}") from None
    got = reply.ids.tolist()
    want = [int(i) for i in ids]
    if sorted(got) != sorted(want):
        raise PayloadError(f"labels message: expected labels for ids {want[:5]}... ({len(want)}), "
                           f"got {got[:5]}... ({len(got)})")
    if num_classes is not None and len(got) and reply.labels.max() >= num_classes:
        raise PayloadError(f"labels message: labels must be < {num_classes}, got {reply.labels.max()}")
    order = np.argsort(reply.ids)[np.argsort(np.argsort(want))]
    return wire.LabelReply(reply.ids[order], reply.labels[order], reply.confidence[order],
                           None if reply.probs is None else reply.probs[order])
