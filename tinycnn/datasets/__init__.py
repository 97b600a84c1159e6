"""Data sets for tinycnn: strict IDX/CIFAR readers, loaders, splits, normalisation.

Arrays are NCHW: images ``x: (N, C, H, W) float32`` in [0, 1], labels ``y: (N,) int64``.
Offline default: :func:`load_mnist_sample` (10,000 real MNIST test digits shipped
with the package). Full data sets are looked up locally, then downloaded and
verified against pinned SHA-256 sums; see docs/datasets.md.
"""
from .checksums import sha256_file
from .cifar import load_cifar10, parse_cifar_records
from .download import download_file
from .embedded import load_mnist_sample, sample_indices
from .errors import DatasetNotFoundError, DownloadError
from .idx import decode_idx, read_idx
from .mnist import load_fashion_mnist, load_mnist
from .paths import DownloadOptions, cache_root, fetch_file, find_file, search_dirs
from .sources import CIFAR10, FASHION_MNIST, MNIST, FileSpec, Source
from .transforms import normalize, normalize_stats, split, split_indices, train_val_split

__all__ = [
    "CIFAR10", "FASHION_MNIST", "MNIST", "DatasetNotFoundError", "DownloadError", "DownloadOptions", "FileSpec",
    "Source", "cache_root", "decode_idx", "download_file", "fetch_file", "find_file",
    "load_cifar10", "load_fashion_mnist", "load_mnist", "load_mnist_sample", "normalize",
    "normalize_stats", "parse_cifar_records", "read_idx", "sample_indices", "search_dirs",
    "sha256_file", "split", "split_indices", "train_val_split",
]
