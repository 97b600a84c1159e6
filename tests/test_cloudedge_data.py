"""Data policy: disjoint parts, and no test-set label (or image) ever reaches training."""
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudedge.system.data import edge_data, edge_pools, split_cloud_edges
from cloudedge.system.config import EdgeConfig, RunConfig, edge_train_config
from cloudedge.experiments.experiment import get_cloud, run_edges, run_experiment
from tinycnn.datasets import load_mnist_sample
from tinycnn.train import TrainConfig
from test_cloudedge_support import params_equal
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


@settings(deadline=None, max_examples=30)
@given(n_edges=st.integers(1, 5), alpha=st.one_of(st.none(), st.floats(0.05, 10)), seed=st.integers(0, 999),
       n_labeled=st.integers(10, 60))
def test_parts_are_disjoint_and_cover_the_train_split(n_edges, alpha, seed, n_labeled):
    y = np.random.default_rng(seed).integers(0, 10, 3000)
    cloud, pool = split_cloud_edges(y, 0.5, seed)
    assert np.intersect1d(cloud, pool).size == 0 and len(cloud) + len(pool) == len(y)
    pools = edge_pools(y, pool, n_edges, alpha, seed)
    joined = np.concatenate(pools)
    assert len(joined) == len(np.unique(joined)) == len(pool) and set(joined) == set(pool)
    for p in pools:
        if len(np.unique(y[p])) <= n_labeled <= len(p):
            share = edge_data(y, p, n_labeled, seed)
            assert len(share.labeled) == n_labeled
            assert np.intersect1d(share.labeled, share.stream).size == 0
            assert set(share.labeled) | set(share.stream) == set(p)


def test_skewed_edges_have_different_class_mixes():
    y = np.repeat(np.arange(10), 300)
    pools = edge_pools(y, np.arange(len(y)), 3, alpha=0.3, seed=0)
    mixes = np.array([np.bincount(y[p], minlength=10) / len(p) for p in pools])
    assert np.abs(mixes[0] - mixes[1]).sum() > 0.3


def small_run(data, seed=0):
    cfg = RunConfig(labeled=100, uploads=120, step=60, chunk=30, cloud_fraction=0.3, seed=seed,
                    cloud_train=TrainConfig(max_epochs=1, progress=False),
                    edge=EdgeConfig(preset="tiny", train=edge_train_config(max_epochs=2)))
    return run_experiment(cfg, use_cache=False, data=data)


def test_no_test_label_or_image_reaches_training():
    x, y = load_mnist_sample("train")
    xt, yt = load_mnist_sample("test")
    x, y, xt, yt = x[:1500], y[:1500], xt[:200], yt[:200]
    honest = small_run((x, y, xt, yt))
    rng = np.random.default_rng(0)
    poisoned = small_run((x, y, rng.random(xt.shape, dtype=np.float32), (yt + 1 + rng.integers(0, 9, len(yt))) % 10))
    assert params_equal(honest["_cloud"].model, poisoned["_cloud"].model)
    for a, b in zip(honest["_edges"], poisoned["_edges"]):
        assert params_equal(a.model, b.model)
        assert np.array_equal(a.training_ids, b.training_ids)
    # the test split was used, for measuring only: accuracies differ
    assert honest["edges"][0]["accuracy"] != poisoned["edges"][0]["accuracy"]
    # every training sample is an edge-pool image of the train split
    _, pool = split_cloud_edges(y, 0.3, 0)
    for edge in honest["_edges"]:
        assert np.isin(edge.training_ids, pool).all()


def test_uploads_beyond_the_pool_are_an_error():
    x, y = load_mnist_sample("train")
    xt, yt = load_mnist_sample("test")
    cfg = RunConfig(uploads=10_000, cloud_fraction=0.8, cloud_train=TrainConfig(max_epochs=1, progress=False),
                    edge=EdgeConfig(preset="tiny"))
    with pytest.raises(ValueError, match="uploads=10000"):
        run_experiment(cfg, use_cache=False, data=(x[:1000], y[:1000], xt[:10], yt[:10]))


def test_edges_refuse_a_cloud_trained_on_another_partition():
    x, y = load_mnist_sample("train")
    xt, yt = load_mnist_sample("test")
    data = (x[:1500], y[:1500], xt[:50], yt[:50])
    cfg = RunConfig(labeled=100, uploads=0, cloud_fraction=0.3, cloud_train=TrainConfig(max_epochs=1, progress=False),
                    edge=EdgeConfig(preset="tiny"))
    cloud, _ = get_cloud(data, cfg, use_cache=False)
    with pytest.raises(ValueError, match="overlap"):
        run_edges(cloud, data, replace(cfg, seed=1))
    assert run_edges(cloud, data, replace(cfg, edge_seed=1))["edges"]
