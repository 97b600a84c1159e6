"""The cloud server: cloudedge.system.cloud.Cloud behind HTTP.

Routes (all but /health need the bearer token):
    GET  /health           {"status": "ok", "role": "cloud", ...}
    GET  /metrics          requests, bytes, latency percentiles, labeling counters (JSON, or the
                           Prometheus text format for Accept: text/plain)
    GET  /layers?m=K       the m = K lower conv layers as a cloudedge.system.package (bytes),
                           header X-Package-Sha256 = sha256 of the body
    POST /label[?probs=1]  objects message (cloudedge.system.wire) -> labels message; header
                           X-Edge-Id names the sender. Idempotent: an (edge, id) already
                           labeled for the same pixels is answered from memory, not relabeled.
    POST /infer            raw images (payload.RAW) -> {"labels", "confidences"} by CloudCNN
                           on the whole image (the paper's cloud-only scheme)
"""
import hashlib
import threading
import time
from collections import OrderedDict

import numpy as np

from ..system import wire
from ..system.models import PAPER_PLAN
from . import payload, prometheus
from .http import App, HttpError, Response
from .imaging import to_model_input

LABEL_MEMORY = 200_000   # (edge, id) labels remembered for idempotent re-sends


class CloudServer:
    """HTTP routes for a Cloud. One model forward at a time (layers cache activations)."""

    def __init__(self, cloud, token=None, max_body=payload.MAX_SIDE ** 2, label_memory=LABEL_MEMORY,
                 edge_tokens=None):
        """token: the devices' secret (and, without edge_tokens, everyone's). edge_tokens:
        {edge id: secret}; when given, only those secrets may fetch layers and post labels,
        each only as its own edge (X-Edge-Id must match), and the devices' token may not."""
        self.cloud = cloud
        edge_tokens = dict(edge_tokens or {})
        principals = {secret: f"edge:{edge}" for edge, secret in edge_tokens.items()}
        if len(principals) != len(edge_tokens) or (token is not None and token in principals):
            raise ValueError("every edge needs its own secret, different from the devices' token")
        self.app = App("cloud", token=token, max_body=max_body, principals=principals)
        edges_only = ("edge",) if edge_tokens else None
        self._model_lock = threading.Lock()
        self._memory_lock = threading.Lock()
        self._memory = OrderedDict()   # (edge id, object id) -> (pixels sha256, label, confidence, probs)
        self._memory_size = label_memory
        self._packages = {}
        self.label_seconds = prometheus.Histogram()   # CloudCNN labeling one message of new objects
        app = self.app
        app.route("GET", "/health", self.health, public=True)
        app.route("GET", "/metrics", self.metrics)
        app.route("GET", "/layers", self.layers, allow=edges_only)
        app.route("POST", "/label", self.label, allow=edges_only)
        app.route("POST", "/infer", self.infer)

    def health(self, request):
        return Response.json({"status": "ok", "role": "cloud", "input_shape": list(self.cloud.input_shape),
                              "num_classes": self.cloud.num_classes})

    def metrics(self, request):
        snap = self.app.metrics.snapshot()
        snap["cloud"] = dict(self.cloud.stats)
        return self.app.metrics_response(request, snap, [prometheus.Family(
            "cloudedge_label_seconds", "histogram", "Seconds CloudCNN took to label one message of new objects.",
            [({}, self.label_seconds)])])

    def layers(self, request):
        m = request.query_int("m", low=1, high=self._max_m())
        if m not in self._packages:
            self._packages[m] = self.cloud.export_layers(m)
        data = self._packages[m]
        self.app.metrics.add("packages_sent")
        return Response.binary(data, payload.PACKAGE, {"X-Package-Sha256": hashlib.sha256(data).hexdigest()})

    def _max_m(self):
        convs = sum(1 for layer in self.cloud.model if type(layer).__name__ == "Conv2D")
        return min(convs, len(PAPER_PLAN))

    def label(self, request):
        try:
            payload.expect_type(request.headers, payload.OBJECTS)
            ids, objects = payload.decode_objects(request.body, self.cloud.input_shape)
        except payload.PayloadError as exc:
            raise HttpError(400, str(exc)) from None
        edge = (request.headers.get("X-Edge-Id") or "").strip()
        if not 1 <= len(edge) <= 64 or not edge.isprintable():
            raise HttpError(400, f"header X-Edge-Id must name the edge (1..64 printable characters), "
                                 f"got {edge!r}")
        if request.principal.startswith("edge:") and request.principal != f"edge:{edge}":
            raise HttpError(403, f"this token belongs to another edge than X-Edge-Id {edge!r}")
        probs = request.query.get("probs", "0") in ("1", "true", "yes")
        digests = [hashlib.sha256(o.pixels.tobytes() + o.background.tobytes()
                                  + np.array([o.top, o.left], np.int64).tobytes()).hexdigest()
                   for o in objects]
        known, fresh = {}, []
        with self._memory_lock:
            for i, (object_id, digest) in enumerate(zip(ids.tolist(), digests)):
                hit = self._memory.get((edge, object_id))
                if hit is not None and hit[0] == digest:
                    known[object_id] = hit[1:]
                else:
                    fresh.append(i)
        if fresh:
            message = wire.encode_objects(ids[fresh], [objects[i] for i in fresh])
            with self._model_lock:
                start = time.perf_counter()
                reply = wire.decode_labels(self.cloud.handle(message, probs=True))
                self.label_seconds.observe(time.perf_counter() - start)
            with self._memory_lock:
                for j, i in enumerate(fresh):
                    entry = (digests[i], int(reply.labels[j]), float(reply.confidence[j]), reply.probs[j])
                    self._memory[(edge, int(ids[i]))] = entry
                    known[int(ids[i])] = entry[1:]
                while len(self._memory) > self._memory_size:
                    self._memory.popitem(last=False)
        self.app.metrics.add("objects_labeled", len(fresh))
        self.app.metrics.add("objects_relabel_avoided", len(objects) - len(fresh))
        rows = [known[i] for i in ids.tolist()]
        out = wire.LabelReply(ids, np.array([r[0] for r in rows], np.int64),
                              np.array([r[1] for r in rows], np.float32),
                              np.stack([r[2] for r in rows]) if probs else None)
        return Response.binary(wire.encode_labels(out, self.cloud.num_classes), payload.LABELS)

    def infer(self, request):
        start = request.received
        try:
            images = payload.decode_images(request.headers, request.body)
        except payload.PayloadError as exc:
            raise HttpError(400, str(exc)) from None
        x = to_model_input(images, self.cloud.input_shape)
        prepared = time.perf_counter()
        with self._model_lock:
            p = self.cloud.probabilities(x)
        done = time.perf_counter()
        self.app.metrics.add("images_inferred", len(x))
        return Response.json(
            {"labels": p.argmax(axis=1).tolist(), "confidences": p.max(axis=1).tolist(), "model": "CloudCNN"},
            headers={"X-Preprocess-Seconds": f"{prepared - start:.6f}",
                     "X-Infer-Seconds": f"{done - prepared:.6f}"})
