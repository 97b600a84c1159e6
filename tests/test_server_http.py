"""The HTTP layer and the cloud server, in-process on 127.0.0.1 with ephemeral ports:
auth, limits, malformed requests, JSON errors, idempotent labeling, concurrency, shaping."""
import argparse
import json
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_server_support import (
    TOKEN,
    assert_json_error,
    digits,
    get_metrics,
    gray,
    make_cloud,
    post_image,
    start_cloud,
)

from cloudedge.timing import network
from cloudedge.system import wire
from cloudedge.cli import main as cli_main
from cloudedge.commands.serve_cloud import load_cloud, register
from cloudedge.system.package import open_package
from cloudedge.policies.segmentation import Segmenter
from cloudedge.server import httpclient, payload
from cloudedge.server.http import App, HttpError, Response, Server, ServerThread
from cloudedge.server.shaping import Shape


@pytest.fixture(scope="module")
def cloud():
    server, thread = start_cloud(max_body=256 * 1024)
    try:
        yield server, thread.url
    finally:
        thread.stop()


def _raw(url, data, timeout=5.0, half_close=False):
    """Send raw bytes on a fresh connection; return (status, parsed JSON body)."""
    host, port = httpclient.split_url(url)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


# --- auth and routing -------------------------------------------------------------------------------

def test_health_is_public_and_everything_else_needs_the_token(cloud):
    _, url = cloud
    assert httpclient.call(url, "GET", "/health").json()["role"] == "cloud"
    for token, hint in ((None, "missing token"), ("wrong-token-000", "wrong token")):
        for method, path in (("GET", "/metrics"), ("GET", "/layers?m=3"), ("POST", "/infer")):
            with pytest.raises(httpclient.StatusError) as exc:
                httpclient.call(url, method, path, body=b"" if method == "POST" else None, token=token)
            assert hint in assert_json_error(exc, 401)


def test_unknown_paths_and_methods_are_json_404_and_405(cloud):
    _, url = cloud
    with pytest.raises(httpclient.StatusError) as exc:
        httpclient.call(url, "GET", "/nope", token=TOKEN)
    assert "/layers" in assert_json_error(exc, 404)        # lists what exists
    with pytest.raises(httpclient.StatusError) as exc:
        httpclient.call(url, "GET", "/label", token=TOKEN)
    assert "accepts POST" in assert_json_error(exc, 405)
    status, body = _raw(url, b"BREW /pot HTTP/1.0\r\n\r\n")
    assert status == 501 and "error" in body


