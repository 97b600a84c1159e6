"""The embedded offline default: the 10,000 real MNIST test digits (see data/README.md).

``load_mnist_sample`` splits them into a fixed 8,000 / 2,000 train/test sample:
``split_indices(labels, fraction=0.8, seed=0)`` (algorithm in
:mod:`tinycnn.datasets.transforms`), giving per class (digits 0..9)
train 784 908 826 808 786 714 766 822 779 807 and
test 196 227 206 202 196 178 192 206 195 202.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .checksums import read_sha256sums, sha256_file
from .mnist import SPLIT_FILES, images_to_float, read_verified_idx
from .sources import EMBEDDED_DIR, MNIST
from .transforms import split_indices

__all__ = ["load_mnist_sample", "SAMPLE_FRACTION", "SAMPLE_SEED", "EMBEDDED_DIR"]

SAMPLE_FRACTION = 0.8
SAMPLE_SEED = 0
_SPLITS = ("train", "test", "all")


@lru_cache(maxsize=1)
def _embedded_uint8() -> tuple[np.ndarray, np.ndarray]:
    """Verified (images (10000, 28, 28) uint8, labels (10000,) int64), read-only."""
    sums_path = EMBEDDED_DIR / "SHA256SUMS"
    sums = read_sha256sums(sums_path)
    image_name, label_name = SPLIT_FILES["test"]
    for name in (image_name, label_name):
        if name not in sums:
            raise ValueError(f"{sums_path.name}: expected an entry for {name}, got {sorted(sums)}")
        got = sha256_file(EMBEDDED_DIR / name)
        if got != sums[name]:
            raise ValueError(
                f"{name} (embedded): checksum mismatch: expected SHA-256 {sums[name]} "
                f"from {sums_path.name}, got {got}"
            )
    # Also the published payload sums of the official t10k files.
    images = read_verified_idx(EMBEDDED_DIR / image_name, MNIST.files[image_name], ndim=3)
    labels = read_verified_idx(EMBEDDED_DIR / label_name, MNIST.files[label_name], ndim=1)
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def sample_indices(split: str = "train") -> np.ndarray:
    """Indices (ascending, ``(N,) int64``) into the 10,000 embedded digits for ``split``."""
    if split not in _SPLITS:
        raise ValueError(f"split: expected one of {list(_SPLITS)}, got {split!r}")
    _, labels = _embedded_uint8()
    if split == "all":
        return np.arange(labels.size, dtype=np.int64)
    train, test = split_indices(labels, fraction=SAMPLE_FRACTION, seed=SAMPLE_SEED)
    return train if split == "train" else test


def load_mnist_sample(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The embedded MNIST sample; works offline, no download.

    Args:
        split: "train" (8,000), "test" (2,000) or "all" (10,000, file order).

    Returns:
        x: ``(N, 1, 28, 28) float32`` in [0, 1]; y: ``(N,) int64`` in [0, 10).
        Both parts keep the files' order; they are disjoint and stratified by class.

    Raises:
        ValueError: unknown split, or the embedded files fail their SHA-256 check.
    """
    idx = sample_indices(split)
    images, labels = _embedded_uint8()
    image_name, label_name = SPLIT_FILES["test"]
    return images_to_float(images[idx], labels[idx], image_name, label_name)
