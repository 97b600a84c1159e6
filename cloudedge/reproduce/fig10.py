"""Fig. 10: training time of EdgeCNN0-k vs EdgeCNN1-k, read from the table runs' curves
(nothing new is trained when the tables have run), and, from the variants, the time without
the feature cache."""
import json
import os

import numpy as np

from .. import paper
from . import tables
from .render import pyplot, write_outputs

COLUMNS = ["dataset", "depth", "n_seeds", "edge0_init_s", "edge1_init_s", "init_ratio", "init_reduction_pct",
           "edge0_total_s", "edge1_total_s", "total_ratio", "total_reduction_pct", "edge0_per_epoch_s",
           "edge1_per_epoch_s", "per_epoch_ratio", "per_epoch_reduction_pct", "paper_reduction_pct"]


def run(plan, data_cache):
    """Training time of EdgeCNN0-k vs EdgeCNN1-k, from the table targets' runs (runs table2 if
    none of them has results for this preset); writes CSV, PNG, MD, JSON."""
    sources = []
    for target in tables.DATASETS:
        f = plan.out / f"{target}.json"
        if f.exists():
            s = json.loads(f.read_text())
            if s.get("preset") == plan.preset and s.get("quick") == plan.quick and "runs" in s:
                sources.append(s)
    if not sources:
        sources.append(tables.run("table2", plan, data_cache))
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
            row["paper_reduction_pct"] = paper.TRAINING_TIME_REDUCTION.get((tables.PAPER_KEY[s["dataset"]], k))
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
    return write_outputs(plan, "fig10", summary, rows, COLUMNS, plot_fig10, fig10_markdown)


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
    plt = pyplot()
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
