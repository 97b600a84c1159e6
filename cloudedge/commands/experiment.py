"""`cloudedge experiment`: one point of the paper's tables (Section 4.3), as JSON or a table."""
import time
from pathlib import Path

from ..experiments.experiment import public, run_experiment
from ..experiments.study import headline
from ..system.cloud import CLOUD_MAX_EPOCHS, cloud_train_config
from ..system.config import (
    EDGE_EPOCHS,
    EDGE_PROCEDURES,
    EdgeConfig,
    RunConfig,
    edge_train_config,
)
from ..system.data import load_dataset
from ._common import add_common, engine_threads, dump
from ._report import report


def register(subparsers):
    p = subparsers.add_parser("experiment",
                              help="one run: CloudCNN, then EdgeCNN0-K / EdgeCNN1-K with N labeled + M uploads",
                              description="Train (or load) CloudCNN, initialise EdgeCNN0-K and EdgeCNN1-K on N labeled "
                                          "images, stream M uploads through the update phase, report accuracies.")
    add_common(p)
    p.add_argument("--depth", type=int, default=EdgeConfig.depth,
                   help=f"K: conv layers of EdgeCNN-K = shared layers m (default {EdgeConfig.depth})")
    p.add_argument("--labeled", type=int, default=RunConfig.labeled,
                   help=f"N labeled images at the edge (default {RunConfig.labeled})")
    p.add_argument("--uploads", type=int, default=RunConfig.uploads,
                   help=f"images streamed through the update phase (default {RunConfig.uploads}; 0: Alg. 1 only)")
    p.add_argument("--step", type=int, default=RunConfig.step,
                   help=f"M: retrain every M new labels (default {RunConfig.step})")
    p.add_argument("--chunk", type=int, default=RunConfig.chunk,
                   help=f"images users upload per tick (default {RunConfig.chunk})")
    p.add_argument("--edge-seed", type=int, default=None,
                   help="seed of the edges' labeled images and training (default: --seed)")
    p.add_argument("--pool-stride", type=int, choices=(1, 2), default=EdgeConfig.pool_stride)
    p.add_argument("--models", choices=("both", "0", "1"), default="both", help="EdgeCNN0, EdgeCNN1 or both")
    p.add_argument("--label-policy", default=RunConfig.label_policy, help="trust-all | confidence[:t] | soft[:T]")
    p.add_argument("--trigger", default=RunConfig.trigger, help="every[:M] | gain[:rate] (default every:STEP)")
    p.add_argument("--no-segment", action="store_true", help="upload raw images instead of segmented objects")
    p.add_argument("--no-feature-cache", action="store_true", help="train through the frozen layers every epoch")
    p.add_argument("--cold-start", action="store_true", help="re-initialise the head before each retraining")
    p.add_argument("--cloud-epochs", type=int, default=CLOUD_MAX_EPOCHS,
                   help=f"CloudCNN's max epochs (default {CLOUD_MAX_EPOCHS})")
    p.add_argument("--cloud-fraction", type=float, default=RunConfig.cloud_fraction,
                   help="share of the train split for the cloud")
    p.add_argument("--edge-epochs", type=int, default=EDGE_EPOCHS,
                   help=f"max epochs per edge training (default {EDGE_EPOCHS})")
    p.add_argument("--edge-procedure", choices=EDGE_PROCEDURES, default=EDGE_PROCEDURES[0],
                   help="fixed: train every epoch, keep the last weights (default); paper: the paper's "
                        "lr-decay and stopping rules on the 10%% validation split")
    p.add_argument("--workdir", default=None, help="CloudCNN cache folder (default ~/.cache/tinycnn/cloudedge)")
    p.add_argument("--no-cache", action="store_true", help="train CloudCNN even if cached")
    p.add_argument("--plot", default=None, help="write the accuracy curve to this PNG")
    p.set_defaults(func=run)


def config_from_args(args):
    models = {"both": (0, 1), "0": (0,), "1": (1,)}[args.models]
    for name in ("depth", "labeled", "step", "cloud_epochs", "edge_epochs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.uploads < 0 or args.chunk < 1:
        raise ValueError(f"need --uploads >= 0 and --chunk >= 1, got {args.uploads}, {args.chunk}")
    edge = EdgeConfig(depth=args.depth, preset=args.preset, pool_stride=args.pool_stride,
                      train=edge_train_config(args.edge_procedure, max_epochs=args.edge_epochs),
                      warm_start=not args.cold_start, feature_cache=not args.no_feature_cache,
                      segment=not args.no_segment)
    return RunConfig(dataset=args.dataset, labeled=args.labeled, uploads=args.uploads, step=args.step,
                     chunk=args.chunk, seed=args.seed, edge_seed=args.edge_seed, cloud_fraction=args.cloud_fraction,
                     cloud_train=cloud_train_config(max_epochs=args.cloud_epochs), edge=edge,
                     label_policy=args.label_policy, trigger=args.trigger, models=models)


def run(args):
    return run_and_print(config_from_args(args), args)


def run_and_print(cfg, args):
    """Run one experiment (RunConfig cfg); print its JSON or its report (cloudedge.commands.demo)."""
    start = time.perf_counter()
    data = load_dataset(cfg.dataset, progress=not args.quiet)
    with engine_threads(args.threads):
        result = run_experiment(cfg, workdir=args.workdir, use_cache=not args.no_cache, progress=not args.quiet,
                                data=data)
        # one edge pair is an anecdote: the gap over 5 edge seeds of this cloud, and the study's over clouds
        h = headline(result["_cloud"], data, cfg) if set(cfg.models) == {0, 1} else None
    out = public(result)
    out["headline"] = h
    out["wall_seconds"] = time.perf_counter() - start
    if args.plot:
        from ..experiments.figures import plot_accuracy
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        out["plot"] = plot_accuracy(out, args.plot)
    print(dump(out) if args.json else report(out))
    return 0
