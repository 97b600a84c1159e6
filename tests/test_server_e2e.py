"""The prototype end to end: a cloud server (in this process) and `cloudedge serve-edge`
subprocesses on 127.0.0.1, ephemeral ports; bounded request counts and waits."""
import argparse
import hashlib
import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from test_server_support import (
    TOKEN,
    EdgeProcess,
    assert_json_error,
    digits,
    get_metrics,
    labeled_ids,
    make_cloud,
    pending_ids,
    post_image,
    start_cloud,
    wait_for,
)

from cloudedge.cli import main as cli_main
from cloudedge.commands.serve_edge import build_runtime, register
from cloudedge.system import edge_files
from cloudedge.system.package import make_package
from cloudedge.server import httpclient, payload
from cloudedge.server.http import App, Response, Server, ServerThread
from cloudedge.server.shaping import Shape


@pytest.fixture
def cloud():
    server, thread = start_cloud()
    try:
        yield server, thread
    finally:
        thread.stop()


def _edge_metrics(edge):
    return get_metrics(edge.url)["edge"]


def _snapshot(state_dir):
    path = Path(state_dir) / "snapshots" / (Path(state_dir) / "CURRENT").read_text().strip()
    return edge_files.load(path)


def test_initialization_and_update_over_http(cloud, tmp_path, capsys):
    server, thread = cloud
    state = tmp_path / "edge"
    with EdgeProcess(thread.url, state, tmp_path, "--retrain", "every:8", "--upload-batch", "4") as edge:
        edge.wait_ready()
        assert get_metrics(thread.url)["counters"]["packages_sent"] == 1         # Alg. 1 over HTTP
        # the mobile client: 5 images x 2 sizes to the edge and to the cloud, over emulated WiFi
        csv_path, png_path = tmp_path / "rows.csv", tmp_path / "fig.png"
        code = cli_main(["client", "--edge", edge.url, "--cloud", thread.url, "--token", TOKEN,
                         "--images", "5", "--sizes", "8,60", "--link", "wifi", "--labeled", "60", "--concurrency", "2",
                         "--csv", str(csv_path), "--plot", str(png_path), "--json"])
        result = json.loads(capsys.readouterr().out)
        assert code == 0
        assert [(s["target"], s["size_k"], s["requests"], s["errors"]) for s in result["summary"]] == [
            ("cloud", 8, 5, 0), ("edge", 8, 5, 0), ("cloud", 60, 5, 0), ("edge", 60, 5, 0)]
        assert len(csv_path.read_text().splitlines()) == 1 + 20
        assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        edge_uploads = 10 + 1                                                     # + 1 warm-up request
        # Alg. 2: uploads labeled by the cloud, a retrain after 8 labels, a new model published
        wait_for(lambda: len(labeled_ids(state)) == edge_uploads, 30, "all uploads labeled")
        wait_for(lambda: _edge_metrics(edge)["model_version"] >= 2, 30, "a retrained model")
        trainings = _edge_metrics(edge)["status"]["trainings"]
        assert trainings[0]["event"] == "init" and trainings[0]["n_samples"] == 60
        assert trainings[1]["event"] == "retrain" and trainings[1]["n_cloud"] >= 8
        assert post_image(edge.url, digits(1)[0][0]).json()["model_version"] >= 2
        edge_uploads += 1
        wait_for(lambda: len(labeled_ids(state)) == edge_uploads, 30, "the last upload labeled")
        assert edge.terminate() == 0
        assert edge.events()[-1]["event"] == "stopped"
    # invariants on what the edge saved: frozen layers are CloudCNN's, training set = N + uploads
    snap = _snapshot(state)
    cloud_params = dict(server.cloud.model.named_params())
    for name, value in snap.model[:6].named_params():
        np.testing.assert_array_equal(value, cloud_params[name])
    _, _, _, ids = snap.store.arrays()
    cloud_ids = ids[snap.store.origins() == "cloud"]
    assert sorted(cloud_ids.tolist()) == labeled_ids(state) == list(range(edge_uploads))


