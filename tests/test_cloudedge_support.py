"""Helpers for the cloudedge tests (no tests here): tiny models, small data, recording clouds,
and ``one_blas_thread``, an autouse fixture each cloudedge test module imports."""
import numpy as np
import pytest

from cloudedge.system.cloud import Cloud
from cloudedge.system.config import EdgeConfig, edge_train_config
from cloudedge.system.edge import Edge
from cloudedge.system.models import cloud_cnn
from cloudedge.threads import engine_threads
from tinycnn.datasets import load_mnist_sample

SHAPE = (1, 28, 28)


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """One BLAS thread: on shared cores OpenBLAS's spinning threads made these tests ~5x slower."""
    with engine_threads(1):
        yield


def tiny_cloud(seed=0, shape=SHAPE, sharpen=300.0):
    """An untrained CloudCNN of the "tiny" preset (mechanics, not accuracy), its last layer
    scaled by ``sharpen`` so its softmax is confident (otherwise it is ~uniform)."""
    model = cloud_cnn(shape, preset="tiny", seed=seed)
    model[-1].params["W"] *= np.float32(sharpen)
    return Cloud(model, shape)


def mnist(n=400, split="train"):
    """The first n digits of the embedded sample's split: x (n, 1, 28, 28) float32, y (n,)."""
    x, y = load_mnist_sample(split)
    return x[:n], y[:n]


def tiny_edge(name="e", shared=True, epochs=2, trigger="every:60", policy="trust-all", seed=0, **kw):
    cfg = EdgeConfig(depth=3, shared=shared, preset="tiny", train=edge_train_config(max_epochs=epochs),
                     seed=seed, **kw)
    return Edge(name, cfg, policy, trigger)


class RecordingCloud:
    """Wraps a Cloud; keeps every message in and out, to compare with the counters."""

    def __init__(self, cloud):
        self.cloud, self.sent, self.received = cloud, [], []

    def handle(self, message, probs=False, temperature=1.0):
        self.received.append(message)
        reply = self.cloud.handle(message, probs=probs, temperature=temperature)
        self.sent.append(reply)
        return reply


def params_equal(a, b):
    """True if two Sequentials (or slices) have bit-identical parameters."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)
