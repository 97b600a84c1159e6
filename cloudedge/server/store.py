"""The edge's durable store of segmented objects, waiting for or holding a cloud label.

Layout under ``root``:
    pending/<id>.npz   the object's arrays (see edge_server: pixels, box, background)
    labeled/<id>.npz   the same arrays plus label () int64, confidence () float32, probs (K,) float32

Ids are sequence numbers (0 .. 2**32-1, the range of cloudedge.wire's ids), written as
10 digits; the next id is one more than the largest on disk, so ids are never reused
while the files last. Every file is written with tinycnn.atomic.atomic_write (temp file,
fsync, rename, fsync of the folder): after a kill -9 a file is whole or absent. An object
moves from pending to labeled by writing labeled/<id>.npz first, then deleting
pending/<id>.npz; opening the store finishes an interrupted move. An id is labeled at
most once: a second label for it is ignored.
"""
import os
import re
import threading
from pathlib import Path

import numpy as np

from tinycnn.atomic import atomic_write

ID_PATTERN = re.compile(r"^[0-9]{10}$")
MAX_ID = 2**32 - 1
LABEL_KEYS = ("label", "confidence", "probs")


def _name(object_id):
    if not isinstance(object_id, (int, np.integer)) or not 0 <= object_id <= MAX_ID:
        raise ValueError(f"object id must be an int in [0, {MAX_ID}], got {object_id!r}")
    return f"{int(object_id):010d}.npz"


def _save(path, arrays):
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def _load(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


class ObjectStore:
    """Durable pending/labeled object store; safe to use from several threads."""

    def __init__(self, root):
        self.root = Path(root)
        self.pending_dir = self.root / "pending"
        self.labeled_dir = self.root / "labeled"
        self._lock = threading.Lock()
        for folder in (self.pending_dir, self.labeled_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.recovered = self._recover()
        ids = self._ids(self.pending_dir) + self._ids(self.labeled_dir)
        self._next = max(ids) + 1 if ids else 0

    def _recover(self):
        """Finish what a crash interrupted: drop temp files, complete pending -> labeled moves."""
        temp = 0
        for folder in (self.pending_dir, self.labeled_dir):
            for path in folder.glob(".*.part"):
                path.unlink(missing_ok=True)
                temp += 1
        moved = set(self._ids(self.pending_dir)) & set(self._ids(self.labeled_dir))
        for object_id in moved:
            (self.pending_dir / _name(object_id)).unlink()
        if temp or moved:
            _fsync_dir(self.pending_dir)
        return {"temp_removed": temp, "moves_finished": len(moved)}

    @staticmethod
    def _ids(folder):
        return sorted(int(p.name[:-4]) for p in folder.iterdir()
                      if p.name.endswith(".npz") and ID_PATTERN.match(p.name[:-4]))

    # --- writing -------------------------------------------------------------------------
    def put(self, arrays):
        """Store one object ({name: array}, no label keys) durably; returns its new id."""
        if any(k in arrays for k in LABEL_KEYS):
            raise ValueError(f"a new object must not carry {LABEL_KEYS}, got keys {sorted(arrays)}")
        with self._lock:
            object_id = self._next
            if object_id > MAX_ID:
                raise ValueError(f"object ids are exhausted (> {MAX_ID}); archive the store")
            self._next += 1
        _save(self.pending_dir / _name(object_id), arrays)
        return object_id

    def mark_labeled(self, object_id, label, confidence, probs=None):
        """Move a pending object to labeled. Returns True if labeled now, False if it already
        had a label (the first is kept). KeyError if the id is neither pending nor labeled."""
        source, target = self.pending_dir / _name(object_id), self.labeled_dir / _name(object_id)
        with self._lock:
            if target.exists():
                source.unlink(missing_ok=True)
                return False
            if not source.exists():
                raise KeyError(f"object {object_id} is not in the store")
            arrays = _load(source)
            arrays.update(label=np.int64(label), confidence=np.float32(confidence),
                          probs=np.asarray([] if probs is None else probs, dtype=np.float32))
            _save(target, arrays)
            source.unlink()
            _fsync_dir(self.pending_dir)
        return True

    # --- reading ---------------------------------------------------------------------------
    def pending_ids(self, limit=None):
        """Ids waiting for a label, oldest first."""
        ids = self._ids(self.pending_dir)
        return ids if limit is None else ids[:limit]

    def labeled_ids(self):
        return self._ids(self.labeled_dir)

    def load_pending(self, object_id):
        return _load(self.pending_dir / _name(object_id))

    def load_labeled(self, object_id):
        return _load(self.labeled_dir / _name(object_id))

    def counts(self):
        return {"pending": len(self.pending_ids()), "labeled": len(self.labeled_ids())}


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
