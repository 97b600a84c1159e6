"""GET /metrics in the Prometheus text format: valid by the official client's parser, and the
same values as the JSON metrics. Servers in this process on 127.0.0.1, ephemeral ports."""
import argparse
import math

import numpy as np
import pytest
from test_server_support import TOKEN, EdgeProcess, digits, post_image, start_cloud

from cloudedge.system import wire
from cloudedge.commands.serve_edge import build_runtime, register
from cloudedge.policies.segmentation import Segmenter
from cloudedge.server import httpclient, prometheus
from cloudedge.server.edge_server import EdgeServer
from cloudedge.server.http import Server, ServerThread
from cloudedge.server.imaging import to_float
from cloudedge.server.remote import RemoteCloud

parser = pytest.importorskip("prometheus_client.parser")   # the test-only dependency

SCRAPE_ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"


def scrape(url, accept="text/plain"):
    """(JSON metrics, its body length, {family name: parsed family}) read one after the other."""
    plain = httpclient.call(url, "GET", "/metrics", token=TOKEN, timeout=10.0)
    reply = httpclient.call(url, "GET", "/metrics", headers={"Accept": accept}, token=TOKEN, timeout=10.0)
    assert reply.headers["content-type"] == prometheus.CONTENT_TYPE
    families = {f.name: f for f in parser.text_string_to_metric_families(reply.body.decode())}
    return plain.json(), len(plain.body), families


def samples(family, suffix=""):
    """{frozenset(labels): value} of one sample name of a parsed family."""
    return {frozenset(s.labels.items()): s.value for s in family.samples if s.name == family.name + suffix}


def check_request_metrics(snap, json_bytes, families):
    """The HTTP layer's metrics agree with the JSON snapshot taken just before (which the
    text scrape saw as one more GET /metrics of json_bytes)."""
    requests = samples(families["cloudedge_requests"], "_total")
    expected = {frozenset({"method": r.split()[0], "path": r.split()[1], "status": s}.items()): n
                for r, by in snap["requests"].items() for s, n in by.items()}
    expected[frozenset({"method": "GET", "path": "/metrics", "status": "200"}.items())] = \
        snap["requests"].get("GET /metrics", {}).get("200", 0) + 1
    assert requests == expected
    hist = families["cloudedge_request_seconds"]
    assert hist.type == "histogram"
    counts = samples(hist, "_count")
    for route, by in snap["requests"].items():
        method, path = route.split()
        labels = {"method": method, "path": path}
        n = sum(by.values()) + (route == "GET /metrics")
        assert counts[frozenset(labels.items())] == n == snap["latency"][route]["count"] + (route == "GET /metrics")
        buckets = sorted(((float(s.labels["le"]), s.value) for s in hist.samples if s.name.endswith("_bucket")
                          and {k: v for k, v in s.labels.items() if k != "le"} == labels))
        assert buckets[-1] == (math.inf, n) and all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    assert samples(families["cloudedge_request_body_bytes"], "_total")[frozenset()] == snap["bytes_in"]
    assert samples(families["cloudedge_response_body_bytes"], "_total")[frozenset()] == snap["bytes_out"] + json_bytes
    for name, value in snap["counters"].items():
        assert samples(families[f"cloudedge_{name}"], "_total")[frozenset()] == value
    assert 0 < samples(families["cloudedge_uptime_seconds"])[frozenset()] < 3600


def test_the_cloud_speaks_prometheus_and_agrees_with_its_json():
    server, thread = start_cloud()
    try:
        for image in digits(3)[0]:
            post_image(thread.url, image)
        with pytest.raises(httpclient.StatusError):
            httpclient.call(thread.url, "GET", "/nowhere", token=TOKEN)
        remote = RemoteCloud(thread.url, TOKEN, "edge-1")
        x = to_float(digits(4)[0][:, None])                                  # (4, 1, 28, 28)
        message = wire.encode_objects(np.arange(4), Segmenter().segment(x))
        remote.label(message)
        remote.label(message)                                                # answered from memory
        snap, json_bytes, families = scrape(thread.url, SCRAPE_ACCEPT)
        check_request_metrics(snap, json_bytes, families)
        assert snap["counters"]["objects_labeled"] == 4 and snap["counters"]["objects_relabel_avoided"] == 4
        label = families["cloudedge_label_seconds"]
        assert label.type == "histogram"
        assert samples(label, "_count")[frozenset()] == snap["cloud"]["messages_in"] == 1
        assert 0 < snap["cloud"]["label_seconds"] <= samples(label, "_sum")[frozenset()]
        # JSON stays the default: no Accept, */*, or JSON preferred
        for accept in (None, "*/*", "application/json", "application/json, text/plain;q=0.5"):
            headers = {"Accept": accept} if accept else {}
            reply = httpclient.call(thread.url, "GET", "/metrics", headers=headers, token=TOKEN, timeout=10.0)
            assert reply.headers["content-type"] == "application/json" and "requests" in reply.json()
    finally:
        thread.stop()


