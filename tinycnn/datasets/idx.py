"""Strict reader for IDX files (the MNIST / Fashion-MNIST format), gzip or raw.

Layout: 4-byte magic ``00 00 <type> <ndim>`` (big-endian), then ``ndim`` big-endian
uint32 sizes, then exactly ``prod(sizes)`` payload bytes. Only type 0x08 (unsigned
byte) is accepted. Every defect is a ``ValueError`` naming the file.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["read_idx", "decode_idx", "GZIP_MAGIC"]

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
_CHUNK = 1 << 20
_KINDS = {1: "labels, 1 dim", 3: "images, 3 dims"}
# Errors gzip/zlib raise on corrupt or truncated streams.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def read_idx(path: str | PathLike[str], ndim: int | None = None) -> np.ndarray:
    """Read one IDX file, gzip-compressed (detected by magic bytes) or raw.

    Args:
        path: the file.
        ndim: if given, the number of dimensions the file must declare
            (1 for labels, 3 for images).

    Returns:
        uint8 array of the declared shape, e.g. images ``(N, H, W) uint8`` or
        labels ``(N,) uint8``; writable, owned by the caller.

    Raises:
        ValueError: bad magic, wrong dimension count, zero size, truncated payload,
            trailing bytes, or corrupt gzip stream; the message names the file.
        FileNotFoundError: the file does not exist.
    """
    array, _ = read_idx_hashed(path, ndim)
    return array


def decode_idx(data: bytes, name: str = "<bytes>", ndim: int | None = None) -> np.ndarray:
    """Decode IDX content held in memory (gzip or raw); ``name`` labels error messages.

    Returns the same ``uint8`` array as :func:`read_idx`; raises only ``ValueError``.
    """
    array, _ = _parse(io.BytesIO(data), name, ndim)
    return array


def read_idx_hashed(path: str | PathLike[str], ndim: int | None = None) -> tuple[np.ndarray, str]:
    """Like :func:`read_idx`, also returning the SHA-256 (hex) of the decompressed IDX bytes."""
    path = Path(path)
    with open(path, "rb") as f:
        return _parse(f, path.name, ndim)


def _expected_magic(ndim: int) -> str:
    kind = _KINDS.get(ndim, f"{ndim} dims")
    return f"0x{(UBYTE << 8) | ndim:08X} ({kind})"


def _parse(raw: BinaryIO, name: str, ndim: int | None) -> tuple[np.ndarray, str]:
    head = raw.read(2)
    raw.seek(0)
    if head == GZIP_MAGIC:
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        where = "decompressed data"
    else:
        stream = raw
        where = "file"
    hasher = hashlib.sha256()

    def take(n: int) -> bytearray:
        """Read up to n bytes (fewer only at end of stream), hashing them."""
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = stream.read(min(_CHUNK, n - len(buf)))
            except _GZIP_ERRORS as exc:
                raise ValueError(f"{name}: corrupt or truncated gzip stream: {exc}") from exc
            if not chunk:
                break
            buf += chunk
        hasher.update(buf)
        return buf

    header = take(4)
    if len(header) < 4:
        raise ValueError(
            f"{name}: truncated header: expected a 4-byte magic number, got {len(header)} bytes"
        )
    magic = int.from_bytes(header, "big")
    nd = header[3]
    if ndim is not None and magic != (UBYTE << 8) | ndim:
        raise ValueError(f"{name}: expected magic {_expected_magic(ndim)}, got 0x{magic:08X}")
    if header[0] != 0 or header[1] != 0:
        raise ValueError(
            f"{name}: expected magic 0x000008NN (two zero bytes, type, dims), got 0x{magic:08X}"
        )
    if header[2] != UBYTE:
        raise ValueError(
            f"{name}: expected data type code 0x08 (unsigned byte), got 0x{header[2]:02X}"
        )
    if nd == 0:
        raise ValueError(f"{name}: expected at least 1 dimension, got 0 (magic 0x{magic:08X})")

    sizes = take(4 * nd)
    if len(sizes) < 4 * nd:
        raise ValueError(
            f"{name}: truncated header: expected {4 * nd} bytes of dimension sizes "
            f"for {nd} dims, got {len(sizes)}"
        )
    shape = tuple(int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(nd))
    if 0 in shape:
        raise ValueError(f"{name}: expected every dimension > 0, got shape {shape}")
    count = 1
    for s in shape:
        count *= s

    payload = take(count)
    if len(payload) < count:
        raise ValueError(
            f"{name}: truncated payload: shape {shape} needs {count} bytes, "
            f"got {len(payload)} ({count - len(payload)} missing)"
        )
    digest = hasher.hexdigest()
    # Reading past the payload also makes gzip verify its CRC and length trailer.
    extra = 0
    try:
        while chunk := stream.read(_CHUNK):
            extra += len(chunk)
    except _GZIP_ERRORS as exc:
        raise ValueError(f"{name}: corrupt or truncated gzip stream: {exc}") from exc
    if extra:
        raise ValueError(
            f"{name}: trailing bytes: expected the {where} to end after "
            f"{4 + 4 * nd + count} bytes (shape {shape}), got {extra} more"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape), digest
