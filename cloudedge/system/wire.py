"""Byte formats of the messages between edges and the cloud; lengths are what is counted.

All integers little-endian. Three messages besides layer packages (cloudedge.system.package):

objects (edge -> cloud, segmented uploads)::
    b"CEOBJ1\\n" | count u32 | C u8 | H u16 | W u16
    then per object: id u32 | top u16 | left u16 | h u16 | w u16 | background C x u8 | C*h*w x u8

images (edge -> cloud, raw uploads when segmentation is off)::
    b"CEIMG1\\n" | count u32 | C u8 | H u16 | W u16 | ids count x u32 | count*C*H*W x u8

labels (cloud -> edge)::
    b"CELAB1\\n" | count u32 | K u16 | has_probs u8 | ids count x u32 | labels count x u8
    | confidence count x f32 | (probs count*K x f32 if has_probs)
"""
import struct
from dataclasses import dataclass

import numpy as np

from ..policies.segmentation import SegmentedObject

OBJ_MAGIC, IMG_MAGIC, LAB_MAGIC = b"CEOBJ1\n", b"CEIMG1\n", b"CELAB1\n"
_FRAME = struct.Struct("<IBHH")        # count, C, H, W
_OBJ = struct.Struct("<IHHHH")         # id, top, left, h, w
_LAB = struct.Struct("<IHB")           # count, K, has_probs


def object_wire_bytes(obj):
    """Bytes one object adds to an objects message."""
    C, h, w = obj.pixels.shape
    return _OBJ.size + C + C * h * w


def images_message_bytes(n, shape):
    """Length of an images message carrying n raw images of per-sample shape (C, H, W)."""
    return len(IMG_MAGIC) + _FRAME.size + 4 * n + n * int(np.prod(shape))


def message_kind(data):
    """"objects", "images" or "labels", from the magic; ValueError otherwise."""
    for magic, kind in ((OBJ_MAGIC, "objects"), (IMG_MAGIC, "images"), (LAB_MAGIC, "labels")):
        if bytes(data[:len(magic)]) == magic:
            return kind
    raise ValueError(f"unknown message: expected one of {OBJ_MAGIC!r}, {IMG_MAGIC!r}, {LAB_MAGIC!r}, "
                     f"got {bytes(data[:7])!r}")


def _ids(ids, count):
    ids = np.asarray(ids, dtype=np.int64)
    if ids.shape != (count,) or (count and (ids.min() < 0 or ids.max() >= 2**32)):
        raise ValueError(f"expected {count} ids in [0, 2**32), got shape {ids.shape}")
    return ids.astype("<u4")


def encode_objects(ids, objects):
    """ids: (n,) ints; objects: n SegmentedObject with one frame and channel count -> bytes."""
    if not objects:
        raise ValueError("expected at least one object to encode, got none")
    C = objects[0].pixels.shape[0]
    H, W = objects[0].frame
    ids = _ids(ids, len(objects))
    parts = [OBJ_MAGIC, _FRAME.pack(len(objects), C, H, W)]
    for i, obj in zip(ids, objects):
        if obj.pixels.dtype != np.uint8 or obj.pixels.shape[0] != C or tuple(obj.frame) != (H, W):
            raise ValueError(f"objects in one message share dtype uint8, {C} channels and frame {(H, W)}; "
                             f"object {int(i)} has {obj.pixels.dtype}, {obj.pixels.shape[0]}, {obj.frame}")
        _, h, w = obj.pixels.shape
        parts += [_OBJ.pack(int(i), obj.top, obj.left, h, w), obj.background.astype(np.uint8).tobytes(),
                  np.ascontiguousarray(obj.pixels).tobytes()]
    return b"".join(parts)


def objects_header(data):
    """The (count, C, H, W) an objects message declares, read without decoding any object."""
    if bytes(data[:len(OBJ_MAGIC)]) != OBJ_MAGIC:
        raise ValueError(f"expected an objects message ({OBJ_MAGIC!r}), got {bytes(data[:7])!r}")
    if len(data) < len(OBJ_MAGIC) + _FRAME.size:
        raise ValueError(f"objects message of {len(data)} bytes is shorter than its header")
    return _FRAME.unpack_from(data, len(OBJ_MAGIC))