def test_edge_keeps_answering_while_the_cloud_is_down(tmp_path):
    _, thread = start_cloud()
    port = thread.server.server_address[1]
    state = tmp_path / "edge"
    try:
        with EdgeProcess(thread.url, state, tmp_path, "--upload-batch", "4") as edge:
            edge.wait_ready()
            thread.stop()                                             # the cloud goes away
            images, _ = digits(4)
            answers = [post_image(edge.url, image).json() for image in images]
            assert [a["ids"] for a in answers] == [[0], [1], [2], [3]]
            wait_for(lambda: get_metrics(edge.url)["uploader"]["failures"] >= 2, 20, "failed uploads")
            assert pending_ids(state) == [0, 1, 2, 3]
            assert httpclient.call(edge.url, "GET", "/health").json()["status"] == "ok"
            with pytest.raises(httpclient.StatusError) as exc:
                httpclient.call(edge.url, "POST", "/sync?force=1", b"", token=TOKEN)
            assert "did not label" in assert_json_error(exc, 503)
            _, thread = start_cloud(port=port)                        # back, same address
            wait_for(lambda: labeled_ids(state) == [0, 1, 2, 3], 30, "uploads after the cloud came back")
            assert get_metrics(thread.url)["counters"]["objects_labeled"] == 4
    finally:
        thread.stop()


def test_kill9_with_uploads_pending_loses_nothing_and_labels_nothing_twice(tmp_path):
    # every /label request waits 0.25 s before the cloud reads it: uploads are in flight for a while
    _, thread = start_cloud(shape=Shape(recv_delay=0.25))
    state = tmp_path / "edge"
    try:
        sent = []
        with EdgeProcess(thread.url, state, tmp_path, "--load", "constant:0.9") as edge:   # network busy
            edge.wait_ready()
            images, _ = digits(6)
            sent += [post_image(edge.url, image).json()["ids"][0] for image in images]
            edge.kill9()                                              # answered, not uploaded yet
        assert pending_ids(state) == sent and labeled_ids(state) == []
        with EdgeProcess(thread.url, state, tmp_path, "--upload-batch", "2") as edge:
            edge.wait_ready()
            assert edge.events()[0]["phase"] == "resumed"
            images, _ = digits(8, start=6)
            sent += [post_image(edge.url, image).json()["ids"][0] for image in images]
            wait_for(lambda: len(labeled_ids(state)) >= 2, 30, "the first uploads")
            edge.kill9()                                              # in the middle of uploading
        assert len(pending_ids(state)) > 0
        assert sorted(pending_ids(state) + labeled_ids(state)) == sent       # nothing lost on disk
        with EdgeProcess(thread.url, state, tmp_path, "--upload-batch", "2") as edge:
            edge.wait_ready()
            wait_for(lambda: pending_ids(state) == [], 40, "the rest of the uploads")
            assert edge.terminate() == 0
        assert labeled_ids(state) == sent == list(range(14))
        counters = get_metrics(thread.url)["counters"]
        assert counters["objects_labeled"] == 14                            # none labeled twice
        snap = _snapshot(state)
        _, _, _, ids = snap.store.arrays()
        cloud_ids = ids[snap.store.origins() == "cloud"].tolist()
        assert sorted(cloud_ids) == sent and len(set(cloud_ids)) == len(cloud_ids)   # absorbed once each
    finally:
        thread.stop()


def test_sigterm_lets_a_slow_upload_finish_then_exits(cloud, tmp_path):
    _, thread = cloud
    with EdgeProcess(thread.url, tmp_path / "edge", tmp_path) as edge:
        edge.wait_ready()
        image = np.zeros((400, 400), np.uint8)                           # 160,000 B at 160 KiB/s: ~1 s
        slow = Shape(send_rate=160 * 1024)
        result = {}
        client = threading.Thread(target=lambda: result.update(reply=post_image(edge.url, image, shape=slow)))
        client.start()
        time.sleep(0.4)
        edge.proc.send_signal(signal.SIGTERM)
        client.join(20)
        assert result["reply"].status == 200 and result["reply"].json()["ids"] == [0]
        assert edge.proc.wait(timeout=30) == 0
        stopped = edge.events()[-1]
        assert stopped["event"] == "stopped" and stopped["signal"] == "SIGTERM"
        assert stopped["store"]["pending"] + stopped["store"]["labeled"] == 1
        with pytest.raises(httpclient.CallError):
            post_image(edge.url, image, timeout=2)


def _fake_cloud(package, declared_sha):
    app = App("fake-cloud", token=TOKEN)
    app.route("GET", "/layers", lambda request: Response.binary(
        package, payload.PACKAGE, {"X-Package-Sha256": declared_sha}))
    return ServerThread(Server(app, "127.0.0.1", 0)).start()