def test_the_edge_speaks_prometheus_and_agrees_with_its_json(tmp_path):
    _, cloud = start_cloud()
    edge_thread = None
    try:
        p = argparse.ArgumentParser()
        register(p.add_subparsers())
        args = p.parse_args(["serve-edge", "--cloud", cloud.url, "--state-dir", str(tmp_path), *EdgeProcess.FAST,
                             "--retrain", "every:4"])
        runtime = build_runtime(args, TOKEN)[0].start(wait_for_cloud=10)
        edge = EdgeServer(runtime, token=TOKEN)
        edge_thread = ServerThread(Server(edge.app, "127.0.0.1", 0)).start()
        for image in digits(5)[0]:
            post_image(edge_thread.url, image)
        reply = httpclient.call(edge_thread.url, "POST", "/sync?force=1", token=TOKEN, timeout=60.0).json()
        assert reply["uploaded"] == 5 and reply["retrained"]
        snap, json_bytes, families = scrape(edge_thread.url)
        check_request_metrics(snap, json_bytes, families)
        status, store = snap["edge"]["status"], snap["edge"]["store"]
        assert samples(families["cloudedge_uploads"], "_total")[frozenset()] == status["uploaded"] == 5
        upload = families["cloudedge_upload_seconds"]
        assert upload.type == "histogram" and samples(upload, "_count")[frozenset()] == status["syncs"] == 1
        assert samples(families["cloudedge_trainings"], "_total")[frozenset()] == status["trainings_total"] == 2
        assert samples(families["cloudedge_model_version"])[frozenset()] == snap["edge"]["model_version"] == 2
        assert samples(families["cloudedge_store_objects"]) == {
            frozenset({"state": k}.items()): store[k] for k in ("pending", "labeled", "quarantined", "missing")}
        assert store["labeled"] == 5
        assert samples(families["cloudedge_degraded"])[frozenset()] == 0
        assert snap["counters"]["images_inferred"] == 5
    finally:
        if edge_thread is not None:
            edge_thread.stop()
        cloud.stop()


def test_exposition_escapes_label_values_and_writes_special_numbers():
    hist = prometheus.Histogram(buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7.0):
        hist.observe(value)
    text = prometheus.render([
        prometheus.Family("x_total", "counter", "A help line with a \\ backslash\nand a newline.",
                          [({"path": 'a "quoted" \\ path\nwith a newline'}, np.int64(3))]),
        prometheus.Family("y", "gauge", "Special values.", [({"v": "inf"}, math.inf), ({"v": "nan"}, math.nan)]),
        prometheus.Family("z_seconds", "histogram", "A histogram.", [({}, hist)]),
    ])
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    assert samples(families["x"], "_total") == {frozenset({"path": 'a "quoted" \\ path\nwith a newline'}.items()): 3}
    assert families["x"].documentation == "A help line with a \\ backslash\nand a newline."
    y = samples(families["y"])
    assert y[frozenset({"v": "inf"}.items())] == math.inf and math.isnan(y[frozenset({"v": "nan"}.items())])
    z = families["z_seconds"]
    assert [(s.labels["le"], s.value) for s in z.samples if s.name == "z_seconds_bucket"] == [
        ("0.1", 2), ("1.0", 3), ("+Inf", 4)]                                 # le bounds are inclusive
    assert samples(z, "_sum")[frozenset()] == 7.65 and samples(z, "_count")[frozenset()] == 4
    with pytest.raises(ValueError, match="metric name"):
        prometheus.render([prometheus.Family("bad name", "counter", "", [])])
    with pytest.raises(ValueError, match="label name"):
        prometheus.render([prometheus.Family("ok", "gauge", "", [({"bad-label": "v"}, 1)])])


@pytest.mark.parametrize("accept, text", [
    ("text/plain", True), (SCRAPE_ACCEPT, True), ("text/plain;version=0.0.4", True), ("", False),
    ("*/*", False), ("application/json", False), ("application/json, text/plain;q=0.5", False),
    ("text/plain;q=0", False), ("text/plain, application/json", True)])
def test_text_is_chosen_only_when_accept_asks_for_it(accept, text):
    assert prometheus.wants_text(accept) == text
