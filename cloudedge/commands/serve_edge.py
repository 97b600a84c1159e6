"""`cloudedge serve-edge`: EdgeCNN behind HTTP, with its durable store and uploader
(see cloudedge/server/edge_runtime.py, docs/prototype.md)."""
import secrets
from pathlib import Path

from tinycnn.atomic import atomic_write
from tinycnn.train import evaluate

from ..policies.labels import make_policy
from ..policies.loads import make_load
from ..policies.retrain import make_trigger
from ..server import process
from ..server.edge_runtime import EdgeRuntime
from ..server.edge_server import EdgeServer
from ..server.remote import RemoteCloud
from ..server.uploader import Uploader
from ..system.config import EDGE_EPOCHS, EdgeConfig, RunConfig, edge_train_config
from ..system.data import edge_data, load_dataset, split_cloud_edges
from ..system.edge import Edge

# Training samples a server edge keeps: 40x the default N = 120, and 4x the N + M = 1,200 that
# the paper's runs reach, so those are unchanged; docs/prototype.md has the memory it bounds.
MAX_SAMPLES = 5000


def register(subparsers):
    p = subparsers.add_parser(
        "serve-edge", help="run an edge server: EdgeCNN answers, objects stored, uploads when idle",
        description="On first start fetches the cloud's lower layers, verifies them and runs the "
                    "initialization phase; later starts resume from --state-dir. Serves POST /infer, "
                    "POST /sync, GET /health, GET /metrics. Stops gracefully on SIGTERM or Ctrl-C.")
    process.add_server_args(p, default_port=8200)
    p.add_argument("--cloud", required=True, help="base URL of the cloud server, e.g. http://127.0.0.1:8100")
    p.add_argument("--cloud-token", default=None, help="token for the cloud (default: the edge's --token)")
    p.add_argument("--state-dir", required=True, help="folder for the object store, snapshots and edge id")
    p.add_argument("--name", default=None, help="edge id sent to the cloud (default: a random id kept in --state-dir)")
    p.add_argument("--dataset", default="mnist", help="where the N labeled images come from (default: embedded MNIST)")
    p.add_argument("--labeled", type=int, default=RunConfig.labeled,
                   help=f"N labeled images for Alg. 1 (default {RunConfig.labeled})")
    p.add_argument("--depth", type=int, default=EdgeConfig.depth, help=f"k of EdgeCNN-k (default {EdgeConfig.depth})")
    p.add_argument("--edgecnn", type=int, choices=[0, 1], default=1,
                   help="1: EdgeCNN1 with the cloud's k lower layers frozen (default); 0: from scratch")
    p.add_argument("--preset", default=EdgeConfig.preset, choices=["laptop", "paper"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, default=EDGE_EPOCHS,
                   help=f"epochs cap of each training (default {EDGE_EPOCHS})")
    p.add_argument("--max-samples", type=int, default=MAX_SAMPLES,
                   help=f"training samples the edge keeps (N labeled + the newest cloud labels; the oldest "
                        f"go first), which bounds its memory; 0 = keep all (default {MAX_SAMPLES:,})")
    p.add_argument("--retrain", default=f"every:{RunConfig.step}", help="trigger: 'every:M' (the paper) or 'gain:RATE'")
    p.add_argument("--label-policy", default=RunConfig.label_policy, help="'trust-all', 'confidence:T' or 'soft[:T]'")
    p.add_argument("--load", default="constant:0.0",
                   help="core-network load trace: 'constant:L', 'diurnal:PERIOD_S', 'random:SEED' "
                        "(cloudedge.policies.loads); uploads only while load < --load-threshold")
    p.add_argument("--load-threshold", type=float, default=EdgeConfig.load_threshold)
    p.add_argument("--upload-rate", type=float, default=None, help="cap the uplink to the cloud, KiB/s")
    p.add_argument("--upload-batch", type=int, default=64, help="objects per upload (default 64)")
    p.add_argument("--upload-interval", type=float, default=0.5, help="seconds between upload attempts")
    p.add_argument("--no-uploader", action="store_true", help="upload only on POST /sync")
    p.add_argument("--eval-images", type=int, default=500,
                   help="score each trained model on this many test images, for /metrics (0 = off)")
    p.add_argument("--cloud-wait", type=float, default=60.0,
                   help="seconds to keep retrying an unreachable cloud on first start (default 60)")
    p.set_defaults(func=run)


def edge_id(state_dir, name):
    """--name, else the id kept in state_dir/edge_id (made once, random)."""
    path = Path(state_dir) / "edge_id"
    if name:
        return name
    if path.exists():
        return path.read_text().strip()
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    value = f"edge-{secrets.token_hex(4)}"
    with atomic_write(path) as f:
        f.write(value.encode())
    return value


def build_runtime(args, cloud_token):
    """The EdgeRuntime for these options (data, Edge factory, remote cloud, monitor)."""
    if args.max_samples < 0 or 0 < args.max_samples <= args.labeled:
        raise ValueError(f"--max-samples must be 0 (keep all) or more than --labeled {args.labeled}, "
                         f"got {args.max_samples}")
    x_train, y_train, x_test, y_test = load_dataset(args.dataset)
    cfg = RunConfig(dataset=args.dataset, seed=args.seed)
    _, pool = split_cloud_edges(y_train, cfg.cloud_fraction, args.seed)
    share = edge_data(y_train, pool, args.labeled, seed=args.seed)
    name = edge_id(args.state_dir, args.name)

    def make_edge():
        config = EdgeConfig(depth=args.depth, shared=bool(args.edgecnn), input_shape=x_train.shape[1:],
                            preset=args.preset, train=edge_train_config(max_epochs=args.max_epochs),
                            load_threshold=args.load_threshold, seed=args.seed, max_samples=args.max_samples)
        return Edge(name, config, make_policy(args.label_policy), make_trigger(args.retrain))

    def labeled():
        return x_train[share.labeled], y_train[share.labeled]

    monitor = None
    if args.eval_images > 0:
        xe, ye = x_test[:args.eval_images], y_test[:args.eval_images]

        def monitor(model):
            return evaluate(model, xe, ye)[1]

    cloud = RemoteCloud(args.cloud, cloud_token, name, shape=process.upload_shape(args.upload_rate))
    return EdgeRuntime(args.state_dir, make_edge, labeled, cloud, monitor=monitor), name


def run(args):
    return process.serve(args, "edge", build)


def build(args, token):
    """The edge's process.Service: its runtime started (Alg. 1 or a resume), EdgeCNN behind
    its routes, the uploader started once the server listens and stopped after it."""
    load = make_load(args.load)
    runtime, name = build_runtime(args, args.cloud_token or token)
    runtime.start(wait_for_cloud=args.cloud_wait)
    uploader = None if args.no_uploader else Uploader(runtime, load, args.upload_interval, args.upload_batch)
    server = EdgeServer(runtime, uploader, token=token, max_body=process.max_body(args))

    def start():
        if uploader is not None:
            uploader.start()

    def stop():
        if uploader is not None:
            uploader.stop()       # the upload step in progress finishes
        runtime.close()

    return process.Service(server.app, start=start, stop=stop,
                           stopped=lambda: {"store": runtime.store.counts()},
                           listening={"edge_id": name, "cloud": args.cloud, "phase": runtime.status["phase"],
                                      "replayed": runtime.status["replayed"],
                                      "model_version": runtime.serving.version, "store": runtime.store.counts(),
                                      "recovered": runtime.store.recovered})
