"""Several edges, one cloud, a virtual clock: the whole loop, deterministic from a seed.

Each tick of ``tick`` virtual seconds, for every edge in a fixed order:

1. its users upload Poisson(rate * tick) images, the next ones of the edge's own stream
   (edges draw from disjoint pools; ``alpha`` skews each edge's class mix, Dirichlet);
2. the edge segments them, answers with its EdgeCNN and buffers the objects;
3. if the core-network load at t is below the edge's threshold it syncs with the cloud;
4. if its trainer is free, it asks its retrain trigger; a training occupies the trainer
   for sample_passes / ``throughput`` virtual seconds (the new model serves at once).

Every decision depends on seeds and counts only (never on wall time), so two runs with
the same config produce the same timeline; wall-clock fields are reported separately.
Accuracy after each training is measured on the test split (``eval_images`` of it),
both overall and weighted by the edge's own class mix.
"""
from dataclasses import asdict, replace

import numpy as np
from tqdm.auto import tqdm

from ..policies.labels import make_policy
from ..policies.loads import make_load
from ..policies.retrain import make_trigger
from ..system.data import edge_data, edge_pools, split_cloud_edges
from ..system.edge import Edge

WALL_FIELDS = ("train_seconds", "infer_seconds", "label_seconds")


class Simulator:
    """Simulator(cloud, data, cfg): cfg a SimConfig (cloudedge.system.config); data = (x_train, y_train, x_test, y_test)."""

    def __init__(self, cloud, data, cfg):
        self.cloud, self.cfg = cloud, cfg
        self.x_train, self.y_train, x_test, y_test = data
        n_eval = min(cfg.eval_images, len(y_test))
        self.x_eval, self.y_eval = x_test[:n_eval], y_test[:n_eval]
        self.load = make_load(cfg.load)
        _, pool = split_cloud_edges(self.y_train, cfg.cloud_fraction, cfg.seed)
        pools = edge_pools(self.y_train, pool, cfg.n_edges, cfg.alpha, cfg.seed)
        self.edges, self.shares, self.mix, self.rngs = [], [], [], []
        K = cloud.num_classes
        for e, edge_pool in enumerate(pools):
            share = edge_data(self.y_train, edge_pool, cfg.labeled, seed=cfg.seed + e)
            shared = bool(cfg.shared[e % len(cfg.shared)])
            econf = replace(cfg.edge, shared=shared, seed=cfg.seed + e, input_shape=cloud.input_shape, num_classes=K)
            edge = Edge(f"edge{e}-EdgeCNN{int(shared)}-{econf.depth}", econf, make_policy(cfg.label_policy),
                        make_trigger(cfg.trigger), cloud.segmenter)
            self.edges.append(edge)
            self.shares.append(share)
            self.mix.append(np.bincount(self.y_train[edge_pool], minlength=K) / len(edge_pool))
            self.rngs.append(np.random.default_rng([cfg.seed, 101, e]))
        self.cursor = [0] * cfg.n_edges
        self.busy_until = [0.0] * cfg.n_edges
        self.timeline = []

    def _score(self, e):
        """(overall accuracy, accuracy weighted by edge e's class mix) on the eval images."""
        pred = self.edges[e].model.predict(self.x_eval)
        correct = pred == self.y_eval
        per_class = np.array([correct[self.y_eval == c].mean() if (self.y_eval == c).any() else 0.0
                              for c in range(len(self.mix[e]))])
        return float(correct.mean()), float(per_class @ self.mix[e])

    def _record(self, t, e, event, **fields):
        row = {"t": t, "edge": self.edges[e].name, "event": event, **fields}
        self.timeline.append(row)
        return row

    def run(self, progress=False):
        """Initialise every edge (Alg. 1) then step the clock to cfg.duration. Returns a dict."""
        cfg = self.cfg
        for e, (edge, share) in enumerate(zip(self.edges, self.shares)):
            if edge.config.shared:
                edge.receive_package(self.cloud.export_layers(edge.config.depth))
            row = edge.initialize(self.x_train[share.labeled], self.y_train[share.labeled], ids=share.labeled)
            acc, local = self._score(e)
            self._record(0.0, e, "init", n_samples=row["n_samples"], accuracy=acc, local_accuracy=local,
                         sample_passes=row["sample_passes"])
        steps = range(int(np.ceil(cfg.duration / cfg.tick)))
        if progress:
            steps = tqdm(steps, desc="simulate", unit="tick")
        for k in steps:
            t = k * cfg.tick
            level = self.load(t)
            for e, edge in enumerate(self.edges):
                self._step(t, e, edge, level)
        return self.result()

    def _step(self, t, e, edge, level):
        cfg, share = self.cfg, self.shares[e]
        n = int(self.rngs[e].poisson(cfg.rate * cfg.tick))
        ids = share.stream[self.cursor[e]:self.cursor[e] + n]
        self.cursor[e] += len(ids)
        if len(ids):
            edge.submit(self.x_train[ids], ids)
        out = edge.sync(self.cloud, level, t=t)
        if out["uploaded"]:
            self._record(t, e, "sync", load=level, uploaded=out["uploaded"], kept=out["kept"],
                         bytes_up=out["bytes_up"], bytes_down=out["bytes_down"])
        if t >= self.busy_until[e]:
            row = edge.maybe_retrain(t=t)
            if row is not None:
                self.busy_until[e] = t + row["sample_passes"] / cfg.throughput
                acc, local = self._score(e)
                self._record(t, e, "retrain", n_samples=row["n_samples"], accuracy=acc, local_accuracy=local,
                             sample_passes=row["sample_passes"], busy_until=self.busy_until[e], why=row["why"])

    def result(self):
        edges = []
        for e, edge in enumerate(self.edges):
            s = edge.summary()
            edges.append({**{k: v for k, v in s.items() if k not in WALL_FIELDS},
                          "uploads_made": self.cursor[e], "class_mix": self.mix[e].round(4).tolist(),
                          "wall": {k: s[k] for k in WALL_FIELDS if k in s}})
        cloud = {k: v for k, v in self.cloud.stats.items() if k not in WALL_FIELDS}
        return {"config": {**asdict(self.cfg), "shared": list(self.cfg.shared)},
                "timeline": self.timeline, "edges": edges, "cloud": cloud,
                "wall": {"cloud_label_seconds": self.cloud.stats["label_seconds"]}}
