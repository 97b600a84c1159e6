"""Seeded stratified sampling: the one algorithm behind every split in the project.

    idx_a, idx_b = stratified_split(y, order, take)

``order`` is a seeded shuffle of the candidate indices. Walking it, the first ``take[i]``
members of the i-th class (labels ascending) go to part A and the others to part B. The
callers differ only in how they shuffle and how many of each class they take:

* ``tinycnn.datasets.split_indices`` (the cloud part and the edge pool): each class shuffled
  by raw PCG64 words (stable across NumPy versions); ``n_per_class``, or largest-remainder
  shares of ``fraction``.
* ``tinycnn.train.holdout_split`` (the validation split): each class shuffled by
  ``Generator.permutation``; ``round(val_fraction * n_c)``.
* :func:`stratified_sample` (an edge's N labeled images, growing training sets): one
  permutation of the whole pool; ``N // K``, and the first ``N % K`` classes one more.

For one seed the three shuffles give three different index sets. Each is kept because
stored results and cached models were made with it: changing a shuffle moves every number.
"""
import numpy as np

__all__ = ["stratified_split", "stratified_sample"]


def stratified_split(y, order, take):
    """Split the candidates ``order`` by class along their seeded order.

    Args:
        y: ``(N,)`` integer labels.
        order: ``(M,)`` distinct indices into ``y``, in a seeded order.
        take: ``(K,)`` how many of each class go to part A, for the classes
            ``np.unique(y[order])`` in ascending order.

    Returns:
        idx_a, idx_b: ``int64`` indices into ``y``. Each class's first ``take[i]`` members
        in ``order`` are in A, its others in B; both parts keep ``order``'s order.
    """
    order = np.asarray(order, dtype=np.int64)
    labels = np.asarray(y)[order]
    classes = np.unique(labels)
    if len(take) != len(classes):
        raise ValueError(f"take: expected one count per class ({len(classes)}), got {len(take)}")
    in_a = np.zeros(len(order), dtype=bool)
    for c, k in zip(classes, take):
        in_a[np.flatnonzero(labels == c)[:k]] = True
    return order[in_a], order[~in_a]


def stratified_sample(y, n, seed, pool=None):
    """``n`` indices of ``pool``, as evenly spread over the classes as the pool allows.

    The order is ``np.random.default_rng(seed).permutation(pool)``; each of the K classes
    gives ``n // K`` and the first ``n % K`` classes one more. If a class is short, the first
    unused indices of the order make up the count. For one seed and pool, a larger ``n``
    contains a smaller one's sample unless a class ran short.

    Args:
        y: ``(N,)`` integer labels.
        n: how many to draw, ``0 <= n <= len(pool)``.
        seed: anything ``np.random.default_rng`` takes (an int, or a sequence such as ``[seed, 11]``).
        pool: ``(M,)`` candidate indices into ``y`` (default: all N).

    Returns:
        chosen: ``(n,) int64``, ascending; rest: ``(M - n,) int64``, the other candidates in
        the seeded order.
    """
    pool = np.arange(len(y)) if pool is None else np.asarray(pool)
    if not 0 <= n <= len(pool):
        raise ValueError(f"n: expected 0 <= n <= {len(pool)} (the pool), got {n}")
    order = np.random.default_rng(seed).permutation(pool)
    k = len(np.unique(np.asarray(y)[order]))
    base, extra = divmod(n, k) if k else (0, 0)
    chosen, rest = stratified_split(y, order, [base + (i < extra) for i in range(k)])
    short = n - len(chosen)
    chosen, rest = np.concatenate([chosen, rest[:short]]), rest[short:]
    return np.sort(chosen), rest
