"""The CloudCNN shipped in the package: its manifest is true (bytes, key, command, accuracy)
and the main job's default configuration finds it."""
import json
from pathlib import Path

import pytest

from cloudedge import pretrained
from cloudedge.system.data import load_dataset
from cloudedge.system.config import RunConfig
from cloudedge.experiments.experiment import cloud_key, cloud_part, get_cloud
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


def test_manifest_entries_match_their_files():
    entries = pretrained.entries()
    assert entries, "MANIFEST.json lists no shipped CloudCNN"
    for e in entries:
        path = pretrained.HERE / e["file"]
        assert pretrained.sha256_file(path) == e["sha256"]
        assert path.stat().st_size == e["bytes"] < 16 * 2**20
        assert e["command"].startswith("cloudedge train-cloud ") and f"--seed {e['seed']}" in e["command"]
        assert e["revision"] and e["revision"] != "unknown"
        info = json.loads(Path(str(path) + ".json").read_text())["info"]
        assert info["cloud_key"] == e["cloud_key"] and info["trained"] is True


def test_the_default_mnist_config_gets_the_shipped_cloud_and_its_recorded_accuracy(tmp_path):
    data = load_dataset("mnist")
    cfg = RunConfig()
    key = cloud_key(cfg, cloud_part(data[1], cfg)[0])
    entry = next(e for e in pretrained.entries() if e["cloud_key"] == key)
    cloud, meta = get_cloud(data, cfg, workdir=tmp_path)            # empty cache
    assert meta["source"] == "shipped" and meta["cached"]
    assert cloud.evaluate(data[2], data[3]) == pytest.approx(entry["test_acc"], abs=0.002)
    assert not list(tmp_path.iterdir())                             # nothing trained, nothing written


def test_a_damaged_shipped_file_is_refused(tmp_path, monkeypatch):
    entry = pretrained.entries()[0]
    src = pretrained.HERE / entry["file"]
    for suffix in ("", ".json"):
        (tmp_path / (entry["file"] + suffix)).write_bytes(Path(str(src) + suffix).read_bytes())
    (tmp_path / "MANIFEST.json").write_text(pretrained.MANIFEST.read_text())
    monkeypatch.setattr(pretrained, "HERE", tmp_path)
    monkeypatch.setattr(pretrained, "MANIFEST", tmp_path / "MANIFEST.json")
    assert pretrained.lookup(entry["cloud_key"]) == tmp_path / entry["file"]
    damaged = bytearray((tmp_path / entry["file"]).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / entry["file"]).write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="damaged"):
        pretrained.lookup(entry["cloud_key"])
    assert pretrained.lookup("no-such-key") is None
