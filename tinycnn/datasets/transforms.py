"""Normalisation and seeded, stratified splits.

Split algorithm (stable across NumPy versions, since it uses only the raw PCG64
stream, which NumPy keeps fixed, and a stable sort):

1. ``bitgen = np.random.PCG64(seed)`` (the bit generator ``np.random.default_rng(seed)``
   uses, named explicitly so a future change of default cannot move the split);
   classes are the distinct labels in ``y``, visited in ascending order.
2. For each class, its indices in ``y`` order are shuffled by drawing one raw
   64-bit word per index (``bitgen.random_raw(n)``) and stable-sorting
   the indices by those words.
3. The first ``k_c`` shuffled indices of class ``c`` go to part A, the rest to B
   (``tinycnn.sampling.stratified_split``).
   With ``n_per_class``, ``k_c = n_per_class``. With ``fraction`` (an exact
   rational, ``Fraction(fraction).limit_denominator(10**6)``), ``k_c`` are
   largest-remainder quotas: each class gets ``floor(fraction * n_c)``, and the
   ``round(fraction * N) - sum`` leftover samples go one each to the classes with
   the largest fractional parts (ties: smaller label first).
4. Both parts are returned in ascending index order (original order).
"""
from __future__ import annotations

from fractions import Fraction
from math import floor

import numpy as np

from ..sampling import stratified_split

__all__ = ["normalize_stats", "normalize", "split_indices", "split", "train_val_split"]

_STATS_CHUNK = 4096


