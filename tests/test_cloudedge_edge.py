"""Invariants of Algorithms 1 and 2 on an Edge talking to a Cloud (tiny models: mechanics only)."""
import json

import numpy as np
import pytest

from cloudedge.system import edge_files
from cloudedge.system import wire
from test_cloudedge_support import RecordingCloud, mnist, params_equal, tiny_cloud, tiny_edge
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)

N = 100


@pytest.fixture(scope="module")
def digits():
    x, y = mnist(700)
    return x, y


def start(edge, cloud, digits):
    x, y = digits
    if edge.config.shared:
        edge.receive_package(cloud.export_layers(edge.config.depth))
    edge.initialize(x[:N], y[:N], ids=np.arange(N))
    return edge


def stream(edge, cloud, digits, ticks, chunk=30, loads=None):
    x, _ = digits
    for t in range(ticks):
        ids = np.arange(N + t * chunk, N + (t + 1) * chunk)
        edge.submit(x[ids], ids)
        edge.sync(cloud, loads[t % len(loads)] if loads else 0.0, t=t)
        edge.maybe_retrain(t=t)


@pytest.mark.parametrize("policy", ["trust-all", "confidence:0.15", "soft"])
def test_frozen_layers_stay_bit_identical_to_cloudcnn(digits, policy):
    cloud = tiny_cloud(seed=1)
    edge = start(tiny_edge(policy=policy), cloud, digits)
    assert params_equal(edge.model[:6], cloud.model[:6])
    stream(edge, cloud, digits, ticks=8)
    trainings = [r for r in edge.history if r["event"] in ("init", "retrain")]
    assert len(trainings) >= 2
    assert params_equal(edge.model[:6], cloud.model[:6])


@pytest.mark.parametrize("policy", ["trust-all", "confidence:0.9"])
def test_retrain_set_is_exactly_n_plus_m(digits, policy):
    cloud = RecordingCloud(tiny_cloud(seed=2))
    edge = start(tiny_edge(policy=policy, trigger="every:60"), cloud.cloud, digits)
    assert np.array_equal(edge.training_ids, np.arange(N))
    stream(edge, cloud, digits, ticks=4)
    kept = np.concatenate([r.ids[r.keep] for r in edge.received])
    last = [r for r in edge.history if r["event"] == "retrain"][-1]
    assert np.array_equal(np.sort(edge.training_ids), np.sort(np.concatenate([np.arange(N), kept])))
    assert last["n_samples"] == N + len(kept) == len(edge.training_ids)
    assert last["n_labeled"] == N and last["n_cloud"] == len(kept)
    # the labels trained on are exactly what the cloud sent for those ids
    _, hard, _, ids = edge.store.arrays()
    sent = {int(i): int(label) for r in edge.received for i, label in zip(r.ids, r.labels)}
    assert all(hard[k] == sent[int(i)] for k, i in enumerate(ids) if i >= N)


def test_sync_waits_for_an_idle_network(digits):
    cloud = tiny_cloud()
    edge = start(tiny_edge(load_threshold=0.5), cloud, digits)
    x, _ = digits
    edge.submit(x[N:N + 20], np.arange(N, N + 20))
    out = edge.sync(cloud, 0.7)
    assert out["uploaded"] == 0 and "load" in out["skipped"] and edge.buffered == 20
    assert cloud.stats["bytes_in"] == 0
    out = edge.sync(cloud, 0.3)
    assert out["uploaded"] == 20 and edge.buffered == 0
    assert edge.sync(cloud, 0.0)["skipped"] == "empty"


@pytest.mark.parametrize("segment", [True, False])
def test_bytes_counted_equal_bytes_serialized(digits, segment):
    cloud = RecordingCloud(tiny_cloud())
    edge = start(tiny_edge(policy="soft", segment=segment), cloud.cloud, digits)
    package_bytes = edge.stats.bytes_down
    stream(edge, cloud, digits, ticks=3, loads=[0.9, 0.1])
    up, down = sum(map(len, cloud.received)), sum(map(len, cloud.sent))
    assert edge.stats.bytes_up == up == cloud.cloud.stats["bytes_in"]
    assert edge.stats.bytes_down == package_bytes + down
    assert cloud.cloud.stats["bytes_out"] == package_bytes + down
    assert edge.stats.raw_bytes_up == sum(wire.images_message_bytes(len(wire.decode_labels(m).ids), (1, 28, 28))
                                             for m in cloud.sent)
    assert (edge.stats.bytes_up < edge.stats.raw_bytes_up) == segment


def test_feature_cache_does_not_change_the_edge(digits):
    a_cloud, b_cloud = tiny_cloud(seed=4), tiny_cloud(seed=4)
    a = start(tiny_edge(feature_cache=True, epochs=3), a_cloud, digits)
    b = start(tiny_edge(feature_cache=False, epochs=3), b_cloud, digits)
    stream(a, a_cloud, digits, ticks=4)
    stream(b, b_cloud, digits, ticks=4)
    assert params_equal(a.model, b.model)
    assert [r["cached_layers"] for r in a.history if r["event"] == "retrain"][-1] == 6
    assert [r["cached_layers"] for r in b.history if r["event"] == "retrain"][-1] == 0


