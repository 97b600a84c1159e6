"""The framework's API in a few lines: one cloud, one EdgeCNN1-3, both phases, on embedded MNIST.

    python examples/cloudedge_walkthrough.py [--cloud-epochs 2]

CloudCNN (laptop preset) trains on the cloud's 6,000 digits, ships its 3 lower conv layers;
the edge trains on 120 labeled digits (Algorithm 1), answers 480 uploads, syncs them while
the core network is idle, and retrains every 120 new labels (Algorithm 2).
"""
import argparse

from cloudedge import Cloud, Edge, EdgeConfig
from cloudedge.system.data import edge_data, split_cloud_edges
from cloudedge.threads import engine_threads
from tinycnn.datasets import load_mnist_sample
from tinycnn.train import TrainConfig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cloud-epochs", type=int, default=2)
    args = parser.parse_args()
    x, y = load_mnist_sample("train")                       # (8000, 1, 28, 28) float32, (8000,) int64
    x_test, y_test = load_mnist_sample("test")              # used only to measure
    cloud_ids, pool = split_cloud_edges(y, 0.75, seed=0)    # disjoint: cloud part, edge pool
    share = edge_data(y, pool, n_labeled=120, seed=0)       # the edge's labeled ids and upload stream

    with engine_threads(1):
        cloud = Cloud.train(x[cloud_ids], y[cloud_ids], preset="laptop",
                            config=TrainConfig(max_epochs=args.cloud_epochs, progress=True))
        print(f"CloudCNN test accuracy {cloud.evaluate(x_test, y_test):.4f}")

        edge = Edge("edge-1", EdgeConfig(depth=3, shared=True))     # EdgeCNN1-3
        edge.receive_package(cloud.export_layers(3))                # verified, copied, frozen
        edge.initialize(x[share.labeled], y[share.labeled], ids=share.labeled)
        print(f"after Alg. 1 on 120 images: {edge.evaluate(x_test, y_test):.4f}")

        for tick, start in enumerate(range(0, 480, 60)):
            ids = share.stream[start:start + 60]
            edge.submit(x[ids], ids)                                # segment, answer, buffer
            load = 0.8 if tick % 2 == 0 else 0.1                    # busy, idle, busy, ...
            edge.sync(cloud, load)                                  # uploads only when idle
            row = edge.maybe_retrain()                              # every 120 new labels
            if row:
                print(f"tick {tick}: retrained on {row['n_samples']} images -> "
                      f"{edge.evaluate(x_test, y_test):.4f} ({row['train_seconds']:.1f} s)")
    print({k: getattr(edge.stats, k) for k in ("bytes_up", "raw_bytes_up", "bytes_down", "syncs", "syncs_skipped")})


if __name__ == "__main__":
    main()
