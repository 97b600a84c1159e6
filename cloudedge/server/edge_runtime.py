"""An edge's state on disk and its steps: start, serve one request, sync once.

Three things hold the state, each written atomically:

store       (store.ObjectStore) every accepted upload, as the model-input image (C, H, W)
            uint8, written and fsynced before the user gets an answer; later its label.
snapshot    a cloudedge.system.edge.Edge saved by cloudedge.system.edge_files.save into snapshots/<k>/ after each training,
            made current by rewriting the file CURRENT (so a snapshot is switched as a whole).
serving     an independent copy of the Edge's model that answers requests; replaced by a
            new copy (one reference swap) only after a training has finished, so no
            request is answered by a model in training.

A sync step: take pending ids from the store, POST their objects to the cloud (nothing
changes if that fails), give the edge the reply (Edge.submit + Edge.sync with a
ReplayCloud), record the labels in the store, and if the edge's trigger retrains, save a
snapshot and publish the model. On start the edge loads the current snapshot and replays
the objects the store has labeled since (Edge.submit + Edge.sync from the stored labels),
so it holds every label exactly once. Objects still pending are simply sent again; the
cloud answers an (edge, id) it has seen from memory without relabeling.
"""
import json
import logging
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import tinycnn
from tinycnn.atomic import atomic_write

from ..system import edge_files, wire
from . import httpclient, prometheus
from .imaging import to_float, to_model_input, to_uint8
from .remote import ReplayCloud
from .store import ObjectStore, private_dir

log = logging.getLogger("cloudedge.server.edge")
TRAININGS_SHOWN = 20     # /metrics lists the last trainings only (and counts them all)


class StateError(RuntimeError):
    """The edge's saved state is missing or damaged; refusing to start beats discarding it."""


class Snapshots:
    """snapshots/<k:06d>/ written by edge_files.save plus absorbed.npy (the store ids whose labels
    the edge has seen, kept or rejected by its label policy); CURRENT names the current one."""

    def __init__(self, root):
        self.root = Path(root)
        self.dir = private_dir(self.root / "snapshots")
        self.pointer = self.root / "CURRENT"

    def current(self):
        """The current snapshot's folder; None for a state dir that never had one. StateError
        if CURRENT is gone while snapshots exist, or names no saved snapshot."""
        saved = sorted(p.name for p in self.dir.iterdir() if p.is_dir())
        if not self.pointer.exists():
            if saved:
                raise StateError(
                    f"{self.pointer} is missing but {self.dir} holds snapshot(s) {', '.join(saved)}: refusing to "
                    f"re-initialise over them. Restore it (echo {saved[-1]} > {self.pointer}), or start fresh "
                    f"on purpose with another --state-dir (or move {self.root} aside)")
            return None
        name = self.pointer.read_text().strip()
        path = self.dir / name
        if not name.isdigit() or not (path / "state.json").exists():
            raise StateError(f"{self.pointer}: expected the name of a saved snapshot in {self.dir} "
                             f"({', '.join(saved) or 'none'}), got {name[:40]!r}")
        return path

    @staticmethod
    def absorbed(path):
        """The snapshot's absorbed ids, (n,) int64 sorted and unique."""
        file = Path(path) / "absorbed.npy"
        try:
            ids = np.load(file, allow_pickle=False)
            if ids.ndim != 1 or ids.dtype.kind not in "iu":
                raise ValueError(f"expected a 1-d integer array, got {ids.dtype} {ids.shape}")
        except (OSError, ValueError, EOFError) as exc:
            raise StateError(f"{file} is damaged ({type(exc).__name__}); the snapshot cannot be resumed. "
                             f"Restore the file, or start fresh on purpose with another --state-dir") from None
        return np.unique(ids.astype(np.int64))

    def save(self, edge, absorbed):
        current = self.current()
        k = int(current.name) + 1 if current is not None else 0
        path = self.dir / f"{k:06d}"
        if path.exists():        # left over from a crash before CURRENT moved
            shutil.rmtree(path)
        edge_files.save(edge, path)
        with atomic_write(path / "absorbed.npy") as f:
            np.save(f, np.asarray(absorbed, dtype=np.int64), allow_pickle=False)
        with atomic_write(self.pointer) as f:
            f.write(path.name.encode())
        for old in self.dir.iterdir():
            if old.name != path.name:
                shutil.rmtree(old, ignore_errors=True)
        return path


class Serving:
    """The model that answers requests, with its version and its own lock."""

    def __init__(self, model, version):
        self.model, self.version, self.lock = model, version, threading.Lock()


