"""One run of the framework, end to end: the accuracy-vs-images tables of Section 4.3.

    cfg = RunConfig()                   # cloudedge.system.config: the paper's MNIST setting
    cloud = get_cloud(data, cfg)        # train CloudCNN on the cloud part (or load it from the cache)
    result = run_edges(cloud, data, cfg)  # EdgeCNN0-k and EdgeCNN1-k: Alg. 1, then a stream through Alg. 2

Both edges get the same N labeled images and the same upload stream from the edge pool
(cloudedge.system.data). Users upload ``chunk`` images per tick; the core-network load trace
decides whether the edge may sync that tick (default: busy on even ticks, idle on odd
ones, so the buffer fills for a tick and then goes up); the trigger decides when to
retrain. After each training the edge's model is scored on the test split (reporting
only: nothing from the test split ever reaches training).
"""
import hashlib
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from tinycnn.datasets import cache_root
from tinycnn.train import evaluate

from .. import pretrained
from ..policies.labels import make_policy, noise_report
from ..policies.loads import Trace, make_load
from ..policies.retrain import make_trigger
from ..system.cloud import Cloud
from ..system.config import config_json
from ..system.data import edge_data, load_dataset, split_cloud_edges
from ..system.edge import Edge

CLOUD_RECIPE = 2  # bump when the way CloudCNN is trained changes, to invalidate cached clouds


def default_load():
    """Core-network load per tick: 0.8 (busy) on even ticks, 0.1 (idle) on odd ones."""
    return Trace([0.8, 0.1])


def cloud_key(cfg, cloud_ids):
    """Hash of everything the trained CloudCNN depends on (its training ids stand for
    cloud_fraction, cloud_images and cloud_sees_edges). init enters only when not the default,
    so keys of He-normal clouds (and the shipped ones) stay as they were."""
    train = {k: v for k, v in asdict(cfg.cloud_train).items() if k != "progress"}
    arch = cfg.edge
    fields = {"recipe": CLOUD_RECIPE, "dataset": cfg.dataset, "preset": arch.preset,
              "pool_stride": arch.pool_stride, "seed": cfg.seed, "train": train,
              "ids": hashlib.sha256(np.asarray(cloud_ids, np.int64).tobytes()).hexdigest()}
    if arch.init != "he-normal":
        fields["init"] = arch.init
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def cloud_part(y_train, cfg):
    """(ids the CloudCNN trains on, the edges' pool): a stratified seeded split of the train split
    (cloudedge.system.data); cloud_images takes a seeded subset of the cloud part, cloud_sees_edges
    gives the cloud every train id (the pool is then part of what it saw)."""
    cloud_ids, pool = split_cloud_edges(y_train, cfg.cloud_fraction, cfg.seed)
    if cfg.cloud_images:
        if cfg.cloud_images > len(cloud_ids):
            raise ValueError(f"cloud_images={cfg.cloud_images} but the cloud part has {len(cloud_ids)} images")
        cloud_ids = np.sort(np.random.default_rng([cfg.seed, 5]).permutation(cloud_ids)[:cfg.cloud_images])
    if cfg.cloud_sees_edges:
        cloud_ids = np.sort(np.concatenate([cloud_ids, pool]))
    return cloud_ids, pool


def default_workdir():
    return cache_root() / "cloudedge"


def train_cloud(data, cfg, progress=False, cloud_ids=None):
    """Train CloudCNN on the cloud part of the train split (the one recipe every entry point uses).

    data: (x_train, y_train, ...); cloud_ids: cloud_part's, if the caller has them.
    info records the cache key, the data set and the ids' digest."""
    x_train, y_train = data[0], data[1]
    if cloud_ids is None:
        cloud_ids, _ = cloud_part(y_train, cfg)
    train_cfg = replace(cfg.cloud_train, seed=cfg.seed, progress=progress)
    arch = cfg.edge
    cloud = Cloud.train(x_train[cloud_ids], y_train[cloud_ids], preset=arch.preset,
                        pool_stride=arch.pool_stride, config=train_cfg, seed=cfg.seed, init=arch.init)
    cloud.info.update(dataset=cfg.dataset, cloud_fraction=cfg.cloud_fraction,
                      train_ids_sha256=ids_digest(cloud_ids), cloud_key=cloud_key(cfg, cloud_ids))
    return cloud