def test_garbage_request_lines_and_missing_lengths_get_json_errors(cloud):
    _, url = cloud
    status, body = _raw(url, b"this is not http\r\n\r\n")
    assert status == 400 and "error" in body
    status, body = _raw(url, f"POST /infer HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    assert status == 411 and "Content-Length" in body["error"]
    status, body = _raw(url, f"POST /infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                             f"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode())
    assert status == 411 and "chunked" in body["error"]
    status, body = _raw(url, f"POST /infer HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n"
                             f"Content-Length: lots\r\n\r\n".encode())
    assert status == 400 and "integer" in body["error"]
    short = f"POST /infer HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 10\r\n\r\nabc".encode()
    status, body = _raw(url, short, half_close=True)
    assert status == 400 and "after 3 of 10 bytes" in body["error"]


def test_a_stalled_body_times_out_with_408():
    with ServerThread(Server(_app(), "127.0.0.1", 0, request_timeout=0.5)) as thread:
        stalled = f"GET /slow HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 10\r\n\r\nab".encode()
        start = time.perf_counter()
        status, body = _raw(thread.url, stalled)
        assert status == 408 and "stalled" in body["error"]
        assert time.perf_counter() - start < 3


def test_too_large_bodies_get_413_before_being_read(cloud):
    _, url = cloud
    body, headers = payload.encode_images(np.zeros((600, 600), np.uint8))   # 360,000 B > 256 KiB
    with pytest.raises(httpclient.StatusError) as exc:
        httpclient.call(url, "POST", "/infer", body, headers, token=TOKEN)
    assert "limit of 262144 bytes" in assert_json_error(exc, 413)


@pytest.mark.parametrize("headers, body, fragment", [
    ({"Content-Type": "image/jpeg", "X-Dtype": "uint8", "X-Shape": "28,28"}, bytes(784), "Content-Type"),
    ({"Content-Type": payload.RAW, "X-Dtype": "float32", "X-Shape": "28,28"}, bytes(784 * 4), "X-Dtype"),
    ({"Content-Type": payload.RAW, "X-Dtype": "uint8", "X-Shape": "28,28"}, bytes(700), "needs 784"),
    ({"Content-Type": payload.RAW, "X-Dtype": "uint8", "X-Shape": "28,28,4"}, bytes(784 * 4), "channels"),
    ({"Content-Type": payload.RAW, "X-Dtype": "uint8"}, bytes(784), "X-Shape"),
])
def test_wrong_shapes_dtypes_and_types_are_400_json(cloud, headers, body, fragment):
    _, url = cloud
    with pytest.raises(httpclient.StatusError) as exc:
        httpclient.call(url, "POST", "/infer", body, headers, token=TOKEN)
    assert fragment in assert_json_error(exc, 400)


def test_malformed_label_requests_are_400_json(cloud):
    _, url = cloud
    good = wire.encode_objects(np.arange(2), Segmenter().segment(np.zeros((2, 1, 28, 28), np.float32) + 0.5))
    cases = [(b"\x00" * 50, payload.OBJECTS, {"X-Edge-Id": "e"}, "damaged"),
             (good[:-5], payload.OBJECTS, {"X-Edge-Id": "e"}, "damaged"),
             (good, "application/x-npz", {"X-Edge-Id": "e"}, "Content-Type"),
             (good, payload.OBJECTS, {}, "X-Edge-Id"),
             (wire.encode_objects(np.arange(1), Segmenter().segment(np.ones((1, 1, 32, 32), np.float32))),
              payload.OBJECTS, {"X-Edge-Id": "e"}, "28x28 frame")]
    for body, kind, extra, fragment in cases:
        with pytest.raises(httpclient.StatusError) as exc:
            httpclient.call(url, "POST", "/label", body, {"Content-Type": kind, **extra}, token=TOKEN)
        assert fragment in assert_json_error(exc, 400)
    for query, fragment in (("", "required"), ("?m=x", "integer"), ("?m=0", "[1, 15]"), ("?m=16", "[1, 15]")):
        with pytest.raises(httpclient.StatusError) as exc:
            httpclient.call(url, "GET", f"/layers{query}", token=TOKEN)
        assert fragment in assert_json_error(exc, 400)


# --- what the cloud serves ----------------------------------------------------------------------------

def test_layers_package_verifies_and_matches_cloudcnn(cloud):
    server, url = cloud
    reply = httpclient.call(url, "GET", "/layers?m=3", token=TOKEN)
    manifest, layers = open_package(reply.body, (1, 28, 28))
    assert manifest["m"] == 3 and len(layers) == 6
    for name, value in layers.named_params():
        np.testing.assert_array_equal(value, dict(server.cloud.model.named_params())[name])


def test_labeling_is_idempotent_per_edge_and_id(cloud):
    _, url = cloud
    x = np.zeros((3, 1, 28, 28), np.float32)
    x[:, :, 5:20, 9:15] = 0.8
    message = wire.encode_objects(np.array([100, 101, 102]), Segmenter().segment(x))
    before = get_metrics(url)["counters"]
    headers = {"Content-Type": payload.OBJECTS, "X-Edge-Id": "edge-idem"}
    first = httpclient.call(url, "POST", "/label?probs=1", message, headers, token=TOKEN).body
    second = httpclient.call(url, "POST", "/label?probs=1", message, headers, token=TOKEN).body
    other = httpclient.call(url, "POST", "/label", message, {**headers, "X-Edge-Id": "edge-other"}, token=TOKEN).body
    a, b, c = (wire.decode_labels(m) for m in (first, second, other))
    assert a.labels.tolist() == b.labels.tolist() == c.labels.tolist()
    np.testing.assert_array_equal(a.probs, b.probs)
    assert c.probs is None                                    # not asked for
    after = get_metrics(url)["counters"]
    assert after["objects_labeled"] - before.get("objects_labeled", 0) == 6   # 3 per edge, not 9
    assert after["objects_relabel_avoided"] - before.get("objects_relabel_avoided", 0) == 3


def test_concurrent_clients_are_all_answered_and_counted(cloud):
    _, url = cloud
    images, _ = digits(8)
    before = get_metrics(url)["requests"].get("POST /infer", {}).get("200", 0)

    def send(i):
        reply = post_image(url, images[i % len(images)])
        return reply.json()["labels"][0]

    with ThreadPoolExecutor(max_workers=12) as pool:
        labels = list(pool.map(send, range(36)))
    assert len(labels) == 36 and all(0 <= v < 10 for v in labels)
    assert labels[:8] == labels[8:16]                 # same image, same model, same answer
    after = get_metrics(url)
    assert after["requests"]["POST /infer"]["200"] - before == 36
    assert after["latency"]["POST /infer"]["p99_ms"] >= after["latency"]["POST /infer"]["p50_ms"] > 0


# --- the HTTP layer itself ---------------------------------------------------------------------------------

def _app():
    app = App("test", token=TOKEN)

    def boom(request):
        raise RuntimeError("secret internal detail")

    def slow(request):
        time.sleep(float(request.query.get("s", "0.5")))
        return Response.json({"slept": True})

    def teapot(request):
        raise HttpError(418, "I am a teapot")

    app.route("GET", "/boom", boom)
    app.route("GET", "/slow", slow)
    app.route("GET", "/teapot", teapot)
    return app


def test_a_crashing_handler_is_a_500_without_details():
    with ServerThread(Server(_app(), "127.0.0.1", 0)) as thread:
        with pytest.raises(httpclient.StatusError) as exc:
            httpclient.call(thread.url, "GET", "/boom", token=TOKEN)
        message = assert_json_error(exc, 500)
        assert "secret internal detail" not in message
        with pytest.raises(httpclient.StatusError) as exc:
            httpclient.call(thread.url, "GET", "/teapot", token=TOKEN)
        assert assert_json_error(exc, 418) == "I am a teapot"


def _held(server):
    with server._lock:
        return len(server._held)


def _wait_held(server, n, seconds=5):
    """Wait on the server's own count of held slots (no sleeps standing in for it)."""
    deadline = time.monotonic() + seconds
    while _held(server) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return _held(server)


def _hold_a_slot(url, seconds):
    """A client whose request keeps one slot for ``seconds``; join the returned thread."""
    holder = threading.Thread(target=httpclient.call, args=(url, "GET", f"/slow?s={seconds}"),
                              kwargs={"token": TOKEN})
    holder.start()
    return holder


def test_connections_beyond_the_cap_get_503_and_a_finished_request_frees_its_slot_first():
    """Deterministic: the test waits on the server's own count of held slots, never on sleeps;
    and the slot is released before the answer is sent, so a client holding its answer never
    finds the slot still taken (a 20 ms pause in finish() used to make this fail 10 of 10)."""
    server = Server(_app(), "127.0.0.1", 0, max_connections=1)
    real_finish = server.RequestHandlerClass.finish

    def slow_finish(handler):
        time.sleep(0.05)
        real_finish(handler)
    with ServerThread(server) as thread:
        holder = _hold_a_slot(thread.url, 1.0)
        assert _wait_held(server, 1) == 1
        with pytest.raises(httpclient.StatusError) as exc:
            httpclient.call(thread.url, "GET", "/slow?s=0", token=TOKEN)
        assert "busy" in assert_json_error(exc, 503)
        holder.join(10)
        server.RequestHandlerClass.finish = slow_finish
        try:
            for _ in range(5):                       # back to back: each answer means a free slot
                assert httpclient.call(thread.url, "GET", "/slow?s=0", token=TOKEN).json() == {"slept": True}
        finally:
            server.RequestHandlerClass.finish = real_finish


def _trickle(url, source, stop, sent):
    """A slow client from address ``source``: one byte of a request head every 0.3 s until stop."""
    host, port = httpclient.split_url(url)
    try:
        with socket.create_connection((host, port), timeout=10, source_address=(source, 0)) as s:
            for byte in b"GET /slow?s=0 HTTP/1.1\r\nHost: x\r\n" * 10:
                if stop.is_set():
                    return
                s.sendall(bytes([byte]))
                sent.append(1)
                time.sleep(0.3)
    except OSError:
        return                                       # closed by the server: what we want


def test_slow_clients_cannot_lock_out_a_well_behaved_one():
    """A bounded burst of 12 trickling connections from 127.0.0.2 (cap 8, 4 per peer): the
    well-behaved client on 127.0.0.1 is served at once, /health is answered even at the cap,
    and the trickling requests get 408 at their 2 s deadline."""
    server = Server(_app(), "127.0.0.1", 0, max_connections=8, max_per_peer=4, request_deadline=2.0)
    stop, sent = threading.Event(), []
    with ServerThread(server) as thread:
        slow = [threading.Thread(target=_trickle, args=(thread.url, "127.0.0.2", stop, sent)) for _ in range(12)]
        for t in slow:
            t.start()
        try:
            assert _wait_held(server, 4) == 4         # the slow peer holds its 4 slots, no more
            start = time.perf_counter()
            assert httpclient.call(thread.url, "GET", "/slow?s=0", token=TOKEN).json() == {"slept": True}
            assert time.perf_counter() - start < 2.0
            time.sleep(2.5)                           # past the deadline: the trickles were cut
            assert server.app.metrics.snapshot()["counters"].get("deadline_408", 0) >= 4
        finally:
            stop.set()
            for t in slow:
                t.join(15)


def test_health_is_answered_when_every_slot_is_taken():
    app = _app()
    app.route("GET", "/health", lambda request: Response.json({"status": "ok"}), public=True)
    server = Server(app, "127.0.0.1", 0, max_connections=1)
    with ServerThread(server) as thread:
        holder = _hold_a_slot(thread.url, 1.5)
        assert _wait_held(server, 1) == 1
        assert httpclient.call(thread.url, "GET", "/health").json() == {"status": "ok"}
        with pytest.raises(httpclient.StatusError) as exc:
            httpclient.call(thread.url, "GET", "/slow?s=0", token=TOKEN)
        assert "busy" in assert_json_error(exc, 503)
        holder.join(10)


@pytest.mark.parametrize("value", ["+3", " 3", "3 ", "\u0663", "3.0", "0x3", ""])
def test_query_integers_are_plain_ascii_decimals(cloud, value):
    _, url = cloud
    path = "/layers?m=" + urllib.parse.quote(value)
    with pytest.raises(httpclient.StatusError) as exc:
        httpclient.call(url, "GET", path, token=TOKEN)
    assert "plain decimal integer" in assert_json_error(exc, 400)


def test_duplicate_or_non_decimal_content_length_is_400_and_overrun_bytes_are_not_a_request(cloud):
    _, url = cloud
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    status, body = _raw(url, b"POST /infer HTTP/1.1\r\nHost: x\r\n" + auth +
                        b"Content-Length: 2\r\nContent-Length: 5\r\n\r\nabcde")
    assert status == 400 and "exactly one Content-Length" in body["error"]
    status, body = _raw(url, b"POST /infer HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: +2\r\n\r\nab")
    assert status == 400 and "plain decimal integer" in body["error"]
    # a body followed by a second, smuggled request: one answer, then the connection closes
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    host, port = httpclient.split_url(url)
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + smuggled)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.0 ") == 1


