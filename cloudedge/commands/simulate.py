"""`cloudedge simulate`: several edges and one cloud on a virtual clock (deterministic per seed)."""
import time

from ..experiments.experiment import get_cloud
from ..system.cloud import CLOUD_MAX_EPOCHS, cloud_train_config
from ..system.config import EdgeConfig, RunConfig, SimConfig
from ..system.data import load_dataset
from ..timing.simulator import Simulator
from ._common import add_common, engine_threads, dump


def register(subparsers):
    p = subparsers.add_parser("simulate", help="multi-edge simulation with a virtual clock",
                              description="Several edges with different data (Dirichlet class skew), one "
                                          "cloud; users upload at a rate, edges sync in idle windows of the "
                                          "core-network load trace, the cloud labels, edges retrain. The same "
                                          "seed gives the same timeline.")
    add_common(p)
    sim = SimConfig                         # the defaults
    p.add_argument("--edges", type=int, default=sim.n_edges)
    p.add_argument("--shared", default=",".join(str(int(s)) for s in sim.shared),
                   help="per edge, cycled: 1 = EdgeCNN1, 0 = EdgeCNN0 (e.g. 1,0)")
    p.add_argument("--depth", type=int, default=EdgeConfig.depth)
    p.add_argument("--labeled", type=int, default=sim.labeled)
    p.add_argument("--alpha", type=float, default=sim.alpha, help="class skew (Dirichlet alpha; <= 0: i.i.d.)")
    p.add_argument("--rate", type=float, default=sim.rate, help="uploads per virtual second per edge")
    p.add_argument("--tick", type=float, default=sim.tick)
    p.add_argument("--duration", type=float, default=sim.duration, help="virtual seconds")
    p.add_argument("--load", default=sim.load, help="constant:L | diurnal:PERIOD | random:SEED")
    p.add_argument("--load-threshold", type=float, default=EdgeConfig.load_threshold)
    p.add_argument("--label-policy", default=sim.label_policy)
    p.add_argument("--trigger", default=sim.trigger)
    p.add_argument("--throughput", type=float, default=sim.throughput, help="training sample passes per virtual second")
    p.add_argument("--cloud-epochs", type=int, default=CLOUD_MAX_EPOCHS,
                   help=f"CloudCNN's max epochs (default {CLOUD_MAX_EPOCHS})")
    p.add_argument("--cloud-fraction", type=float, default=sim.cloud_fraction,
                   help="share of the train split for the cloud")
    p.add_argument("--workdir", default=None)
    p.add_argument("--no-cache", action="store_true")
    p.set_defaults(func=run)


def config_from_args(args):
    """(SimConfig, the RunConfig its cloud is trained or cached as)."""
    shared = tuple(bool(int(v)) for v in args.shared.split(","))
    edge = EdgeConfig(depth=args.depth, preset=args.preset, load_threshold=args.load_threshold)
    cfg = SimConfig(n_edges=args.edges, shared=shared, labeled=args.labeled,
                    alpha=args.alpha if args.alpha > 0 else None, rate=args.rate, tick=args.tick,
                    duration=args.duration, load=args.load, label_policy=args.label_policy, trigger=args.trigger,
                    throughput=args.throughput, seed=args.seed, cloud_fraction=args.cloud_fraction, edge=edge)
    # the cloud the edges share: trained (or cached) as a run with the same seed, split and architecture
    run_cfg = RunConfig(dataset=args.dataset, seed=cfg.seed, cloud_fraction=cfg.cloud_fraction,
                        cloud_train=cloud_train_config(max_epochs=args.cloud_epochs), edge=edge)
    return cfg, run_cfg


def run(args):
    start = time.perf_counter()
    cfg, run_cfg = config_from_args(args)
    data = load_dataset(args.dataset, progress=not args.quiet)
    with engine_threads(args.threads):
        cloud, meta = get_cloud(data, run_cfg, args.workdir, not args.no_cache, progress=not args.quiet)
        result = Simulator(cloud, data, cfg).run(progress=not args.quiet)
    result["wall"]["seconds"] = time.perf_counter() - start
    result["cloud"]["cached"] = meta["cached"]
    if args.json:
        print(dump(result))
        return 0
    print(f"{args.edges} edges, {args.duration:g} virtual s, load {args.load}, trigger {args.trigger}")
    print(f"{'t':>7}  {'edge':<22} {'event':<8} {'images':>6} {'acc':>7} {'local':>7}")
    for row in result["timeline"]:
        if row["event"] in ("init", "retrain"):
            print(f"{row['t']:7.0f}  {row['edge']:<22} {row['event']:<8} {row['n_samples']:>6} "
                  f"{100 * row['accuracy']:6.2f}% {100 * row['local_accuracy']:6.2f}%")
    for e in result["edges"]:
        print(f"{e['name']}: {e['uploads_made']} uploads, {e['syncs']} syncs ({e['syncs_skipped']} skipped), "
              f"{e['trainings']} trainings, {e['bytes_up']:,} B up, {e['bytes_down']:,} B down")
    print(f"cloud: {result['cloud']['bytes_in']:,} B in, {result['cloud']['bytes_out']:,} B out; "
          f"wall {result['wall']['seconds']:.0f} s")
    return 0