def _check_nchw(x: np.ndarray, name: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        shape = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{name}: expected an (N, C, H, W) array, got shape {shape}")


def normalize_stats(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of training images.

    Args:
        x_train: ``(N, C, H, W)`` float array, N >= 1 (training data only).

    Returns:
        mean, std: each ``(C,) float32``; accumulated in float64 over N, H, W
        (population std, ddof=0), in chunks so memory stays bounded.
    """
    _check_nchw(x_train, "x_train")
    n, c = x_train.shape[:2]
    if n == 0 or x_train.shape[2] * x_train.shape[3] == 0:
        raise ValueError(f"x_train: expected at least one pixel, got shape {x_train.shape}")
    count = n * x_train.shape[2] * x_train.shape[3]
    total = np.zeros(c, dtype=np.float64)
    for start in range(0, n, _STATS_CHUNK):
        total += x_train[start : start + _STATS_CHUNK].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    sq = np.zeros(c, dtype=np.float64)
    for start in range(0, n, _STATS_CHUNK):
        d = x_train[start : start + _STATS_CHUNK].astype(np.float64) - mean[None, :, None, None]
        sq += np.einsum("nchw,nchw->c", d, d)
    return mean.astype(np.float32), np.sqrt(sq / count).astype(np.float32)


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per channel.

    Args:
        x: ``(N, C, H, W)`` float array; mean, std: ``(C,)`` (from :func:`normalize_stats`).

    Returns:
        ``(N, C, H, W) float32``, a new array.
    """
    _check_nchw(x, "x")
    c = x.shape[1]
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    if mean.shape != (c,) or std.shape != (c,):
        raise ValueError(
            f"mean/std: expected shape ({c},) for {c} channels, got {mean.shape} and {std.shape}"
        )
    if not np.all(std > 0):
        raise ValueError(f"std: expected every channel > 0, got {std.tolist()}")
    out = x.astype(np.float32)  # copies
    out -= mean[None, :, None, None]
    out /= std[None, :, None, None]
    return out


def _class_quotas(counts: np.ndarray, fraction: Fraction) -> np.ndarray:
    quotas = [fraction * int(n) for n in counts]
    base = [floor(q) for q in quotas]
    target = floor(fraction * int(counts.sum()) + Fraction(1, 2))
    leftover = target - sum(base)
    order = sorted(range(len(counts)), key=lambda i: (-(quotas[i] - base[i]), i))
    for i in order[:leftover]:
        base[i] += 1
    return np.array(base, dtype=np.int64)


def split_indices(
    y: np.ndarray,
    n_per_class: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of sample indices (algorithm in the module docstring).

    Args:
        y: ``(N,)`` integer labels.
        n_per_class: exactly this many of every class go to part A; or
        fraction: this fraction (0 < fraction < 1) of every class goes to part A.
        seed: seed for ``np.random.PCG64`` (same stream as ``np.random.default_rng(seed)``).

    Returns:
        idx_a, idx_b: ``int64`` indices into ``y``, ascending, disjoint, covering all N.

    Raises:
        ValueError: not exactly one of n_per_class / fraction; a class with fewer
            than n_per_class samples; with fraction, a class that would be missing
            from either part.
    """
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"y: expected (N,) integer labels, got shape {y.shape} dtype {y.dtype}")
    if (n_per_class is None) == (fraction is None):
        raise ValueError(
            f"expected exactly one of n_per_class or fraction, got n_per_class={n_per_class}, "
            f"fraction={fraction}"
        )
    classes, counts = np.unique(y, return_counts=True)
    if n_per_class is not None:
        if int(n_per_class) != n_per_class or n_per_class < 1:
            raise ValueError(f"n_per_class: expected an integer >= 1, got {n_per_class!r}")
        short = [(int(c), int(n)) for c, n in zip(classes, counts, strict=True) if n < n_per_class]
        if short:
            raise ValueError(
                f"n_per_class={n_per_class}: expected at least that many samples in every "
                f"class, got (class, count) {short}"
            )
        take = np.full(len(classes), int(n_per_class), dtype=np.int64)
    else:
        if not 0 < fraction < 1:  # type: ignore[operator]
            raise ValueError(f"fraction: expected 0 < fraction < 1, got {fraction!r}")
        take = _class_quotas(counts, Fraction(fraction).limit_denominator(10**6))
        empty = [
            (int(c), int(n), int(k))
            for c, n, k in zip(classes, counts, take, strict=True)
            if k == 0 or k == n
        ]
        if empty:
            raise ValueError(
                f"fraction={fraction}: expected every class in both parts, but (class, samples, "
                f"to part A) {empty} leave a part without that class"
            )
    bitgen = np.random.PCG64(seed)
    order = []
    for c in classes:
        members = np.flatnonzero(y == c)
        order.append(members[np.argsort(bitgen.random_raw(members.size), kind="stable")])
    order = np.concatenate(order) if order else np.empty(0, dtype=np.int64)
    idx_a, idx_b = stratified_split(y, order, take)
    return np.sort(idx_a), np.sort(idx_b)


def split(
    x: np.ndarray,
    y: np.ndarray,
    n_per_class: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded stratified split of a data set into parts A and B.

    Args:
        x: ``(N, ...)`` samples, e.g. ``(N, C, H, W) float32``; y: ``(N,)`` integer labels.
        n_per_class / fraction / seed: as :func:`split_indices`.

    Returns:
        x_a, y_a, x_b, y_b: rows of x and y (same dtypes), each part in original order.
    """
    if len(x) != len(y):
        raise ValueError(f"x/y: expected as many samples as labels, got {len(x)} and {len(y)}")
    idx_a, idx_b = split_indices(y, n_per_class=n_per_class, fraction=fraction, seed=seed)
    return x[idx_a], y[idx_a], x[idx_b], y[idx_b]


def train_val_split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/validation split (the paper uses 9:1 on the training data).

    Equivalent to ``split(x, y, fraction=1 - val_fraction, seed=seed)``.

    Returns:
        x_train, y_train, x_val, y_val (shapes ``(N_t, ...)``, ``(N_t,)``, ``(N_v, ...)``, ``(N_v,)``).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected 0 < val_fraction < 1, got {val_fraction!r}")
    return split(x, y, fraction=1 - val_fraction, seed=seed)
