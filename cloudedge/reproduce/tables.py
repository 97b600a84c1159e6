"""Tables 2 and 3 and Fig. 7: accuracy vs training images, ours beside the paper's.

Protocol (the paper's): CloudCNN trained on the cloud's part of the train split; EdgeCNN0-k
(from scratch) and EdgeCNN1-k (CloudCNN's k lower conv layers, frozen) for k in 3, 5, 10;
N = 120 labeled images (initialization phase), then cloud-labeled uploads arrive and the edge
retrains every 120 new labels up to 1,200 (update phase). Accuracy is on the test split.
One run per (seed, k); mean ± std over seeds at each N.
"""
import time

from .. import paper
from .render import fmt, mean_std, pyplot, write_outputs
from .runs import ReproductionError, execute, experiment_job, run_config

DATASETS = {"table2": "mnist", "table3": "fashion-mnist", "fig7": "cifar10"}
PAPER_KEY = {"mnist": "mnist", "mnist-full": "mnist", "fashion-mnist": "fashion_mnist", "cifar10": "cifar10"}
COLUMNS = ["target", "dataset", "model", "n_images", "paper", "ours_mean", "ours_std", "n_seeds", "ours_per_seed"]


def run(target, plan, data_cache):
    """table2 / table3 / fig7: every seed x depth; writes CSV, PNG, MD, JSON. Returns the summary."""
    dataset = DATASETS[target]
    if plan.quick and dataset != "mnist":
        raise ReproductionError(f"--quick runs only MNIST (table2); {target} needs the full {dataset}")
    data_cache(dataset)  # DatasetNotFoundError (clear message) before any training
    start = time.perf_counter()
    points = [(s, k) for s in plan.seeds for k in plan.depths]   # seed-major: whole seeds finish first
    jobs = [experiment_job(plan, run_config(plan, dataset, k, s), data_cache) for s, k in points]
    runs, missing = [], []
    for (s, k), (result, reused) in zip(points, execute(jobs, plan, target)):
        if result is None:
            missing.append({"depth": k, "seed": s})
        else:
            runs.append({**result, "reused": reused})
    if not runs:
        raise ReproductionError(f"{target}: no finished run in {plan.out / 'runs'} for seeds {plan.seeds}")
    summary = summarize_table(target, dataset, runs, plan)
    summary["missing_runs"] = missing
    x_train, _, x_test, _ = data_cache(dataset)
    summary["n_train"], summary["n_test"] = int(len(x_train)), int(len(x_test))
    summary["invocation_seconds"] = time.perf_counter() - start
    return write_outputs(plan, target, summary, summary["rows"], COLUMNS, plot_table, table_markdown)


def curve_by_n(edge):
    """{n_images: accuracy} of one edge's curve."""
    return {int(p["n_images"]): p["accuracy"] for p in edge["curve"]}


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


def plot_table(summary, path):
    plt = pyplot()
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
