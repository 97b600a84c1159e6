"""`cloudedge init-edge`: Algorithm 1 for one edge, saved to a folder (step-by-step use)."""
import json
import time
from pathlib import Path

from tinycnn.atomic import atomic_write

from ..system import edge_files
from ..system.cloud import Cloud
from ..system.config import EdgeConfig, RunConfig
from ..system.data import edge_data, load_dataset, split_cloud_edges
from ..system.edge import Edge
from ._common import add_common, engine_threads, dump

STREAM_FILE = "stream.json"


def register(subparsers):
    p = subparsers.add_parser("init-edge", help="initialise an edge from a saved CloudCNN (Alg. 1)",
                              description="Build EdgeCNN1-K (CloudCNN's K lower layers, frozen) or, with "
                                          "--scratch, EdgeCNN0-K; train it on N labeled images of the edge "
                                          "pool (the train split minus the cloud's part); save it to --out.")
    add_common(p, dataset=False)
    p.add_argument("--cloud", required=True, help="CloudCNN .npz written by train-cloud")
    p.add_argument("--out", required=True, help="folder for the edge's state")
    p.add_argument("--depth", type=int, default=EdgeConfig.depth)
    p.add_argument("--labeled", type=int, default=RunConfig.labeled)
    p.add_argument("--scratch", action="store_true", help="EdgeCNN0: no shared layers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-policy", default=RunConfig.label_policy)
    p.add_argument("--trigger", default=f"every:{RunConfig.step}")
    p.add_argument("--load-threshold", type=float, default=EdgeConfig.load_threshold)
    p.set_defaults(func=run)


def run(args):
    start = time.perf_counter()
    cloud = Cloud.load(args.cloud)
    info = cloud.info
    for key in ("dataset", "cloud_fraction", "seed", "preset", "pool_stride"):
        if key not in info:
            raise ValueError(f"{args.cloud}.json lacks {key!r}; write the cloud with `cloudedge train-cloud`")
    x_train, y_train, x_test, y_test = load_dataset(info["dataset"], progress=not args.quiet)
    _, pool = split_cloud_edges(y_train, info["cloud_fraction"], info["seed"])
    share = edge_data(y_train, pool, args.labeled, seed=args.seed)
    config = EdgeConfig(depth=args.depth, shared=not args.scratch, input_shape=cloud.input_shape,
                        preset=info["preset"], pool_stride=info["pool_stride"], num_classes=cloud.num_classes,
                        load_threshold=args.load_threshold, seed=args.seed)
    edge = Edge(f"EdgeCNN{int(not args.scratch)}-{args.depth}", config, args.label_policy, args.trigger,
                cloud.segmenter)
    with engine_threads(args.threads):
        if config.shared:
            edge.receive_package(cloud.export_layers(args.depth))
        row = edge.initialize(x_train[share.labeled], y_train[share.labeled], ids=share.labeled)
        acc = edge.evaluate(x_test, y_test)
    edge_files.save(edge, args.out)
    stream = {"cloud": str(Path(args.cloud).resolve()), "dataset": info["dataset"],
              "stream": share.stream.tolist(), "cursor": 0}
    with atomic_write(Path(args.out) / STREAM_FILE) as f:
        f.write(json.dumps(stream).encode())
    out = {"edge": edge.name, "out": str(args.out), "n_labeled": args.labeled, "accuracy": acc,
           "train_seconds": row["train_seconds"], "bytes_down": edge.stats.bytes_down,
           "seconds": time.perf_counter() - start}
    print(dump(out) if args.json else
          f"{edge.name} initialised on {args.labeled} labeled images: test accuracy {100 * acc:.2f}%; "
          f"received {edge.stats.bytes_down:,} bytes of layers; saved to {args.out}")
    return 0