def decode_objects(data, max_count=None):
    """bytes -> (ids (n,) int64, list of SegmentedObject). The declared count is checked against
    max_count and against the message's length (each object takes >= id, box and background
    bytes) before anything is decoded, so a header cannot make this loop run away."""
    data = memoryview(bytes(data))
    count, C, H, W = objects_header(data)
    pos = len(OBJ_MAGIC) + _FRAME.size
    if max_count is not None and count > max_count:
        raise ValueError(f"at most {max_count} objects per message, the header declares {count}")
    if count * (_OBJ.size + C) > len(data) - pos:
        raise ValueError(f"the header declares {count} objects, but {len(data) - pos} bytes cannot hold them")
    ids, objects = [], []
    for _ in range(count):
        i, top, left, h, w = _OBJ.unpack_from(data, pos)
        pos += _OBJ.size
        background = np.frombuffer(data, np.uint8, C, pos).copy()
        pos += C
        pixels = np.frombuffer(data, np.uint8, C * h * w, pos).reshape(C, h, w).copy()
        pos += C * h * w
        ids.append(i)
        objects.append(SegmentedObject(pixels, top, left, (H, W), background))
    if pos != len(data):
        raise ValueError(f"objects message: {count} objects end at byte {pos}, message has {len(data)}")
    return np.array(ids, dtype=np.int64), objects


def encode_images(ids, images_u8):
    """ids: (n,) ints; images_u8: (n, C, H, W) uint8 -> bytes."""
    images_u8 = np.asarray(images_u8)
    if images_u8.ndim != 4 or images_u8.dtype != np.uint8:
        raise ValueError(f"expected (n, C, H, W) uint8 images, got {images_u8.dtype} {images_u8.shape}")
    n, C, H, W = images_u8.shape
    return b"".join([IMG_MAGIC, _FRAME.pack(n, C, H, W), _ids(ids, n).tobytes(),
                     np.ascontiguousarray(images_u8).tobytes()])


def decode_images(data):
    """bytes -> (ids (n,) int64, images (n, C, H, W) uint8)."""
    data = bytes(data)
    if not data.startswith(IMG_MAGIC):
        raise ValueError(f"expected an images message ({IMG_MAGIC!r}), got {data[:7]!r}")
    pos = len(IMG_MAGIC)
    n, C, H, W = _FRAME.unpack_from(data, pos)
    pos += _FRAME.size
    want = pos + 4 * n + n * C * H * W
    if len(data) != want:
        raise ValueError(f"images message: {n} images of {(C, H, W)} need {want} bytes, got {len(data)}")
    ids = np.frombuffer(data, "<u4", n, pos).astype(np.int64)
    images = np.frombuffer(data, np.uint8, n * C * H * W, pos + 4 * n).reshape(n, C, H, W).copy()
    return ids, images


@dataclass
class LabelReply:
    """The cloud's answer: per object its id, label, confidence (max prob) and, if asked, probs (n, K)."""
    ids: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    probs: np.ndarray | None = None


def encode_labels(reply, num_classes):
    n = len(reply.ids)
    has_probs = reply.probs is not None
    parts = [LAB_MAGIC, _LAB.pack(n, num_classes, int(has_probs)), _ids(reply.ids, n).tobytes(),
             np.asarray(reply.labels, dtype=np.uint8).tobytes(),
             np.asarray(reply.confidence, dtype="<f4").tobytes()]
    if has_probs:
        probs = np.asarray(reply.probs, dtype="<f4")
        if probs.shape != (n, num_classes):
            raise ValueError(f"probs must be {(n, num_classes)}, got {probs.shape}")
        parts.append(probs.tobytes())
    return b"".join(parts)


def decode_labels(data):
    """bytes -> LabelReply (labels int64, confidence float32, probs float32 or None)."""
    data = bytes(data)
    if not data.startswith(LAB_MAGIC):
        raise ValueError(f"expected a labels message ({LAB_MAGIC!r}), got {data[:7]!r}")
    pos = len(LAB_MAGIC)
    n, K, has_probs = _LAB.unpack_from(data, pos)
    pos += _LAB.size
    want = pos + n * (4 + 1 + 4) + (n * K * 4 if has_probs else 0)
    if len(data) != want:
        raise ValueError(f"labels message: {n} labels (probs={bool(has_probs)}) need {want} bytes, got {len(data)}")
    ids = np.frombuffer(data, "<u4", n, pos).astype(np.int64)
    pos += 4 * n
    labels = np.frombuffer(data, np.uint8, n, pos).astype(np.int64)
    pos += n
    confidence = np.frombuffer(data, "<f4", n, pos).astype(np.float32)
    pos += 4 * n
    probs = np.frombuffer(data, "<f4", n * K, pos).reshape(n, K).astype(np.float32) if has_probs else None
    return LabelReply(ids, labels, confidence, probs)
