"""Pieces of the networked prototype without servers: shaping, payloads, store, imaging."""
import math
import socket
import threading
import time

import numpy as np
import pytest

from cloudedge.timing import network
from cloudedge.system import wire
from cloudedge.policies.segmentation import Segmenter
from cloudedge.server import httpclient, payload
from cloudedge.server.imaging import to_model_input, upscale
from cloudedge.server.remote import ReplayCloud
from cloudedge.server.shaping import Shape, ShapedSocket
from cloudedge.server.store import DamagedObject, ObjectStore

# --- shaping --------------------------------------------------------------------------------------

def _pair():
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    return a, b


def test_shaped_send_is_paced_and_delayed():
    a, b = _pair()
    shaped = ShapedSocket(a, Shape(send_rate=512 * 1024, send_delay=0.05))
    data = bytes(128 * 1024)
    got = bytearray()

    def drain():
        while len(got) < len(data):
            got.extend(b.recv(65536))

    reader = threading.Thread(target=drain)
    start = time.perf_counter()
    reader.start()
    shaped.sendall(data)
    reader.join(10)
    elapsed = time.perf_counter() - start
    # 0.05 s delay + 128 KiB at 512 KiB/s = 0.30 s
    assert len(got) == len(data)
    assert 0.29 <= elapsed < 1.0, elapsed
    a.close()
    b.close()


def test_shaped_receive_is_paced_and_delays_each_turn_once():
    a, b = _pair()
    shaped = ShapedSocket(b, Shape(recv_rate=256 * 1024, recv_delay=0.05))
    a.sendall(bytes(64 * 1024))
    start = time.perf_counter()
    reader = shaped.makefile("rb")
    assert len(reader.read(64 * 1024)) == 64 * 1024
    first = time.perf_counter() - start
    assert 0.29 <= first < 1.0, first          # 0.05 + 64 KiB / 256 KiB/s = 0.30
    shaped.sendall(b"x")                       # a turn in the other direction ...
    a.recv(1)
    a.sendall(bytes(1024))
    start = time.perf_counter()
    assert len(reader.read(1024)) == 1024
    second = time.perf_counter() - start
    assert 0.05 <= second < 0.5, second        # ... so the next message pays the delay again
    reader.close()
    shaped.close()
    a.close()


def test_shape_from_network_links_matches_the_response_model():
    lte = network.access_link("lte")
    client = Shape.client_side(network.cloud_path(lte))
    path = network.cloud_path(lte)
    assert client.send_rate == path.up_rate and client.recv_rate == path.down_rate
    assert math.isclose(client.send_delay, path.one_way)
    server = Shape.server_side(network.wan_link())
    assert server.recv_rate == network.WAN_RATE and server.send_delay == network.wan_link().one_way


@pytest.mark.parametrize("kwargs", [{"send_rate": 0}, {"recv_rate": -1}, {"send_delay": -0.1},
                                    {"recv_delay": math.inf}])
def test_shape_rejects_nonsense(kwargs):
    with pytest.raises(ValueError, match="must be"):
        Shape(**kwargs)


# --- raw image payloads -------------------------------------------------------------------------------

def _headers(shape="28,28", dtype="uint8", kind=payload.RAW):
    return {"Content-Type": kind, "X-Dtype": dtype, "X-Shape": shape}


def test_images_below_the_minimum_side_are_refused_not_upscaled():
    body, headers = payload.encode_images(np.zeros((256, 1, 1, 1), np.uint8))    # 256 one-pixel images
    with pytest.raises(payload.PayloadError, match=f">= {payload.MIN_SIDE}"):
        payload.decode_images(headers, body)


