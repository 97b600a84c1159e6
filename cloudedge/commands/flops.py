"""`cloudedge flops MODEL`: per-layer MACs, FLOPs, params and memory (tinycnn.flops)."""
import json
import re

from tinycnn.flops import profile

from ..system.models import (
    EDGE_DEPTHS,
    PAPER_PLAN,
    PRESETS,
    cloud_cnn,
    edge_cnn,
    shared_prefix,
)

MODEL_HELP = f"cloudcnn or edgecnn-K (K in 1..{len(PAPER_PLAN)}; the paper uses {EDGE_DEPTHS})"


def build_model(name, input_shape, preset="paper", pool_stride=2, seed=0):
    """"cloudcnn" or "edgecnn-K" -> a Sequential for (C, H, W) inputs."""
    if name == "cloudcnn":
        return cloud_cnn(input_shape, preset=preset, pool_stride=pool_stride, seed=seed)
    match = re.fullmatch(r"edgecnn-(\d+)", name)
    if match is None:
        raise ValueError(f"MODEL must be {MODEL_HELP}, got {name!r}")
    return edge_cnn(int(match.group(1)), input_shape, preset=preset, pool_stride=pool_stride, seed=seed)


def conv_count(name):
    """Number of conv layers of "cloudcnn" / "edgecnn-K"."""
    return len(PAPER_PLAN) if name == "cloudcnn" else int(name.split("-")[1])


def parse_shape(text):
    """"C,H,W" -> (C, H, W) of positive ints."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"--input must be three positive ints C,H,W such as 1,28,28, got {text!r}")
    return shape


def register(subparsers):
    p = subparsers.add_parser(
        "flops", help="count MACs, FLOPs, params and activation memory per layer",
        description="Per-layer cost of CloudCNN / EdgeCNN-K, from the layers' shapes; "
                    "conventions in tinycnn/flops.py and docs/flops_and_timing.md.")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--input", default="1,28,28", help="per-sample input C,H,W (default 1,28,28)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    p.add_argument("--pool-stride", type=int, choices=(1, 2), default=2,
                   help="max-pool stride: 1 as the paper writes, 2 (default) as cloudedge.system.models builds")
    p.add_argument("--batch", type=int, default=1, help="samples per forward (default 1)")
    p.add_argument("--freeze", type=int, default=0, metavar="M",
                   help="count backward with the M lower conv layers frozen (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args):
    shape = parse_shape(args.input)
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    model = build_model(args.model, shape, args.preset, args.pool_stride)
    if not 0 <= args.freeze <= conv_count(args.model):
        raise ValueError(f"--freeze must be in 0..{conv_count(args.model)} for {args.model}, "
                         f"got {args.freeze}")
    report = profile(model, shape, batch=args.batch, frozen=shared_prefix(args.freeze))
    if args.json:
        out = {"model": args.model, "preset": args.preset, "pool_stride": args.pool_stride,
               "frozen_convs": args.freeze, **report.to_dict()}
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.model} ({args.preset} preset, pool stride {args.pool_stride})")
        print(report.table())
        t = report.totals
        print(f"paper formula (conv only): {t['paper_formula']:,}  MACs: {t['macs']:,}  "
              f"FLOPs: {t['flops']:,}  params: {t['params']:,}")
    return 0
