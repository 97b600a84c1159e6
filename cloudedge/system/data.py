"""Which images go where: the cloud's training part, the edges' pools, the test split.

Policy (checked by tests/test_cloudedge_data.py):
* the test split is only ever used to *measure* accuracy, never to train;
* the dataset's train split is cut, stratified and seeded, into a cloud part and an
  edge pool, which are disjoint;
* each edge draws its N labeled images and then its stream of unlabeled uploads
  from its own pool, disjoint from every other edge's.

Sample ids are indices into the dataset's train split, so the provenance of every
training sample can be checked.
"""
from dataclasses import dataclass

import numpy as np

from tinycnn.datasets import (DownloadOptions, load_cifar10, load_fashion_mnist, load_mnist,
                              load_mnist_sample, split_indices)
from tinycnn.sampling import stratified_sample

DATASETS = ("mnist", "mnist-full", "fashion-mnist", "cifar10")


def load_dataset(name, progress=True):
    """name -> (x_train, y_train, x_test, y_test); images (N, C, H, W) float32 in [0, 1].

    "mnist" is the embedded 8,000 / 2,000 sample (offline); "mnist-full", "fashion-mnist"
    and "cifar10" are the full data sets (found locally or downloaded, see docs/datasets.md).
    """
    if name == "mnist":
        return (*load_mnist_sample("train"), *load_mnist_sample("test"))
    loaders = {"mnist-full": load_mnist, "fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}
    if name not in loaders:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    load, options = loaders[name], DownloadOptions(progress=progress)
    return (*load("train", options=options), *load("test", options=options))


@dataclass
class EdgeData:
    """One edge's share: labeled ids (N,), stream ids (in upload order). Ids index the train split."""
    labeled: np.ndarray
    stream: np.ndarray


def split_cloud_edges(y_train, cloud_fraction=0.75, seed=0):
    """Stratified, seeded -> (cloud ids, edge pool ids), disjoint, covering the train split."""
    return split_indices(y_train, fraction=cloud_fraction, seed=seed)


def edge_pools(y_train, pool, n_edges=1, alpha=None, seed=0):
    """Split pool ids among n_edges edges, disjointly.

    alpha=None: each class is dealt evenly (i.i.d. edges). alpha > 0: each edge's class mix
    is drawn from Dirichlet(alpha) (small alpha = very different data per edge).
    Returns a list of n_edges id arrays, each in a seeded random order.
    """
    if n_edges < 1:
        raise ValueError(f"n_edges must be >= 1, got {n_edges!r}")
    rng = np.random.default_rng([seed, 7])
    pools = [[] for _ in range(n_edges)]
    for c in np.unique(y_train[pool]):
        members = rng.permutation(pool[y_train[pool] == c])
        share = np.full(n_edges, 1.0 / n_edges) if alpha is None else rng.dirichlet(np.full(n_edges, alpha))
        cuts = np.floor(np.cumsum(share)[:-1] * len(members)).astype(int)
        for e, part in enumerate(np.split(members, cuts)):
            pools[e].append(part)
    return [rng.permutation(np.concatenate(p)) for p in pools]


def edge_data(y_train, pool, n_labeled, seed=0):
    """From one edge's pool: N labeled ids (stratified, N/K per class where possible), the rest
    as its upload stream in a seeded random order (tinycnn.sampling.stratified_sample)."""
    pool = np.asarray(pool)
    classes = np.unique(y_train[pool])
    if n_labeled < len(classes) or n_labeled > len(pool):
        raise ValueError(f"n_labeled must be in [{len(classes)}, {len(pool)}] for this pool, got {n_labeled}")
    labeled, stream = stratified_sample(y_train, n_labeled, [seed, 11], pool)
    return EdgeData(labeled, stream)