def test_object_limits_are_checked_from_the_header_before_anything_is_decoded(monkeypatch):
    """1.4M zero-size objects once cost 10.6 s of CPU and 774 MB: the count is refused first."""
    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded before the header's limits were checked")
    header = wire.OBJ_MAGIC + wire._FRAME.pack(1_400_000, 1, 28, 28)
    monkeypatch.setattr(wire, "decode_objects", must_not_decode)
    with pytest.raises(payload.PayloadError, match="expected 1..256 objects, got 1400000"):
        payload.decode_objects(header + bytes(64), (1, 28, 28))
    with pytest.raises(payload.PayloadError, match="the header says 3 in 28x28"):
        payload.decode_objects(wire.OBJ_MAGIC + wire._FRAME.pack(2, 3, 28, 28), (1, 28, 28))
    monkeypatch.undo()
    with pytest.raises(ValueError, match="cannot hold them"):                  # and in wire itself
        wire.decode_objects(wire.OBJ_MAGIC + wire._FRAME.pack(200, 1, 28, 28) + bytes(100))


def test_images_round_trip_in_every_layout():
    for arr in (np.zeros((9, 8), np.uint8), np.ones((9, 8, 3), np.uint8), np.full((2, 9, 8, 1), 9, np.uint8)):
        body, headers = payload.encode_images(arr)
        out = payload.decode_images(headers, body)
        assert out.ndim == 4 and out.dtype == np.uint8
        np.testing.assert_array_equal(out.reshape(arr.shape), arr)


@pytest.mark.parametrize("headers, body, message", [
    (_headers(kind="image/png"), bytes(784), "Content-Type"),
    (_headers(dtype="float32"), bytes(784), "X-Dtype: uint8"),
    (_headers(shape="28"), bytes(28), "2, 3 or 4"),
    (_headers(shape="28,x"), bytes(784), "X-Shape like"),
    (_headers(shape="28,28,2"), bytes(28 * 28 * 2), "1 or 3 channels"),
    (_headers(shape="0,28"), b"", "positive"),
    (_headers(shape="28,28"), bytes(783), "needs 784 bytes"),
    (_headers(shape="300,28,28,1"), bytes(300 * 784), "at most"),
    (_headers(shape="9000,9000"), b"", "<= 8192"),
])
def test_bad_image_payloads_say_what_was_expected(headers, body, message):
    with pytest.raises(payload.PayloadError, match=message):
        payload.decode_images(headers, body)


def test_encode_images_refuses_other_dtypes():
    with pytest.raises(payload.PayloadError, match="uint8"):
        payload.encode_images(np.zeros((4, 4), np.float32))


# --- objects and labels messages ---------------------------------------------------------------------

def _objects(n=3):
    x = np.zeros((n, 1, 28, 28), np.float32)
    x[:, :, 8:20, 10:18] = 1.0
    return Segmenter().segment(x)


def test_objects_message_checks():
    objs = _objects()
    good = wire.encode_objects(np.arange(3), objs)
    ids, back = payload.decode_objects(good, (1, 28, 28))
    assert ids.tolist() == [0, 1, 2] and len(back) == 3
    for bad, message in [(b"nonsense", "damaged"), (good[:40], "damaged"),
                         (wire.encode_labels(wire.LabelReply(np.arange(1), np.zeros(1), np.ones(1)), 10),
                          "objects message, got a labels")]:
        with pytest.raises(payload.PayloadError, match=message):
            payload.decode_objects(bad, (1, 28, 28))
    with pytest.raises(payload.PayloadError, match="frame"):
        payload.decode_objects(good, (1, 32, 32))
    with pytest.raises(payload.PayloadError, match="distinct"):
        payload.decode_objects(wire.encode_objects(np.array([4, 4, 5]), objs), (1, 28, 28))
    shifted = [type(o)(o.pixels, 27, o.left, o.frame, o.background) for o in objs]
    with pytest.raises(payload.PayloadError, match="does not fit"):
        payload.decode_objects(wire.encode_objects(np.arange(3), shifted), (1, 28, 28))


def test_labels_are_matched_to_ids_and_reordered():
    reply = wire.LabelReply(np.array([7, 3, 5]), np.array([1, 2, 3]), np.array([.9, .8, .7], np.float32))
    data = wire.encode_labels(reply, 10)
    got = payload.decode_labels(data, [3, 5, 7])
    assert got.ids.tolist() == [3, 5, 7] and got.labels.tolist() == [2, 3, 1]
    with pytest.raises(payload.PayloadError, match="expected labels for ids"):
        payload.decode_labels(data, [3, 5, 8])
    with pytest.raises(payload.PayloadError, match="damaged"):
        payload.decode_labels(data[:-3], [3, 5, 7])


