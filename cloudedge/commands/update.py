"""`cloudedge update`: stream uploads into a saved edge, sync, maybe retrain (Alg. 2, step by step)."""
import json
import time
from pathlib import Path

from tinycnn.atomic import atomic_write

from ..system import edge_files
from ..system.cloud import Cloud
from ..system.data import load_dataset
from ._common import add_common, engine_threads, dump
from .init_edge import STREAM_FILE


def register(subparsers):
    p = subparsers.add_parser("update", help="upload images to a saved edge, sync with the cloud, retrain (Alg. 2)",
                              description="Users upload the next --uploads images of the edge's stream; the "
                                          "edge answers and buffers them, syncs with the cloud if --load is "
                                          "below its threshold, and retrains when its trigger fires "
                                          "(--retrain force: always, never: not at all).")
    add_common(p, dataset=False)
    p.add_argument("--edge", required=True, help="folder written by init-edge")
    p.add_argument("--uploads", type=int, default=120)
    p.add_argument("--load", type=float, default=0.0, help="core-network load now, in [0, 1] (default 0)")
    p.add_argument("--retrain", choices=("auto", "force", "never"), default="auto")
    p.set_defaults(func=run)


def run(args):
    start = time.perf_counter()
    folder = Path(args.edge)
    stream = json.loads((folder / STREAM_FILE).read_text())
    cloud = Cloud.load(stream["cloud"])
    edge = edge_files.load(folder)
    x_train, _, x_test, y_test = load_dataset(stream["dataset"], progress=not args.quiet)
    ids = stream["stream"][stream["cursor"]:stream["cursor"] + args.uploads]
    if args.uploads and not ids:
        raise ValueError(f"the edge's stream is exhausted ({len(stream['stream'])} images uploaded)")
    with engine_threads(args.threads):
        if ids:
            edge.submit(x_train[ids], ids)
        sync = edge.sync(cloud, args.load)
        row = {"auto": edge.maybe_retrain, "force": edge.retrain, "never": lambda: None}[args.retrain]()
        acc = edge.evaluate(x_test, y_test)
    stream["cursor"] += len(ids)
    edge_files.save(edge, folder)
    with atomic_write(folder / STREAM_FILE) as f:
        f.write(json.dumps(stream).encode())
    out = {"edge": edge.name, "uploaded_by_users": len(ids), "sync": sync,
           "retrained": row is not None, "n_samples": edge.summary()["n_samples"], "accuracy": acc,
           "buffered": edge.buffered, "seconds": time.perf_counter() - start}
    if args.json:
        print(dump(out))
    else:
        what = f"retrained on {out['n_samples']} images" if row else "no retraining"
        skipped = f" ({sync['skipped']})" if sync["skipped"] else ""
        print(f"{edge.name}: {len(ids)} uploads; sync: {sync['uploaded']} sent{skipped}, "
              f"{sync['kept']} labels kept; {what}; test accuracy {100 * acc:.2f}%; {edge.buffered} buffered")
    return 0
