"""The headline, measured over cloud and edge seeds: EdgeCNN1-k vs EdgeCNN0-k after the
initialization phase (Algorithm 1 on N labeled images), and what makes the gap move.

    gap = measure_gap(RunConfig(), cloud_seeds=(0, 1, 2), edge_seeds=range(5))
    gap["summary"]   # mean gap, its 95% interval, accuracies, clouds that did not train

One (cloud seed, edge seed) pair gives one gap: EdgeCNN1-k minus EdgeCNN0-k on the same N
labeled images with the same init seed, both scored on the test split. A cloud seed fixes the
CloudCNN and the cloud/edge split; an edge seed fixes the N images and the edges' init. Clouds
move the gap far more than edges do, so the interval treats each cloud's mean gap as one
observation: mean over clouds +- t(0.975, C-1) * sd / sqrt(C). With one cloud the interval is
over its edges and says so. A CloudCNN that did not train (Cloud.check_trained) is counted and
left out, as a deployment would refuse it; the seeds are fixed before anything is measured.

``FACTORS`` varies one thing at a time from the default setting; ``run_factors`` measures each
cell and stores every cloud's result as JSON, so an interrupted study resumes where it stopped.
"""
import hashlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from tinycnn.atomic import atomic_write
from tinycnn.train import evaluate

from .cloud import CLOUD_EPOCHS, UntrainedCloudError, cloud_train_config
from .config import EdgeConfig, RunConfig, config_json, edge_train_config, updated
from .data import edge_data
from .experiment import cloud_part, get_cloud, make_edge

CLOUD_SEEDS = (0, 1, 2)
EDGE_SEEDS = (0, 1, 2, 3, 4)

