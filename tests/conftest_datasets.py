"""Helpers shared by the tests/test_datasets_*.py files (imported, not a pytest conftest)."""
from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
# Nothing listens on the discard port: downloads fail fast instead of reaching the internet.
DEAD_MIRROR = "http://127.0.0.1:9/"


def idx_bytes(array: np.ndarray, gz: bool = False) -> bytes:
    """IDX encoding of a uint8 array (optionally gzip'd, fixed mtime for stable bytes)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    raw = header + array.tobytes()
    return gzip.compress(raw, mtime=0) if gz else raw


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def small_mnist(n: int = 20, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random (n, 28, 28) uint8 images and (n,) uint8 labels covering every class."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_mnist_split(
    folder: Path, split: str = "train", n: int = 20, seed: int = 1, gz: bool = True
) -> dict[str, str]:
    """Write one split's image/label pair into folder; return {published name: sha256 of file}."""
    images, labels = small_mnist(n, seed)
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array, gz=gz)
        (folder / (stem + ".gz" if gz else stem)).write_bytes(data)
        sums[stem + ".gz"] = sha(data)
    return sums


def cifar_bytes(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, size=(n, 3073), dtype=np.uint8)
    records[:, 0] = np.arange(n) % 10
    return records.tobytes()


def cifar_tar(members: dict[str, bytes]) -> bytes:
    """A gzip'd tar holding cifar-10-batches-bin/<name> for each member."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path, monkeypatch):
    """Fresh HOME and cache, no $TINYCNN_DATA, and a dead default mirror (no internet)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("TINYCNN_DATA", raising=False)
    monkeypatch.setenv("TINYCNN_MIRROR", DEAD_MIRROR)
    return tmp_path / "xdg-cache" / "tinycnn"