def test_stop_lets_requests_in_flight_finish():
    thread = ServerThread(Server(_app(), "127.0.0.1", 0)).start()
    result = {}

    def slow():
        result["reply"] = httpclient.call(thread.url, "GET", "/slow?s=0.8", token=TOKEN).json()

    client = threading.Thread(target=slow)
    client.start()
    time.sleep(0.3)
    start = time.perf_counter()
    thread.stop()
    assert time.perf_counter() - start >= 0.3        # stop() waited for the request
    client.join(5)
    assert result["reply"] == {"slept": True}
    with pytest.raises(httpclient.CallError, match="cannot connect"):
        httpclient.call(thread.url, "GET", "/slow?s=0", token=TOKEN, timeout=2)


def test_a_wan_shaped_cloud_adds_latency_and_caps_the_rate():
    wan = network.wan_link(rate=256 * 1024, rtt=0.1)
    _, thread = start_cloud(shape=Shape.server_side(wan))
    try:
        image = gray(side=256)[0]                      # 64 KiB
        reply = post_image(thread.url, image)
        # one way in (0.05) + 64 KiB at 256 KiB/s (0.25) + server + one way back (0.05)
        assert reply.total_s >= 0.35
        assert reply.upload_s >= 0.25 + 0.05 * 0.9
        assert reply.server_s < reply.total_s
        assert abs(reply.upload_s + reply.server_s + reply.download_s - reply.total_s) < 1e-9
    finally:
        thread.stop()


