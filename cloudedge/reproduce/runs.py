"""Runs: how to run (Plan), what one run is (run_config), where its result is stored (its
hash), and executing a list of jobs with reuse (execute).

Every run's result is a JSON file under ``<out>/runs/``, named by a hash of its configuration.
A job whose file exists is read back instead of run: ``force`` re-runs it, ``only_existing``
runs nothing new. Two hashes name the files, each kept as it was because stored runs are
found by it: ``config_hash`` (the tables, fig8/fig9 and the variants) and ``cell_hash`` (the
factors and stability studies, under ``runs/factors/`` and ``runs/stability/``).

``execute`` is the one place runs happen: a parallel executor would replace its loop.
"""
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from tinycnn.atomic import atomic_write

from .. import paper
from ..system.cloud import CLOUD_EPOCHS, cloud_train_config
from ..system.data import load_dataset
from ..system.config import EDGE_EPOCHS, EdgeConfig, RunConfig, config_json, edge_train_config, updated
from ..experiments.experiment import public, run_experiment
from ..jsonable import jsonable

DEPTHS = (3, 5, 10)
CIFAR_SIZES = (100, 500, 1000, 2000, 3000, 4000, 5000)   # the paper: 100 ... 5,000
DEFAULT_OUT = Path("docs/reproduction")


class ReproductionError(RuntimeError):
    """A target cannot be run as asked (missing data set, missing runs, bad option)."""


@dataclass
class Plan:
    """How to run: preset, seeds, quick (smoke) mode, where to write, progress bars."""
    preset: str = "laptop"
    seeds: tuple = (0, 1, 2)
    quick: bool = False
    out: Path = DEFAULT_OUT
    workdir: str | Path | None = None   # CloudCNN cache folder (None = the default cache)
    progress: bool = True
    force: bool = False             # re-run even when a stored run matches
    only_existing: bool = False     # summarize the runs already on disk, run nothing new
    cloud_seed: int | None = None   # None: each seed trains its own CloudCNN; an int: one shared
                                    # CloudCNN (that seed) and the seeds vary only the edges
    depths: tuple = DEPTHS
    large_sizes: tuple = ()         # fig8/fig9 training-set sizes; () = the preset's default
    large_depths: tuple = (3,)
    large_models: tuple = (0, 1)
    edge_epochs: int = EDGE_EPOCHS
    cloud_epochs: int = 0           # 0 = cloud.CLOUD_EPOCHS[dataset]
    study_datasets: tuple = ("mnist",)   # factors: which data sets' cells to run
    study_factors: tuple = ()            # factors: only these factors (() = all)
    log: object = print

    def __post_init__(self):
        self.out = Path(self.out)
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds:
            raise ReproductionError("need at least one seed")
        if self.quick:
            self.preset = "tiny"


def quick_data(data, n_train=1500, n_test=300):
    """A small subsample (the first images of each split) for --quick smoke runs."""
    x_train, y_train, x_test, y_test = data
    return x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]


class DataCache:
    """Loads each data set once per invocation (quick mode: a small subsample)."""

    def __init__(self, plan):
        self.plan, self._data = plan, {}

    def __call__(self, name):
        if name not in self._data:
            data = load_dataset(name, progress=self.plan.progress)
            self._data[name] = quick_data(data) if self.plan.quick else data
        return self._data[name]


# ------------------------------------------------------------------------------ one run
def run_config(plan, dataset, depth, seed, **overrides):
    """The RunConfig of one table run (N=120, uploads to 1,200, every 120) for this plan;
    overrides as cloudedge.system.config.updated takes them."""
    sizes = CIFAR_SIZES if dataset == "cifar10" else paper.LABELED_SIZES
    labeled, top = sizes[0], sizes[-1]
    step = sizes[1] - sizes[0]
    if plan.quick:
        labeled, top, step = 120, 360, 120
    edge_epochs, cloud_epochs = (3, 1) if plan.quick else (plan.edge_epochs,
                                                           plan.cloud_epochs or CLOUD_EPOCHS[dataset])
    cfg = RunConfig(dataset=dataset, labeled=labeled, uploads=top - labeled, step=step, chunk=step // 2, seed=seed,
                    cloud_train=cloud_train_config(max_epochs=cloud_epochs),
                    edge=EdgeConfig(depth=depth, preset=plan.preset, train=edge_train_config(max_epochs=edge_epochs)))
    if plan.cloud_seed is not None and int(plan.cloud_seed) != seed:
        cfg = replace(cfg, seed=int(plan.cloud_seed), edge_seed=seed)
    return updated(cfg, **overrides)


def config_hash(cfg, quick):
    """Hash of a run's configuration. Fields left at None are dropped, so a field added to
    RunConfig later with a None default (= the old behaviour) keeps stored runs valid."""
    conf = {k: v for k, v in config_json(cfg).items() if v is not None}
    blob = json.dumps({"cfg": conf, "quick": bool(quick)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cell_hash(cfg, edge_seeds):
    """Hash of a study cell: one cloud's configuration and the edge seeds measured on it."""
    blob = json.dumps({"cfg": config_json(cfg), "edges": list(edge_seeds)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_path(plan, cfg, tag="table"):
    """Where a table run is stored: <out>/runs/<tag>-<dataset>-<preset>-k<depth>-s<seed>[-e<edge seed>]-<hash>.json."""
    edge = "" if cfg.edge_seed is None else f"-e{cfg.edge_seed}"
    return plan.out / "runs" / (f"{tag}-{cfg.dataset}-{cfg.edge.preset}-k{cfg.edge.depth}-s{cfg.seed}{edge}-"
                                f"{config_hash(cfg, plan.quick)}.json")


def experiment_job(plan, cfg, data_cache):
    """One run_experiment (Algorithm 1, then the update phase) as a stored job."""
    def run():
        data = data_cache(cfg.dataset)
        start = time.perf_counter()
        result = public(run_experiment(cfg, workdir=plan.workdir, data=data, progress=False))
        result["wall_seconds"] = time.perf_counter() - start
        result["quick"] = plan.quick
        return result
    return Job(run_path(plan, cfg), run)


# ------------------------------------------------------------------------- the store
@dataclass(frozen=True)
class Job:
    """One stored run: the file holding its result, and how to compute that result (a JSON-able dict)."""
    path: Path
    run: Callable[[], dict]


def store(path, result):
    """Write a run's result (atomically: a reader sees the old file or the whole new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(result, indent=1, default=jsonable).encode())


def execute(jobs, plan, desc=None):
    """Each job's result, in order, as (result, reused): read back when its file exists (unless
    plan.force), else run and stored; (None, False) for a job not stored when plan.only_existing.

    The one place runs happen. The loop runs them one at a time; the jobs are independent,
    so a parallel executor (threads, processes, a cluster) can replace it.
    """
    if plan.progress and desc:
        jobs = tqdm(jobs, desc=desc, unit="run")
    return [_reuse_or_run(job, plan) for job in jobs]


def _reuse_or_run(job, plan):
    stored = job.path.exists()
    if stored and not plan.force:
        return json.loads(job.path.read_text()), True
    if plan.only_existing and not stored:
        return None, False
    result = job.run()
    store(job.path, result)
    return result, False
