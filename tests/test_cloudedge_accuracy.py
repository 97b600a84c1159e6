"""The paper's headline on the embedded MNIST split: with CloudCNN's 3 lower layers, EdgeCNN1-3
beats EdgeCNN0-3 trained from scratch on N = 120 labeled images (Table 2, first column).

Seeded: CloudCNN (laptop preset) is trained for 2 epochs on the cloud's 6,000 digits within
this test (~45 s on 2 cores, one BLAS thread); five edges, each with its own 120 labeled digits
and init seed.
"""
import numpy as np
import pytest

from cloudedge.cloud import Cloud
from cloudedge.data import edge_data, split_cloud_edges
from cloudedge.edge import Edge, EdgeConfig
from tinycnn.datasets import load_mnist_sample
from tinycnn.train import TrainConfig
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def trained():
    x, y = load_mnist_sample("train")
    xt, yt = load_mnist_sample("test")
    cloud_ids, pool = split_cloud_edges(y, 0.75, 0)
    cloud = Cloud.train(x[cloud_ids], y[cloud_ids], preset="laptop",
                        config=TrainConfig(max_epochs=2, progress=False), seed=0)
    return cloud, (x, y, xt, yt), pool


def test_edgecnn1_3_beats_edgecnn0_3_at_120_images(trained):
    cloud, (x, y, xt, yt), pool = trained
    assert cloud.evaluate(xt, yt) > 0.9
    acc = []
    for seed in range(5):
        share = edge_data(y, pool, 120, seed=seed)
        row = []
        for shared in (False, True):
            edge = Edge(f"EdgeCNN{int(shared)}-3", EdgeConfig(depth=3, shared=shared, seed=seed))
            if shared:
                edge.receive_package(cloud.export_layers(3))
            edge.initialize(x[share.labeled], y[share.labeled], ids=share.labeled)
            row.append(edge.evaluate(xt, yt))
        acc.append(row)
    acc = np.array(acc)                      # (seed, [EdgeCNN0-3, EdgeCNN1-3])
    assert (acc[:, 1] > acc[:, 0]).sum() >= 4, acc
    assert acc[:, 1].mean() > acc[:, 0].mean() + 0.02, acc
