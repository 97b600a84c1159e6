"""Frozen-feature cache: training on cached prefix outputs is bit-identical to training through them."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudedge.policies.feature_cache import (batch_invariance, cacheable_prefix, fit_cached, is_stochastic,
                                     prefix_features)
from cloudedge.system.models import cloud_cnn, edge_cnn
from tinycnn import Dropout, ReLU
from tinycnn.train import TrainConfig, fit
from test_cloudedge_support import mnist, params_equal
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


def frozen_edge(seed, depth=3, preset="tiny"):
    """EdgeCNN1-depth: a CloudCNN's lower layers copied in and frozen; Dropout in the head."""
    model = edge_cnn(depth, preset=preset, seed=seed)
    model[:2 * depth].load_state_dict(cloud_cnn(preset=preset, seed=seed + 1)[:2 * depth].state_dict())
    return model.freeze(2 * depth)


@pytest.mark.parametrize("soft", [False, True])
def test_cached_training_is_bit_identical_to_uncached(soft):
    x, y = mnist(300)
    xv, yv = mnist(60, "test")
    targets = np.eye(10, dtype=np.float32)[y] * 0.9 + 0.01 if soft else y
    cfg = TrainConfig(max_epochs=3, lr_patience=1, progress=False, seed=4)
    a, b = frozen_edge(0), frozen_edge(0)
    ha = fit(a, x, targets, cfg, xv, yv)
    hb, info = fit_cached(b, x, targets, cfg, xv, yv)
    assert info["cached_layers"] == 6 and info["max_abs_diff"] == 0.0
    assert params_equal(a, b)
    assert not params_equal(a, frozen_edge(0))            # training did move the head
    assert params_equal(a[:6], frozen_edge(0)[:6])        # and not the frozen layers
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h.rows]   # noqa: E731
    assert strip(ha) == strip(hb) and ha.stopped == hb.stopped


def test_cached_training_with_internal_holdout_matches_too():
    x, y = mnist(200)
    cfg = TrainConfig(max_epochs=2, progress=False, seed=1)
    a, b = frozen_edge(5), frozen_edge(5)
    fit(a, x, y, cfg)
    fit_cached(b, x, y, cfg)
    assert params_equal(a, b)


@settings(deadline=None, max_examples=8)
@given(seed=st.integers(0, 1000), batch=st.integers(1, 64))
def test_prefix_output_does_not_depend_on_the_batch_beyond_float32_rounding(seed, batch):
    """Exact equality is the BLAS's choice, not the maths': with OpenBLAS's Haswell kernels a
    batch of 1 or 7 differed from the batch of 96 by up to 6e-7 (values up to 1.85), full
    batches of 32 and 64 by 0. So: equal to float32 rounding, and the probe says by how much."""
    x, _ = mnist(96)
    prefix = frozen_edge(seed, preset="laptop")[:6]
    whole = prefix_features(prefix, x, batch_size=96)
    order = np.random.default_rng(seed).permutation(96)
    parts = np.empty_like(whole)
    for i in range(0, 96, batch):
        idx = order[i:i + batch]
        parts[idx] = prefix.forward(x[idx], training=True)
    tol = 1e-5 * float(np.abs(whole).max())
    assert float(np.abs(parts - whole).max()) <= tol
    probe = batch_invariance(prefix, x, whole, TrainConfig(batch_size=batch, seed=seed), 96)
    assert 0.0 <= probe <= tol


def test_only_frozen_deterministic_layers_are_cached():
    model = edge_cnn(3, preset="tiny", seed=0)
    assert cacheable_prefix(model) == 0
    model.freeze(4)
    assert cacheable_prefix(model) == 4
    model.freeze(len(model))
    stop = next(i for i, layer in enumerate(model) if isinstance(layer, Dropout))
    assert cacheable_prefix(model) == stop           # never past a stochastic layer
    assert is_stochastic(Dropout(0.5)) and not is_stochastic(ReLU())


def test_no_cacheable_prefix_falls_back_to_fit():
    x, y = mnist(100)
    cfg = TrainConfig(max_epochs=1, progress=False)
    a, b = edge_cnn(3, preset="tiny", seed=2), edge_cnn(3, preset="tiny", seed=2)
    fit(a, x, y, cfg)
    _, info = fit_cached(b, x, y, cfg)
    assert info == {"cached_layers": 0, "max_abs_diff": None} and params_equal(a, b)


def test_the_edge_trains_through_fit_cached_and_matches_uncached_training():
    """Edge._train calls fit_cached with the features it keeps; the result equals an edge that
    recomputes everything (feature_cache=False) on this BLAS, to float32 rounding at worst."""
    from cloudedge.system.config import EdgeConfig, edge_train_config
    from cloudedge.system.edge import Edge
    from test_cloudedge_support import tiny_cloud
    import cloudedge.system.edge as edge_module
    cloud = tiny_cloud()
    x, y = mnist(120)
    calls = []
    real = edge_module.fit_cached

    def spy(*args, **kwargs):
        calls.append(kwargs.get("features") is not None)
        return real(*args, **kwargs)
    edges = []
    for cache in (True, False):
        e = Edge("e", EdgeConfig(depth=3, preset="tiny", train=edge_train_config(max_epochs=2), feature_cache=cache))
        e.receive_package(cloud.export_layers(3))
        edge_module.fit_cached = spy
        try:
            e.initialize(x, y)
        finally:
            edge_module.fit_cached = real
        edges.append(e)
    assert calls == [True]                                   # only the cached edge, with its features
    a, b = edges[0].model.state_dict(), edges[1].model.state_dict()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-5 * max(1.0, float(np.abs(b[k]).max())))
