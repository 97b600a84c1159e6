"""The cloud as the edge sees it: HTTP calls to a cloud server, and a local replay of a reply.

``RemoteCloud`` fetches layer packages and labels over HTTP. ``ReplayCloud`` is what
cloudedge.system.edge.Edge.sync is given: it answers the edge's message with a labels message
that already arrived (or was stored), so the network call happens before the edge's
state changes and a failed call leaves the edge untouched.
"""
import hashlib

import numpy as np

from ..system import wire
from . import httpclient, payload


class RemoteCloud:
    """HTTP client of one cloud server. shape: optional shaping.Shape of the edge's uplink."""

    def __init__(self, url, token, edge_id, shape=None, timeout=60.0):
        httpclient.split_url(url)
        self.url, self.token, self.edge_id, self.shape, self.timeout = url, token, edge_id, shape, timeout

    def health(self):
        return httpclient.call(self.url, "GET", "/health", timeout=min(self.timeout, 5.0)).json()

    def layers(self, m):
        """Package bytes of the cloud's m lower layers; ValueError if the transfer was damaged."""
        reply = httpclient.call(self.url, "GET", f"/layers?m={int(m)}", token=self.token,
                                shape=self.shape, timeout=self.timeout)
        declared = reply.headers.get("x-package-sha256", "")
        got = hashlib.sha256(reply.body).hexdigest()
        if declared != got:
            raise ValueError(f"layer package from {self.url}: header X-Package-Sha256 says "
                             f"{declared or 'nothing'}, the {len(reply.body)} bytes received hash to {got}")
        return reply.body

    def label(self, message, probs=False):
        """POST an objects message; returns the labels message bytes (checked against its ids)."""
        ids, _ = wire.decode_objects(message)
        reply = httpclient.call(self.url, "POST", f"/label?probs={int(bool(probs))}", message,
                                {"Content-Type": payload.OBJECTS, "X-Edge-Id": self.edge_id},
                                token=self.token, shape=self.shape, timeout=self.timeout)
        checked = payload.decode_labels(reply.body, ids)
        if probs and checked.probs is None:
            raise payload.PayloadError("labels message: asked for probabilities, got none")
        return reply.body


class ReplayCloud:
    """Answers exactly one objects message, for the given ids, with a known labels message."""

    def __init__(self, reply_bytes, num_classes):
        self.reply = wire.decode_labels(reply_bytes)
        self.num_classes = num_classes

    def handle(self, message, probs=False, temperature=1.0):
        ids = wire.decode_objects(message)[0] if wire.message_kind(message) == "objects" \
            else wire.decode_images(message)[0]
        if not np.array_equal(np.sort(ids), np.sort(self.reply.ids)):
            raise ValueError(f"replay: the edge sent ids {ids[:5].tolist()}..., the stored reply "
                             f"answers {self.reply.ids[:5].tolist()}...")
        if probs and self.reply.probs is None:
            raise ValueError("replay: the edge's label policy needs probabilities, the reply has none")
        order = np.argsort(self.reply.ids)[np.argsort(np.argsort(ids))]
        r = self.reply
        out = wire.LabelReply(r.ids[order], r.labels[order], r.confidence[order],
                              None if r.probs is None or not probs else r.probs[order])
        return wire.encode_labels(out, self.num_classes)
