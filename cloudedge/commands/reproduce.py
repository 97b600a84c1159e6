"""`cloudedge reproduce TARGET`: the paper's tables and figures, ours beside the paper's."""
import sys
import time
from pathlib import Path

from ..reproduce import NAMES, Plan, reproduce
from ..reproduce.report import load_results, verdicts, write_report
from ..system.config import EDGE_EPOCHS
from ._common import add_common, engine_threads, dump

CHOICES = NAMES + ("all", "report")


def register(subparsers):
    p = subparsers.add_parser(
        "reproduce", help="reproduce Tables 2-3 / Figs. 7-10 next to the paper's numbers",
        description="Run a target of the paper's Section 4.3 and write CSV, PNG and markdown (ours beside the "
                    "paper's) under --out, then regenerate docs/REPRODUCTION.md. 'report' only regenerates it. "
                    "Runs are stored under OUT/runs and reused, so fig10 costs nothing after table2/table3.")
    add_common(p, dataset=False)
    p.add_argument("target", choices=CHOICES)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds 0..N-1 (default 3): mean ± std")
    p.add_argument("--preset", choices=("laptop", "paper"), default="laptop",
                   help="model widths (default laptop; paper = the paper's, much slower: its cost is printed first)")
    p.add_argument("--quick", action="store_true",
                   help="smoke version: tiny preset, subsampled MNIST, k=3, few epochs (for tests)")
    p.add_argument("--depths", default="3,5,10", help="k values for the tables (default 3,5,10)")
    p.add_argument("--sizes", default="", help="fig8/fig9 training-set sizes, comma separated (default per data set)")
    p.add_argument("--large-models", choices=("both", "1"), default="both",
                   help="fig8/fig9: EdgeCNN0 and EdgeCNN1, or EdgeCNN1 only (cheaper)")
    p.add_argument("--edge-epochs", type=int, default=EDGE_EPOCHS,
                   help=f"max epochs per edge training (default {EDGE_EPOCHS})")
    p.add_argument("--cloud-epochs", type=int, default=0,
                   help="max CloudCNN epochs (default 0 = per data set: 4 on MNIST, 2 on Fashion-MNIST)")
    p.add_argument("--cloud-seed", type=int, default=None,
                   help="share one CloudCNN (trained with this seed) across the seeds, which then vary only the "
                        "edges (cheaper on Fashion-MNIST; default: one CloudCNN per seed)")
    p.add_argument("--study-datasets", default="mnist",
                   help="factors: data sets whose cells to run, comma separated (mnist, fashion-mnist)")
    p.add_argument("--study-factors", default="",
                   help="factors: only these factors, comma separated (baseline, widths, init, edge procedure, "
                        "cloud data, k, or DATASET/FACTOR such as mnist/cloud data); default all")
    p.add_argument("--only-existing", action="store_true", help="summarize the runs on disk; run nothing new")
    p.add_argument("--force", action="store_true", help="re-run even when a stored run matches")
    p.add_argument("--out", default="docs/reproduction", help="output folder (default docs/reproduction)")
    p.add_argument("--report", default=None, help="report path (default: OUT/../REPRODUCTION.md)")
    p.add_argument("--workdir", default=None, help="CloudCNN cache folder (default ~/.cache/tinycnn/cloudedge)")
    p.add_argument("--scheduler", default="", metavar="ADDRESS",
                   help="run the runs on this Dask scheduler (tcp://host:8786; needs pip install -e '.[cluster]' "
                        "here and on its workers, docs/scale.md)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="run the runs on a local Dask cluster of N processes (127.0.0.1 only; default 0: in this "
                        "process)")
    p.add_argument("--retries", type=int, default=2,
                   help="with --workers: a run whose worker died is started again at most this many times "
                        "(default 2)")
    p.set_defaults(func=run)


def _ints(text, name):
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in vals):
        raise ValueError(f"--{name} values must be >= 1, got {text!r}")
    return vals


def plan_from_args(args):
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if args.edge_epochs < 1 or args.cloud_epochs < 0:
        raise ValueError(f"need --edge-epochs >= 1 and --cloud-epochs >= 0, got {args.edge_epochs}, {args.cloud_epochs}")
    depths = (3,) if args.quick else _ints(args.depths, "depths")
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if not args.quiet else (lambda m: None)
    return Plan(preset=args.preset, seeds=tuple(range(args.seeds)), quick=args.quick, out=Path(args.out),
                workdir=args.workdir, progress=not args.quiet, force=args.force, only_existing=args.only_existing,
                threads=args.threads, scheduler=args.scheduler, workers=args.workers, retries=args.retries,
                depths=depths, large_sizes=_ints(args.sizes, "sizes"),
                large_models=(1,) if args.large_models == "1" else (0, 1),
                edge_epochs=args.edge_epochs, cloud_epochs=args.cloud_epochs, log=log,
                cloud_seed=args.cloud_seed,
                study_datasets=tuple(d.strip() for d in args.study_datasets.split(",") if d.strip()),
                study_factors=tuple(d.strip() for d in args.study_factors.split(",") if d.strip()))


def run(args):
    plan = plan_from_args(args)
    report_path = Path(args.report) if args.report else plan.out.parent / "REPRODUCTION.md"
    start = time.perf_counter()
    results = {}
    if args.target != "report":
        with engine_threads(plan.threads):   # this process's work; each run sets plan.threads where it runs
            results = reproduce([args.target], plan, report_path=report_path)
    else:
        write_report(plan.out, report_path)
    out = {"target": args.target, "report": str(report_path), "wall_seconds": time.perf_counter() - start,
           "results": {t: {k: v for k, v in s.items() if k not in ("runs", "markdown")} for t, s in results.items()},
           "verdicts": [{"target": a, "status": b, "measured": c} for a, b, c in verdicts(load_results(plan.out))]}
    if args.json:
        print(dump(out))
    else:
        for t, s in results.items():
            print(f"== {t} ({s['wall_seconds']:.0f} s)")
            print(s.get("markdown") or s.get("error", ""))
        print("\nTargets:")
        for v in out["verdicts"]:
            print(f"  [{v['status']}] {v['target']}: {v['measured']}")
        print(f"\nreport: {report_path}")
    return 0
