"""An edge server: EdgeCNN0 or EdgeCNN1, its data, its upload buffer and its history.

Life cycle (Ding et al. 2022, Algorithms 1 and 2):

    edge = Edge("e1", EdgeConfig(depth=3, shared=True))
    edge.receive_package(cloud.export_layers(3))   # EdgeCNN1: CloudCNN's 3 lower conv layers, frozen
    edge.initialize(x_labeled, y_labeled)          # Alg. 1: train the n higher layers on N images
    preds = edge.submit(user_images)               # segment, answer with EdgeCNN, buffer the objects
    edge.sync(cloud, load=0.1)                     # upload if the core network is idle; labels come back
    edge.maybe_retrain()                           # Alg. 2: retrain on N + M when the trigger says so

The edge never sees ground truth for uploads: only what the cloud sent back. Shapes:
images are (N, C, H, W) float32 in [0, 1]; labels (N,) int64.
"""
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

import tinycnn
from tinycnn.atomic import atomic_write
from tinycnn.train import TrainConfig, evaluate, fit, holdout_split

from . import wire
from .feature_cache import cacheable_prefix, fit_cached, prefix_features
from .labels import TrustAll, make_policy
from .models import edge_cnn, shared_prefix
from .package import open_package
from .retrain import EveryM, RetrainContext, make_trigger
from .segmentation import Segmenter, to_uint8


EDGE_PROCEDURES = ("fixed", "paper")


def edge_train_config(procedure="fixed", **overrides):
    """The edges' training, quiet. Both hold out a stratified 10% for validation.
        fixed  (default) 30 epochs at lr 0.01, no lr decay, no early stop; ends with the
               last weights
        paper  the paper's rules (lr / 10 after 5 epochs without a better val accuracy, stop
               after 10 without a lower val error), capped at 30 epochs; ends with the weights
               of the best validation epoch
    Why fixed: at N = 120 the validation set is 12 images, too few to pick an epoch by. With
    the shipped CloudCNN, over 8 edge seeds, the paper's rules stopped after 1-2 s and gave
    EdgeCNN1-3 59.5-82.1% (gap to EdgeCNN0-3 -15.7 to +10.0 points); fixed epochs gave
    81.8-83.4% (gap +0.7 to +6.7). docs/REPRODUCTION.md (factors) has it over clouds.
    """
    if procedure not in EDGE_PROCEDURES:
        raise ValueError(f"edge procedure must be one of {EDGE_PROCEDURES}, got {procedure!r}")
    base = dict(max_epochs=30, lr_patience=5, stop_patience=10, progress=False)
    if procedure == "fixed":
        base.update(lr_patience=10**9, stop_patience=10**9, restore_best=False)
    base.update(overrides)
    return TrainConfig(**base)


@dataclass
class EdgeConfig:
    """depth: conv layers k of EdgeCNN-k; shared: EdgeCNN1 (CloudCNN's k lower layers, frozen)
    or EdgeCNN0 (from scratch). load_threshold: upload only while core-network load < this."""
    depth: int = 3
    shared: bool = True
    input_shape: tuple = (1, 28, 28)
    preset: str = "laptop"
    pool_stride: int = 2
    num_classes: int = 10
    train: TrainConfig = field(default_factory=edge_train_config)
    warm_start: bool = True       # Alg. 2 starts from W*_e; False re-initialises the head
    feature_cache: bool = True    # train on cached frozen-prefix features (equal to float32 rounding)
    segment: bool = True          # upload segmented objects (else raw images)
    load_threshold: float = 0.5
    seed: int = 0
    init: str = "he-normal"       # of the layers trained here (models.edge_cnn)
    max_samples: int = 0          # keep at most this many training samples, the oldest cloud labels
                                  # going first (the N labeled stay); 0 = keep all (Alg. 2's N + M)

    def to_json(self):
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_json(cls, d):
        d = dict(d)
        d["train"] = TrainConfig(**d["train"])
        d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)