class EdgeRuntime:
    """One edge's durable state and steps. `make_edge()` builds a fresh, uninitialised Edge;
    `labeled()` returns its N labeled images (x (N, C, H, W) float32, y (N,) int64);
    `cloud` is a RemoteCloud; `monitor` (optional) scores a model for reporting."""

    def __init__(self, state_dir, make_edge, labeled, cloud, monitor=None):
        self.state_dir = private_dir(state_dir)
        self.store = ObjectStore(self.state_dir / "objects")
        self.snapshots = Snapshots(self.state_dir)
        self.make_edge, self.labeled, self.cloud, self.monitor = make_edge, labeled, cloud, monitor
        self.edge = None
        self.serving = None
        self._sync_lock = threading.Lock()
        self._unsaved = False       # labels absorbed since the last snapshot
        # store ids whose labels the edge has been given, sorted (8 bytes each; a set took ~10x more)
        self._absorbed = np.empty(0, dtype=np.int64)
        self.status = {"phase": "starting", "replayed": 0, "syncs": 0, "sync_failures": 0,
                       "last_error": None, "uploaded": 0, "trainings_total": 0, "trainings": []}
        self.upload_seconds = prometheus.Histogram()   # one upload to the cloud: objects out, labels back

    # --- start ---------------------------------------------------------------------------
    def start(self, wait_for_cloud=60.0):
        """Load the current snapshot, or run the initialization phase (Alg. 1) with the
        cloud's layers; then replay labeled objects the snapshot lacks; then publish."""
        path = self.snapshots.current()
        if path is not None:
            try:
                self.edge = edge_files.load(path, monitor=self.monitor)
            except (OSError, ValueError, KeyError) as exc:
                raise StateError(f"snapshot {path} cannot be loaded ({type(exc).__name__}: {exc}); restore it, "
                                 f"or start fresh on purpose with another --state-dir") from None
            wanted = self.make_edge().config
            self._check_same_edge(wanted, path)
            # how many samples to keep is a server option, not the model's: today's value applies
            self.edge.config = replace(self.edge.config, max_samples=wanted.max_samples)
            self._absorbed = self.snapshots.absorbed(path)
            self.status["phase"] = "resumed"
        else:
            self.edge = self.make_edge()
            self.edge.monitor = self.monitor
            if self.edge.config.shared:
                self.edge.receive_package(self._fetch_layers(self.edge.m, wait_for_cloud))
            x, y = self.labeled()
            self._record_training(self.edge.initialize(x, y))
            self.snapshots.save(self.edge, self._absorbed)
            self.status["phase"] = "initialized"
        self.status["replayed"] = self._replay()
        self._publish()
        return self

    def _check_same_edge(self, wanted, path):
        """A resumed edge must be the one asked for (depth, sharing, preset, input)."""
        keys = ("depth", "shared", "preset", "pool_stride", "input_shape", "num_classes")
        have = self.edge.config
        diff = {k: (getattr(wanted, k), getattr(have, k)) for k in keys
                if tuple(np.atleast_1d(getattr(wanted, k))) != tuple(np.atleast_1d(getattr(have, k)))}
        if diff:
            raise ValueError(f"{path} holds a different edge than the options ask for "
                             f"(option, saved): {diff}; use another --state-dir or the saved options")

    def _fetch_layers(self, m, wait):
        """The cloud's m lower layers; retries while the cloud is unreachable (up to `wait`
        seconds). A package that fails verification is refused at once (ValueError)."""
        deadline, delay = time.monotonic() + wait, 0.2
        while True:
            try:
                return self.cloud.layers(m)
            except (httpclient.CallError, httpclient.StatusError) as exc:
                retriable = isinstance(exc, httpclient.CallError) or exc.status >= 500
                if not retriable or time.monotonic() + delay > deadline:
                    raise RuntimeError(f"cannot get the m={m} lower layers from the cloud at "
                                       f"{self.cloud.url}: {exc}") from exc
                log.warning("cloud not reachable yet (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _replay(self):
        """Give the edge the labels the store holds for objects the snapshot has not absorbed."""
        labeled = np.array(self.store.labeled_ids(), dtype=np.int64)
        missing = labeled[~np.isin(labeled, self._absorbed)].tolist()
        if self.edge.buffered:
            raise ValueError(f"snapshot {self.snapshots.current()} has {self.edge.buffered} buffered "
                             f"objects; this edge server always saves with an empty buffer")
        missing, records = self.store.load_readable(missing, labeled=True)
        if not missing:
            return 0
        probs = [r["probs"] for r in records]
        reply = wire.LabelReply(np.array(missing, np.int64), np.array([int(r["label"]) for r in records]),
                                np.array([float(r["confidence"]) for r in records], np.float32),
                                np.stack(probs) if all(p.size for p in probs) else None)
        images = np.stack([r["image"] for r in records])
        self._absorb(np.array(missing, np.int64), images, wire.encode_labels(reply, self.edge.config.num_classes))
        self._after_labels()
        log.info("replayed %d labeled objects into the edge", len(missing))
        return len(missing)

    # --- serving ------------------------------------------------------------------------------
    def _publish(self):
        """Swap in an independent copy of the edge's model as the serving model."""
        copy = tinycnn.load(self.edge.model.to_bytes())
        self.serving = Serving(copy, len([r for r in self.edge.history if r["event"] in ("init", "retrain")]))

    def serve(self, images):
        """images (N, H, W, C) uint8 -> dict with labels, confidences, ids, model_version and
        the seconds of each stage. Objects are durable on disk before this returns."""
        t0 = time.perf_counter()
        frames = to_uint8(to_model_input(images, self.edge.config.input_shape))   # (N, C, H, W)
        x = self.edge.segmenter.roundtrip(to_float(frames))     # what EdgeCNN sees
        t1 = time.perf_counter()
        serving = self.serving
        with serving.lock:
            p = serving.model.predict_proba(x)
        t2 = time.perf_counter()
        ids = [self.store.put({"image": frame}) for frame in frames]
        t3 = time.perf_counter()
        return {"labels": p.argmax(axis=1).tolist(), "confidences": p.max(axis=1).tolist(),
                "ids": ids, "model_version": serving.version,
                "seconds": {"preprocess": t1 - t0, "infer": t2 - t1, "store": t3 - t2}}

    # --- update phase ----------------------------------------------------------------------------
    def sync_once(self, load, batch=64):
        """Upload up to `batch` pending objects if load < the edge's threshold, absorb the labels,
        maybe retrain. Returns {"uploaded", "retrained", "skipped"}. Network errors propagate
        (httpclient.CallError / StatusError) with nothing changed."""
        with self._sync_lock:
            ids = self.store.pending_ids(limit=batch)
            if not ids:
                return {"uploaded": 0, "retrained": False, "skipped": "nothing pending"}
            if load >= self.edge.config.load_threshold:
                return {"uploaded": 0, "retrained": False,
                        "skipped": f"load {load:.2f} >= {self.edge.config.load_threshold:.2f}"}
            readable, records = self.store.load_readable(ids, labeled=False)
            if not readable:
                return {"uploaded": 0, "retrained": False, "skipped": "only damaged objects (quarantined)"}
            ids, images = np.array(readable, np.int64), np.stack([r["image"] for r in records])
            objects = self.edge.segmenter.segment(to_float(images))
            policy = self.edge.label_policy
            start = time.perf_counter()
            reply = self.cloud.label(wire.encode_objects(ids, objects), probs=policy.needs_probs)
            self.upload_seconds.observe(time.perf_counter() - start)
            self._absorb(ids, images, reply)
            decoded = wire.decode_labels(reply)
            for j, object_id in enumerate(decoded.ids.tolist()):
                self.store.mark_labeled(object_id, decoded.labels[j], decoded.confidence[j],
                                        None if decoded.probs is None else decoded.probs[j])
            retrained = self._after_labels()
            self.status["syncs"] += 1
            self.status["uploaded"] += len(ids)
            return {"uploaded": len(ids), "retrained": retrained, "skipped": ""}

    def _absorb(self, ids, images, reply_bytes):
        """Edge.submit + Edge.sync against the known reply: the edge's own bookkeeping."""
        self.edge.submit(to_float(images), ids)
        self.edge.sync(ReplayCloud(reply_bytes, self.edge.config.num_classes), load=0.0)
        self._absorbed = np.union1d(self._absorbed, ids)
        self.edge.received.clear()   # the edge's per-sync log of labels (for simulations); the store has them
        self._unsaved = True

    def close(self):
        """On a graceful stop: snapshot labels absorbed since the last training (a restart would
        replay them anyway; this makes the snapshot complete)."""
        with self._sync_lock:
            if self._unsaved:
                self.snapshots.save(self.edge, self._absorbed)
                self._unsaved = False

    def _after_labels(self):
        """Retrain if the edge's trigger says so; then snapshot and publish the new model.

        Between trainings the labels live in the store only (a snapshot holds the whole
        model and training set, too much to rewrite per upload); a restart replays them."""
        row = self.edge.maybe_retrain()
        if row is None:
            return False
        self._record_training(row)
        self.snapshots.save(self.edge, self._absorbed)
        self._unsaved = False
        self._publish()
        return True

    def _record_training(self, row):
        keep = ("event", "why", "n_samples", "n_labeled", "n_cloud", "epochs", "train_seconds",
                "best_val_acc", "accuracy")
        self.status["trainings"].append({k: row.get(k) for k in keep})
        del self.status["trainings"][:-TRAININGS_SHOWN]
        self.status["trainings_total"] += 1

    def summary(self):
        """JSON-able counters for /metrics."""
        out = {"status": json.loads(json.dumps(self.status, default=float)), "store": self.store.counts(),
               "store_recovered": self.store.recovered, "store_quarantined": list(self.store.quarantined),
               "model_version": self.serving.version if self.serving else None}
        if self.edge is not None:
            out["model"] = f"EdgeCNN{int(self.edge.config.shared)}-{self.edge.config.depth}"
            out["label_policy"] = self.edge.label_policy.describe()
            out["trigger"] = self.edge.trigger.describe()
        return out
