"""Reproduce the paper's experiments (Section 4.3): Tables 2 and 3, Figs. 7-10, and variants.

Every target runs the framework (cloudedge.experiment), stores each run as JSON under
``<out>/runs/``, and writes ``<out>/<target>.csv``, ``.png``, ``.md`` and ``.json`` with the
paper's numbers (cloudedge.paper) beside ours. ``cloudedge.report`` assembles
docs/REPRODUCTION.md from those files, so nothing in it is typed by hand.

A run is reused when a file with the same configuration hash exists (``force`` re-runs), so
``fig10`` reads the runs of ``table2``/``table3`` and ``all`` never repeats work.

Protocol (the paper's): CloudCNN trained on the cloud's part of the train split; EdgeCNN0-k
(from scratch) and EdgeCNN1-k (CloudCNN's k lower conv layers, frozen) for k in 3, 5, 10;
N = 120 labeled images (initialization phase), then cloud-labeled uploads arrive and the edge
retrains every 120 new labels up to 1,200 (update phase). Accuracy is on the test split.
"""
import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import paper
from .cloud import CLOUD_EPOCHS
from .config import EDGE_EPOCHS

TABLE_TARGETS = {"table2": "mnist", "table3": "fashion-mnist", "fig7": "cifar10"}
LARGE_TARGETS = {"fig8": "mnist-full", "fig9": "fashion-mnist"}
TARGETS = ("table2", "table3", "fig7", "fig8", "fig9", "fig10", "variants", "stability", "factors")
DEPTHS = (3, 5, 10)
CIFAR_SIZES = (100, 500, 1000, 2000, 3000, 4000, 5000)   # the paper: 100 ... 5,000
PAPER_KEY = {"mnist": "mnist", "mnist-full": "mnist", "fashion-mnist": "fashion_mnist", "cifar10": "cifar10"}
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
    force: bool = False
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
    timings: dict = field(default_factory=dict)

    def __post_init__(self):
        self.out = Path(self.out)
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds:
            raise ReproductionError("need at least one seed")
        if self.quick:
            self.preset = "tiny"


# ---------------------------------------------------------------------------------------- runs
def quick_data(data, n_train=1500, n_test=300):
    """A small stratified-by-order subsample for --quick smoke runs."""
    x_train, y_train, x_test, y_test = data
    return x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]


def run_config(plan, dataset, depth, seed, **overrides):
    """The RunConfig of one table run (N=120, uploads to 1,200, every 120) for this plan;
    overrides as cloudedge.config.updated takes them."""
    from .cloud import cloud_train_config
    from .config import EdgeConfig, RunConfig, edge_train_config, updated
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
    """Hash of the run's configuration. Fields left at None are dropped, so a field added to
    RunConfig later with a None default (= the old behaviour) keeps stored runs valid."""
    from .experiment import config_json
    conf = {k: v for k, v in config_json(cfg).items() if v is not None}
    blob = json.dumps({"cfg": conf, "quick": bool(quick)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_path(plan, cfg, tag="table"):
    edge = "" if getattr(cfg, "edge_seed", None) is None else f"-e{cfg.edge_seed}"
    return plan.out / "runs" / (f"{tag}-{cfg.dataset}-{cfg.edge.preset}-k{cfg.edge.depth}-s{cfg.seed}{edge}-"
                                f"{config_hash(cfg, plan.quick)}.json")


class DataCache:
    """Loads each data set once per invocation (quick mode: a small subsample)."""

    def __init__(self, plan):
        self.plan, self._data = plan, {}

    def __call__(self, name):
        if name not in self._data:
            from .data import load_dataset
            data = load_dataset(name, progress=self.plan.progress)
            self._data[name] = quick_data(data) if self.plan.quick else data
        return self._data[name]


def run_table_point(plan, cfg, data_cache, tag="table"):
    """One run_experiment (reused from disk if the same config ran before). Returns its JSON dict."""
    from .experiment import public, run_experiment
    path = run_path(plan, cfg, tag)
    if path.exists() and not plan.force:
        out = json.loads(path.read_text())
        out["reused"] = True
        return out
    data = data_cache(cfg.dataset)
    start = time.perf_counter()
    result = public(run_experiment(cfg, workdir=plan.workdir, data=data, progress=False))
    result["wall_seconds"] = time.perf_counter() - start
    result["quick"] = plan.quick
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=_jsonable))
    result["reused"] = False
    return result


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _bar(items, plan, desc):
    if not plan.progress:
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, unit="run")


def curve_by_n(edge):
    """{n_images: accuracy} of one edge's curve."""
    return {int(p["n_images"]): p["accuracy"] for p in edge["curve"]}