# t(0.975, df) for df = 1..30 (two-sided 95%); above 30 the normal 1.96 is within 2%.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t975(df):
    """Student's t quantile 0.975 for df degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"need df >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def interval(values):
    """(mean, low, high) of a 95% t interval over values; low = high = mean for one value."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("need at least one value")
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    half = t975(v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, mean - half, mean + half


def summarize(clouds):
    """Summary of per-cloud results (as measure_cloud returns): gap in points, intervals, counts."""
    not_run = [c for c in clouds if c.get("not_run")]
    clouds = [c for c in clouds if not c.get("not_run")]
    trained = [c for c in clouds if c["trained"]]
    out = {"clouds": len(clouds), "clouds_trained": len(trained), "clouds_not_run": len(not_run),
           "edges_per_cloud": 0,
           "cloud_accs": [c["cloud_acc"] for c in trained],
           "cloud_accs_10crop": [c.get("cloud_acc_10crop") for c in trained]}
    if not trained:
        return out
    acc0 = np.array([c["acc0"] for c in trained])             # (clouds, edges)
    acc1 = np.array([c["acc1"] for c in trained])
    gaps = 100 * (acc1 - acc0)
    per_cloud = gaps.mean(axis=1)
    if len(trained) > 1:
        mean, low, high = interval(per_cloud)
        over = "clouds"
    else:
        mean, low, high = interval(gaps[0])
        over = "edges of one cloud"
    out.update(edges_per_cloud=int(gaps.shape[1]), gap=mean, gap_low=low, gap_high=high, interval_over=over,
               gap_per_cloud=per_cloud.tolist(), gap_sd_edges=float(gaps.std(axis=1, ddof=1).mean())
               if gaps.shape[1] > 1 else 0.0,
               edge_wins=int((gaps > 0).sum()), pairs=int(gaps.size),
               acc0=float(100 * acc0.mean()), acc1=float(100 * acc1.mean()))
    return out


def edge_accuracy(cloud, data, cfg, share, shared, seed):
    """Test accuracy of EdgeCNN{shared}-k after Algorithm 1 on share.labeled (one edge seed)."""
    x_train, y_train, x_test, y_test = data
    edge = make_edge(cloud, cfg, shared, seed)
    edge.initialize(x_train[share.labeled], y_train[share.labeled], ids=share.labeled)
    return edge.evaluate(x_test, y_test)


def edge_pairs(cloud, data, cfg, edge_seeds=EDGE_SEEDS, progress=None):
    """EdgeCNN0-k and EdgeCNN1-k after Algorithm 1 on N = cfg.labeled images of cloud's edge pool,
    for each edge seed. Returns (acc0 list, acc1 list)."""
    _, pool = cloud_part(data[1], cfg)
    acc0, acc1 = [], []
    for e in edge_seeds:
        share = edge_data(data[1], pool, cfg.labeled, seed=e)
        acc0.append(edge_accuracy(cloud, data, cfg, share, False, e))
        acc1.append(edge_accuracy(cloud, data, cfg, share, True, e))
        if progress:
            progress(f"  cloud {cfg.seed} edge {e}: EdgeCNN0 {100 * acc0[-1]:.2f}%  EdgeCNN1 {100 * acc1[-1]:.2f}%")
    return acc0, acc1


def measure_cloud(cfg, data, edge_seeds=EDGE_SEEDS, workdir=None, progress=None):
    """One cloud seed (cfg.seed): its CloudCNN (cached or trained), then edge_pairs. JSON-able dict."""
    start = time.perf_counter()
    try:
        cloud, meta = get_cloud(data, cfg, workdir)
    except UntrainedCloudError as exc:
        return {"cloud_seed": cfg.seed, "trained": False, "why": str(exc), "seconds": time.perf_counter() - start}
    acc0, acc1 = edge_pairs(cloud, data, cfg, edge_seeds, progress)
    return {"cloud_seed": cfg.seed, "trained": True, "cloud_acc": cloud.evaluate(data[2], data[3]),
            "cloud_acc_10crop": ten_crop_accuracy(cloud, data),
            "cloud_source": meta["source"], "cloud_attempts": len(cloud.info.get("attempts", [])) or None,
            "edge_seeds": list(edge_seeds), "acc0": acc0, "acc1": acc1, "seconds": time.perf_counter() - start}


STUDY_FILE = Path(__file__).resolve().parent.parent / "docs" / "reproduction" / "factors.json"


def stored_headline(dataset, path=STUDY_FILE):
    """The factors study's baseline row for dataset (gap over cloud seeds), or None if not run here."""
    path = Path(path)
    if not path.exists():
        return None
    rows = json.loads(path.read_text()).get("rows", [])
    return next((r for r in rows if r["dataset"] == dataset and r["factor"] == "baseline" and "gap" in r), None)


def headline(cloud, data, cfg, edge_seeds=EDGE_SEEDS, progress=None):
    """The N = cfg.labeled gap for this one cloud over edge seeds, and the study's figure over clouds."""
    acc0, acc1 = edge_pairs(cloud, data, cfg, edge_seeds, progress)
    one = summarize([{"trained": True, "cloud_acc": None, "acc0": acc0, "acc1": acc1}])
    return {"labeled": cfg.labeled, "depth": cfg.edge.depth, "edge_seeds": list(edge_seeds), "acc0": acc0,
            "acc1": acc1, "this_cloud": one, "over_clouds": stored_headline(cfg.dataset)}


def headline_text(h):
    """Lines for the demo/experiment report: this cloud's gap over its edges, the study's over clouds."""
    s = h["this_cloud"]
    gaps = [100 * (b - a) for a, b in zip(h["acc0"], h["acc1"])]
    lines = [f"Headline at N = {h['labeled']}, k = {h['depth']} (initialization phase): EdgeCNN1 minus EdgeCNN0 "
             f"= {s['gap']:+.2f} points, 95% interval [{s['gap_low']:+.2f}, {s['gap_high']:+.2f}] over "
             f"{len(gaps)} edge seeds of this CloudCNN (per seed: {' '.join(f'{g:+.1f}' for g in gaps)}; "
             f"EdgeCNN0 {s['acc0']:.2f}%, EdgeCNN1 {s['acc1']:.2f}% on average)."]
    o = h["over_clouds"]
    if o:
        lines.append(f"Over CloudCNN seeds (the factors study, {o['clouds_trained']} clouds x {o['edges_per_cloud']} "
                     f"edges, docs/REPRODUCTION.md): {o['gap']:+.2f} points, 95% interval "
                     f"[{o['gap_low']:+.2f}, {o['gap_high']:+.2f}]; one cloud is not the claim.")
    else:
        lines.append("Over CloudCNN seeds: not measured here; `cloudedge reproduce factors` measures it "
                     "(one cloud is not the claim).")
    return lines


def ten_crop_accuracy(cloud, data):
    """CloudCNN's test accuracy with 10-crop testing, as the paper reports it (tinycnn.crops)."""
    return evaluate(cloud.model, data[2], data[3], ten_crop=True)[1]


def measure_gap(cfg, data, cloud_seeds=CLOUD_SEEDS, edge_seeds=EDGE_SEEDS, workdir=None, store=None,
                progress=None, only_existing=False):
    """measure_cloud for each cloud seed (reusing results stored under ``store``), then summarize.
    only_existing: measure nothing new; a cloud seed with no stored result counts as not run."""
    clouds = []
    for s in cloud_seeds:
        c = replace(cfg, seed=s, edge_seed=None)
        path = None if store is None else Path(store) / f"{cell_hash(c, edge_seeds)}.json"
        if only_existing and (path is None or not path.exists()):
            clouds.append({"cloud_seed": s, "not_run": True})
            continue
        if path is not None and path.exists():
            result = json.loads(path.read_text())
            if result["trained"] and "cloud_acc_10crop" not in result:   # stored before 10-crop was measured
                result["cloud_acc_10crop"] = ten_crop_accuracy(get_cloud(data, c, workdir)[0], data)
                _store(path, result)
            clouds.append(result)
            continue
        result = measure_cloud(c, data, edge_seeds, workdir, progress)
        result["config"] = config_json(c)
        if path is not None:
            _store(path, result)
        clouds.append(result)
    return {"clouds": clouds, "summary": summarize(clouds)}


def _store(path, result):
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(result, indent=1, default=str).encode())