def get_cloud(data, cfg, workdir=None, use_cache=True, progress=False, cloud_ids=None):
    """CloudCNN for cfg: from the cache in workdir, else the one shipped in the package with the
    same key (cloudedge.pretrained), else trained now (and cached). use_cache=False: train now.

    data: (x_train, y_train, x_test, y_test); cloud_ids: cloud_part's, if the caller has them.
    Returns (Cloud, {"cached", "seconds", "path", "source"}).
    Raises UntrainedCloudError if the CloudCNN did not train (Cloud.check_trained).
    """
    if cloud_ids is None:
        cloud_ids, _ = cloud_part(data[1], cfg)
    key = cloud_key(cfg, cloud_ids)
    path = Path(workdir or default_workdir()) / f"cloud-{cfg.dataset}-{cfg.edge.preset}-{key}.npz"
    start = time.perf_counter()
    shipped = None
    if use_cache and not path.exists():
        shipped = pretrained.lookup(key)           # hashes the shipped file: only when it is needed
    if use_cache and path.exists():
        cloud, source = Cloud.load(path), "cache"
    elif shipped is not None:
        cloud, source, path = Cloud.load(shipped), "shipped", shipped
    else:
        cloud, source = train_cloud(data, cfg, progress, cloud_ids), "trained"
        if use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            cloud.save(path)
    cloud.check_trained()
    return cloud, {"cached": source != "trained", "source": source, "seconds": time.perf_counter() - start,
                   "path": str(path)}


def make_edge(cloud, cfg, shared, seed, monitor=None):
    """EdgeCNN{shared}-k of run cfg: cfg.edge with this edge's model kind and seed and the cloud's
    image shape and classes; an EdgeCNN1 receives the cloud's layer package (Alg. 1, line 1)."""
    econf = replace(cfg.edge, shared=bool(shared), seed=seed, input_shape=cloud.input_shape,
                    num_classes=cloud.num_classes)
    edge = Edge(f"EdgeCNN{int(bool(shared))}-{econf.depth}", econf, make_policy(cfg.label_policy),
                make_trigger(cfg.trigger or f"every:{cfg.step}"), cloud.segmenter, monitor)
    if shared:
        edge.receive_package(cloud.export_layers(econf.depth))
    return edge


def make_edges(cloud, cfg, monitor=None):
    """EdgeCNN0-k and/or EdgeCNN1-k as cfg.models says, seeded with edge_seed(cfg)."""
    return [make_edge(cloud, cfg, shared, edge_seed(cfg), monitor) for shared in cfg.models]


def edge_seed(cfg):
    return cfg.seed if cfg.edge_seed is None else cfg.edge_seed


def ids_digest(ids):
    return hashlib.sha256(np.asarray(ids, np.int64).tobytes()).hexdigest()


class Partition(NamedTuple):
    """Where one run's train ids go (cloudedge.system.data), computed once per run."""
    cloud_ids: np.ndarray   # what CloudCNN trains on
    share: object           # the edges' N labeled ids and upload stream (data.edge_data), from the pool


def partition(y_train, cfg):
    """The run's Partition; ValueError if the edges' pool is too small for N labels and the uploads."""
    cloud_ids, pool = cloud_part(y_train, cfg)
    share = edge_data(y_train, pool, cfg.labeled, seed=edge_seed(cfg))
    if cfg.uploads > len(share.stream):
        raise ValueError(f"uploads={cfg.uploads} but the edge pool has only {len(share.stream)} images "
                         f"after the {cfg.labeled} labeled ones")
    return Partition(cloud_ids, share)