def mean_std(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


# ------------------------------------------------------------------------------------ tables
def run_table(target, plan, data_cache):
    """table2 / table3 / fig7: every depth x seed; writes CSV, PNG, MD, JSON. Returns the summary."""
    dataset = TABLE_TARGETS[target]
    if plan.quick and dataset != "mnist":
        raise ReproductionError(f"--quick runs only MNIST (table2); {target} needs the full {dataset}")
    data_cache(dataset)  # DatasetNotFoundError (clear message) before any training
    start = time.perf_counter()
    runs = []
    jobs = [(s, k) for s in plan.seeds for k in plan.depths]   # seed-major: whole seeds finish first
    missing = []
    for s, k in _bar(jobs, plan, target):
        cfg = run_config(plan, dataset, k, s)
        if plan.only_existing and not run_path(plan, cfg).exists():
            missing.append({"depth": k, "seed": s})
            continue
        runs.append(run_table_point(plan, cfg, data_cache))
    if not runs:
        raise ReproductionError(f"{target}: no finished run in {plan.out / 'runs'} for seeds {plan.seeds}")
    summary = summarize_table(target, dataset, runs, plan)
    summary["missing_runs"] = missing
    x_train, _, x_test, _ = data_cache(dataset)
    summary["n_train"], summary["n_test"] = int(len(x_train)), int(len(x_test))
    summary["invocation_seconds"] = time.perf_counter() - start
    write_table_outputs(target, summary, plan)
    return summary


def paper_table(dataset):
    return {"mnist": paper.TABLE2_MNIST, "fashion-mnist": paper.TABLE3_FASHION}.get(dataset, {})


def summarize_table(target, dataset, runs, plan):
    """Mean ± std over seeds at each N, per model, with the paper's number beside it."""
    ref = paper_table(dataset)
    rows, noise, cloud = [], [], []
    models = sorted({e["model"] for r in runs for e in r["edges"]},
                    key=lambda m: (int(m.split("-")[1]), m))
    for model in models:
        per_seed = [curve_by_n(e) for r in runs for e in r["edges"] if e["model"] == model]
        sizes = sorted({n for c in per_seed for n in c})
        for n in sizes:
            vals = [c.get(n) for c in per_seed]
            m, sd = mean_std(vals)
            p = None
            if model in ref and n in paper.LABELED_SIZES:
                p = ref[model][paper.LABELED_SIZES.index(n)]
            rows.append({"target": target, "dataset": dataset, "model": model, "n_images": n,
                         "paper": p, "ours_mean": None if m is None else 100 * m,
                         "ours_std": None if sd is None else 100 * sd,
                         "n_seeds": sum(v is not None for v in vals),
                         "ours_per_seed": [None if v is None else 100 * v for v in vals]})
    for r in runs:
        cloud.append(r["cloud_acc"])
        # every edge of a run gets the same uploads labeled by the same cloud: count one per run
        noisy = [e["noise"] for e in r["edges"] if e.get("noise")]
        if noisy:
            noise.append(noisy[0])
    cm, cs = mean_std(cloud)
    sent = sum(n["sent"] for n in noise)
    wrong = sum(n["sent_wrong"] for n in noise)
    return {"target": target, "dataset": dataset, "preset": plan.preset, "quick": plan.quick,
            "seeds": sorted({run_seed(r) for r in runs}), "depths": sorted({r["depth"] for r in runs}),
            "cloud_seeds": sorted({r["seed"] for r in runs}),
            "rows": rows, "cloud_acc_mean": 100 * cm, "cloud_acc_std": 100 * cs,
            "cloud_acc_paper": paper.CLOUD_ACCURACY.get(PAPER_KEY[dataset]),
            "label_noise": {"sent": sent, "wrong": wrong, "rate": wrong / sent if sent else None},
            "compute_seconds": sum(r.get("wall_seconds", r.get("seconds", 0)) for r in runs),
            "runs": [run_digest(r) for r in runs]}


def run_seed(r):
    """The seed of a run's edges (RunConfig.edge_seed when set, else its seed)."""
    e = r.get("config", {}).get("edge_seed")
    return r["seed"] if e is None else e


def run_digest(r):
    """What the report needs from one run (small)."""
    cfg = r["config"]
    return {"dataset": r["dataset"], "depth": r["depth"], "seed": run_seed(r), "cloud_seed": r["seed"],
            "preset": r["preset"],
            "cloud_acc": r["cloud_acc"], "cloud_cached": r["cloud"]["cached"],
            "cloud_train_size": r["cloud"]["info"].get("n_train"),
            "cloud_train_seconds": r["cloud"]["info"].get("train_seconds"),
            "seconds": r.get("wall_seconds", r.get("seconds")), "reused": r.get("reused", False),
            "pool_stride": cfg["pool_stride"], "cloud_fraction": cfg["cloud_fraction"],
            "cloud_max_epochs": cfg["cloud_train"]["max_epochs"],
            "edge_max_epochs": cfg["edge_train"]["max_epochs"], "label_policy": cfg["label_policy"],
            "feature_cache": cfg["feature_cache"], "segment": cfg["segment"], "trigger": cfg["trigger"],
            "step": cfg["step"], "labeled": cfg["labeled"], "uploads": cfg["uploads"],
            "edges": [{"model": e["model"], "curve": e["curve"], "noise": e.get("noise"),
                       "train_seconds": e.get("train_seconds"), "sample_passes": e.get("sample_passes")}
                      for e in r["edges"]]}


def fmt(mean, std=None, digits=2):
    if mean is None:
        return "—"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table_markdown(summary):
    """Paper layout: one row per model (paper, then ours), one column per N."""
    rows = summary["rows"]
    sizes = sorted({r["n_images"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    by = {(r["model"], r["n_images"]): r for r in rows}
    head = "| model | source | " + " | ".join(str(n) for n in sizes) + " |"
    lines = [head, "|" + "---|" * (len(sizes) + 2)]
    for model in models:
        if any(by.get((model, n), {}).get("paper") is not None for n in sizes):
            lines.append(f"| {model} | paper | " + " | ".join(fmt(by.get((model, n), {}).get("paper"))
                                                         for n in sizes) + " |")
        cells = []
        for n in sizes:
            r = by.get((model, n))
            cells.append(fmt(r["ours_mean"], r["ours_std"] if r["n_seeds"] > 1 else None) if r else "—")
        lines.append(f"| {model} | ours | " + " | ".join(cells) + " |")
    seeds = ", ".join(str(s) for s in summary["seeds"])
    lines.append("")
    counts = {}
    for r in rows:
        counts.setdefault(r["model"], set()).add(r["n_seeds"])
    if len({c for v in counts.values() for c in v}) == 1:
        per_cell = f"{rows[0]['n_seeds']} run(s) per cell"
    else:
        per_cell = "runs per cell: " + ", ".join(f"{m} {'/'.join(map(str, sorted(c)))}" for m, c in counts.items())
    lines.append(f"Test accuracy (%), ours = mean ± sample std over seeds {seeds} "
                 f"({per_cell}); preset {summary['preset']}. "
                 f"CloudCNN: ours {fmt(summary['cloud_acc_mean'], summary['cloud_acc_std'])}, "
                 f"paper {fmt(summary['cloud_acc_paper'])} (10-crop)."
                 + ("" if set(sizes) <= set(paper.LABELED_SIZES) else
                    " Columns without a paper number are the update phase's actual training-set sizes."))
    return "\n".join(lines)


def write_csv(path, rows, columns):
    import csv
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, list) else ("" if v is None else v))
                        for k, v in r.items()})


