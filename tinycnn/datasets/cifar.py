"""CIFAR-10 from the official *binary* version (never the pickled one).

Each ``.bin`` file is a run of 3073-byte records: 1 label byte (0-9), then 3072 pixel
bytes as 1024 red, 1024 green, 1024 blue, each plane row-major 32x32, so the
pixels reshape directly to NCHW. Files are read from an extracted
``cifar-10-batches-bin/`` folder or straight out of ``cifar-10-binary.tar.gz``
(members are read in memory; nothing is extracted to disk).
"""
from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .checksums import check_file, checksum_table
from .errors import DatasetNotFoundError
from .mnist import NUM_CLASSES
from .paths import DEFAULT_OPTIONS, DownloadOptions, candidate_names, fetch_file, search_dirs
from .sources import CIFAR10, CIFAR10_ARCHIVE, CIFAR10_MEMBER_DIR, FileSpec

__all__ = ["load_cifar10", "parse_cifar_records", "RECORD_BYTES"]

IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32
SPLIT_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}


def parse_cifar_records(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Decode CIFAR-10 binary records.

    Args:
        data: whole records, ``1 + 3072`` bytes each; ``name`` labels error messages.

    Returns:
        images: ``(N, 3, 32, 32) uint8``; labels: ``(N,) int64`` in [0, 10).

    Raises:
        ValueError: empty input, a partial record, or a label outside [0, 10).
    """
    size = len(data)
    if size == 0:
        raise ValueError(f"{name}: expected at least one {RECORD_BYTES}-byte record, got 0 bytes")
    if size % RECORD_BYTES:
        raise ValueError(
            f"{name}: expected a multiple of {RECORD_BYTES} bytes (1 label + 3072 pixels per "
            f"record), got {size} bytes ({size // RECORD_BYTES} records + {size % RECORD_BYTES} extra)"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}: label out of range: expected 0..{NUM_CLASSES - 1}, got {int(labels[i])} "
            f"in record {i} ({bad.size} bad records)"
        )
    images = records[:, 1:].reshape((-1,) + IMAGE_SHAPE).copy()
    return images, labels.astype(np.int64)


def load_cifar10(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    checksums: Mapping[str, FileSpec | str] | None = None,
    options: DownloadOptions = DEFAULT_OPTIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 (binary version).

    In each searched folder (see docs/datasets.md) the loader takes, in order: the
    split's ``.bin`` files inside ``cifar-10-batches-bin/`` or directly in the folder,
    else ``cifar-10-binary.tar.gz``. If none has them it downloads the archive
    (170 MB) into the user cache. Every file is checked against its pinned SHA-256.

    Args:
        split: "train" (data_batch_1..5, 50,000) or "test" (test_batch, 10,000).
        Others as :func:`tinycnn.datasets.load_mnist`; mirror layout ``<mirror>/cifar10/<file>``.

    Returns:
        x: ``(N, 3, 32, 32) float32`` in [0, 1] (pixel / 255).
        y: ``(N,) int64`` in [0, 10).
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split: expected one of {sorted(SPLIT_FILES)}, got {split!r}")
    table = checksum_table(CIFAR10, checksums)
    members = SPLIT_FILES[split]
    chunks = _read_extracted(members, data_dir, table)
    if chunks is None:
        try:
            archive = fetch_file(CIFAR10, CIFAR10_ARCHIVE, table, data_dir, options)
        except DatasetNotFoundError as exc:
            raise DatasetNotFoundError(
                f"{exc}\nAlternatively put the extracted {', '.join(members)} into "
                f"{CIFAR10_MEMBER_DIR}/ (or directly) in any folder listed above."
            ) from None
        check_file(archive, table[CIFAR10_ARCHIVE])
        chunks = _read_archive(archive, members)
    images, labels = zip(*(parse_cifar_records(data, name) for name, data in chunks), strict=True)
    x = np.concatenate(images).astype(np.float32)
    np.divide(x, np.float32(255), out=x)
    return x, np.concatenate(labels)


def _read_extracted(
    members: tuple[str, ...], data_dir: str | os.PathLike[str] | None, table: Mapping[str, FileSpec]
) -> list[tuple[str, bytes]] | None:
    """The members' bytes from the first searched folder holding them all, or None.

    A folder holding the archive but not all members ends the search there, so an
    archive is never passed over for extracted files further down the order.
    """
    for _, folder in search_dirs(CIFAR10, data_dir):
        for sub in (folder / CIFAR10_MEMBER_DIR, folder):
            paths = [sub / m for m in members]
            if all(p.is_file() for p in paths):
                out = []
                for p in paths:
                    check_file(p, table[p.name])
                    out.append((p.name, p.read_bytes()))
                return out
        if any((folder / n).is_file() for n in candidate_names(CIFAR10_ARCHIVE)):
            return None
    return None


def _read_archive(archive: Path, members: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """Read the named members from the gzip'd tar without writing anything to disk."""
    wanted = {f"{CIFAR10_MEMBER_DIR}/{m}": m for m in members}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for info in tar:
                key = info.name.removeprefix("./")
                if key in wanted and info.isfile():
                    f = tar.extractfile(info)
                    if f is not None:
                        found[wanted[key]] = f.read()
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{archive.name}: unreadable tar archive: {exc}") from exc
    missing = [m for m in members if m not in found]
    if missing:
        raise ValueError(
            f"{archive.name}: expected members {[f'{CIFAR10_MEMBER_DIR}/{m}' for m in missing]}, "
            f"not in the archive"
        )
    return [(f"{archive.name}:{m}", found[m]) for m in members]