def test_serve_cloud_loads_a_saved_cloud(tmp_path):
    original = make_cloud()
    original.save(tmp_path / "cloud.npz")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    cloud, origin = load_cloud(parser.parse_args(["serve-cloud", "--model", str(tmp_path / "cloud.npz")]))
    assert origin == {"source": str(tmp_path / "cloud.npz")} and cloud.input_shape == (1, 28, 28)
    for (name, a), (_, b) in zip(original.model.named_params(), cloud.model.named_params()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_client_against_the_cloud_alone_over_a_custom_link(cloud, capsys):
    _, url = cloud
    code = cli_main(["client", "--cloud", url, "--token", TOKEN, "--images", "2", "--sizes", "4",
                 "--link", "custom", "--custom-link", "200,400,20", "--labeled", "60", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["reductions"] == []
    (row,) = result["summary"]
    assert (row["target"], row["requests"], row["errors"]) == ("cloud", 2, 0)
    assert row["upload_mean_s"] >= 0.010 + 4 / 200 * 0.9        # one-way 10 ms + 4 KiB at 200 KiB/s
    assert cli_main(["client", "--cloud", url, "--link", "custom", "--custom-link", "fast"]) == 2
    assert "--custom-link UP,DOWN,RTT" in capsys.readouterr().err


def test_each_edge_has_its_own_secret_and_may_act_only_as_itself():
    from cloudedge.server.cloud_server import CloudServer
    from test_server_support import make_cloud
    from cloudedge.policies.segmentation import segment
    edge_a, edge_b = "A-secret-123", "B-secret-456"
    server = CloudServer(make_cloud(), token=TOKEN, edge_tokens={"a": edge_a, "b": edge_b})
    images, _ = digits(2)
    objects = segment(images[:, None].astype(np.float32) / 255)
    message = wire.encode_objects(np.array([1, 2]), objects)

    def label(token, edge):
        return httpclient.call(thread.url, "POST", "/label", message,
                               {"Content-Type": payload.OBJECTS, "X-Edge-Id": edge}, token=token)
    with ServerThread(Server(server.app, "127.0.0.1", 0)) as thread:
        assert label(edge_a, "a").status == 200
        with pytest.raises(httpclient.StatusError) as exc:
            label(edge_a, "b")                                       # a's secret, b's name
        assert "another edge" in assert_json_error(exc, 403)
        with pytest.raises(httpclient.StatusError) as exc:
            label(TOKEN, "a")                                        # a device's token
        assert "may not use this route" in assert_json_error(exc, 403)
        with pytest.raises(httpclient.StatusError) as exc:
            httpclient.call(thread.url, "GET", "/layers?m=3", token=TOKEN)
        assert_json_error(exc, 403)
        assert httpclient.call(thread.url, "GET", "/layers?m=3", token=edge_b).status == 200
        assert post_image(thread.url, images[0]).status == 200       # devices still infer
    with pytest.raises(ValueError, match="its own secret"):
        CloudServer(make_cloud(), token=TOKEN, edge_tokens={"a": TOKEN})


def test_serve_cloud_reads_edge_tokens_and_refuses_a_bad_file(tmp_path, capsys):
    from cloudedge.commands.serve_cloud import read_edge_tokens
    good = tmp_path / "edges.json"
    good.write_text(json.dumps({"e1": "x" * 12}))
    good.chmod(0o644)
    assert read_edge_tokens(str(good)) == {"e1": "x" * 12}
    assert "readable by other users" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"e1": "short"}))
    with pytest.raises(ValueError, match="secret of >= 8 characters"):
        read_edge_tokens(str(bad))