def test_replay_cloud_answers_only_its_own_ids():
    objs = _objects(2)
    reply = wire.encode_labels(wire.LabelReply(np.array([11, 12]), np.array([4, 6]),
                                               np.array([.5, .6], np.float32)), 10)
    replay = ReplayCloud(reply, 10)
    out = wire.decode_labels(replay.handle(wire.encode_objects(np.array([12, 11]), objs)))
    assert out.ids.tolist() == [12, 11] and out.labels.tolist() == [6, 4]
    with pytest.raises(ValueError, match="replay"):
        replay.handle(wire.encode_objects(np.array([1, 2]), objs))


# --- the store ----------------------------------------------------------------------------------------------

def test_store_moves_objects_once_and_survives_reopening(tmp_path):
    store = ObjectStore(tmp_path)
    ids = [store.put({"image": np.full((1, 4, 4), i, np.uint8)}) for i in range(3)]
    assert ids == [0, 1, 2] and store.pending_ids() == ids
    assert store.mark_labeled(1, 7, 0.9, np.arange(10) / 45) is True
    assert store.mark_labeled(1, 3, 0.1) is False            # the first label stays
    record = store.load_labeled(1)
    assert int(record["label"]) == 7 and record["image"][0, 0, 0] == 1
    with pytest.raises(KeyError, match="not in the store"):
        store.mark_labeled(99, 1, 1.0)
    reopened = ObjectStore(tmp_path)
    assert reopened.pending_ids() == [0, 2] and reopened.labeled_ids() == [1]
    assert reopened.put({"image": np.zeros((1, 4, 4), np.uint8)}) == 3   # ids never reused


def test_store_finishes_a_move_interrupted_by_a_crash(tmp_path):
    store = ObjectStore(tmp_path)
    store.put({"image": np.zeros((1, 2, 2), np.uint8)})
    store.put({"image": np.ones((1, 2, 2), np.uint8)})
    # a crash after writing labeled/0 but before deleting pending/0, plus a torn temp file
    (tmp_path / "labeled" / "0000000000.npz").write_bytes((tmp_path / "pending" / "0000000000.npz").read_bytes())
    (tmp_path / "pending" / ".0000000002.npz.123.abcd.part").write_bytes(b"half")
    reopened = ObjectStore(tmp_path)
    assert reopened.recovered == {"temp_removed": 1, "moves_finished": 1}
    assert reopened.pending_ids() == [1] and reopened.labeled_ids() == [0]


def test_store_ids_are_never_reused_even_after_the_newest_file_is_deleted(tmp_path):
    store = ObjectStore(tmp_path)
    ids = [store.put({"image": np.zeros((1, 2, 2), np.uint8)}) for _ in range(3)]
    (tmp_path / "pending" / "0000000002.npz").unlink()          # the highest id, deleted by hand
    (tmp_path / "pending" / "0000000000.npz").unlink()
    reopened = ObjectStore(tmp_path)
    assert reopened.put({"image": np.zeros((1, 2, 2), np.uint8)}) == ids[-1] + 1
    assert reopened.missing == [0, 2] and reopened.counts()["missing"] == 2     # noticed, not silent


def test_a_damaged_file_is_quarantined_named_and_the_rest_goes_on(tmp_path, caplog):
    store = ObjectStore(tmp_path)
    for i in range(3):
        store.put({"image": np.full((1, 2, 2), i, np.uint8)})
    store.mark_labeled(2, 5, 0.9)
    bad = tmp_path / "pending" / "0000000001.npz"
    bad.write_bytes(bad.read_bytes()[:20])                       # truncated
    labeled = tmp_path / "labeled" / "0000000002.npz"
    labeled.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DamagedObject, match="0000000001.npz"):
        store.load_pending(1)
    with pytest.raises(DamagedObject, match="0000000002.npz"):
        store.load_labeled(2)
    assert store.pending_ids() == [0] and store.labeled_ids() == []
    assert int(store.load_pending(0)["image"][0, 0, 0]) == 0       # the good one is untouched
    assert [q.split(".npz")[0] for q in store.quarantined] == ["0000000001", "0000000002"]
    assert all(q in caplog.text for q in ("0000000001.npz", "0000000002.npz", "quarantine"))
    assert store.counts()["quarantined"] == 2
    reopened = ObjectStore(tmp_path)
    assert reopened.missing == [] and len(reopened.quarantined) == 2   # quarantined is not missing