def test_save_load_resumes_identically(digits, tmp_path):
    cloud_a, cloud_b = tiny_cloud(seed=5), tiny_cloud(seed=5)
    a = start(tiny_edge(), cloud_a, digits)
    b = start(tiny_edge(), cloud_b, digits)
    stream(a, cloud_a, digits, ticks=2, loads=[0.1, 0.9])    # leaves a non-empty buffer
    stream(b, cloud_b, digits, ticks=2, loads=[0.1, 0.9])
    assert b.buffered > 0
    edge_files.save(b, tmp_path / "edge")
    b = edge_files.load(tmp_path / "edge")
    assert b.buffered == a.buffered and params_equal(a.model, b.model)
    for edge, cloud in ((a, cloud_a), (b, cloud_b)):
        edge.sync(cloud, 0.0)
        edge.retrain()
    assert params_equal(a.model, b.model)
    assert np.array_equal(a.training_ids, b.training_ids)
    assert b.model.frozen_prefix == 6


def test_saved_files_keep_the_documented_layout(digits, tmp_path):
    """Edges saved by earlier versions must still load: the layout of cloudedge.system.edge_files holds."""
    cloud = tiny_cloud(seed=6)
    edge = start(tiny_edge(policy="soft"), cloud, digits)
    stream(edge, cloud, digits, ticks=2, loads=[0.1, 0.9])     # ends with a non-empty buffer
    assert edge.buffered > 0 and edge.scores
    edge_files.save(edge, tmp_path)
    with np.load(tmp_path / "data.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    assert set(data) == {"x", "hard", "ids", "origin", "soft", "buffer", "buffer_meta"}
    x, hard, soft, ids = edge.store.arrays()
    assert data["x"].dtype == np.float32 and np.array_equal(data["x"], x)
    assert np.array_equal(data["hard"], hard) and np.array_equal(data["ids"], ids)
    assert np.array_equal(data["soft"], soft)
    assert data["origin"].tolist() == ["labeled"] * N + ["cloud"] * (len(ids) - N)
    assert wire.message_kind(data["buffer"].tobytes()) == "objects"
    assert data["buffer_meta"].tolist() == [[u.prediction, u.version] for u in edge.buffer]
    state = json.loads((tmp_path / "state.json").read_text())
    assert set(state) == {"name", "config", "manifest", "label_policy", "trigger", "segmenter", "n_initial",
                          "n_trained", "pending", "round", "scores", "training_ids", "stats", "history"}
    assert state["round"] == edge.version and state["n_trained"] == edge.n_trained
    assert state["scores"] == {str(v): [s.agreeing, s.scored, s.n_trained] for v, s in edge.scores.items()}
    assert state["stats"]["bytes_down"] == edge.stats.bytes_down > 0


def test_scratch_edge_trains_every_layer(digits):
    cloud = tiny_cloud()
    edge = start(tiny_edge(shared=False), cloud, digits)
    assert edge.model.frozen_prefix == 0 and edge.manifest is None
    assert not params_equal(edge.model[:6], tiny_edge(shared=False).model[:6])


def test_protocol_errors(digits):
    x, y = digits
    edge = tiny_edge()
    with pytest.raises(ValueError, match="package"):
        edge.initialize(x[:N], y[:N])
    edge.receive_package(tiny_cloud().export_layers(3))
    with pytest.raises(ValueError, match="float32 images"):
        edge.initialize(x[:N, :, :20], y[:N])
    with pytest.raises(ValueError, match="integer labels"):
        edge.initialize(x[:N], y[:N - 1])
    with pytest.raises(ValueError, match="initialize"):
        edge.retrain()
    with pytest.raises(ValueError, match="validation"):
        edge.initialize(x[:12], y[:12])
    with pytest.raises(ValueError, match="load must be"):
        edge.sync(tiny_cloud(), 1.5)


def test_max_samples_bounds_the_training_store_dropping_the_oldest_cloud_labels(digits):
    cloud = tiny_cloud(seed=6)
    bounded = start(tiny_edge(max_samples=N + 50, trigger="every:30"), cloud, digits)
    free = start(tiny_edge(trigger="every:30"), cloud, digits)
    for edge in (bounded, free):
        stream(edge, cloud, digits, ticks=5)          # 150 cloud labels, a retraining every 30
    x, hard, _, ids = bounded.store.arrays()
    assert len(hard) == N + 50 and len(free.store) == N + 150
    origins = bounded.store.origins()
    assert np.array_equal(ids[origins == "labeled"], np.arange(N))           # the N labeled images stay
    assert np.array_equal(ids[origins == "cloud"], np.arange(N + 100, N + 150))   # the newest cloud labels
    assert np.array_equal(bounded.training_ids, ids)
    # the cached prefix features still belong to the rows they sit beside (equal up to the
    # float32 rounding a different GEMM batch may give)
    np.testing.assert_allclose(bounded.store.features(bounded.model[:6], x), bounded.model[:6].forward(x),
                               rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="max_samples=100 leaves no room"):
        start(tiny_edge(max_samples=N), cloud, digits)
