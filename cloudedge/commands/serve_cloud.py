"""`cloudedge serve-cloud`: CloudCNN behind HTTP (see cloudedge/server/cloud_server.py, docs/prototype.md)."""
import json
import os
import sys

from ..experiments.experiment import get_cloud
from ..server import process
from ..server.cloud_server import CloudServer
from ..server.shaping import Shape
from ..system.cloud import CLOUD_MAX_EPOCHS, Cloud, cloud_train_config
from ..system.config import EdgeConfig, RunConfig
from ..system.data import load_dataset
from ..system.models import DEFAULT_PRESET, cloud_cnn


def register(subparsers):
    p = subparsers.add_parser(
        "serve-cloud", help="run the cloud server: CloudCNN, layer packages, labeling, cloud-only inference",
        description="Serves GET /layers?m=K, POST /label, POST /infer, GET /health, GET /metrics. "
                    "Stops gracefully on SIGTERM or Ctrl-C. See docs/prototype.md.")
    process.add_server_args(p, default_port=8100)
    p.add_argument("--model", default=None,
                   help="a CloudCNN saved by Cloud.save (e.g. from `cloudedge train-cloud`); "
                        "default: train one on the cloud part of --dataset, or load it from the cache")
    p.add_argument("--dataset", default="mnist", help="for training when no --model (default: embedded MNIST)")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=["laptop", "paper"])
    p.add_argument("--epochs", type=int, default=CLOUD_MAX_EPOCHS,
                   help=f"max epochs when training (default {CLOUD_MAX_EPOCHS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--edge-tokens", default=None,
                   help="JSON file {\"edge id\": \"secret\", ...}: each edge gets its own secret and may act "
                        "only as itself; --token then serves devices only (/infer, /metrics)")
    p.add_argument("--untrained", action="store_true",
                   help="serve a randomly initialised CloudCNN (seconds to start; labels are noise; for tests)")
    p.add_argument("--wan", default="none",
                   help="shape every connection as a wide-area link in front of the cloud: 'none', "
                        "'paper' (cloudedge.timing.network.wan_link(): 450 KiB/s, 40 ms rtt) or 'RATE_KIB_S,RTT_MS'")
    p.set_defaults(func=run)


def load_cloud(args):
    """The Cloud to serve and a JSON-able note on where it came from."""
    if args.model:
        return Cloud.load(args.model), {"source": args.model}
    if args.untrained:
        x_train = load_dataset(args.dataset)[0]
        model = cloud_cnn(x_train.shape[1:], preset=args.preset, seed=args.seed)
        return Cloud(model, x_train.shape[1:], info={"untrained": True}), {"source": "untrained"}
    cfg = RunConfig(dataset=args.dataset, seed=args.seed, cloud_train=cloud_train_config(max_epochs=args.epochs),
                    edge=EdgeConfig(preset=args.preset))
    cloud, meta = get_cloud(load_dataset(args.dataset), cfg)
    return cloud, {"source": meta["path"], "cached": meta["cached"], "seconds": meta["seconds"]}


def read_edge_tokens(path):
    """{edge id: secret} from a JSON file (None: no per-edge secrets); ValueError naming the file."""
    if path is None:
        return None
    try:
        tokens = json.loads(open(path).read())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--edge-tokens {path}: expected a JSON object of edge id -> secret: {exc}") from None
    if not isinstance(tokens, dict) or not tokens or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) >= 8 for k, v in tokens.items()):
        raise ValueError(f"--edge-tokens {path}: expected {{\"edge id\": \"secret of >= 8 characters\"}}")
    if os.stat(path).st_mode & 0o077:
        print(f"WARNING: --edge-tokens {path} is readable by other users; chmod 600 it", file=sys.stderr)
    return tokens


def run(args):
    return process.serve(args, "cloud", build)


def build(args, token):
    """The cloud's process.Service: CloudCNN behind its routes, the WAN shaping in front."""
    wan = process.parse_wan(args.wan)
    cloud, origin = load_cloud(args)
    if not args.untrained:
        cloud.check_trained()   # UntrainedCloudError: a cloud that did not train serves no edge
    server = CloudServer(cloud, token=token, max_body=process.max_body(args),
                         edge_tokens=read_edge_tokens(args.edge_tokens))
    return process.Service(server.app, shape=Shape.server_side(wan) if wan else None,
                           listening={"model": origin, "input_shape": list(cloud.input_shape),
                                      "wan": wan.name if wan else "none"})
