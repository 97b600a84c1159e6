"""Options and helpers shared by the framework's subcommands (demo, experiment, ...)."""
import json

from ..jsonable import jsonable
from ..system.data import DATASETS
from ..system.models import DEFAULT_PRESET, PRESETS
from ..threads import engine_threads  # noqa: F401  (re-exported for the commands)


def add_common(p, dataset=True):
    """--json, --quiet, --threads (and --dataset, --preset, --seed when dataset=True)."""
    if dataset:
        p.add_argument("--dataset", choices=DATASETS, default="mnist",
                       help="mnist = the embedded 8,000/2,000 sample (offline, default)")
        p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                       help="model widths (default laptop; paper = the paper's, slow)")
        p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="engine threads, each running single-threaded BLAS (default 1: threads that "
                        "wait for a shared core slow training down; 0 = leave the engine and BLAS as they are)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def dump(obj):
    """JSON for stdout: numpy scalars and arrays become plain numbers and lists."""
    return json.dumps(obj, indent=2, default=jsonable, sort_keys=False)


def kb(n):
    return f"{n / 1024:,.1f} KB"
