"""Pretrained CloudCNNs shipped with the package, so the main job starts without training one.

MANIFEST.json lists each file with the command that trained it, its seed, the source revision,
its SHA-256, its cache key (cloudedge.experiments.experiment.cloud_key: everything the training depended
on) and its accuracies. ``lookup(key)`` returns a shipped file only when the key matches and
the bytes hash to the recorded SHA-256; anything else trains from scratch as before.

Add a file (after `cloudedge train-cloud ... --out cloudedge/pretrained/NAME.npz`):

    python -m cloudedge.pretrained add cloudedge/pretrained/NAME.npz --command "cloudedge train-cloud ..."
"""
import argparse
import hashlib
import json
import subprocess
from pathlib import Path

from tinycnn.atomic import atomic_write

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "MANIFEST.json"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def entries():
    """The manifest's entries: a list of dicts (file, cloud_key, command, seed, revision, sha256, ...)."""
    if not MANIFEST.exists():
        return []
    return json.loads(MANIFEST.read_text())["clouds"]


def lookup(key):
    """Path of the shipped CloudCNN whose cache key is ``key``, or None. Raises ValueError if the
    file's bytes do not hash to the manifest's SHA-256 (a damaged install)."""
    for entry in entries():
        if entry["cloud_key"] == key:
            path = HERE / entry["file"]
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                raise ValueError(f"{path}: SHA-256 {digest} does not match the manifest's {entry['sha256']}; "
                                 f"the shipped CloudCNN is damaged (reinstall, or pass --train-cloud)")
            return path
    return None


def add(path, command):
    """Record the CloudCNN at path (saved by `cloudedge train-cloud`) in the manifest."""
    path = Path(path).resolve()
    if path.parent != HERE:
        raise ValueError(f"shipped clouds live in {HERE}, got {path}")
    info = json.loads(Path(str(path) + ".json").read_text())["info"]
    for field in ("cloud_key", "seed", "test_acc", "best_val_acc"):
        if field not in info:
            raise ValueError(f"{path}.json has no info[{field!r}]: was it written by `cloudedge train-cloud`?")
    revision = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE, capture_output=True,
                              text=True).stdout.strip() or "unknown"
    entry = {"file": path.name, "cloud_key": info["cloud_key"], "command": command, "seed": info["seed"],
             "revision": revision, "sha256": sha256_file(path), "bytes": path.stat().st_size,
             "test_acc": info["test_acc"], "best_val_acc": info["best_val_acc"],
             "n_train": info["n_train"], "epochs": info["epochs"], "preset": info["preset"],
             "dataset": info.get("dataset")}
    kept = [e for e in entries() if e["file"] != path.name]
    with atomic_write(MANIFEST) as f:
        f.write((json.dumps({"clouds": kept + [entry]}, indent=2, sort_keys=True) + "\n").encode())
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cloudedge.pretrained")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("add", help="record a CloudCNN saved by `cloudedge train-cloud` in MANIFEST.json")
    p.add_argument("path")
    p.add_argument("--command", required=True, help="the exact command that trained it")
    args = parser.parse_args(argv)
    print(json.dumps(add(args.path, args.command), indent=2))
    return 0

