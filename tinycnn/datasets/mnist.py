"""MNIST and Fashion-MNIST loaders (IDX files) returning ``(x, y)``."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .checksums import check_file, checksum_table
from .idx import read_idx_hashed
from .paths import DEFAULT_OPTIONS, DownloadOptions, fetch_file
from .sources import FASHION_MNIST, MNIST, FileSpec, Source

__all__ = ["load_mnist", "load_fashion_mnist", "load_idx_pair", "images_to_float", "check_labels"]

NUM_CLASSES = 10
IMAGE_SIZE = (28, 28)
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def load_mnist(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    checksums: Mapping[str, FileSpec | str] | None = None,
    options: DownloadOptions = DEFAULT_OPTIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST digits.

    Args:
        split: "train" (60,000) or "test" (10,000).
        data_dir: folder holding the IDX files (searched first; see docs/datasets.md).
        checksums: file name -> FileSpec or hex SHA-256, overriding the pinned sums.
        options: whether and how to download missing files into the user cache
            (:class:`DownloadOptions`: ``enabled``, ``mirror``, ``progress``, ``attempts``,
            ``timeout``, ``backoff``); mirrors are laid out as ``<mirror>/mnist/<file>``.

    Returns:
        x: ``(N, 1, 28, 28) float32`` in [0, 1] (pixel / 255).
        y: ``(N,) int64`` in [0, 10).

    Raises:
        ValueError: unknown split, malformed or mismatching file (names the file).
        DatasetNotFoundError: a file is nowhere and could not be downloaded.
    """
    return load_idx_pair(MNIST, split, data_dir, checksums, options)


def load_fashion_mnist(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    checksums: Mapping[str, FileSpec | str] | None = None,
    options: DownloadOptions = DEFAULT_OPTIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST (Zalando); same file names and shapes as MNIST.

    Also found in Debian's ``/usr/share/datasets/fashion-mnist`` (after the user
    cache). Arguments as :func:`load_mnist`, mirror layout ``<mirror>/fashion-mnist/<file>``.

    Returns:
        x: ``(N, 1, 28, 28) float32`` in [0, 1]; y: ``(N,) int64`` in [0, 10).
        N is 60,000 for "train", 10,000 for "test".
    """
    return load_idx_pair(FASHION_MNIST, split, data_dir, checksums, options)


def load_idx_pair(
    source: Source,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    checksums: Mapping[str, FileSpec | str] | None = None,
    options: DownloadOptions = DEFAULT_OPTIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Find, verify and decode one split of an MNIST-layout source.

    Returns ``x: (N, 1, 28, 28) float32`` in [0, 1] and ``y: (N,) int64``.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split: expected one of {sorted(SPLIT_FILES)}, got {split!r}")
    table = checksum_table(source, checksums)
    image_name, label_name = SPLIT_FILES[split]
    image_path = fetch_file(source, image_name, table, data_dir, options)
    label_path = fetch_file(source, label_name, table, data_dir, options)
    images = read_verified_idx(image_path, table[image_name], ndim=3)
    labels = read_verified_idx(label_path, table[label_name], ndim=1)
    return images_to_float(images, labels, image_path.name, label_path.name)


def read_verified_idx(path: Path, spec: FileSpec, ndim: int) -> np.ndarray:
    """Decode an IDX file and check it against ``spec``; ``uint8`` array of ``ndim`` dims."""
    array, payload_sha256 = read_idx_hashed(path, ndim)
    check_file(path, spec, payload_sha256)
    return array


def images_to_float(
    images: np.ndarray, labels: np.ndarray, image_name: str, label_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Check an image/label pair and convert it.

    Args:
        images: ``(N, 28, 28) uint8``; labels: ``(N,) uint8``; the names label errors.

    Returns:
        x: ``(N, 1, 28, 28) float32`` = images / 255; y: ``(N,) int64``.
    """
    if images.shape[1:] != IMAGE_SIZE:
        raise ValueError(
            f"{image_name}: expected images of {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} pixels, "
            f"got {images.shape[1]}x{images.shape[2]} (shape {images.shape})"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{label_name} / {image_name}: count mismatch: expected as many labels as "
            f"images ({images.shape[0]}), got {labels.shape[0]} labels"
        )
    y = check_labels(labels, label_name)
    x = images.astype(np.float32)[:, None, :, :]
    np.divide(x, np.float32(255), out=x)
    return x, y


def check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    """``(N,)`` integer labels -> ``(N,) int64``; ValueError naming ``name`` if any is outside [0, 10)."""
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}: label out of range: expected 0..{NUM_CLASSES - 1}, got {int(labels[i])} "
            f"at index {i} ({bad.size} bad labels)"
        )
    return labels.astype(np.int64)
