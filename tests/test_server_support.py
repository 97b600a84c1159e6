"""Helpers for the networked-prototype tests (no tests here): real servers on 127.0.0.1,
ephemeral ports, bounded waits, always stopped."""
import json
import os
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from cloudedge.system.cloud import Cloud
from cloudedge.system.models import cloud_cnn
from cloudedge.server import httpclient, payload
from cloudedge.server.cloud_server import CloudServer
from cloudedge.server.http import Server, ServerThread

TOKEN = "test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parents[1]
INPUT = (1, 28, 28)


def make_cloud():
    """An untrained laptop CloudCNN (seeded): the transport does not care what it answers."""
    return Cloud(cloud_cnn(INPUT, preset="laptop", seed=0), INPUT)


def start_cloud(port=0, shape=None, max_body=16 * 1024 * 1024, max_connections=64):
    """(CloudServer, running ServerThread) on 127.0.0.1; stop it with thread.stop()."""
    server = CloudServer(make_cloud(), token=TOKEN, max_body=max_body)
    thread = ServerThread(Server(server.app, "127.0.0.1", port, shape=shape,
                                 max_connections=max_connections)).start()
    return server, thread


@lru_cache(maxsize=1)
def _stream():
    from cloudedge.commands.client import stream_digits
    return stream_digits("mnist", 60, 0, 0, 64)


def digits(n, start=0):
    """n (28, 28) uint8 digits from the edge's upload stream, and their labels."""
    d, y = _stream()
    return d[start:start + n], y[start:start + n]


def post_image(url, image, token=TOKEN, shape=None, timeout=30.0):
    body, headers = payload.encode_images(image)
    return httpclient.call(url, "POST", "/infer", body, headers, token=token, shape=shape, timeout=timeout)


def get_metrics(url):
    return httpclient.call(url, "GET", "/metrics", token=TOKEN, timeout=10.0).json()


def wait_for(predicate, timeout, what, interval=0.1):
    """Poll predicate() until it returns a truthy value; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value {last!r}")


class EdgeProcess:
    """`cloudedge serve-edge` in a subprocess, on 127.0.0.1 with an ephemeral port."""

    FAST = ("--labeled", "60", "--max-epochs", "1", "--eval-images", "0", "--upload-interval", "0.1",
            "--cloud-wait", "20")

    def __init__(self, cloud_url, state_dir, logs, *extra):
        self.ready = Path(logs) / f"edge-{time.monotonic_ns()}.url"
        self.out_path = self.ready.with_suffix(".out")
        self.err_path = self.ready.with_suffix(".err")
        args = [sys.executable, "-m", "cloudedge.cli", "serve-edge", "--host", "127.0.0.1", "--port", "0",
                "--cloud", cloud_url, "--state-dir", str(state_dir), "--ready-file", str(self.ready),
                "--json", *self.FAST, *extra]
        env = {**os.environ, "CLOUDEDGE_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:   # the child keeps its copies
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=REPO)
        self.url = None

    def wait_ready(self, timeout=90.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"edge exited with {self.proc.returncode}: {self.stderr()[-2000:]}")
            return self.ready.exists() and self.ready.read_text()
        self.url = wait_for(ready, timeout, "the edge to listen", interval=0.2)
        return self

    def stderr(self):
        return self.err_path.read_text()

    def events(self):
        return [json.loads(line) for line in self.out_path.read_text().splitlines() if line.strip()]

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout=30.0):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def labeled_ids(state_dir):
    return sorted(int(p.stem) for p in (Path(state_dir) / "objects" / "labeled").glob("*.npz"))


def pending_ids(state_dir):
    return sorted(int(p.stem) for p in (Path(state_dir) / "objects" / "pending").glob("*.npz"))


def assert_json_error(exc_info, status):
    """A StatusError with this status whose body was a JSON error, never a traceback."""
    err = exc_info.value
    assert err.status == status, f"expected HTTP {status}, got {err.status}: {err.message}"
    assert isinstance(err.message, str) and err.message
    assert "Traceback" not in err.message
    return err.message


def gray(n=1, side=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side, 1), dtype=np.uint8)
