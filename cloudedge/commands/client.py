"""`cloudedge client`: a mobile-device load generator against an edge and/or a cloud server
(see cloudedge/server/client.py, docs/prototype.md)."""
import json
import os

import numpy as np

from ..server import client, process
from ..server.shaping import Shape
from ..system.config import RunConfig
from ..system.data import edge_data, load_dataset, split_cloud_edges
from ..timing.network import edge_path

PAPER_SIZES_K = (60, 124, 256, 512, 1024, 2048, 4096)
# Section 4.2.2: EdgeCNN1-3 vs CloudCNN mean response / upload time reductions.
PAPER_REDUCTIONS = {"lte": {"response_60K": 0.5508, "upload_512K": 0.5542}, "wifi": {"response": 0.4026}}


def register(subparsers):
    p = subparsers.add_parser(
        "client", help="mobile-device load generator: upload real images, measure response times",
        description="Uploads digits from the edge's upload stream, scaled to --sizes KiB, to the edge "
                    "and/or the cloud over an emulated access link; prints percentiles; writes CSV and PNG.")
    p.add_argument("--edge", default=None, help="edge server base URL")
    p.add_argument("--cloud", default=None, help="cloud server base URL (the cloud-only scheme)")
    p.add_argument("--images", type=int, default=20, help="images per size and target (default 20)")
    p.add_argument("--sizes", default="60", help="image sizes in KiB, comma-separated (default 60; "
                                                 "'paper' = 60,124,256,512,1024,2048,4096)")
    p.add_argument("--link", default="none", choices=["none", "lte", "wifi", "5g", "custom"],
                   help="emulated access link of the device (cloudedge.timing.network presets; default none)")
    p.add_argument("--custom-link", default=None, metavar="UP,DOWN,RTT", help="KiB/s, KiB/s, ms for --link custom")
    p.add_argument("--concurrency", type=int, default=1, help="devices sending at once (default 1)")
    p.add_argument("--token", default=None, help=f"bearer token (default: ${process.TOKEN_ENV})")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--labeled", type=int, default=120, help="the edge's N, to draw from its upload stream")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", type=int, default=0, help="start this far into the upload stream")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    p.add_argument("--csv", default=None, help="write one row per request here")
    p.add_argument("--plot", default=None, help="write the response/upload-time figure (PNG) here")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def parse_sizes(text):
    if text == "paper":
        return list(PAPER_SIZES_K)
    try:
        sizes = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--sizes must be KiB values like 60,512 or 'paper', got {text!r}") from None
    if not sizes or min(sizes) <= 0:
        raise ValueError(f"--sizes must be positive, got {text!r}")
    return [int(s) if s == int(s) else s for s in sizes]


def stream_digits(dataset, labeled, seed, skip, count):
    """(count, H, W) uint8 digits from the edge's upload stream and their true labels."""

    x_train, y_train, _, _ = load_dataset(dataset)
    if x_train.shape[1] != 1:
        raise ValueError(f"the client sends grey digits scaled to RGB; dataset {dataset} has "
                         f"{x_train.shape[1]} channels")
    _, pool = split_cloud_edges(y_train, RunConfig().cloud_fraction, seed)
    stream = edge_data(y_train, pool, labeled, seed=seed).stream[skip:skip + count]
    if len(stream) < count:
        raise ValueError(f"the upload stream has {len(stream)} images after --skip {skip}, asked for {count}")
    digits = np.rint(x_train[stream, 0] * 255).astype(np.uint8)
    return digits, y_train[stream]


def run(args):
    targets = {name: url for name, url in (("edge", args.edge), ("cloud", args.cloud)) if url}
    if not targets:
        raise ValueError("give --edge URL, --cloud URL or both")
    if args.images < 1:
        raise ValueError(f"--images must be >= 1, got {args.images}")
    sizes = parse_sizes(args.sizes)
    access = process.parse_access(args.link, args.custom_link)
    shape = Shape.client_side(edge_path(access)) if access else None
    token = args.token or os.environ.get(process.TOKEN_ENV)
    digits, labels = stream_digits(args.dataset, args.labeled, args.seed, args.skip, args.images)
    started = client.timestamp()
    rows = client.run_load(targets, digits, labels, sizes, token, shape, args.concurrency, args.timeout)
    summary = client.summarize(rows)
    result = {"started": started, "targets": targets, "link": args.link,
              "shape": shape.describe() if shape else None, "images": args.images, "sizes_k": sizes,
              "concurrency": args.concurrency, "summary": summary, "reductions": client.reductions(summary),
              "paper": PAPER_REDUCTIONS.get(args.link)}
    if args.csv:
        client.write_csv(rows, args.csv)
        result["csv"] = args.csv
    if args.plot:
        from ..server.plots import plot_response
        title = f"measured: {args.link} link, {args.images} images per size, {client.timestamp()}"
        result["plot"] = plot_response(rows, args.plot, title)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 1 if any(s["errors"] for s in summary) else 0


def render(r):
    header = (f"{'target':<6} {'size':>6} {'n':>4} {'err':>4} {'acc':>6} {'mean s':>8} {'p50 s':>8} "
              f"{'p90 s':>8} {'p99 s':>8} {'upload':>8} {'server':>8}")
    lines = [f"link {r['link']}, {r['images']} images per size, concurrency {r['concurrency']}", header]
    for s in r["summary"]:
        if "total_mean_s" not in s:
            lines.append(f"{s['target']:<6} {s['size_k']:>5}K {s['requests']:>4} {s['errors']:>4}  (all failed)")
            continue
        lines.append(f"{s['target']:<6} {s['size_k']:>5}K {s['requests']:>4} {s['errors']:>4} "
                     f"{s['accuracy']:>6.1%} {s['total_mean_s']:>8.4f} {s['total_p50_s']:>8.4f} "
                     f"{s['total_p90_s']:>8.4f} {s['total_p99_s']:>8.4f} {s['upload_mean_s']:>8.4f} "
                     f"{s['server_mean_s']:>8.4f}")
    for red in r["reductions"]:
        lines.append(f"edge vs cloud at {red['size_k']}K: mean response time {-red['response_reduction']:+.1%}, "
                     f"mean upload time {-red['upload_reduction']:+.1%}")
    if r["paper"]:
        paper = ", ".join(f"{k} {-v:+.2%}" for k, v in r["paper"].items())
        lines.append(f"paper (Section 4.2.2, {r['link']}): {paper}")
    for key in ("csv", "plot"):
        if key in r:
            lines.append(f"{key}: {r[key]}")
    return "\n".join(lines)
