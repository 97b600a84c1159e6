"""Layer packages: exact round trip, every byte counted, tampering and mismatches rejected."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudedge.cli import main as cli_main
from cloudedge.system.cloud import MIN_VAL_ACC, Cloud, UntrainedCloudError
from cloudedge.system.models import cloud_cnn, edge_cnn, shared_prefix
from cloudedge.system.package import MAGIC, make_package, open_package, read_manifest
from test_cloudedge_support import SHAPE, mnist, params_equal, tiny_cloud, tiny_edge
from tinycnn.train import TrainConfig, fit
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


@settings(deadline=None, max_examples=15)
@given(m=st.integers(1, 15), seed=st.integers(0, 2**31), h=st.integers(3, 9), c=st.sampled_from([1, 3]))
def test_round_trip_is_exact_for_any_m(m, seed, h, c):
    model = cloud_cnn((c, h, h), preset="tiny", seed=seed)
    data = make_package(model, m, (c, h, h))
    manifest, layers = open_package(data, (c, h, h))
    assert manifest["m"] == m and len(layers) == shared_prefix(m)
    assert params_equal(layers, model[:shared_prefix(m)])
    assert manifest["output_shape"] == list(model[:shared_prefix(m)].output_shape((c, h, h)))


def test_bytes_counted_equal_bytes_serialized():
    cloud = tiny_cloud()
    data = cloud.export_layers(3)
    assert cloud.stats["bytes_out"] == len(data)
    edge = tiny_edge()
    edge.receive_package(data)
    assert edge.stats.bytes_down == len(data)
    # the payload inside is the engine's own .npz of the prefix
    _, payload = read_manifest(data)
    assert payload == cloud.model[:6].to_bytes()


def test_edge_gets_frozen_bit_identical_layers():
    cloud = tiny_cloud(seed=3)
    edge = tiny_edge()
    edge.receive_package(cloud.export_layers(3))
    assert params_equal(edge.model[:6], cloud.model[:6])
    assert edge.model.frozen_prefix == 6


@pytest.mark.parametrize("where", ["payload", "manifest"])
def test_tampered_package_is_rejected(where):
    data = bytearray(tiny_cloud().export_layers(2))
    if where == "payload":
        data[-100] ^= 0xFF
    else:
        data = bytearray(bytes(data).replace(b'"m": 2', b'"m": 9'))
    with pytest.raises(ValueError, match="sha256|m=9"):
        open_package(bytes(data), SHAPE)


def test_truncated_and_foreign_bytes_are_rejected():
    data = tiny_cloud().export_layers(2)
    with pytest.raises(ValueError, match="truncated|size"):
        open_package(data[:-10])
    with pytest.raises(ValueError, match="magic"):
        open_package(b"PK\x03\x04" + data)
    with pytest.raises(TypeError, match="bytes"):
        open_package("not bytes")
    assert data.startswith(MAGIC)


def test_input_shape_mismatch_is_a_clear_error():
    cloud = tiny_cloud()                              # trained for (1, 28, 28)
    edge = tiny_edge(input_shape=(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*\(3, 32, 32\)"):
        edge.receive_package(cloud.export_layers(3))


def test_layer_mismatch_between_presets_is_a_clear_error():
    cloud = tiny_cloud()
    edge = tiny_edge()
    edge.config.preset = "laptop"
    edge.model = edge_cnn(3, SHAPE, preset="laptop", seed=0)    # wider layers than the package
    with pytest.raises(ValueError, match="lower layers"):
        edge.receive_package(cloud.export_layers(3))


def test_wrong_m_is_rejected_and_scratch_edges_take_no_package():
    cloud = tiny_cloud()
    with pytest.raises(ValueError, match="lower layers|m="):
        tiny_edge().receive_package(cloud.export_layers(2))      # EdgeCNN1-3 needs m = 3
    with pytest.raises(ValueError, match="EdgeCNN0"):
        tiny_edge(shared=False).receive_package(cloud.export_layers(3))


def test_manifest_lists_every_parameter_with_its_hash():
    data = tiny_cloud().export_layers(2)
    manifest, _ = read_manifest(data)
    assert sorted(manifest["params"]) == ["0.W", "0.b", "2.W", "2.b"]
    assert all(len(p["sha256"]) == 64 and p["dtype"] == "float32" for p in manifest["params"].values())
    assert json.loads(json.dumps(manifest)) == manifest
    assert manifest["payload_bytes"] == len(data) - len(MAGIC) - 8 - len(json.dumps(manifest, sort_keys=True))


def test_package_needs_conv_relu_pairs():
    model = cloud_cnn(SHAPE, preset="tiny", seed=0)
    with pytest.raises(ValueError, match="m must be"):
        make_package(model, 0, SHAPE)
    with pytest.raises(ValueError, match="m must be"):
        make_package(model, 100, SHAPE)
    assert np.all([type(layer).__name__ for layer in model[:4]] == np.array(["Conv2D", "ReLU"] * 2))


def test_a_cloud_that_did_not_train_is_restarted_then_refused(tmp_path, capsys):
    """Shuffled labels keep every attempt at chance; Cloud.train restarts, records each attempt,
    and export_layers and serve-cloud refuse the result with a message naming the threshold."""
    x, y = mnist(300)
    y = np.random.default_rng(0).permutation(y)
    cloud = Cloud.train(x, y, preset="eighth", seed=0, restarts=1,
                        config=TrainConfig(max_epochs=1, progress=False))
    assert cloud.info["trained"] is False
    assert [a["init_seed"] for a in cloud.info["attempts"]] == [0, [0, 1]]
    assert all(a["best_val_acc"] < MIN_VAL_ACC for a in cloud.info["attempts"])
    with pytest.raises(UntrainedCloudError, match="did not train: best validation accuracy"):
        cloud.export_layers(3)
    cloud.save(tmp_path / "cloud.npz")
    loaded = Cloud.load(tmp_path / "cloud.npz")
    with pytest.raises(UntrainedCloudError, match="50%"):
        loaded.check_trained()
    rc = cli_main(["serve-cloud", "--model", str(tmp_path / "cloud.npz"), "--port", "0", "--no-auth"])
    assert rc == 2
    assert "did not train" in capsys.readouterr().err


def test_a_cloud_above_the_threshold_is_not_restarted_and_resumes_exactly(monkeypatch):
    """The threshold at 0, so the first epoch passes; the run then resumes from that epoch's
    checkpoint and must equal one uninterrupted fit. The tiny preset is never gated."""
    monkeypatch.setattr("cloudedge.system.cloud.MIN_VAL_ACC", 0.0)
    x, y = mnist(300)
    cfg = TrainConfig(max_epochs=2, progress=False)
    cloud = Cloud.train(x, y, preset="eighth", seed=0, config=cfg)
    assert cloud.info["trained"] and len(cloud.info["attempts"]) == 1 and cloud.info["epochs"] == 2
    plain = cloud_cnn(SHAPE, preset="eighth", seed=0)
    fit(plain, x, y, cfg)
    assert params_equal(plain, cloud.model)
    cloud.export_layers(3)
    monkeypatch.setattr("cloudedge.system.cloud.MIN_VAL_ACC", 1.01)          # nothing reaches it
    tiny = Cloud.train(x, y, preset="tiny", seed=0, config=TrainConfig(max_epochs=1, progress=False))
    assert len(tiny.info["attempts"]) == 1 and not tiny.info["trained"]
    tiny.export_layers(3)                                              # mechanics preset: not gated