def cell_hash(cfg, edge_seeds):
    blob = json.dumps({"cfg": config_json(cfg), "edges": list(edge_seeds)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------ the factors
def base_config(dataset="mnist"):
    """The default setting at N = 120, k = 3: initialization phase only; CloudCNN trained as the
    reproduction trains it (same cache key, so the study and the tables share their clouds)."""
    return RunConfig(dataset=dataset, uploads=0, cloud_train=cloud_train_config(max_epochs=CLOUD_EPOCHS[dataset]))


# (factor, level, data set, changes to base_config for cloudedge.config.updated); the first row
# of each data set is its baseline.
FACTORS = (
    ("baseline", "laptop widths (÷4), He-normal, 30 fixed edge epochs, cloud 6,000, k=3", "mnist", {}),
    ("widths", "÷8 (eighth)", "mnist", {"edge": {"preset": "eighth"}}),
    ("widths", "÷2 (half)", "mnist", {"edge": {"preset": "half"}}),
    ("init", "Glorot-uniform", "mnist", {"edge": {"init": "glorot-uniform"}}),
    ("edge procedure", "the paper's stopping rules", "mnist", {"edge": {"train": edge_train_config("paper")}}),
    ("cloud data", "all 8,000 (saw the edge pool)", "mnist", {"cloud_sees_edges": True}),
    ("k", "5", "mnist", {"edge": {"depth": 5}}),
    ("k", "10", "mnist", {"edge": {"depth": 10}}),
    ("baseline", "laptop widths (÷4), He-normal, 30 fixed edge epochs, cloud 45,000, k=3", "fashion-mnist", {}),
    ("cloud data", "15,000", "fashion-mnist", {"cloud_images": 15000}),
    ("cloud data", "60,000 (saw the edge pool)", "fashion-mnist", {"cloud_sees_edges": True}),
)


def factor_cells(datasets=("mnist",)):
    return [(f, level, ds, over) for f, level, ds, over in FACTORS if ds in datasets]


def run_factors(plan, data_cache, datasets=("mnist",), only=()):
    """Every cell of FACTORS for these data sets over plan's cloud seeds x 5 edge seeds.
    Returns the summary; rows are one per cell. --quick: tiny preset, 2 edge seeds, k=3 cells only."""
    rows = []
    cells = [c for c in factor_cells(datasets) if not only or c[0] in only or f"{c[2]}/{c[0]}" in only]
    if plan.quick:
        cells = [c for c in cells if not {"depth", "preset"} & set(c[3].get("edge", {}))][:3]
    edge_seeds = EDGE_SEEDS[:2] if plan.quick else EDGE_SEEDS
    for factor, level, dataset, over in cells:
        cfg = factor_config(plan, dataset, over)
        plan.log(f"factors: {dataset} / {factor}: {level}")
        res = measure_gap(cfg, data_cache(dataset), plan.seeds, edge_seeds, plan.workdir,
                          plan.out / "runs" / "factors", progress=plan.log, only_existing=plan.only_existing)
        rows.append({"factor": factor, "level": level, "dataset": dataset, **res["summary"],
                     "clouds_detail": res["clouds"]})
    return {"target": "factors", "preset": plan.preset, "quick": plan.quick, "cloud_seeds": list(plan.seeds),
            "edge_seeds": list(edge_seeds), "rows": rows}


def factor_config(plan, dataset, over):
    """base_config(dataset) at plan's preset with one factor's changes (quick: tiny, 1 cloud and 3 edge epochs)."""
    cfg = updated(base_config(dataset), **{**over, "edge": {"preset": plan.preset, **over.get("edge", {})}})
    if plan.quick:
        cfg = updated(cfg, cloud_train=replace(cfg.cloud_train, max_epochs=1),
                      edge={"preset": "tiny", "train": replace(cfg.edge.train, max_epochs=3)})
    return cfg


def _pm(row):
    if "gap" not in row:
        return "no cloud trained"
    return f"{row['gap']:+.2f} [{row['gap_low']:+.2f}, {row['gap_high']:+.2f}]"


def factors_markdown(s):
    L = [f"EdgeCNN1-k minus EdgeCNN0-k after the initialization phase on N = 120 labeled images, in points "
         f"of test accuracy: mean over {len(s['cloud_seeds'])} CloudCNN seeds x {len(s['edge_seeds'])} edge "
         f"seeds, with a 95% t interval over the per-cloud mean gaps (cloudedge/study.py). One factor "
         f"changes per row; clouds that did not train are counted and left out.", "",
         "| data set | factor | setting | gap (95% interval) | EdgeCNN0 | EdgeCNN1 | CloudCNN (10-crop) | "
         "clouds trained | pairs won |", "|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        crops = [v for v in r.get("cloud_accs_10crop", []) if v is not None]
        cloud = (f"{100 * min(r['cloud_accs']):.1f}-{100 * max(r['cloud_accs']):.1f}%" if r["cloud_accs"] else "-")
        if crops:
            cloud += f" ({100 * min(crops):.1f}-{100 * max(crops):.1f}%)"
        acc = (f"{r['acc0']:.2f}%", f"{r['acc1']:.2f}%") if "acc0" in r else ("-", "-")
        won = f"{r['edge_wins']}/{r['pairs']}" if "pairs" in r else "-"
        late = f" ({r['clouds_not_run']} not run in time)" if r.get("clouds_not_run") else ""
        L.append(f"| {r['dataset']} | {r['factor']} | {r['level']} | {_pm(r)} | {acc[0]} | {acc[1]} | {cloud} | "
                 f"{r['clouds_trained']}/{r['clouds']}{late} | {won} |")
    return "\n".join(L + ["", "Reading (generated from the numbers above):", ""] + factors_reading(s))


def factors_reading(s):
    """A plain reading of the table, generated from its numbers: per data set, the baseline and
    how each factor moves the gap, and whether the interval excludes zero."""
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in s["rows"]):
        rows = [r for r in s["rows"] if r["dataset"] == dataset]
        base = next((r for r in rows if r["factor"] == "baseline" and "gap" in r), None)
        for r in rows:
            if "gap" not in r:
                lines.append(f"- {dataset}, {r['factor']} = {r['level']}: none of its {r['clouds']} CloudCNNs trained, "
                             f"so there is no gap to measure (a deployment refuses such clouds).")
                continue
            where = ("above 0: transfer wins" if r["gap_low"] > 0 else
                     "below 0: transfer loses" if r["gap_high"] < 0 else "includes 0: not settled")
            delta = "" if base is None or r is base else f", {r['gap'] - base['gap']:+.2f} against the baseline"
            failed = r["clouds"] - r["clouds_trained"]
            if r.get("clouds_not_run"):
                lines.append(f"- {dataset}, {r['factor']} = {r['level']}: measured on {r['clouds']} of "
                             f"{r['clouds'] + r['clouds_not_run']} CloudCNN seeds (the rest did not finish in time).")
            lines.append(f"- {dataset}, {r['factor']} = {r['level']}: gap {r['gap']:+.2f} points{delta}; interval "
                         f"{where}; EdgeCNN1 won {r['edge_wins']} of {r['pairs']} pairs"
                         + (f"; {failed} of {r['clouds']} CloudCNNs did not train" if failed else "") + ".")
    return lines


def plot_factors(s, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in s["rows"] if "gap" in r]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(rows), 1) + 1.2))
    for i, r in enumerate(rows):
        ax.errorbar(r["gap"], i, xerr=[[r["gap"] - r["gap_low"]], [r["gap_high"] - r["gap"]]], fmt="o",
                    color="C0", capsize=3)
        ax.scatter(r["gap_per_cloud"], [i] * len(r["gap_per_cloud"]), marker="x", color="C1", s=18)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{r['dataset']}: {r['factor']}: {r['level']}" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("EdgeCNN1-3 minus EdgeCNN0-3 at N = 120 (points); o = mean, 95% interval; x = each cloud")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- CloudCNN stability
