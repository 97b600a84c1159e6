"""An edge on disk: ``save(edge, folder)`` and ``load(folder)``.

    model.npz    the EdgeCNN (tinycnn's format)
    data.npz     the training store: x (n, C, H, W) float32, hard (n,) int64, ids (n,) int64,
                 origin (n,) "labeled" | "cloud", soft (n, K) float32 if any sample has soft
                 targets; the upload buffer, if not empty: buffer (the upload message its
                 objects would travel in, as uint8) and buffer_meta (n, 2) int64 (prediction,
                 model version)
    state.json   name, config, manifest, policies, segmenter, counters, scores
                 ({version: [agreeing, scored, n_trained]}), training ids, stats, history

Files are written atomically, one at a time.
"""
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

import tinycnn
from tinycnn.atomic import atomic_write

from .config import EdgeConfig
from .edge import Edge
from .edge_state import EdgeStats, Score, Upload
from ..jsonable import jsonable
from ..policies.segmentation import Segmenter


def save(edge, directory):
    """Write model.npz, data.npz and state.json into directory (created if missing)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    edge.model.save(d / "model.npz")
    x, hard, soft, ids = edge.store.arrays()
    arrays = {"x": x, "hard": hard, "ids": ids, "origin": edge.store.origins().astype("U7")}
    if soft is not None:
        arrays["soft"] = soft
    if edge.buffer:
        bids = np.array([u.id for u in edge.buffer], dtype=np.int64)
        arrays["buffer"] = np.frombuffer(edge.codec.encode(bids, [u.item for u in edge.buffer]), np.uint8)
        arrays["buffer_meta"] = np.array([[u.prediction, u.version] for u in edge.buffer], dtype=np.int64)
    with atomic_write(d / "data.npz") as f:
        np.savez(f, **arrays)
    state = {"name": edge.name, "config": edge.config.to_json(), "manifest": edge.manifest,
             "label_policy": edge.label_policy.spec(), "trigger": edge.trigger.spec(),
             "segmenter": asdict(edge.segmenter), "n_initial": edge.n_initial,
             "n_trained": edge.n_trained, "pending": edge.pending, "round": edge.version,
             "scores": {str(v): [s.agreeing, s.scored, s.n_trained] for v, s in edge.scores.items()},
             "training_ids": edge.training_ids.tolist(), "stats": asdict(edge.stats),
             "history": edge.history}
    with atomic_write(d / "state.json") as f:
        f.write(json.dumps(state, indent=1, default=jsonable).encode())


def load(directory, label_policy=None, trigger=None, segmenter=None, monitor=None):
    """The Edge save() wrote into directory; policies and segmenter default to the saved ones."""
    d = Path(directory)
    state = json.loads((d / "state.json").read_text())
    edge = Edge(state["name"], EdgeConfig.from_json(state["config"]), label_policy or state["label_policy"],
                trigger or state["trigger"], segmenter or Segmenter(**state["segmenter"]), monitor)
    edge.model = tinycnn.load(d / "model.npz")
    edge.manifest = state["manifest"]
    with np.load(d / "data.npz", allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    for origin in ("labeled", "cloud"):
        rows = data["origin"] == origin
        if rows.any():
            edge.store.add(data["x"][rows], data["hard"][rows], data["soft"][rows] if "soft" in data else None,
                           data["ids"][rows], origin)
    if "buffer" in data:
        ids, items = edge.codec.decode(data["buffer"].tobytes())
        edge.buffer = [Upload(int(i), item, int(pred), int(version))
                       for i, item, (pred, version) in zip(ids, items, data["buffer_meta"])]
    edge.n_initial, edge.n_trained = state["n_initial"], state["n_trained"]
    edge.pending, edge.version = state["pending"], state["round"]
    edge.scores = {int(v): Score(n_trained, agreeing, scored)
                   for v, (agreeing, scored, n_trained) in state["scores"].items()}
    edge.training_ids = np.array(state["training_ids"], dtype=np.int64)
    edge.stats, edge.history = EdgeStats(**state["stats"]), state["history"]
    return edge
