"""The cloud server: trains CloudCNN, ships its m lower layers, labels uploaded objects.

Every message in or out is bytes, and ``stats`` adds up their lengths, so the counts
are exactly what was serialized (cloudedge.wire, cloudedge.package).
"""
import json
import time
from pathlib import Path

import numpy as np

import tinycnn
from tinycnn.atomic import atomic_write
from tinycnn.losses import log_softmax
from tinycnn.train import TrainConfig, evaluate, fit

from . import wire
from .models import cloud_cnn
from .package import make_package
from .segmentation import Segmenter


class Cloud:
    """Cloud(model, input_shape): a trained CloudCNN and its counters.

    model: Sequential, input (N, C, H, W) float32 -> logits (N, K).
    segmenter: how uploaded objects are turned back into model inputs (must match the edges').
    """

    def __init__(self, model, input_shape, num_classes=10, segmenter=None, info=None):
        self.model = model
        self.input_shape = tuple(int(v) for v in input_shape)
        out = model.output_shape(self.input_shape)
        if out != (num_classes,):
            raise ValueError(f"CloudCNN maps {self.input_shape} to {out}, expected ({num_classes},) logits")
        self.num_classes = num_classes
        self.segmenter = segmenter or Segmenter()
        self.info = dict(info or {})
        self.reset_stats()

    def reset_stats(self):
        """Zero the counters (bytes in/out, packages, messages, objects labeled, label seconds)."""
        self.stats = {"bytes_in": 0, "bytes_out": 0, "packages": 0, "messages_in": 0,
                      "objects_labeled": 0, "label_seconds": 0.0}

    # --- training ------------------------------------------------------------------
    @classmethod
    def train(cls, x, y, preset="laptop", pool_stride=2, config=None, seed=0, num_classes=10, **kwargs):
        """Build CloudCNN for x's shape and train it with the paper's procedure on (x, y).

        x: (N, C, H, W) float32, y: (N,) int. config: tinycnn.train.TrainConfig.
        """
        cfg = config or TrainConfig(seed=seed)
        model = cloud_cnn(x.shape[1:], preset=preset, pool_stride=pool_stride, num_classes=num_classes, seed=seed)
        start = time.perf_counter()
        history = fit(model, x, y, cfg)
        info = {"preset": preset, "pool_stride": pool_stride, "seed": seed, "n_train": len(x),
                "epochs": len(history.rows), "stopped": history.stopped,
                "train_seconds": time.perf_counter() - start,
                "best_val_acc": max(history.column("val_acc")) if history.rows else None}
        return cls(model, x.shape[1:], num_classes, info=info, **kwargs)

    def evaluate(self, x, y):
        """Test accuracy on (x, y)."""
        return evaluate(self.model, x, y)[1]

    # --- initialization phase: ship the lower layers ----------------------------------
    def export_layers(self, m):
        """Package bytes of CloudCNN's m lower conv layers (counted as sent)."""
        data = make_package(self.model, m, self.input_shape)
        self.stats["bytes_out"] += len(data)
        self.stats["packages"] += 1
        return data

    # --- update phase: label uploads ----------------------------------------------------
    def probabilities(self, x, temperature=1.0):
        """x: (N, C, H, W) -> softmax(logits / temperature): (N, K) float32."""
        out = [np.exp(log_softmax(self.model.infer(x[i:i + 256]) / np.float32(temperature)))
               for i in range(0, len(x), 256)]
        return np.concatenate(out).astype(np.float32)

    def handle(self, message, probs=False, temperature=1.0):
        """An objects or images message from an edge -> a labels message (both bytes, both counted)."""
        start = time.perf_counter()
        kind = wire.message_kind(message)
        if kind == "objects":
            ids, objects = wire.decode_objects(message)
            x = self.segmenter.restore(objects, self.input_shape)
        elif kind == "images":
            ids, images = wire.decode_images(message)
            if images.shape[1:] != self.input_shape:
                raise ValueError(f"images of shape {images.shape[1:]} sent to a cloud with input {self.input_shape}")
            x = images.astype(np.float32) / np.float32(255.0)
        else:
            raise ValueError(f"the cloud labels objects or images messages, got a {kind} message")
        p = self.probabilities(x, temperature)
        reply = wire.LabelReply(ids, p.argmax(axis=1), p.max(axis=1), p if probs else None)
        out = wire.encode_labels(reply, self.num_classes)
        self.stats["bytes_in"] += len(message)
        self.stats["bytes_out"] += len(out)
        self.stats["messages_in"] += 1
        self.stats["objects_labeled"] += len(ids)
        self.stats["label_seconds"] += time.perf_counter() - start
        return out

    # --- files ------------------------------------------------------------------------------
    def save(self, path):
        """CloudCNN as the engine's .npz at path, plus path + '.json' (input shape, info)."""
        path = Path(path)
        self.model.save(path)
        meta = {"input_shape": list(self.input_shape), "num_classes": self.num_classes, "info": self.info}
        with atomic_write(str(path) + ".json") as f:
            f.write(json.dumps(meta, indent=2, sort_keys=True).encode())

    @classmethod
    def load(cls, path, **kwargs):
        path = Path(path)
        meta_path = Path(str(path) + ".json")
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: a saved Cloud needs this sidecar (input shape); "
                                    f"was {path} written by Cloud.save?")
        meta = json.loads(meta_path.read_text())
        return cls(tinycnn.load(path), meta["input_shape"], meta["num_classes"], info=meta.get("info"), **kwargs)
