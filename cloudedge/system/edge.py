"""An edge server: EdgeCNN0 or EdgeCNN1, its training store, its upload buffer and its history.

Life cycle (Ding et al. 2022, Algorithms 1 and 2):

    edge = Edge("e1", EdgeConfig(depth=3, shared=True))
    edge.receive_package(cloud.export_layers(3))   # EdgeCNN1: CloudCNN's 3 lower conv layers, frozen
    edge.initialize(x_labeled, y_labeled)          # Alg. 1: train the layers above them on N images
    preds = edge.submit(user_images, ids)          # segment, answer with EdgeCNN, buffer the objects
    edge.sync(cloud, load=0.1)                     # Alg. 2: upload if the core network is idle; labels come back
    edge.maybe_retrain()                           # Alg. 2: retrain on N + M when the trigger says so

The edge never sees ground truth for uploads: only what the cloud sent back. Shapes:
images are (N, C, H, W) float32 in [0, 1]; labels (N,) int64. What the edge holds besides
its model is in cloudedge.system.edge_state; saving and loading in cloudedge.system.edge_files.
"""
import time
from dataclasses import asdict, replace

import numpy as np

from tinycnn.train import evaluate, fit, holdout_split

from . import wire
from .config import EdgeConfig
from .edge_state import CloudLabels, EdgeStats, Score, TrainingStore, Upload
from ..policies.feature_cache import cacheable_prefix, fit_cached
from ..policies.labels import TrustAll, make_policy
from .models import edge_cnn, shared_prefix
from .package import open_package
from ..policies.retrain import EveryM, RetrainContext, make_trigger
from ..policies.segmentation import Segmenter, to_uint8


class UploadCodec:
    """How uploads travel: segmented objects (segment=True) or raw uint8 images.
    items(images) -> what is buffered and sent; encode/decode: the wire message; inputs: model inputs."""

    def __init__(self, segment, segmenter, input_shape):
        self.segment, self.segmenter, self.input_shape = segment, segmenter, tuple(input_shape)

    def items(self, images):
        """(n, C, H, W) float in [0, 1] -> n SegmentedObject, or n (C, H, W) uint8 images."""
        return self.segmenter.segment(images) if self.segment else list(to_uint8(images))

    def inputs(self, items):
        """n items -> (n, C, H, W) float32: what the model (here and at the cloud) sees of them."""
        if self.segment:
            return self.segmenter.restore(items, self.input_shape)
        return np.stack(items).astype(np.float32) / np.float32(255.0)

    def encode(self, ids, items):
        return wire.encode_objects(ids, items) if self.segment else wire.encode_images(ids, np.stack(items))

    def decode(self, data):
        """bytes -> (ids (n,) int64, n items)."""
        if self.segment:
            return wire.decode_objects(data)
        ids, images = wire.decode_images(data)
        return ids, list(images)