def write_outputs(plan, target, summary, rows, columns, plot, markdown):
    """<target>.csv (rows), .png (plot(summary, path)), .md (markdown(summary)) and .json (summary)."""
    plan.out.mkdir(parents=True, exist_ok=True)
    write_csv(plan.out / f"{target}.csv", rows, columns)
    plot(summary, plan.out / f"{target}.png")
    summary["markdown"] = markdown(summary)
    (plan.out / f"{target}.md").write_text(summary["markdown"] + "\n")
    summary["files"] = {k: str(plan.out / f"{target}.{k}") for k in ("csv", "png", "md", "json")}
    (plan.out / f"{target}.json").write_text(json.dumps(summary, indent=1, default=_jsonable))
    return summary


def write_table_outputs(target, summary, plan):
    write_outputs(plan, target, summary, summary["rows"],
                  ["target", "dataset", "model", "n_images", "paper", "ours_mean", "ours_std", "n_seeds",
                   "ours_per_seed"], plot_table, table_markdown)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_table(summary, path):
    plt = _plt()
    depths = summary["depths"]
    fig, axes = plt.subplots(1, len(depths), figsize=(4.6 * len(depths), 3.8), dpi=110, squeeze=False)
    for ax, k in zip(axes[0], depths):
        for shared, color in ((0, "tab:blue"), (1, "tab:red")):
            model = f"EdgeCNN{shared}-{k}"
            rows = [r for r in summary["rows"] if r["model"] == model and r["ours_mean"] is not None]
            if rows:
                ax.errorbar([r["n_images"] for r in rows], [r["ours_mean"] for r in rows],
                            yerr=[r["ours_std"] for r in rows], marker="o", ms=3, capsize=2,
                            color=color, label=f"{model} (ours)")
            prow = [r for r in rows if r["paper"] is not None]
            if prow:
                ax.plot([r["n_images"] for r in prow], [r["paper"] for r in prow], "--", color=color,
                        alpha=0.6, label=f"{model} (paper)")
        ax.axhline(summary["cloud_acc_mean"], color="gray", ls=":", label="CloudCNN (ours)")
        ax.set_title(f"{summary['dataset']}, k={k}")
        ax.set_xlabel("training images at the edge")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{summary['target']}: preset {summary['preset']}, seeds {summary['seeds']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


# ------------------------------------------------------------------------- large training sets
def default_large_sizes(plan, n_train):
    if plan.quick:
        sizes = (200, 600)
    elif plan.large_sizes:
        sizes = plan.large_sizes
    else:
        sizes = (1200, 6000, 15000, 30000, 60000)
    bad = [n for n in sizes if n > n_train]
    if bad:
        raise ReproductionError(f"training-set sizes {bad} exceed the {n_train} images of the train split")
    return tuple(sizes)


def stratified_prefix(y, n, seed):
    """n train ids, about n/K per class, from a seeded permutation (nested for growing n)."""
    rng = np.random.default_rng([seed, 23])
    order = rng.permutation(len(y))
    classes = np.unique(y)
    per = {c: order[y[order] == c] for c in classes}
    base, extra = divmod(n, len(classes))
    ids = []
    for i, c in enumerate(classes):
        ids.extend(per[c][:base + (i < extra)])
    if len(ids) < n:
        rest = order[~np.isin(order, ids)]
        ids.extend(rest[:n - len(ids)])
    return np.sort(np.asarray(ids, dtype=np.int64))


def run_large(target, plan, data_cache):
    """fig8 / fig9: EdgeCNN trained (Alg. 1) on growing labeled training sets up to the whole
    train split, next to CloudCNN (trained on the cloud's part, as in the tables)."""
    from .data import load_dataset  # noqa: F401  (data_cache uses it)
    from .experiment import get_cloud, make_edges
    dataset = LARGE_TARGETS[target]
    deviation = None
    if plan.quick:
        dataset = "mnist"
    elif dataset == "mnist-full":
        from tinycnn.datasets import DatasetNotFoundError
        try:
            data_cache(dataset)
        except DatasetNotFoundError as exc:
            deviation = (f"the full MNIST is not on this machine ({str(exc).splitlines()[0].split(' Looked')[0]}); "
                         f"fig8 ran on the MNIST sample embedded in tinycnn instead")
            dataset = "mnist"
    data = data_cache(dataset)
    x_train, y_train, x_test, y_test = data
    if deviation:
        deviation += f", so its largest training set is its whole {len(y_train):,}-image train split"
        warnings.warn(deviation, RuntimeWarning, stacklevel=2)
    if dataset == "mnist" and not plan.quick and not plan.large_sizes:
        sizes = (1200, 2000, 4000, 8000)
    else:
        sizes = default_large_sizes(plan, len(y_train))
    start = time.perf_counter()
    points, clouds = [], []
    jobs = [(s, k, n) for s in plan.seeds for k in plan.large_depths for n in sizes]
    for seed, k, n in _bar(jobs, plan, target):
        cfg = run_config(plan, dataset, k, seed, models=tuple(plan.large_models))
        key = config_hash(cfg, plan.quick)
        path = plan.out / "runs" / f"{target}-{dataset}-{cfg.edge.preset}-k{k}-s{seed}-n{n}-{key}.json"
        if path.exists() and not plan.force:
            point = json.loads(path.read_text())
            point["reused"] = True
        else:
            t0 = time.perf_counter()
            cloud, meta = get_cloud(data, cfg, plan.workdir, True, False)
            cloud_acc = cloud.evaluate(x_test, y_test)
            ids = stratified_prefix(y_train, n, seed)
            models = []
            for edge in make_edges(cloud, cfg):
                row = edge.initialize(x_train[ids], y_train[ids], ids=ids)
                models.append({"model": edge.summary()["model"], "accuracy": edge.evaluate(x_test, y_test),
                               "epochs": row["epochs"], "train_seconds": row["train_seconds"]})
            point = {"target": target, "dataset": dataset, "seed": seed, "depth": k, "n_images": n,
                     "preset": cfg.edge.preset, "cloud_acc": cloud_acc, "cloud_cached": meta["cached"],
                     "cloud_train_size": cloud.info.get("n_train"), "models": models,
                     "edge_max_epochs": cfg.edge.train.max_epochs, "seconds": time.perf_counter() - t0}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(point, indent=1, default=_jsonable))
            point["reused"] = False
        points.append(point)
        clouds.append(point["cloud_acc"])
    rows = []
    models = sorted({m["model"] for p in points for m in p["models"]}, key=lambda m: (int(m.split("-")[1]), m))
    for model in models:
        for n in sizes:
            vals = [m["accuracy"] for p in points if p["n_images"] == n for m in p["models"] if m["model"] == model]
            times = [m["train_seconds"] for p in points if p["n_images"] == n for m in p["models"]
                     if m["model"] == model]
            mu, sd = mean_std(vals)
            ref = paper.FASHION_FULL.get(model) if (dataset == "fashion-mnist" and n == len(y_train)) else None
            rows.append({"target": target, "dataset": dataset, "model": model, "n_images": n, "paper": ref,
                         "ours_mean": None if mu is None else 100 * mu, "ours_std": None if sd is None else 100 * sd,
                         "n_seeds": len(vals), "train_seconds_mean": float(np.mean(times)) if times else None,
                         "ours_per_seed": [100 * v for v in vals]})
    cm, cs = mean_std(clouds)
    summary = {"target": target, "dataset": dataset, "preset": plan.preset, "quick": plan.quick,
               "seeds": list(plan.seeds), "depths": list(plan.large_depths), "sizes": list(sizes),
               "n_train": int(len(y_train)), "rows": rows, "cloud_acc_mean": 100 * cm, "cloud_acc_std": 100 * cs,
               "cloud_acc_paper": (paper.FASHION_FULL["CloudCNN"] if dataset == "fashion-mnist"
                                   else paper.CLOUD_ACCURACY.get(PAPER_KEY[dataset])),
               "cloud_train_size": points[0].get("cloud_train_size") if points else None,
               "deviation": deviation, "compute_seconds": sum(p["seconds"] for p in points),
               "invocation_seconds": time.perf_counter() - start,
               "edge_max_epochs": points[0]["edge_max_epochs"] if points else None}
    return write_outputs(plan, target, summary, rows,
                         ["target", "dataset", "model", "n_images", "paper", "ours_mean", "ours_std", "n_seeds",
                          "train_seconds_mean", "ours_per_seed"], plot_large, large_markdown)