class Edge:
    """One edge server. See the module docstring for the life cycle."""

    def __init__(self, name, config=None, label_policy=None, trigger=None, segmenter=None, monitor=None):
        self.name = name
        self.config = config or EdgeConfig()
        c = self.config
        self.label_policy = make_policy(label_policy or TrustAll())
        self.trigger = make_trigger(trigger or EveryM(120))
        self.segmenter = segmenter or Segmenter()
        self.monitor = monitor  # optional model -> accuracy, called after each training (reporting only)
        self.model = edge_cnn(c.depth, c.input_shape, preset=c.preset, pool_stride=c.pool_stride,
                              num_classes=c.num_classes, seed=c.seed, init=c.init)
        self.m = c.depth if c.shared else 0
        self.manifest = None
        # the training store: images as the model sees them, labels, provenance
        self._x, self._hard, self._soft, self._ids, self._origin = [], [], [], [], []
        self._features = []          # cached prefix outputs, aligned with self._x rows computed so far
        self._n_initial = 0          # N: labeled images the edge started with
        self._n_trained = 0          # size of the last training set
        self._pending = 0            # accepted cloud labels not yet trained on
        self._round = 0              # trainings so far (= model version)
        self._buffer = []            # [(id, object or uint8 image, prediction, model version)]
        self._scores = {}            # model version -> [agreeing, scored, n_trained]
        self.training_ids = np.empty(0, dtype=np.int64)
        self.received = []           # per sync: ids, labels, confidence, keep (for reporting)
        self.history = []
        self.stats = {"bytes_up": 0, "bytes_down": 0, "raw_bytes_up": 0, "uploads": 0, "syncs": 0,
                      "syncs_skipped": 0, "inferred": 0, "infer_seconds": 0.0, "train_seconds": 0.0,
                      "sample_passes": 0}

    # --- initialization phase ------------------------------------------------------------
    def receive_package(self, data):
        """Install CloudCNN's m lower layers from package bytes, verified first, then frozen."""
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
        self._features = []
        self.stats["bytes_down"] += len(data)
        self._log("package", bytes_down=len(data), m=self.m)
        return manifest

    def initialize(self, x, y, ids=None):
        """Algorithm 1: train EdgeCNN on the N labeled images (x: (N, C, H, W) float32, y: (N,) int)."""
        if self.config.shared and self.manifest is None:
            raise ValueError(f"edge {self.name} is an EdgeCNN1: receive the cloud's layer package "
                             f"before initialize()")
        if self._round:
            raise ValueError(f"edge {self.name} is already initialised ({self._round} trainings)")
        x, y = self._check_images(x), np.asarray(y)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"expected {len(x)} integer labels, got {y.dtype} {y.shape}")
        if self.config.max_samples and self.config.max_samples <= len(x):
            raise ValueError(f"edge {self.name}: max_samples={self.config.max_samples} leaves no room for "
                             f"cloud labels beside the {len(x)} labeled images; expected 0 (keep all) or "
                             f"> {len(x)}")
        ids = np.arange(len(x)) if ids is None else np.asarray(ids, dtype=np.int64)
        self._append(x, y.astype(np.int64), None, ids, "labeled")
        self._n_initial = len(x)
        return self._train("init")

    # --- serving -------------------------------------------------------------------------------
    def infer(self, x):
        """x: (n, C, H, W) model inputs -> (predictions (n,) int64, seconds)."""
        start = time.perf_counter()
        pred = self.model.predict(self._check_images(x))
        seconds = time.perf_counter() - start
        self.stats["inferred"] += len(x)
        self.stats["infer_seconds"] += seconds
        return pred, seconds

    def evaluate(self, x, y):
        """Test accuracy of the current EdgeCNN on (x, y) (reporting only; nothing is trained)."""
        return evaluate(self.model, self._check_images(x), y)[1]

    def submit(self, images, ids):
        """Users' uploads: segment, answer with EdgeCNN, keep the objects for the cloud.

        images: (n, C, H, W) float in [0, 1]; ids: (n,) unique ints (< 2**32). Returns predictions (n,).
        """
        images = self._check_images(images)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape != (len(images),):
            raise ValueError(f"expected {len(images)} ids, got shape {ids.shape}")
        if self.config.segment:
            objects = self.segmenter.segment(images)
            x = self.segmenter.restore(objects, self.config.input_shape)
        else:
            objects = list(to_uint8(images))
            x = np.stack(objects).astype(np.float32) / np.float32(255.0)
        pred, _ = self.infer(x)
        self._buffer += [(int(i), o, int(p), self._round) for i, o, p in zip(ids, objects, pred)]
        return pred

    @property
    def buffered(self):
        return len(self._buffer)

    # --- update phase -----------------------------------------------------------------------------
    def sync(self, cloud, load, t=None, max_objects=None):
        """Algorithm 2, lines 1-3: if load < threshold, upload the buffer and take the labels back.

        cloud: anything with ``handle(message, probs, temperature) -> bytes`` (a Cloud).
        Returns a dict: uploaded, kept, bytes_up, bytes_down (0 when skipped).
        """
        if not 0.0 <= load <= 1.0:
            raise ValueError(f"load must be in [0, 1], got {load!r}")
        if not self._buffer:
            return {"uploaded": 0, "kept": 0, "bytes_up": 0, "bytes_down": 0, "skipped": "empty"}
        if load >= self.config.load_threshold:
            self.stats["syncs_skipped"] += 1
            return {"uploaded": 0, "kept": 0, "bytes_up": 0, "bytes_down": 0,
                    "skipped": f"load {load:.2f} >= {self.config.load_threshold:.2f}"}
        batch = self._buffer[:max_objects] if max_objects else self._buffer
        ids = np.array([b[0] for b in batch], dtype=np.int64)
        message = self._encode(ids, [b[1] for b in batch])
        policy = self.label_policy
        reply_bytes = cloud.handle(message, probs=policy.needs_probs,
                                   temperature=getattr(policy, "temperature", 1.0))
        reply = wire.decode_labels(reply_bytes)
        if not np.array_equal(reply.ids, ids):
            raise ValueError(f"the cloud answered for ids {reply.ids[:5]}..., expected {ids[:5]}...")
        keep, hard, soft = policy.apply(reply)
        for (_, _, pred, version), label in zip(batch, reply.labels):
            score = self._scores.setdefault(version, [0, 0, self._n_trained_at(version)])
            score[0] += int(pred == label)
            score[1] += 1
        x = self._restore([b[1] for b in batch])
        if keep.any():
            self._append(x[keep], hard[keep], None if soft is None else soft[keep], ids[keep], "cloud")
            self._pending += int(keep.sum())
            self._forget_oldest()
        self._buffer = self._buffer[len(batch):]
        self.received.append({"ids": ids, "labels": reply.labels, "confidence": reply.confidence, "keep": keep})
        self.stats["bytes_up"] += len(message)
        self.stats["raw_bytes_up"] += wire.images_message_bytes(len(batch), self.config.input_shape)
        self.stats["bytes_down"] += len(reply_bytes)
        self.stats["uploads"] += len(batch)
        self.stats["syncs"] += 1
        out = {"uploaded": len(batch), "kept": int(keep.sum()), "bytes_up": len(message),
               "bytes_down": len(reply_bytes), "skipped": ""}
        self._log("sync", t=t, **{k: v for k, v in out.items() if k != "skipped"})
        return out

    def retrain_context(self):
        curve = [(s[2], s[0] / s[1], s[1]) for v, s in sorted(self._scores.items()) if s[1]]
        epochs = [row["epochs"] for row in self.history if row["event"] in ("init", "retrain")]
        return RetrainContext(self._n_trained, self._pending, curve, epochs)

    def maybe_retrain(self, t=None):
        """Ask the trigger; retrain (Alg. 2, lines 4-6) if it says so. Returns the history row or None."""
        if not self._round or self._pending == 0:
            return None
        ok, why = self.trigger.decide(self.retrain_context())
        return self._train("retrain", t=t, why=why) if ok else None

    def retrain(self, t=None):
        """Retrain now on every stored sample (N + all accepted cloud labels), frozen layers untouched."""
        if not self._round:
            raise ValueError(f"edge {self.name}: initialize() before retrain()")
        return self._train("retrain", t=t, why="forced")

    # --- training ------------------------------------------------------------------------------------
    def _train(self, event, t=None, why=""):
        c = self.config
        x, hard, soft, ids = self.dataset()
        cfg = replace(c.train, seed=c.train.seed + self._round)
        tr, va = holdout_split(hard, cfg.val_fraction, cfg.seed)
        if len(va) == 0:
            raise ValueError(f"edge {self.name}: {len(hard)} samples leave no validation sample at "
                             f"val_fraction={cfg.val_fraction}; need more labeled images per class")
        y_tr = hard[tr] if soft is None else soft[tr]
        if event == "retrain" and not c.warm_start:
            self._reinit_head()
        start = time.perf_counter()
        p = cacheable_prefix(self.model) if c.feature_cache else 0
        if p:                  # the tested fit_cached, on features this edge keeps across trainings
            feats = self._cached_features(x, p)
            history, info = fit_cached(self.model, x[tr], y_tr, cfg, x[va], hard[va],
                                       features=(feats[tr], feats[va]))
            probe = info["max_abs_diff"]
        else:
            history, probe = fit(self.model, x[tr], y_tr, cfg, x[va], hard[va]), None
        seconds = time.perf_counter() - start
        self._round += 1
        self._n_trained, self._pending = len(hard), 0
        self.training_ids = ids.copy()
        epochs = len(history.rows)
        self.stats["train_seconds"] += seconds
        self.stats["sample_passes"] += epochs * len(tr)
        row = self._log(event, t=t, why=why, n_samples=len(hard), n_labeled=self._n_initial,
                        n_cloud=len(hard) - self._n_initial, epochs=epochs, stopped=history.stopped,
                        sample_passes=epochs * len(tr), train_seconds=seconds,
                        best_val_acc=max(history.column("val_acc")) if epochs else None,
                        cached_layers=p, cache_probe_max_diff=probe)
        if self.monitor is not None:
            row["accuracy"] = float(self.monitor(self.model))
        return row

    def _cached_features(self, x, p):
        """Prefix outputs for every stored sample; only rows not seen before are computed."""
        done = sum(len(f) for f in self._features)
        if done < len(x):
            self._features.append(prefix_features(self.model[:p], x[done:]))
        return np.concatenate(self._features) if len(self._features) > 1 else self._features[0]

    def _reinit_head(self):
        c = self.config
        fresh = edge_cnn(c.depth, c.input_shape, preset=c.preset, pool_stride=c.pool_stride,
                         num_classes=c.num_classes, seed=c.seed + 1000 + self._round, init=c.init)
        p = self.model.frozen_prefix
        self.model[p:].load_state_dict(fresh[p:].state_dict())

    # --- helpers ---------------------------------------------------------------------------------------
    def dataset(self):
        """The training store: x (n, C, H, W) float32, hard (n,) int64, soft (n, K) float32 or None, ids (n,)."""
        if not self._x:
            raise ValueError(f"edge {self.name} holds no data yet")
        x, hard, ids = np.concatenate(self._x), np.concatenate(self._hard), np.concatenate(self._ids)
        soft = None
        if any(s is not None for s in self._soft):
            eye = np.eye(self.config.num_classes, dtype=np.float32)
            soft = np.concatenate([eye[h] if s is None else s for h, s in zip(self._hard, self._soft)])
        return x, hard, soft, ids

    def origins(self):
        """(n,) array of "labeled" / "cloud" per stored sample."""
        return np.concatenate([np.full(len(h), o) for h, o in zip(self._hard, self._origin)])

    def _append(self, x, hard, soft, ids, origin):
        self._x.append(x)
        self._hard.append(hard)
        self._soft.append(soft)
        self._ids.append(np.asarray(ids, dtype=np.int64))
        self._origin.append(origin)

    def _forget_oldest(self):
        """Keep at most config.max_samples samples: drop the oldest cloud-labeled ones and their
        cached features. The N labeled images come first in the store and always stay."""
        limit, n = self.config.max_samples, sum(len(h) for h in self._hard)
        if not limit or n <= limit:
            return
        start, stop = self._n_initial, self._n_initial + n - limit     # rows of the oldest cloud labels
        lengths = [len(h) for h in self._hard]
        self._x, self._hard, self._soft, self._ids, self._origin = (
            _without_rows(chunks, lengths, start, stop)
            for chunks in (self._x, self._hard, self._soft, self._ids, self._origin))
        self._features = _without_rows(self._features, [len(f) for f in self._features], start, stop)
        self._pending = min(self._pending, limit - self._n_initial)

    def _n_trained_at(self, version):
        rows = [r for r in self.history if r["event"] in ("init", "retrain")]
        return rows[version - 1]["n_samples"] if 0 < version <= len(rows) else 0

    def _encode(self, ids, items):
        if self.config.segment:
            return wire.encode_objects(ids, items)
        return wire.encode_images(ids, np.stack(items))

    def _restore(self, items):
        if self.config.segment:
            return self.segmenter.restore(items, self.config.input_shape)
        return np.stack(items).astype(np.float32) / np.float32(255.0)

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
                "n_samples": self._n_trained, "trainings": len(trained), "pending": self._pending,
                "buffered": len(self._buffer), "label_policy": self.label_policy.describe(),
                "trigger": self.trigger.describe(), **self.stats,
                "accuracy": trained[-1].get("accuracy") if trained else None}

    # --- files ---------------------------------------------------------------------------------------------
    def save(self, directory):
        """Write model.npz, data.npz (store + buffer) and state.json into directory."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.model.save(d / "model.npz")
        x, hard, soft, ids = self.dataset()
        arrays = {"x": x, "hard": hard, "ids": ids, "origin": self.origins().astype("U7")}
        if soft is not None:
            arrays["soft"] = soft
        if self._buffer:
            bids = np.array([b[0] for b in self._buffer], dtype=np.int64)
            arrays["buffer"] = np.frombuffer(self._encode(bids, [b[1] for b in self._buffer]), np.uint8)
            arrays["buffer_meta"] = np.array([[b[2], b[3]] for b in self._buffer], dtype=np.int64)
        with atomic_write(d / "data.npz") as f:
            np.savez(f, **arrays)
        state = {"name": self.name, "config": self.config.to_json(), "manifest": self.manifest,
                 "label_policy": self.label_policy.spec(), "trigger": self.trigger.spec(),
                 "segmenter": asdict(self.segmenter), "n_initial": self._n_initial,
                 "n_trained": self._n_trained, "pending": self._pending,
                 "round": self._round, "scores": {str(k): v for k, v in self._scores.items()},
                 "training_ids": self.training_ids.tolist(), "stats": self.stats,
                 "history": _jsonable(self.history)}
        with atomic_write(d / "state.json") as f:
            f.write(json.dumps(state, indent=1).encode())

    @classmethod
    def load(cls, directory, label_policy=None, trigger=None, segmenter=None, monitor=None):
        """Rebuild an edge written by save(); policies default to the saved ones."""
        d = Path(directory)
        state = json.loads((d / "state.json").read_text())
        edge = cls(state["name"], EdgeConfig.from_json(state["config"]), label_policy or state["label_policy"],
                   trigger or state["trigger"], segmenter or Segmenter(**state["segmenter"]), monitor)
        edge.model = tinycnn.load(d / "model.npz")
        edge.manifest = state["manifest"]
        with np.load(d / "data.npz", allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        origin = data["origin"]
        for kind in ("labeled", "cloud"):
            sel = origin == kind
            if sel.any():
                edge._append(data["x"][sel], data["hard"][sel], data["soft"][sel] if "soft" in data else None,
                             data["ids"][sel], kind)
        if "buffer" in data:
            decode = wire.decode_objects if edge.config.segment else _decode_image_items
            bids, items = decode(data["buffer"].tobytes())
            edge._buffer = [(int(i), o, int(m[0]), int(m[1])) for i, o, m in zip(bids, items, data["buffer_meta"])]
        edge._n_initial, edge._n_trained = state["n_initial"], state["n_trained"]
        edge._pending, edge._round = state["pending"], state["round"]
        edge._scores = {int(k): v for k, v in state["scores"].items()}
        edge.training_ids = np.array(state["training_ids"], dtype=np.int64)
        edge.stats, edge.history = state["stats"], state["history"]
        return edge


def _without_rows(chunks, lengths, start, stop):
    """A list of chunks (lengths[i] rows each) without rows [start, stop) of their concatenation.
    An array chunk that loses some rows is copied, so the dropped rows' memory is freed; a chunk
    that is not an array (a None soft target, an origin name) stays as it is; an emptied chunk goes."""
    out, pos = [], 0
    for chunk, n in zip(chunks, lengths):
        a, b = min(max(start - pos, 0), n), min(max(stop - pos, 0), n)    # this chunk's rows to drop
        pos += n
        if b - a == n:
            continue
        if b > a and isinstance(chunk, np.ndarray):
            chunk = np.concatenate([chunk[:a], chunk[b:]])
        out.append(chunk)
    return out


def _decode_image_items(data):
    ids, images = wire.decode_images(data)
    return ids, list(images)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
