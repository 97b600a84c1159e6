"""Figs. 8 and 9: EdgeCNN trained (Algorithm 1, ground-truth labels) on growing labeled
training sets up to the whole train split, next to CloudCNN (trained on the cloud's part,
as in the tables). The sets are nested prefixes of one seeded stratified order."""
import time
import warnings
from functools import partial

import numpy as np

from tinycnn.datasets import DatasetNotFoundError
from tinycnn.sampling import stratified_sample

from .. import paper
from ..experiments.experiment import get_cloud, make_edges
from .render import fmt, mean_std, pyplot, write_outputs
from .runs import Job, ReproductionError, cloud_of, config_hash, execute, run_config
from .tables import PAPER_KEY

DATASETS = {"fig8": "mnist-full", "fig9": "fashion-mnist"}
COLUMNS = ["target", "dataset", "model", "n_images", "paper", "ours_mean", "ours_std", "n_seeds",
           "train_seconds_mean", "ours_per_seed"]


def default_large_sizes(plan, n_train):
    """The training-set sizes to run (--quick: 200, 600; else --sizes, else 1,200 to 60,000),
    none above the train split's n_train images."""
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


def point_job(plan, target, dataset, data_cache, seed, depth, n):
    """One training-set size of fig8/fig9 as a stored job (measure_point)."""
    cfg = run_config(plan, dataset, depth, seed, models=tuple(plan.large_models))
    path = (plan.out / "runs" /
            f"{target}-{dataset}-{cfg.edge.preset}-k{depth}-s{seed}-n{n}-{config_hash(cfg, plan.quick)}.json")
    return Job(path, partial(measure_point, target, cfg, data_cache, seed, n, plan.workdir), cloud_of(cfg, data_cache))


def measure_point(target, cfg, data_cache, seed, n, workdir):
    """CloudCNN, then EdgeCNN0/1-k initialized on the first n images of the stratified order of
    seed, each scored on the test split."""
    data = data_cache(cfg.dataset)
    x_train, y_train, x_test, y_test = data
    t0 = time.perf_counter()
    cloud, meta = get_cloud(data, cfg, workdir, True, False)
    cloud_acc = cloud.evaluate(x_test, y_test)
    ids, _ = stratified_sample(y_train, n, [seed, 23])
    models = []
    for edge in make_edges(cloud, cfg):
        row = edge.initialize(x_train[ids], y_train[ids], ids=ids)
        models.append({"model": edge.summary()["model"], "accuracy": edge.evaluate(x_test, y_test),
                       "epochs": row["epochs"], "train_seconds": row["train_seconds"]})
    return {"target": target, "dataset": cfg.dataset, "seed": seed, "depth": cfg.edge.depth, "n_images": n,
            "preset": cfg.edge.preset, "cloud_acc": cloud_acc, "cloud_cached": meta["cached"],
            "cloud_train_size": cloud.info.get("n_train"), "models": models,
            "edge_max_epochs": cfg.edge.train.max_epochs, "seconds": time.perf_counter() - t0}


def run(target, plan, data_cache):
    """fig8 / fig9: every seed x depth x training-set size; writes CSV, PNG, MD, JSON."""
    dataset = DATASETS[target]
    deviation = None
    if plan.quick:
        dataset = "mnist"
    elif dataset == "mnist-full":
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
    jobs = [point_job(plan, target, dataset, data_cache, s, k, n)
            for s in plan.seeds for k in plan.large_depths for n in sizes]
    points = [point for point, _ in execute(jobs, plan, target) if point is not None]
    if not points:
        raise ReproductionError(f"{target}: no finished run in {plan.out / 'runs'} for seeds {plan.seeds}")
    clouds = [p["cloud_acc"] for p in points]
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
               "cloud_train_size": points[0].get("cloud_train_size"),
               "deviation": deviation, "compute_seconds": sum(p["seconds"] for p in points),
               "invocation_seconds": time.perf_counter() - start,
               "edge_max_epochs": points[0]["edge_max_epochs"]}
    return write_outputs(plan, target, summary, rows, COLUMNS, plot_large, large_markdown)


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
    plt = pyplot()
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