def large_markdown(s):
    lines = ["| model | " + " | ".join(str(n) for n in s["sizes"]) + " | paper (all train images) |",
             "|" + "---|" * (len(s["sizes"]) + 2)]
    models = list(dict.fromkeys(r["model"] for r in s["rows"]))
    for model in models:
        cells = []
        ref = None
        for n in s["sizes"]:
            r = next((r for r in s["rows"] if r["model"] == model and r["n_images"] == n), None)
            cells.append(fmt(r["ours_mean"], r["ours_std"] if r and r["n_seeds"] > 1 else None) if r else "—")
            ref = ref if r is None or r["paper"] is None else r["paper"]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {fmt(ref)} |")
    lines.append(f"| CloudCNN (trained on {s['cloud_train_size']} cloud images) | "
                 + " | ".join(fmt(s["cloud_acc_mean"], s["cloud_acc_std"] if len(s["seeds"]) > 1 else None)
                              for _ in s["sizes"]) + f" | {fmt(s['cloud_acc_paper'])} |")
    lines.append("")
    lines.append(f"Test accuracy (%) of EdgeCNN trained (Alg. 1, ground-truth labels) on the first N images "
                 f"of a seeded stratified order of the {s['n_train']}-image train split; seeds {s['seeds']}; "
                 f"preset {s['preset']}; at most {s['edge_max_epochs']} epochs per training.")
    if s.get("deviation"):
        lines.append(f"Deviation: {s['deviation']}.")
    return "\n".join(lines)