class Edge:
    """One edge server (config: cloudedge.system.config.EdgeConfig). See the module docstring for the life cycle."""

    def __init__(self, name, config=None, label_policy=None, trigger=None, segmenter=None, monitor=None):
        self.name = name
        self.config = c = config or EdgeConfig()
        self.label_policy = make_policy(label_policy or TrustAll())
        self.trigger = make_trigger(trigger or EveryM())
        self.segmenter = segmenter or Segmenter()
        self.codec = UploadCodec(c.segment, self.segmenter, c.input_shape)
        self.monitor = monitor  # optional model -> accuracy, called after each training (reporting only)
        self.model = self._new_model(c.seed)
        self.m = c.depth if c.shared else 0
        self.manifest = None
        self.store = TrainingStore(c.num_classes)   # N labeled images + the cloud labels kept
        self.n_initial = 0           # N: labeled images the edge started with
        self.n_trained = 0           # size of the last training set
        self.pending = 0             # accepted cloud labels not yet trained on
        self.version = 0             # trainings so far: the version of the model in service
        self.buffer = []             # [Upload]: answered, waiting for the cloud's labels
        self.scores = {}             # model version -> Score: its answers against the cloud's labels
        self.training_ids = np.empty(0, dtype=np.int64)   # ids of the last training set
        self.received = []           # [CloudLabels], one per sync (reporting only)
        self.history = []            # one row per event: package, init, sync, retrain
        self.stats = EdgeStats()

    # --- Algorithm 1: initialization ----------------------------------------------------------
    def receive_package(self, data):
        """Alg. 1, line 1: install CloudCNN's m lower layers from package bytes, verified, then frozen."""
        if not self.config.shared:
            raise ValueError(f"edge {self.name} is an EdgeCNN0 (shared=False); it takes no layer package")
        p = shared_prefix(self.m)
        manifest, layers = open_package(data, self.config.input_shape, self.model[:p].specs())
        if manifest["m"] != self.m:
            raise ValueError(f"edge {self.name} (EdgeCNN1-{self.config.depth}) needs m={self.m} layers, "
                             f"the package has m={manifest['m']}")
        self.model[:p].load_state_dict(layers.state_dict())
        self.model.freeze(p)
        self.manifest = manifest
        self.store.forget_features()
        self.stats.bytes_down += len(data)
        self._log("package", bytes_down=len(data), m=self.m)
        return manifest

    def initialize(self, x, y, ids=None):
        """Alg. 1: train EdgeCNN on the N labeled images (x: (N, C, H, W) float32, y: (N,) int)."""
        if self.config.shared and self.manifest is None:
            raise ValueError(f"edge {self.name} is an EdgeCNN1: receive the cloud's layer package "
                             f"before initialize()")
        if self.version:
            raise ValueError(f"edge {self.name} is already initialised ({self.version} trainings)")
        x, y = self._check_images(x), np.asarray(y)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"expected {len(x)} integer labels, got {y.dtype} {y.shape}")
        if self.config.max_samples and self.config.max_samples <= len(x):
            raise ValueError(f"edge {self.name}: max_samples={self.config.max_samples} leaves no room for "
                             f"cloud labels beside the {len(x)} labeled images; expected 0 (keep all) or "
                             f"> {len(x)}")
        ids = np.arange(len(x)) if ids is None else ids
        self.store.add(x, y.astype(np.int64), None, ids, "labeled")
        self.n_initial = len(x)
        return self._train("init")

    # --- serving users ----------------------------------------------------------------------------
    def infer(self, x):
        """x: (n, C, H, W) model inputs -> (predictions (n,) int64, seconds)."""
        start = time.perf_counter()
        pred = self.model.predict(self._check_images(x))
        seconds = time.perf_counter() - start
        self.stats.inferred += len(x)
        self.stats.infer_seconds += seconds
        return pred, seconds

    def evaluate(self, x, y):
        """Test accuracy of the current EdgeCNN on (x, y) (reporting only; nothing is trained)."""
        return evaluate(self.model, self._check_images(x), y)[1]

    def submit(self, images, ids):
        """Users' uploads: segment, answer with EdgeCNN, buffer the objects for the cloud.

        images: (n, C, H, W) float in [0, 1]; ids: (n,) unique ints (< 2**32). Returns predictions (n,).
        """
        images = self._check_images(images)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape != (len(images),):
            raise ValueError(f"expected {len(images)} ids, got shape {ids.shape}")
        items = self.codec.items(images)
        pred, _ = self.infer(self.codec.inputs(items))
        self.buffer += [Upload(int(i), item, int(p), self.version) for i, item, p in zip(ids, items, pred)]
        return pred

    @property
    def buffered(self):
        return len(self.buffer)

    # --- Algorithm 2: update ----------------------------------------------------------------------
    def sync(self, cloud, load, t=None, max_objects=None):
        """Alg. 2, lines 1-3: if the core-network load is below the threshold, send the buffered
        objects (at most max_objects); the cloud labels them; the labels the policy keeps join the
        training store. cloud: anything with ``handle(message, probs, temperature) -> bytes``.
        Returns a dict: uploaded, kept, bytes_up, bytes_down, skipped ("" when it uploaded).
        """
        if not 0.0 <= load <= 1.0:
            raise ValueError(f"load must be in [0, 1], got {load!r}")
        if not self.buffer:
            return {"uploaded": 0, "kept": 0, "bytes_up": 0, "bytes_down": 0, "skipped": "empty"}
        if load >= self.config.load_threshold:
            self.stats.syncs_skipped += 1
            return {"uploaded": 0, "kept": 0, "bytes_up": 0, "bytes_down": 0,
                    "skipped": f"load {load:.2f} >= {self.config.load_threshold:.2f}"}
        batch = self.buffer[:max_objects] if max_objects else self.buffer
        reply, sent, received = self._ask_cloud(cloud, batch)
        keep, hard, soft = self.label_policy.apply(reply)
        self._score(batch, reply.labels)
        x = self.codec.inputs([u.item for u in batch])
        if keep.any():
            self.store.add(x[keep], hard[keep], None if soft is None else soft[keep], reply.ids[keep], "cloud")
            self.pending += int(keep.sum())
            if self.config.max_samples and len(self.store) > self.config.max_samples:
                self.store.forget_oldest(self.n_initial, self.config.max_samples)
                self.pending = min(self.pending, self.config.max_samples - self.n_initial)
        self.buffer = self.buffer[len(batch):]
        self.received.append(CloudLabels(reply.ids, reply.labels, reply.confidence, keep))
        self.stats.bytes_up += sent
        self.stats.raw_bytes_up += wire.images_message_bytes(len(batch), self.config.input_shape)
        self.stats.bytes_down += received
        self.stats.uploads += len(batch)
        self.stats.syncs += 1
        out = {"uploaded": len(batch), "kept": int(keep.sum()), "bytes_up": sent, "bytes_down": received,
               "skipped": ""}
        self._log("sync", t=t, **{k: v for k, v in out.items() if k != "skipped"})
        return out

    def maybe_retrain(self, t=None):
        """Alg. 2, lines 4-6: ask the trigger; retrain if it says so. Returns the history row or None."""
        if not self.version or self.pending == 0:
            return None
        ok, why = self.trigger.decide(self.retrain_context())
        return self._train("retrain", t=t, why=why) if ok else None

    def retrain(self, t=None):
        """Retrain now on every stored sample (N + all accepted cloud labels), frozen layers untouched."""
        if not self.version:
            raise ValueError(f"edge {self.name}: initialize() before retrain()")
        return self._train("retrain", t=t, why="forced")

    def retrain_context(self):
        """What the retrain trigger sees: sizes and the (n_trained, agreement, count) of each scored version."""
        curve = [(s.n_trained, s.agreement, s.scored) for _, s in sorted(self.scores.items()) if s.scored]
        epochs = [row["epochs"] for row in self.history if row["event"] in ("init", "retrain")]
        return RetrainContext(self.n_trained, self.pending, curve, epochs)

    # --- the steps --------------------------------------------------------------------------------
    def _ask_cloud(self, cloud, batch):
        """Send the batch's objects, take the labels back. Returns (LabelReply, bytes sent, bytes received)."""
        ids = np.array([u.id for u in batch], dtype=np.int64)
        message = self.codec.encode(ids, [u.item for u in batch])
        policy = self.label_policy
        reply_bytes = cloud.handle(message, probs=policy.needs_probs, temperature=getattr(policy, "temperature", 1.0))
        reply = wire.decode_labels(reply_bytes)
        if not np.array_equal(reply.ids, ids):
            raise ValueError(f"the cloud answered for ids {reply.ids[:5]}..., expected {ids[:5]}...")
        return reply, len(message), len(reply_bytes)

    def _score(self, batch, labels):
        """Count, per model version, how many of its answers the cloud's labels agree with."""
        for upload, label in zip(batch, labels):
            score = self.scores.setdefault(upload.version, Score(self._n_trained_at(upload.version)))
            score.agreeing += int(upload.prediction == label)
            score.scored += 1

    def _n_trained_at(self, version):
        rows = [r for r in self.history if r["event"] in ("init", "retrain")]
        return rows[version - 1]["n_samples"] if 0 < version <= len(rows) else 0

    def _train(self, event, t=None, why=""):
        """Train on the whole store: a stratified holdout for validation, the frozen prefix's
        outputs from the store's feature cache when config.feature_cache."""
        c = self.config
        x, hard, soft, ids = self.store.arrays()
        cfg = replace(c.train, seed=c.train.seed + self.version)
        tr, va = holdout_split(hard, cfg.val_fraction, cfg.seed)
        if len(va) == 0:
            raise ValueError(f"edge {self.name}: {len(hard)} samples leave no validation sample at "
                             f"val_fraction={cfg.val_fraction}; need more labeled images per class")
        y_tr = hard[tr] if soft is None else soft[tr]
        if event == "retrain" and not c.warm_start:
            p = self.model.frozen_prefix
            self.model[p:].load_state_dict(self._new_model(c.seed + 1000 + self.version)[p:].state_dict())
        start = time.perf_counter()
        p = cacheable_prefix(self.model) if c.feature_cache else 0
        if p:
            feats = self.store.features(self.model[:p], x)
            history, info = fit_cached(self.model, x[tr], y_tr, cfg, x[va], hard[va],
                                       features=(feats[tr], feats[va]))
            probe = info["max_abs_diff"]
        else:
            history, probe = fit(self.model, x[tr], y_tr, cfg, x[va], hard[va]), None
        seconds = time.perf_counter() - start
        self.version += 1
        self.n_trained, self.pending = len(hard), 0
        self.training_ids = ids.copy()
        epochs = len(history.rows)
        self.stats.train_seconds += seconds
        self.stats.sample_passes += epochs * len(tr)
        row = self._log(event, t=t, why=why, n_samples=len(hard), n_labeled=self.n_initial,
                        n_cloud=len(hard) - self.n_initial, epochs=epochs, stopped=history.stopped,
                        sample_passes=epochs * len(tr), train_seconds=seconds,
                        best_val_acc=max(history.column("val_acc")) if epochs else None,
                        cached_layers=p, cache_probe_max_diff=probe)
        if self.monitor is not None:
            row["accuracy"] = float(self.monitor(self.model))
        return row

    # --- helpers ------------------------------------------------------------------------------------
    def _new_model(self, seed):
        c = self.config
        return edge_cnn(c.depth, c.input_shape, preset=c.preset, pool_stride=c.pool_stride,
                        num_classes=c.num_classes, seed=seed, init=c.init)

    def _check_images(self, x):
        shape = tuple(self.config.input_shape)
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape[1:] != shape:
            raise ValueError(f"edge {self.name} expects float32 images (n, {', '.join(map(str, shape))}), "
                             f"got {getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
        return x

    def _log(self, event, t=None, **fields):
        row = {"event": event, "t": t, **fields}
        self.history.append(row)
        return row

    def summary(self):
        """Counters and the last training's numbers, JSON-able."""
        trained = [r for r in self.history if r["event"] in ("init", "retrain")]
        return {"name": self.name, "model": f"EdgeCNN{int(self.config.shared)}-{self.config.depth}",
                "n_samples": self.n_trained, "trainings": len(trained), "pending": self.pending,
                "buffered": len(self.buffer), "label_policy": self.label_policy.describe(),
                "trigger": self.trigger.describe(), **asdict(self.stats),
                "accuracy": trained[-1].get("accuracy") if trained else None}
