"""Frozen-feature cache (beyond the paper: the same training, without recomputing frozen layers).

When the first p layers of a model are frozen and none of them is stochastic, their
output for an image never changes, so it can be computed once and the remaining
layers trained on it. ``fit_cached`` does that and is bit-identical to
``tinycnn.train.fit`` on the whole model, because:

* the head's layers are the model's own layer objects (``model[p:]`` shares them);
* ``fit`` reseeds Dropout through ``head.reseed``, which here reseeds the *whole*
  model, so every Dropout layer gets the same stream as in an uncached run;
* backward never went below the lowest trainable layer anyway;
* the prefix output of a sample does not depend on which other samples share its
  batch. That is a property of the GEMM library, not of the maths: with OpenBLAS's
  Haswell kernels full batches of 32 match bit for bit, but a batch of 1 or 7 differed
  by up to 6e-7 (float32 rounding), so a last partial batch can make the cached run
  differ from the uncached one in the last bits. ``batch_invariance`` measures it on
  the real first training batch and the edge records it (cache_probe_max_diff).

Memory: N x prod(feature shape) x 4 bytes (e.g. 8 x 28 x 28 floats = 25 KB per image).
"""
import numpy as np

from tinycnn import Sequential
from tinycnn.layers import Layer
from tinycnn.train import TrainConfig, fit, holdout_split


def is_stochastic(layer):
    """True if the layer draws random numbers in training (it overrides ``reseed``)."""
    return type(layer).reseed is not Layer.reseed


def cacheable_prefix(model):
    """Number of leading layers whose output can be cached: frozen and deterministic."""
    p = 0
    for layer in model:
        if layer.trainable or is_stochastic(layer):
            break
        p += 1
    return p


def prefix_features(prefix, x, batch_size=256):
    """Output of ``prefix`` (a Sequential) for x: (N, C, H, W) -> (N, *feature shape), eval mode."""
    if len(x) == 0:
        raise ValueError("prefix_features needs at least one image, got 0")
    out = [prefix.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    prefix.clear_cache()
    return np.concatenate(out)


class _Head(Sequential):
    """model[p:], whose reseed reseeds the full model (same Dropout streams as uncached)."""

    def __init__(self, model, p):
        super().__init__(model.layers[p:])
        self._full = model

    def reseed(self, seed):
        self._full.reseed(seed)


def batch_invariance(prefix, x, features, config, n_train):
    """Max |difference| between cached features and the prefix output on the first training
    batch of epoch 0, computed the way ``fit`` would batch it. 0.0 means bit-identical."""
    order = np.random.default_rng([config.seed, 0]).permutation(n_train)
    idx = order[:config.batch_size]
    fresh = prefix.forward(x[idx], training=True)
    prefix.clear_cache()
    return float(np.abs(fresh - features[idx]).max())


def fit_cached(model, x, y, config=None, x_val=None, y_val=None, check=True, features=None):
    """Like ``tinycnn.train.fit(model, x, y, config, x_val, y_val)``, training only the layers
    after the cacheable prefix on cached features. Returns (History, info dict).

    features: optional (prefix output for x, for x_val), computed earlier by the caller
    (an edge keeps them across trainings); otherwise they are computed here.
    info: {"cached_layers": p, "max_abs_diff": float or None (the batch-invariance probe)}.
    With no cacheable prefix this is plain ``fit``.
    """
    cfg = config or TrainConfig()
    p = cacheable_prefix(model)
    if p == 0:
        return fit(model, x, y, cfg, x_val, y_val), {"cached_layers": 0, "max_abs_diff": None}
    if x_val is None:  # the same holdout fit would make
        if y.ndim != 1:
            raise ValueError("soft labels need an explicit validation set (x_val, y_val)")
        if features is not None:
            raise ValueError("pass x_val with precomputed features (their split must be the caller's)")
        train_idx, val_idx = holdout_split(y, cfg.val_fraction, cfg.seed)
        x, y, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    prefix = model[:p]
    if features is None:
        features = prefix_features(prefix, x), prefix_features(prefix, x_val)
    feats, feats_val = features
    if len(feats) != len(x) or len(feats_val) != len(x_val):
        raise ValueError(f"features for {len(feats)} + {len(feats_val)} images, expected {len(x)} + {len(x_val)}")
    diff = batch_invariance(prefix, x, feats, cfg, len(x)) if check else None
    history = fit(_Head(model, p), feats, y, cfg, feats_val, y_val)
    return history, {"cached_layers": p, "max_abs_diff": diff}