def plot_large(s, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for model in dict.fromkeys(r["model"] for r in s["rows"]):
        rows = [r for r in s["rows"] if r["model"] == model and r["ours_mean"] is not None]
        ax.errorbar([r["n_images"] for r in rows], [r["ours_mean"] for r in rows],
                    yerr=[r["ours_std"] for r in rows], marker="o", capsize=2, label=f"{model} (ours)")
        for r in rows:
            if r["paper"] is not None:
                ax.plot([r["n_images"]], [r["paper"]], "x", ms=8, label=f"{model} (paper)")
    ax.axhline(s["cloud_acc_mean"], color="gray", ls=":", label="CloudCNN (ours)")
    if s["cloud_acc_paper"] is not None:
        ax.axhline(s["cloud_acc_paper"], color="black", ls="--", alpha=0.4, label="CloudCNN (paper)")
    ax.set_xscale("log")
    ax.set_xlabel("labeled training images at the edge")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{s['target']}: {s['dataset']}, preset {s['preset']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


# --------------------------------------------------------------------------------- fig10
def run_fig10(plan, data_cache, run_missing=True):
    """Training time of EdgeCNN0-k vs EdgeCNN1-k, from the table runs' curves (train_seconds)."""
    sources = []
    for target in ("table2", "table3", "fig7"):
        f = plan.out / f"{target}.json"
        if f.exists():
            s = json.loads(f.read_text())
            if s.get("preset") == plan.preset and s.get("quick") == plan.quick and "runs" in s:
                sources.append(s)
    if not sources and run_missing:
        sources.append(run_table("table2", plan, data_cache))
    if not sources:
        raise ReproductionError(f"fig10 needs table2/table3 results in {plan.out}; run them first")
    rows = []
    for s in sources:
        for k in s["depths"]:
            init = {0: [], 1: []}
            total = {0: [], 1: []}
            per_epoch = {0: [], 1: []}
            for r in s["runs"]:
                if r["depth"] != k:
                    continue
                for e in r["edges"]:
                    shared = int(e["model"][len("EdgeCNN")])
                    first = e["curve"][0]
                    init[shared].append(first["train_seconds"])
                    total[shared].append(sum(p["train_seconds"] for p in e["curve"]))
                    per_epoch[shared].append(sum(p["train_seconds"] for p in e["curve"]) /
                                             max(1, sum(p["epochs"] for p in e["curve"])))
            if not init[0] or not init[1]:
                continue
            row = {"dataset": s["dataset"], "depth": k, "n_seeds": len(init[0])}
            for name, d in (("init", init), ("total", total), ("per_epoch", per_epoch)):
                row[f"edge0_{name}_s"] = float(np.mean(d[0]))
                row[f"edge1_{name}_s"] = float(np.mean(d[1]))
                row[f"{name}_ratio"] = row[f"edge1_{name}_s"] / row[f"edge0_{name}_s"]
                row[f"{name}_reduction_pct"] = 100 * (1 - row[f"{name}_ratio"])
            row["paper_reduction_pct"] = paper.TRAINING_TIME_REDUCTION.get((PAPER_KEY[s["dataset"]], k))
            rows.append(row)
    no_cache = None
    vf = plan.out / "variants.json"
    if vf.exists():
        v = json.loads(vf.read_text())
        if v.get("preset") == plan.preset and v.get("quick") == plan.quick and "rows" in v:
            k = v["depth"]
            e0 = [r["train_seconds"] for r in v["rows"] if r["model"] == f"EdgeCNN0-{k}"
                  and r["variant"] in ("trust-all (paper)", "no feature cache")]
            e1 = [r["train_seconds"] for r in v["rows"] if r["model"] == f"EdgeCNN1-{k}"
                  and r["variant"] == "no feature cache"]
            if e0 and e1:
                no_cache = {"dataset": v["dataset"], "depth": k, "seed": v["seed"], "edge0_s": float(np.mean(e0)),
                            "edge1_no_cache_s": e1[0], "ratio": e1[0] / float(np.mean(e0))}
    summary = {"target": "fig10", "preset": plan.preset, "quick": plan.quick, "rows": rows, "no_cache": no_cache,
               "sources": [s["target"] for s in sources],
               "seeds": sorted({x for s in sources for x in s["seeds"]}),
               "compute_seconds": 0.0}
    cols = ["dataset", "depth", "n_seeds", "edge0_init_s", "edge1_init_s", "init_ratio", "init_reduction_pct",
            "edge0_total_s", "edge1_total_s", "total_ratio", "total_reduction_pct", "edge0_per_epoch_s",
            "edge1_per_epoch_s", "per_epoch_ratio", "per_epoch_reduction_pct", "paper_reduction_pct"]
    return write_outputs(plan, "fig10", summary, rows, cols, plot_fig10, fig10_markdown)


def fig10_markdown(s):
    lines = ["| data set | k | EdgeCNN0-k init (s) | EdgeCNN1-k init (s) | EdgeCNN1/EdgeCNN0 | reduction | "
             "reduction, all trainings | reduction per epoch | paper reduction |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        lines.append(f"| {r['dataset']} | {r['depth']} | {r['edge0_init_s']:.2f} | {r['edge1_init_s']:.2f} | "
                     f"{r['init_ratio']:.2f} | {r['init_reduction_pct']:.1f}% | {r['total_reduction_pct']:.1f}% | "
                     f"{r['per_epoch_reduction_pct']:.1f}% | "
                     f"{'—' if r['paper_reduction_pct'] is None else format(r['paper_reduction_pct'], '.2f') + '%'} |")
    lines.append("")
    lines.append("Wall-clock training seconds (mean over seeds) measured inside the runs of "
                 f"{', '.join(s['sources'])}: 'init' is the initialization phase (N labeled images); "
                 "'all trainings' sums the initialization and every update-phase retraining; 'per epoch' "
                 "divides by the epochs run (early stopping makes epoch counts differ). EdgeCNN1 times include "
                 "computing the frozen layers' cached features. The machine's "
                 f"{os.cpu_count()} cores were shared with other jobs, so these timings are noisy.")
    c = s.get("no_cache")
    if c:
        lines.append("")
        lines.append(f"Without the feature cache (the 'variants' runs, {c['dataset']} k={c['depth']}, seed {c['seed']}, "
                     f"all trainings): EdgeCNN1-{c['depth']} {c['edge1_no_cache_s']:.1f} s vs EdgeCNN0-{c['depth']} "
                     f"{c['edge0_s']:.1f} s (mean of its two identical runs), ratio {c['ratio']:.2f}: the saving "
                     "that comes from not back-propagating through the frozen layers alone.")
    return "\n".join(lines)


def plot_fig10(s, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    labels = [f"{r['dataset']}\nk={r['depth']}" for r in s["rows"]]
    xs = np.arange(len(labels))
    ax.bar(xs - 0.2, [r["edge0_init_s"] for r in s["rows"]], 0.4, label="EdgeCNN0-k")
    ax.bar(xs + 0.2, [r["edge1_init_s"] for r in s["rows"]], 0.4, label="EdgeCNN1-k")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("initialization-phase training time (s)")
    ax.set_title(f"fig10: training time, preset {s['preset']}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


# ------------------------------------------------------------------------------ variants
VARIANTS = (("trust-all (paper)", {}), ("confidence:0.9", {"label_policy": "confidence:0.9"}),
            ("soft", {"label_policy": "soft"}), ("no feature cache", {"edge": {"feature_cache": False}}))


def run_variants(plan, data_cache, dataset="mnist", depth=3, names=None):
    """What the paper did not run, on MNIST, k=3, the first seed: label policies and the feature cache.
    names: a subset of the VARIANTS names (default all; the first, the paper's, is always run)."""
    seed = plan.seeds[0]
    data_cache(dataset)
    start = time.perf_counter()
    rows, runs = [], {}
    chosen = [v for i, v in enumerate(VARIANTS) if i == 0 or names is None or v[0] in names]
    for name, overrides in _bar(chosen, plan, "variants"):
        cfg = run_config(plan, dataset, depth, seed, **overrides)
        r = run_table_point(plan, cfg, data_cache)
        runs[name] = r
        for e in r["edges"]:
            noise = e.get("noise") or {}
            rows.append({"variant": name, "model": e["model"], "label_policy": r["config"]["label_policy"],
                         "feature_cache": r["config"]["feature_cache"],
                         "acc_init": 100 * e["curve"][0]["accuracy"], "acc_final": 100 * e["curve"][-1]["accuracy"],
                         "n_final": e["curve"][-1]["n_images"],
                         "cloud_labels_sent": noise.get("sent"), "sent_noise_pct": _pct(noise.get("sent_noise")),
                         "kept": noise.get("kept"), "kept_noise_pct": _pct(noise.get("kept_noise")),
                         "train_seconds": sum(p["train_seconds"] for p in e["curve"]),
                         "epochs": sum(p["epochs"] for p in e["curve"]),
                         "curve": [[p["n_images"], 100 * p["accuracy"]] for p in e["curve"]]})
    summary = {"target": "variants", "dataset": dataset, "depth": depth, "seed": seed, "preset": plan.preset,
               "quick": plan.quick, "rows": rows, "invocation_seconds": time.perf_counter() - start,
               "compute_seconds": sum(r.get("wall_seconds", r.get("seconds", 0)) for r in runs.values()),
               "cloud_acc": 100 * next(iter(runs.values()))["cloud_acc"]}
    base = {r["model"]: r for r in rows if r["variant"] == VARIANTS[0][0]}
    nocache = {r["model"]: r for r in rows if r["variant"] == "no feature cache"}
    summary["cache"] = [{"model": m, "with_cache_s": base[m]["train_seconds"], "without_cache_s": nocache[m]["train_seconds"],
                         "saving_pct": 100 * (1 - base[m]["train_seconds"] / nocache[m]["train_seconds"]),
                         "acc_final_with": base[m]["acc_final"], "acc_final_without": nocache[m]["acc_final"]}
                        for m in base if m in nocache]
    return write_outputs(plan, "variants", summary, rows, list(rows[0].keys()), plot_variants, variants_markdown)


def _pct(x):
    return None if x is None else 100 * x


def variants_markdown(s):
    lines = ["| variant | model | acc. at N=init (%) | final acc. (%) | final N | cloud labels sent | "
             "true noise of sent labels | kept | noise of kept labels | training s (all) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        lines.append(f"| {r['variant']} | {r['model']} | {r['acc_init']:.2f} | {r['acc_final']:.2f} | {r['n_final']} | "
                     f"{'—' if r['cloud_labels_sent'] is None else r['cloud_labels_sent']} | "
                     f"{fmt(r['sent_noise_pct'])}% | {'—' if r['kept'] is None else r['kept']} | "
                     f"{fmt(r['kept_noise_pct'])}% | {r['train_seconds']:.1f} |")
    lines.append("")
    lines.append(f"{s['dataset']}, k={s['depth']}, seed {s['seed']}, preset {s['preset']}; CloudCNN test accuracy "
                 f"{s['cloud_acc']:.2f}%. Noise = share of CloudCNN's labels that disagree with the true label "
                 "(the edge never sees the truth; measured for the report only).")
    for c in s["cache"]:
        if c["model"].startswith("EdgeCNN1"):
            lines.append(f"- Feature cache, {c['model']}: {c['with_cache_s']:.1f} s of training (initialization + "
                         f"every retraining) with the cache vs {c['without_cache_s']:.1f} s without "
                         f"({c['saving_pct']:.1f}% saved); final accuracy {c['acc_final_with']:.2f}% vs "
                         f"{c['acc_final_without']:.2f}% (the cache is exact, so the models are the same).")
        else:
            lines.append(f"- {c['model']} has no frozen layers, so the cache does not apply to it: its two runs are "
                         f"identical work, and their times ({c['with_cache_s']:.1f} s vs {c['without_cache_s']:.1f} s, "
                         f"{abs(c['saving_pct']):.0f}% apart) show the timing noise of this shared machine.")
    return "\n".join(lines)


def plot_variants(s, path):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for ax, model in zip(axes, (f"EdgeCNN0-{s['depth']}", f"EdgeCNN1-{s['depth']}")):
        for r in s["rows"]:
            if r["model"] == model:
                xs, ys = zip(*r["curve"])
                ax.plot(xs, ys, marker="o", ms=3, label=r["variant"])
        ax.set_title(f"{s['dataset']} {model}: variants")
        ax.set_xlabel("training images at the edge")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


# -------------------------------------------------------------------------- cost estimate
def preset_cost_ratio(preset, base="laptop", input_shape=(1, 28, 28)):
    """Training FLOPs per image of CloudCNN and EdgeCNN-k under ``preset`` over ``base``."""
    from tinycnn.flops import profile

    from .models import cloud_cnn, edge_cnn

    def flops(model):
        t = profile(model, input_shape).totals
        return t["flops"] + t["backward_flops"]
    out = {"cloud": flops(cloud_cnn(input_shape, preset=preset)) / flops(cloud_cnn(input_shape, preset=base))}
    for k in DEPTHS:
        out[f"edge{k}"] = flops(edge_cnn(k, input_shape, preset=preset)) / flops(edge_cnn(k, input_shape, preset=base))
    return out


def estimate_cost(targets, plan):
    """Seconds expected for the targets: the laptop runs already measured here, scaled by the
    preset's FLOP ratio. Returns (seconds or None, explanation)."""
    measured = []
    for f in sorted((plan.out / "runs").glob("table-*-laptop-*.json")) if (plan.out / "runs").exists() else []:
        r = json.loads(f.read_text())
        if not r.get("quick"):
            measured.append(r)
    if not measured:
        return None, ("no laptop-preset run is recorded in " + str(plan.out / "runs") +
                      "; run a laptop target first to calibrate the estimate")
    ratio = preset_cost_ratio(plan.preset) if plan.preset != "laptop" else {"cloud": 1.0}
    per_run = float(np.mean([r.get("wall_seconds", r["seconds"]) for r in measured]))
    n_runs = 0
    for t in targets:
        if t in ("table2", "table3", "fig7"):
            n_runs += len(plan.depths) * len(plan.seeds)
        elif t == "variants":
            n_runs += len(VARIANTS)
        elif t in ("fig8", "fig9"):
            n_runs += len(plan.large_depths) * len(plan.seeds) * 5
    scale = max(ratio.values())
    seconds = n_runs * per_run * scale
    return seconds, (f"{n_runs} runs x {per_run:.0f} s per laptop run measured here (mean of {len(measured)}) x "
                     f"{scale:.1f} (training FLOPs per image, {plan.preset} / laptop, worst model)")


# ---------------------------------------------------------------------------------- driver
def reproduce(targets, plan, report_path=None):
    """Run the targets in order; write each target's files and the report. Returns {target: summary}.

    With 'all', a target that fails (e.g. CIFAR-10 not on this machine) is recorded as not run and
    the others go on; a single target's failure is recorded, the report rewritten, then re-raised.
    """
    from .report import write_report
    order = list(TARGETS) if "all" in targets else list(dict.fromkeys(targets))
    unknown = [t for t in order if t not in TARGETS]
    if unknown:
        raise ReproductionError(f"unknown target(s) {unknown}; choose from {TARGETS + ('all', 'report')}")
    report_path = Path(report_path) if report_path else plan.out.parent / "REPRODUCTION.md"
    if plan.preset == "paper":
        seconds, why = estimate_cost(order, plan)
        plan.log("expected cost with the paper preset: " +
                 (f"about {seconds / 3600:.1f} h ({why})" if seconds is not None else f"unknown ({why})"))
    data_cache = DataCache(plan)
    results = {}
    for target in order:
        start = time.perf_counter()
        try:
            if target in TABLE_TARGETS:
                results[target] = run_table(target, plan, data_cache)
            elif target in LARGE_TARGETS:
                results[target] = run_large(target, plan, data_cache)
            elif target == "fig10":
                results[target] = run_fig10(plan, data_cache)
            elif target == "variants":
                results[target] = run_variants(plan, data_cache)
            elif target in ("stability", "factors"):
                results[target] = run_study(target, plan, data_cache)
        except Exception as exc:
            _write_error(plan, target, exc)
            if "all" not in targets:
                write_report(plan.out, report_path)
                raise
            results[target] = {"target": target, "error": f"{type(exc).__name__}: {exc}"}
        results[target]["wall_seconds"] = time.perf_counter() - start
        _record_wall(plan, target, results[target])
        plan.log(f"{target}: done in {results[target]['wall_seconds']:.0f} s"
                 + (f" ({results[target]['error'].splitlines()[0]})" if "error" in results[target] else ""))
    write_report(plan.out, report_path)
    return results


def run_study(target, plan, data_cache):
    """The stability and factors studies (cloudedge.study); writes their CSV/PNG/MD/JSON."""
    from . import study
    if target == "stability":
        s = study.run_stability(plan, data_cache)
        return write_outputs(plan, target, s, s["rows"], ["dataset", "init", "n_train", "warmup", "seeds",
                                                          "trained", "stuck_seeds", "val_accs"],
                             study.plot_stability, study.stability_markdown)
    s = study.run_factors(plan, data_cache, plan.study_datasets, plan.study_factors)
    return write_outputs(plan, target, s, s["rows"], ["dataset", "factor", "level", "gap", "gap_low", "gap_high",
                                                      "acc0", "acc1", "clouds", "clouds_trained", "edge_wins",
                                                      "pairs", "gap_per_cloud"],
                         study.plot_factors, study.factors_markdown)


def _write_error(plan, target, exc):
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / f"{target}.json").write_text(json.dumps(
        {"target": target, "preset": plan.preset, "quick": plan.quick,
         "error": f"{type(exc).__name__}: {exc}"}, indent=1))


def _record_wall(plan, target, summary):
    f = plan.out / f"{target}.json"
    if f.exists():
        d = json.loads(f.read_text())
        d["wall_seconds"] = summary["wall_seconds"]
        f.write_text(json.dumps(d, indent=1, default=_jsonable))


def record_error(plan, target, exc):
    """Used by the command when a single target fails: the report then says why it did not run."""
    _write_error(plan, target, exc)


def finite(x):
    return x is not None and not (isinstance(x, float) and math.isnan(x))