def test_a_corrupted_layers_package_is_refused(tmp_path):
    good = make_package(make_cloud().model, 3, (1, 28, 28))
    tampered = bytearray(good)
    tampered[-100] ^= 0xFF                                          # one bit pattern in the weights
    tampered = bytes(tampered)
    # damaged in transit: the body does not hash to what the cloud declared -> the edge will not start
    fake = _fake_cloud(tampered, hashlib.sha256(good).hexdigest())
    try:
        with EdgeProcess(fake.url, tmp_path / "a", tmp_path) as edge:
            assert edge.proc.wait(timeout=60) != 0
            assert "X-Package-Sha256" in edge.stderr()
        assert not (tmp_path / "a" / "CURRENT").exists()
    finally:
        fake.stop()
    # damaged at the source (consistent header): the manifest's hashes catch it
    fake = _fake_cloud(tampered, hashlib.sha256(tampered).hexdigest())
    try:
        runtime = _runtime(fake.url, tmp_path / "b")
        with pytest.raises(ValueError, match="sha256"):
            runtime.start(wait_for_cloud=5)
        assert not (tmp_path / "b" / "CURRENT").exists() and runtime.serving is None
    finally:
        fake.stop()


def test_concurrent_devices_on_the_edge_get_distinct_durable_ids(cloud, tmp_path):
    _, thread = cloud
    state = tmp_path / "edge"
    with EdgeProcess(thread.url, state, tmp_path, "--no-uploader") as edge:
        edge.wait_ready()
        images, _ = digits(8)
        with ThreadPoolExecutor(max_workers=8) as pool:
            replies = list(pool.map(lambda i: post_image(edge.url, images[i % 8]).json(), range(32)))
        ids = sorted(r["ids"][0] for r in replies)
        assert ids == list(range(32)) == pending_ids(state)
        answers = {}
        for i, r in enumerate(replies):                      # one model, so one answer per image
            answers.setdefault(i % 8, set()).add(r["labels"][0])
        assert all(len(a) == 1 for a in answers.values())
        with pytest.raises(httpclient.StatusError) as exc:   # the edge's API has the same guards
            post_image(edge.url, images[0], token=None)
        assert_json_error(exc, 401)
        with pytest.raises(httpclient.StatusError) as exc:
            httpclient.call(edge.url, "POST", "/infer", b"\x00" * 10,
                            {"Content-Type": payload.RAW, "X-Dtype": "uint8", "X-Shape": "28,28"}, token=TOKEN)
        assert "needs 784 bytes" in assert_json_error(exc, 400)
        assert get_metrics(edge.url)["requests"]["POST /infer"] == {"200": 32, "401": 1, "400": 1}


def _runtime(cloud_url, state_dir, *extra):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve-edge", "--cloud", cloud_url, "--state-dir", str(state_dir),
                              *EdgeProcess.FAST, *extra])
    return build_runtime(args, TOKEN)[0]


def test_a_restart_with_other_model_options_is_refused(cloud, tmp_path):
    _, thread = cloud
    first = _runtime(thread.url, tmp_path).start()
    assert first.status["phase"] == "initialized" and first.serving.version == 1
    assert _runtime(thread.url, tmp_path).start().status["phase"] == "resumed"
    with pytest.raises(ValueError, match="different edge.*depth"):
        _runtime(thread.url, tmp_path, "--depth", "5").start()


def test_labels_rejected_by_the_policy_are_absorbed_once_too(cloud, tmp_path):
    _, thread = cloud
    options = ("--label-policy", "confidence:0.99", "--no-uploader")   # the untrained cloud is never that sure
    edge = _runtime(thread.url, tmp_path, *options).start()
    images, _ = digits(4)
    assert [edge.serve(image[None, :, :, None])["ids"] for image in images] == [[0], [1], [2], [3]]
    assert edge.sync_once(load=0.0)["uploaded"] == 4
    n_before = len(edge.edge.store)
    assert n_before == 60                                  # N labeled only: all 4 cloud labels rejected
    # killed (no close): a restart replays the 4 stored labels, and the policy rejects them again
    again = _runtime(thread.url, tmp_path, *options).start()
    assert again.status["replayed"] == 4 and len(again.edge.store) == n_before
    again.close()
    # stopped gracefully: the snapshot records them as absorbed, so nothing is replayed
    third = _runtime(thread.url, tmp_path, *options).start()
    assert third.status["replayed"] == 0 and len(third.edge.store) == n_before


def test_max_samples_must_leave_room_for_cloud_labels(tmp_path):
    with pytest.raises(ValueError, match="--max-samples must be 0 .keep all. or more than --labeled"):
        _runtime("http://127.0.0.1:9", tmp_path, "--labeled", "60", "--max-samples", "60")
