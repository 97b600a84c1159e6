"""What the paper did not run, on MNIST, k=3, the first seed: label policies (what the edge
does with CloudCNN's labels) and the feature cache (the frozen layers' features computed once)."""
import time

from .render import fmt, pyplot, write_outputs
from .runs import ReproductionError, execute, experiment_job, run_config

VARIANTS = (("trust-all (paper)", {}), ("confidence:0.9", {"label_policy": "confidence:0.9"}),
            ("soft", {"label_policy": "soft"}), ("no feature cache", {"edge": {"feature_cache": False}}))


def run(plan, data_cache, dataset="mnist", depth=3, names=None):
    """The variants on dataset, k=depth, plan's first seed; writes CSV, PNG, MD, JSON.
    names: a subset of the VARIANTS names (default all; the first, the paper's, is always run)."""
    seed = plan.seeds[0]
    data_cache(dataset)
    start = time.perf_counter()
    rows, runs = [], {}
    chosen = [v for i, v in enumerate(VARIANTS) if i == 0 or names is None or v[0] in names]
    jobs = [experiment_job(plan, run_config(plan, dataset, depth, seed, **overrides), data_cache)
            for _, overrides in chosen]
    for (name, _), (r, _) in zip(chosen, execute(jobs, plan, "variants")):
        if r is None:
            continue
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
    if not runs:
        raise ReproductionError(f"variants: no finished run in {plan.out / 'runs'} for seed {seed}")
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
    plt = pyplot()
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