STABILITY_CELLS = (("mnist", "he-normal", 0), ("mnist", "glorot-uniform", 0), ("fashion-mnist", "he-normal", 9600))
STABILITY_SEEDS = tuple(range(10))


def run_stability(plan, data_cache, warmups=(0, 200)):
    """Does CloudCNN leave chance in its first epoch at lr 0.01? For each cell (data set, init,
    cloud images) and warm-up (0 = the paper's plain SGD, 200 = cloud_train_config's), train one
    epoch per seed (no restart) and record the best validation accuracy. A run below
    Cloud.MIN_VAL_ACC did not train. Runs are stored and reused."""
    from .cloud import MIN_VAL_ACC, Cloud, cloud_train_config
    seeds = STABILITY_SEEDS[:2] if plan.quick else STABILITY_SEEDS
    cells = STABILITY_CELLS[:1] if plan.quick else STABILITY_CELLS
    preset = "tiny" if plan.quick else plan.preset
    rows = []
    for dataset, init, images in cells:
        data = data_cache(dataset)
        for warmup in warmups:
            runs = []
            for s in seeds:
                cfg = RunConfig(dataset=dataset, seed=s, edge=EdgeConfig(preset=preset, init=init),
                                cloud_images=min(images, 300) if plan.quick and images else images,
                                cloud_train=cloud_train_config(max_epochs=1, warmup_steps=warmup))
                ids, _ = cloud_part(data[1], cfg)
                path = plan.out / "runs" / "stability" / f"{cell_hash(cfg, ())}.json"
                if path.exists():
                    runs.append(json.loads(path.read_text()))
                    continue
                cloud = Cloud.train(data[0][ids], data[1][ids], preset=preset, seed=s, init=init, restarts=0,
                                    config=replace(cfg.cloud_train, seed=s))
                run = {"dataset": dataset, "init": init, "warmup": warmup, "seed": s, "n_train": int(len(ids)),
                       "best_val_acc": cloud.info["best_val_acc"], "trained": cloud.info["trained"],
                       "seconds": cloud.info["train_seconds"]}
                plan.log(f"stability: {dataset} {init} warm-up {warmup} seed {s}: "
                         f"val acc {100 * run['best_val_acc']:.1f}%")
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(path) as f:
                    f.write(json.dumps(run).encode())
                runs.append(run)
            rows.append({"dataset": dataset, "init": init, "n_train": runs[0]["n_train"], "warmup": warmup,
                         "seeds": len(runs), "trained": sum(r["trained"] for r in runs),
                         "stuck_seeds": [r["seed"] for r in runs if not r["trained"]],
                         "val_accs": [r["best_val_acc"] for r in runs]})
    return {"target": "stability", "preset": preset, "quick": plan.quick, "threshold": MIN_VAL_ACC, "rows": rows}