def test_store_folders_and_files_are_private(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    store.put({"image": np.zeros((1, 2, 2), np.uint8)})
    for folder in (tmp_path / "objects", store.pending_dir, store.labeled_dir, store.quarantine_dir):
        assert folder.stat().st_mode & 0o777 == 0o700
    for f in (store.pending_dir / "0000000000.npz", store.next_file):
        assert f.stat().st_mode & 0o777 == 0o600


def test_store_refuses_label_keys_in_new_objects(tmp_path):
    with pytest.raises(ValueError, match="must not carry"):
        ObjectStore(tmp_path).put({"image": np.zeros((1, 2, 2), np.uint8), "label": np.int64(1)})


# --- imaging ----------------------------------------------------------------------------------------------------

def test_upscaled_digit_resizes_back_exactly():
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    x = to_model_input(upscale(digits, 280), (1, 28, 28))   # 10x10 blocks of one value each
    assert x.shape == (2, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], digits / 255, atol=1e-6)
    odd = to_model_input(upscale(digits, 101), (1, 28, 28))  # uneven bins still give (N, 1, 28, 28)
    assert odd.shape == (2, 1, 28, 28) and 0 <= odd.min() and odd.max() <= 1


def test_to_model_input_rejects_wrong_layouts():
    with pytest.raises(ValueError, match=r"\(N, H, W, C\) uint8"):
        to_model_input(np.zeros((2, 28, 28), np.uint8), (1, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\) uint8"):
        to_model_input(np.zeros((2, 28, 28, 1), np.float32), (1, 28, 28))


# --- the edge runtime's state on disk ------------------------------------------------------------------------

class _LocalCloud:
    """RemoteCloud's interface over an in-process tiny Cloud (no HTTP)."""

    def __init__(self):
        from test_cloudedge_support import tiny_cloud
        self.cloud, self.url = tiny_cloud(), "local"

    def label(self, message, probs=False):
        return self.cloud.handle(message, probs=probs)


def _runtime(state_dir, trigger="every:1000", max_samples=0):
    from cloudedge.system.config import EdgeConfig, edge_train_config
    from cloudedge.system.edge import Edge
    from cloudedge.server.edge_runtime import EdgeRuntime
    from test_cloudedge_support import mnist
    x, y = mnist(60)

    def make_edge():
        return Edge("e", EdgeConfig(depth=3, shared=False, preset="tiny", train=edge_train_config(max_epochs=1),
                                    max_samples=max_samples),
                    "trust-all", trigger)
    return EdgeRuntime(state_dir, make_edge, lambda: (x, y), _LocalCloud())


def _images(n):
    return np.random.default_rng(0).integers(0, 255, (n, 28, 28, 1), dtype=np.uint8)


def test_a_damaged_pending_or_labeled_file_never_stops_the_edge(tmp_path, caplog):
    rt = _runtime(tmp_path).start()
    ids = rt.serve(_images(4))["ids"]
    assert rt.sync_once(0.0, batch=2)["uploaded"] == 2                   # ids 0, 1 labeled
    rt.close()
    pending = tmp_path / "objects" / "pending" / f"{ids[2]:010d}.npz"
    pending.write_bytes(pending.read_bytes()[:30])
    labeled = tmp_path / "objects" / "labeled" / f"{ids[0]:010d}.npz"
    labeled.write_bytes(labeled.read_bytes()[:30])
    # the snapshot has absorbed nothing yet, so the labeled files are replayed at start
    current = (tmp_path / "CURRENT").read_text().strip()
    (tmp_path / "snapshots" / current / "absorbed.npy").write_bytes(_absorbed_bytes([]))
    rt = _runtime(tmp_path).start()                                     # no traceback, starts
    assert rt.status["replayed"] == 1                                   # id 1; id 0 quarantined
    out = rt.sync_once(0.0)
    assert out["uploaded"] == 1                                         # id 3 went up; id 2 quarantined
    summary = rt.summary()
    assert summary["store"]["quarantined"] == 2 and len(summary["store_quarantined"]) == 2
    assert f"{ids[0]:010d}.npz" in caplog.text and f"{ids[2]:010d}.npz" in caplog.text


def _absorbed_bytes(ids):
    import io
    buf = io.BytesIO()
    np.save(buf, np.array(ids, np.int64), allow_pickle=False)
    return buf.getvalue()


def test_a_missing_current_or_damaged_snapshot_file_refuses_to_start_and_names_it(tmp_path):
    from cloudedge.server.edge_runtime import StateError
    rt = _runtime(tmp_path).start()
    rt.close()
    (tmp_path / "CURRENT").unlink()
    with pytest.raises(StateError, match="CURRENT is missing but .* holds snapshot\\(s\\) 000000: refusing"):
        _runtime(tmp_path).start()
    assert (tmp_path / "snapshots" / "000000" / "state.json").exists()   # nothing was discarded
    (tmp_path / "CURRENT").write_text("000000")
    (tmp_path / "snapshots" / "000000" / "absorbed.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(StateError, match="absorbed.npy is damaged"):
        _runtime(tmp_path).start()


class _Refusing:
    """A runtime whose cloud answers a fixed status to every sync."""

    def __init__(self, status):
        self.status, self.calls = status, 0

    def sync_once(self, load, batch):
        self.calls += 1
        raise httpclient.StatusError(self.status, "internal detail XYZ", "http://cloud")


@pytest.mark.parametrize("status, permanent", [(401, True), (400, True), (503, False)])
def test_permanent_refusals_stop_the_uploader_and_show_in_health(status, permanent):
    from cloudedge.server.edge_server import EdgeServer
    from cloudedge.server.uploader import Uploader
    runtime = _Refusing(status)
    up = Uploader(runtime, lambda t: 0.0, interval=0.01, max_backoff=0.02).start()
    time.sleep(0.3)
    up.stop(2)
    if permanent:
        assert runtime.calls == 1 and str(status) in up.state["permanent"]
    else:
        assert runtime.calls > 3 and up.state["permanent"] is None     # transient: retried
    server = EdgeServer.__new__(EdgeServer)                             # only _problems is exercised
    server.uploader = up
    problem = server._problems()
    assert (problem is not None) == permanent
    if permanent:
        assert "XYZ" not in problem and str(status) in problem


def test_a_long_running_edge_holds_at_most_max_samples_and_lists_its_last_trainings(tmp_path):
    from cloudedge.server.edge_runtime import TRAININGS_SHOWN
    rt = _runtime(tmp_path, trigger="every:1", max_samples=70).start()     # N = 60
    rt.serve(_images(30))
    for _ in range(30):
        assert rt.sync_once(0.0, batch=1)["retrained"]                      # a training per label
    _, _, _, ids = rt.edge.store.arrays()
    assert len(ids) == 70 and ids[60:].tolist() == list(range(20, 30))     # the newest 10 cloud labels
    assert rt.status["trainings_total"] == 31 and len(rt.status["trainings"]) == TRAININGS_SHOWN
    assert rt.status["trainings"][-1]["n_samples"] == 70
    assert rt.edge.received == []            # the edge's per-sync label log does not pile up here
    rt.close()
    resumed = _runtime(tmp_path, trigger="every:1", max_samples=65).start()
    assert resumed.edge.config.max_samples == 65                            # today's option applies
    assert resumed.serve(_images(1))["ids"] == [30] and resumed.sync_once(0.0)["uploaded"] == 1
    assert len(resumed.edge.store) == 65
