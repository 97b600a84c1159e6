"""Downloads against a real HTTP server on 127.0.0.1 (port chosen by the OS)."""
from __future__ import annotations

import functools
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from conftest_datasets import (  # noqa: F401  (isolated_data_env is an autouse fixture)
    DEAD_MIRROR,
    files_under,
    isolated_data_env,
    sha,
    small_mnist,
    write_mnist_split,
)

from tinycnn import datasets as ds
from tinycnn.datasets import download as download_module

TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")


class _Handler(SimpleHTTPRequestHandler):
    """Static files, plus /flaky/* -> 503 and /short/* -> body shorter than Content-Length."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.counts[self.path] += 1
        if self.path.startswith("/flaky/"):
            self.send_error(503, "Service Unavailable")
        elif self.path.startswith("/short/"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + bytes(8))
            self.close_connection = True
        else:
            super().do_GET()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, request Counter, good train sums) for a server over a tmp folder."""
    root = tmp_path_factory.mktemp("mirror")
    good = write_mnist_split(root / "good" / "mnist", "train", n=20, seed=1)
    write_mnist_split(root / "badsum" / "mnist", "train", n=20, seed=2)  # other content
    trunc = root / "trunc" / "mnist"
    trunc.mkdir(parents=True)
    for name in TRAIN:
        data = (root / "good" / "mnist" / name).read_bytes()
        (trunc / name).write_bytes(data[: len(data) // 2])
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.daemon_threads = True
    server.counts = Counter()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.counts, good
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive(), "HTTP server thread did not stop"


@pytest.fixture
def server(served):
    url, counts, good = served
    counts.clear()
    return url, counts, good


def fast(mirror=None, attempts=3, backoff=0.0):
    """Download options for the local test server: no progress bar, a 5 s timeout."""
    return ds.DownloadOptions(mirror=mirror, progress=False, attempts=attempts, timeout=5.0, backoff=backoff)


def test_good_file_cached_and_loaded(server):
    cache = ds.cache_root()
    url, counts, good = server
    x, y = ds.load_mnist("train", checksums=good, options=fast(f"{url}/good"))
    images, labels = small_mnist(20, seed=1)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(x[:, 0], images / np.float32(255))
    cached = files_under(cache)
    assert [p.name for p in cached] == sorted(TRAIN)  # no temp files left
    assert all(sha(p.read_bytes()) == good[p.name] for p in cached)
    assert sum(counts.values()) == 2
    # Second load: from the cache, no request even though the mirror is dead.
    x2, _ = ds.load_mnist("train", checksums=good, options=fast(DEAD_MIRROR))
    np.testing.assert_array_equal(x, x2)
    assert sum(counts.values()) == 2


def test_progress_bar_path(server):
    url, _, good = server
    x, _ = ds.load_mnist("train", checksums=good, options=ds.DownloadOptions(mirror=f"{url}/good", backoff=0.0))
    assert x.shape == (20, 1, 28, 28)


def test_env_mirror(server, monkeypatch):
    url, counts, good = server
    monkeypatch.setenv("TINYCNN_MIRROR", f"{url}/good")
    x, _ = ds.load_mnist("train", checksums=good, options=fast())
    assert x.shape == (20, 1, 28, 28)
    assert counts[f"/good/mnist/{TRAIN[0]}"] == 1


@pytest.mark.parametrize("where", ["badsum", "trunc"])
def test_bad_checksum_leaves_nothing(server, where):
    cache = ds.cache_root()
    url, counts, good = server
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: downloaded from .*checksum "
                       r"mismatch: expected SHA-256 " + good[TRAIN[0]]):
        ds.load_mnist("train", checksums=good, options=fast(f"{url}/{where}"))
    assert files_under(cache) == []
    assert counts[f"/{where}/mnist/{TRAIN[0]}"] == 1  # a mismatch is not retried


def test_404_gives_not_found_listing_places(server, tmp_path):
    cache = ds.cache_root()
    url, counts, good = server
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_mnist("train", data_dir=tmp_path / "mine", checksums=good, options=fast(f"{url}/missing"))
    msg = str(info.value)
    assert f"{url}/missing/mnist/{TRAIN[0]}: HTTP 404" in msg
    assert str(tmp_path / "mine") in msg and str(cache / "mnist") in msg
    assert "To provide it offline" in msg
    assert counts[f"/missing/mnist/{TRAIN[0]}"] == 1  # 404 is final: no retry
    assert files_under(cache) == []


def test_retries_are_bounded_with_backoff(server, monkeypatch):
    cache = ds.cache_root()
    url, counts, good = server
    sleeps = []
    monkeypatch.setattr(download_module.time, "sleep", sleeps.append)
    with pytest.raises(ds.DatasetNotFoundError, match=r"HTTP 503 Service Unavailable \(3 attempts\)"):
        ds.load_mnist("train", checksums=good, options=fast(f"{url}/flaky", backoff=0.5))
    assert counts[f"/flaky/mnist/{TRAIN[0]}"] == 3
    assert sleeps == [0.5, 1.0]
    assert files_under(cache) == []


def test_incomplete_body_retried_then_reported(server):
    cache = ds.cache_root()
    url, counts, good = server
    with pytest.raises(ds.DatasetNotFoundError, match=r"body ended after 10 of 1000 bytes \(2 attempts\)"):
        ds.load_mnist("train", checksums=good, options=fast(f"{url}/short", attempts=2))
    assert counts[f"/short/mnist/{TRAIN[0]}"] == 2
    assert files_under(cache) == []


def test_falls_back_to_next_mirror(server):
    url, counts, good = server
    x, _ = ds.load_mnist("train", checksums=good, options=fast([f"{url}/missing", f"{url}/good"]))
    assert x.shape == (20, 1, 28, 28)
    assert counts[f"/missing/mnist/{TRAIN[0]}"] == 1 and counts[f"/good/mnist/{TRAIN[0]}"] == 1


def test_connection_refused_is_reported():
    with pytest.raises(ds.DatasetNotFoundError, match=r"127\.0\.0\.1:9/mnist/.*ConnectionRefusedError"):
        ds.load_mnist("train", options=fast(attempts=2))


def test_download_file_direct(server, tmp_path):
    url, _, good = server
    name = TRAIN[0]
    dest = tmp_path / "d" / name
    assert ds.download_file(f"{url}/good/mnist/{name}", dest, good[name], progress=False) == dest
    assert sha(dest.read_bytes()) == good[name]
    # A bad download never replaces an existing good file.
    with pytest.raises(ValueError, match="the download was discarded"):
        ds.download_file(f"{url}/badsum/mnist/{name}", dest, good[name], progress=False)
    assert sha(dest.read_bytes()) == good[name]
    assert [p.name for p in files_under(tmp_path / "d")] == [name]
    with pytest.raises(ValueError, match="attempts: expected >= 1"):
        ds.download_file(f"{url}/good/mnist/{name}", dest, good[name], attempts=0)


def test_bad_checksum_table_entry_rejected():
    with pytest.raises(ValueError, match="expected 64 lower-case hex digits"):
        ds.load_mnist("train", checksums={TRAIN[0]: "abc"})