def stability_markdown(s):
    L = [f"One epoch of CloudCNN ({s['preset']} preset) at the paper's lr 0.01, momentum 0.9, batch 32, per "
         f"seed, no restart. A run whose best validation accuracy stays below {100 * s['threshold']:.0f}% did "
         f"not train (its loss sits at ln 10 = 2.30). Warm-up 200 = the lr rises linearly over the first 200 "
         f"steps (cloud_train_config, the default of every entry point).", "",
         "| data set | init | cloud images | warm-up steps | trained | stuck seeds | median val acc |",
         "|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        L.append(f"| {r['dataset']} | {r['init']} | {r['n_train']:,} | {r['warmup']} | {r['trained']}/{r['seeds']} | "
                 f"{', '.join(map(str, r['stuck_seeds'])) or 'none'} | {100 * float(np.median(r['val_accs'])):.1f}% |")
    return "\n".join(L)


def plot_stability(s, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for i, r in enumerate(s["rows"]):
        ax.scatter([i] * len(r["val_accs"]), [100 * v for v in r["val_accs"]], color="C0" if r["warmup"] else "C3",
                   s=16)
    ax.axhline(100 * s["threshold"], color="k", lw=0.8, ls="--")
    ax.set_xticks(range(len(s["rows"])), [f"{r['dataset']}\n{r['init']}\nwarm-up {r['warmup']}" for r in s["rows"]],
                  fontsize=6)
    ax.set_ylabel("best val accuracy after 1 epoch (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