def run_edges(cloud, data, cfg, progress=False, parts=None):
    """Algorithm 1 then the update-phase stream for each edge model. Returns a JSON-able dict.

    parts: the run's Partition, if the caller has it."""
    x_train, y_train, x_test, y_test = data
    cloud_ids, share = parts or partition(y_train, cfg)
    trained_on = cloud.info.get("train_ids_sha256")
    if trained_on is not None and trained_on != ids_digest(cloud_ids):
        raise ValueError("this CloudCNN was trained on a different part of the train split than "
                         f"cloud_fraction={cfg.cloud_fraction}, cloud_images={cfg.cloud_images}, "
                         f"cloud_sees_edges={cfg.cloud_sees_edges}, seed={cfg.seed} give; the edges' pool "
                         "could overlap its training images")
    stream = share.stream[:cfg.uploads]
    load = make_load(cfg.load) if cfg.load is not None else default_load()
    edges = make_edges(cloud, cfg, monitor=lambda model: evaluate(model, x_test, y_test)[1])
    start = time.perf_counter()
    for edge in edges:
        edge.initialize(x_train[share.labeled], y_train[share.labeled], ids=share.labeled)
    ticks = range(0, len(stream), cfg.chunk) if cfg.chunk else []
    if progress:
        ticks = tqdm(ticks, desc="update phase", unit="tick")
    for t, i in enumerate(ticks):
        ids = stream[i:i + cfg.chunk]
        level = load(float(t))
        for edge in edges:
            edge.submit(x_train[ids], ids)
            edge.sync(cloud, level, t=t)
            edge.maybe_retrain(t=t)
    seconds = time.perf_counter() - start
    return {"edges": [edge_report(e, y_train) for e in edges], "seconds": seconds,
            "labeled_ids": share.labeled.tolist(), "stream_ids": stream.tolist(), "_edges": edges}


def edge_report(edge, y_train):
    """Curve, bytes and label noise of one edge; y_train gives the ground truth for reporting."""
    trainings = [r for r in edge.history if r["event"] in ("init", "retrain")]
    curve = [{"n_images": r["n_samples"], "accuracy": r.get("accuracy"), "epochs": r["epochs"],
              "train_seconds": r["train_seconds"], "cache_probe_max_diff": r["cache_probe_max_diff"]}
             for r in trainings]
    noise = None
    if edge.received:
        ids = np.concatenate([r.ids for r in edge.received])
        labels = np.concatenate([r.labels for r in edge.received])
        keep = np.concatenate([r.keep for r in edge.received])
        noise = noise_report(labels, keep, y_train[ids])
    return {**edge.summary(), "curve": curve, "noise": noise}


def run_experiment(cfg, workdir=None, use_cache=True, progress=False, data=None):
    """get_cloud + run_edges; the JSON of `cloudedge experiment`."""
    start = time.perf_counter()
    data = data or load_dataset(cfg.dataset, progress=progress)
    parts = partition(data[1], cfg)  # once per run; fails before anything trains
    cloud, cloud_meta = get_cloud(data, cfg, workdir, use_cache, progress, parts.cloud_ids)
    cloud_acc = cloud.evaluate(data[2], data[3])
    result = run_edges(cloud, data, cfg, progress, parts)
    by_model = {e["model"].split("-")[0]: e for e in result["edges"]}
    out = {"dataset": cfg.dataset, "depth": cfg.edge.depth, "n_labeled": cfg.labeled, "uploads": cfg.uploads,
           "seed": cfg.seed, "preset": cfg.edge.preset, "cloud_acc": cloud_acc,
           "edge0_acc": by_model.get("EdgeCNN0", {}).get("accuracy"),
           "edge1_acc": by_model.get("EdgeCNN1", {}).get("accuracy"),
           "cloud": {**cloud.stats, "cached": cloud_meta["cached"], "source": cloud_meta["source"],
                     "load_seconds": cloud_meta["seconds"],
                     "path": cloud_meta["path"], "info": cloud.info},
           "edges": result["edges"], "edge_seconds": result["seconds"],
           "seconds": time.perf_counter() - start, "config": config_json(cfg)}
    out["_edges"], out["_cloud"] = result["_edges"], cloud
    return out


def public(result):
    """The JSON-able part of a result (drops the live objects kept under '_' keys)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}
