"""What an edge holds besides its model: the training store, the upload buffer, the scores of
its model versions, the labels the cloud sent back, and its counters (cloudedge.system.edge uses them).

Shapes: images (n, C, H, W) float32 in [0, 1]; hard labels (n,) int64; soft targets (n, K)
float32; ids (n,) int64, unique per edge.
"""
from dataclasses import dataclass

import numpy as np

from ..policies.feature_cache import prefix_features


@dataclass
class Upload:
    """A user's upload, answered by the edge and waiting in the buffer for the cloud's label.
    item: the segmented object (cloudedge.policies.segmentation) or, without segmentation, the (C, H, W)
    uint8 image; version: the model version (trainings so far) that answered."""
    id: int
    item: object
    prediction: int
    version: int


@dataclass
class Score:
    """How one model version did on the uploads it answered, judged by the cloud's labels."""
    n_trained: int          # size of the training set that version was trained on
    agreeing: int = 0       # answers equal to the cloud's label
    scored: int = 0         # answers the cloud has labeled

    @property
    def agreement(self):
        return self.agreeing / self.scored


@dataclass
class CloudLabels:
    """The labels of one sync, as the cloud sent them, and which the label policy kept."""
    ids: np.ndarray         # (n,) int64
    labels: np.ndarray      # (n,) int64
    confidence: np.ndarray  # (n,) float32: the cloud's top probability
    keep: np.ndarray        # (n,) bool


@dataclass
class EdgeStats:
    """Counters of one edge. Bytes are the lengths of the messages actually serialized."""
    bytes_up: int = 0           # upload messages sent to the cloud
    bytes_down: int = 0         # layer package + label replies received
    raw_bytes_up: int = 0       # what the same uploads would have cost as raw images
    uploads: int = 0            # objects sent to the cloud
    syncs: int = 0              # syncs that uploaded
    syncs_skipped: int = 0      # syncs refused because the core network was busy
    inferred: int = 0           # images answered
    infer_seconds: float = 0.0
    train_seconds: float = 0.0
    sample_passes: int = 0      # training samples x epochs, over all trainings


@dataclass
class _Chunk:
    x: np.ndarray           # (n, C, H, W) float32
    hard: np.ndarray        # (n,) int64
    soft: np.ndarray | None  # (n, K) float32; None: one-hot of hard
    ids: np.ndarray         # (n,) int64
    origin: str             # "labeled" (the N images of Algorithm 1) or "cloud"


class TrainingStore:
    """The edge's training set, grown in chunks: the N labeled images, then the cloud labels each
    sync kept. It also keeps the frozen prefix's output for the rows seen so far (the feature
    cache), so a retraining computes it only for the new rows."""

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.chunks = []
        self._features = []     # prefix outputs of the first rows, in order

    def __len__(self):
        return sum(len(c.hard) for c in self.chunks)

    def add(self, x, hard, soft, ids, origin):
        """Append n samples: x (n, C, H, W) float32, hard (n,), soft (n, K) or None, ids (n,)."""
        self.chunks.append(_Chunk(x, np.asarray(hard, dtype=np.int64), soft, np.asarray(ids, dtype=np.int64),
                                  origin))

    def arrays(self):
        """(x (n, C, H, W), hard (n,), soft (n, K) or None, ids (n,)); soft is None unless some
        chunk has soft targets (the others then count as one-hot)."""
        if not self.chunks:
            raise ValueError("the training store is empty")
        x = np.concatenate([c.x for c in self.chunks])
        hard = np.concatenate([c.hard for c in self.chunks])
        ids = np.concatenate([c.ids for c in self.chunks])
        soft = None
        if any(c.soft is not None for c in self.chunks):
            eye = np.eye(self.num_classes, dtype=np.float32)
            soft = np.concatenate([eye[c.hard] if c.soft is None else c.soft for c in self.chunks])
        return x, hard, soft, ids

    def origins(self):
        """(n,) array of "labeled" / "cloud" per stored sample."""
        return np.concatenate([np.full(len(c.hard), c.origin) for c in self.chunks])

    def features(self, prefix, x):
        """Output of the frozen Sequential ``prefix`` for the stored images x (n, C, H, W), as
        arrays() returns them; only rows not seen before are computed."""
        done = sum(len(f) for f in self._features)
        if done < len(x):
            self._features.append(prefix_features(prefix, x[done:]))
        return np.concatenate(self._features) if len(self._features) > 1 else self._features[0]

    def forget_features(self):
        """Drop the cached prefix outputs (the prefix changed)."""
        self._features = []

    def forget_oldest(self, keep_first, limit):
        """Keep at most limit samples: drop the oldest rows after the first keep_first (the N
        labeled images, which always stay), with their cached features."""
        start, stop = keep_first, keep_first + len(self) - limit     # rows of the oldest cloud labels
        if stop <= start:
            return
        lengths = [len(c.hard) for c in self.chunks]
        kept = []
        for chunk, (a, b) in zip(self.chunks, _dropped(lengths, start, stop)):
            if b - a == len(chunk.hard):
                continue
            if b > a:  # copy the rows that stay, so the dropped rows' memory is freed
                rows = np.r_[0:a, b:len(chunk.hard)]
                chunk = _Chunk(chunk.x[rows], chunk.hard[rows], None if chunk.soft is None else chunk.soft[rows],
                               chunk.ids[rows], chunk.origin)
            kept.append(chunk)
        self.chunks = kept
        feats = []
        for f, (a, b) in zip(self._features, _dropped([len(f) for f in self._features], start, stop)):
            if b - a < len(f):
                feats.append(np.concatenate([f[:a], f[b:]]) if b > a else f)
        self._features = feats


def _dropped(lengths, start, stop):
    """For chunks of these lengths laid end to end, each chunk's (a, b): its rows in [start, stop)."""
    out, pos = [], 0
    for n in lengths:
        out.append((min(max(start - pos, 0), n), min(max(stop - pos, 0), n)))
        pos += n
    return out
