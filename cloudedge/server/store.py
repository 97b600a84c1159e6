"""The edge's durable store of segmented objects, waiting for or holding a cloud label.

Layout under ``root``:
    pending/<id>.npz   the object's arrays (see edge_server: pixels, box, background)
    labeled/<id>.npz   the same arrays plus label () int64, confidence () float32, probs (K,) float32

Ids are sequence numbers (0 .. 2**32-1, the range of cloudedge.system.wire's ids), written as
10 digits. NEXT holds the next id, rewritten before an id is handed out, so ids are never
reused, even if files are deleted; an id below NEXT with no file is reported as missing.
A file that cannot be read is moved to quarantine/, named in the log and in ``quarantined``,
and the rest of the store goes on. Folders are 0700 and files 0600: uploads are private.
Every file is written with tinycnn.atomic.atomic_write (temp file,
fsync, rename, fsync of the folder): after a kill -9 a file is whole or absent. An object
moves from pending to labeled by writing labeled/<id>.npz first, then deleting
pending/<id>.npz; opening the store finishes an interrupted move. An id is labeled at
most once: a second label for it is ignored.
"""
import logging
import os
import re
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from tinycnn.atomic import atomic_write

log = logging.getLogger("cloudedge.server.store")

ID_PATTERN = re.compile(r"^[0-9]{10}$")
MAX_ID = 2**32 - 1
LABEL_KEYS = ("label", "confidence", "probs")


def _name(object_id):
    if not isinstance(object_id, (int, np.integer)) or not 0 <= object_id <= MAX_ID:
        raise ValueError(f"object id must be an int in [0, {MAX_ID}], got {object_id!r}")
    return f"{int(object_id):010d}.npz"


# what np.load raises for a truncated or foreign file
DAMAGE = (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError)


class DamagedObject(Exception):
    """A store file could not be read; it has been moved to quarantine/."""


def _save(path, arrays):
    with atomic_write(path) as f:
        os.chmod(f.fileno(), 0o600)
        np.savez(f, **arrays)


def _load(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def private_dir(path):
    """mkdir -p with mode 0700 (and tighten an existing folder)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


class ObjectStore:
    """Durable pending/labeled object store; safe to use from several threads."""

    def __init__(self, root):
        self.root = Path(root)
        self.pending_dir = self.root / "pending"
        self.labeled_dir = self.root / "labeled"
        self.quarantine_dir = self.root / "quarantine"
        self.next_file = self.root / "NEXT"
        self._lock = threading.Lock()
        for folder in (self.root, self.pending_dir, self.labeled_dir, self.quarantine_dir):
            private_dir(folder)
        self.quarantined = sorted(p.name for p in self.quarantine_dir.iterdir())
        self.recovered = self._recover()
        on_disk = self._ids(self.pending_dir) + self._ids(self.labeled_dir)
        self._next = max(max(on_disk) + 1 if on_disk else 0, self._read_next())
        accounted = set(on_disk) | {int(q[:10]) for q in self.quarantined if ID_PATTERN.match(q[:10])}
        self.missing = [i for i in range(self._next) if i not in accounted]
        if self.missing:
            log.warning("%s: %d object id(s) below NEXT=%d have no file (deleted outside the edge?), e.g. %s",
                        self.root, len(self.missing), self._next, self.missing[:10])

    def _read_next(self):
        if not self.next_file.exists():
            return 0
        text = self.next_file.read_text().strip()
        if not ID_PATTERN.match(text):
            self._quarantine(self.next_file, ValueError(f"not a 10-digit id: {text[:20]!r}"))
            return 0
        return int(text)

    def _quarantine(self, path, exc):
        """Move a damaged file aside, name it in the log and in ``quarantined``."""
        target = self.quarantine_dir / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return
        self.quarantined.append(target.name)
        log.warning("damaged store file %s (%s: %s) moved to %s; the rest of the store goes on",
                    path, type(exc).__name__, exc, target)

    def _load_checked(self, path):
        try:
            return _load(path)
        except FileNotFoundError:
            raise
        except DAMAGE as exc:
            with self._lock:
                self._quarantine(path, exc)
            raise DamagedObject(f"{path}: {type(exc).__name__}") from None

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
            with atomic_write(self.next_file) as f:      # durable before the id is used
                os.chmod(f.fileno(), 0o600)
                f.write(f"{self._next:010d}".encode())
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
            try:
                arrays = _load(source)
            except DAMAGE as exc:
                self._quarantine(source, exc)
                raise DamagedObject(f"{source}: {type(exc).__name__}") from None
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
        """The object's arrays; DamagedObject (file quarantined) if it cannot be read."""
        return self._load_checked(self.pending_dir / _name(object_id))

    def load_labeled(self, object_id):
        """The object's arrays with its label; DamagedObject (file quarantined) if unreadable."""
        return self._load_checked(self.labeled_dir / _name(object_id))

    def load_readable(self, ids, labeled):
        """(ids that could be read, their arrays), skipping (and quarantining) damaged files."""
        load = self.load_labeled if labeled else self.load_pending
        kept, records = [], []
        for object_id in ids:
            try:
                records.append(load(int(object_id)))
                kept.append(object_id)
            except DamagedObject:       # quarantined and logged: the rest go on
                continue
        return kept, records

    def counts(self):
        return {"pending": len(self.pending_ids()), "labeled": len(self.labeled_ids()),
                "quarantined": len(self.quarantined), "missing": len(self.missing), "next_id": self._next}


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
