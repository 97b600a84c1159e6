"""What makes the headline hold: the N = 120, k = 3 gap (EdgeCNN1-k minus EdgeCNN0-k after the
initialization phase), over CloudCNN seeds x edge seeds, one factor changed at a time.

``FACTORS`` varies one thing at a time from ``base_config``. Each (cell, cloud seed) is one
stored run (``runs/factors/<cell_hash>.json``, cloudedge.experiments.study.measure_cloud's result), so an
interrupted study resumes where it stopped; the gap and its interval are cloudedge.experiments.study's.
"""
from dataclasses import replace
from functools import partial

from ..system.cloud import CLOUD_EPOCHS, cloud_train_config
from ..system.config import RunConfig, config_json, edge_train_config, updated
from ..experiments.experiment import get_cloud
from ..experiments.study import EDGE_SEEDS, measure_cloud, summarize, ten_crop_accuracy
from .render import pyplot, write_outputs
from .runs import Job, cell_hash, cloud_of, execute, store

COLUMNS = ["dataset", "factor", "level", "gap", "gap_low", "gap_high", "acc0", "acc1", "clouds", "clouds_trained",
           "edge_wins", "pairs", "gap_per_cloud"]


def base_config(dataset="mnist"):
    """The default setting at N = 120, k = 3: initialization phase only; CloudCNN trained as the
    reproduction trains it (same cache key, so the study and the tables share their clouds)."""
    return RunConfig(dataset=dataset, uploads=0,
                     cloud_train=cloud_train_config(max_epochs=CLOUD_EPOCHS[dataset]))


# (factor, level, data set, changes to base_config for cloudedge.system.config.updated); the first row
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


def factor_config(plan, dataset, over):
    """base_config(dataset) at plan's preset with one factor's changes (quick: tiny, 1 cloud and 3 edge epochs)."""
    cfg = updated(base_config(dataset), **{**over, "edge": {"preset": plan.preset, **over.get("edge", {})}})
    if plan.quick:
        cfg = updated(cfg, cloud_train=replace(cfg.cloud_train, max_epochs=1),
                      edge={"preset": "tiny", "train": replace(cfg.edge.train, max_epochs=3)})
    return cfg


def cloud_configs(cfg, plan):
    """The cell's configuration at each of plan's seeds (the cloud seeds)."""
    return [replace(cfg, seed=s, edge_seed=None) for s in plan.seeds]


def gap_jobs(configs, data_cache, plan, edge_seeds, store_dir):
    """One stored job per cloud seed (study.measure_cloud), in store_dir."""
    return [Job(store_dir / f"{cell_hash(c, edge_seeds)}.json",
                partial(measure, c, data_cache, edge_seeds, plan.workdir, plan.log), cloud_of(c, data_cache))
            for c in configs]


def measure(cfg, data_cache, edge_seeds, workdir, log):
    """study.measure_cloud's result for one cloud seed, with the configuration it measured."""
    result = measure_cloud(cfg, data_cache(cfg.dataset), edge_seeds, workdir, log)
    result["config"] = config_json(cfg)
    return result


def cell_gap(configs, jobs, results, data_cache, plan):
    """The cell's {"clouds": [one result per cloud seed], "summary": summarize(clouds)} from its
    jobs' execute results. A cloud seed not stored counts as not run under plan.only_existing."""
    clouds = []
    for cfg, job, (result, reused) in zip(configs, jobs, results):
        if result is None:
            clouds.append({"cloud_seed": cfg.seed, "not_run": True})
            continue
        if reused and result["trained"] and "cloud_acc_10crop" not in result:   # stored before 10-crop was measured
            data = data_cache(cfg.dataset)
            result["cloud_acc_10crop"] = ten_crop_accuracy(get_cloud(data, cfg, plan.workdir)[0], data)
            store(job.path, result)
        clouds.append(result)
    return {"clouds": clouds, "summary": summarize(clouds)}


def measure_gap(cfg, data_cache, plan, edge_seeds, store_dir):
    """One cell: measure_cloud for each of plan's seeds (the cloud seeds), each a job stored in
    store_dir, then summarize (gap)."""
    configs = cloud_configs(cfg, plan)
    jobs = gap_jobs(configs, data_cache, plan, edge_seeds, store_dir)
    return cell_gap(configs, jobs, execute(jobs, plan), data_cache, plan)


def run(plan, data_cache):
    """Every cell of FACTORS for plan.study_datasets (only plan.study_factors, if given) over plan's
    cloud seeds x 5 edge seeds; one row per cell; writes CSV, PNG, MD, JSON. All cells' runs go
    to one execute, so a cluster runs them side by side.
    --quick: tiny preset, 2 edge seeds, the first three cells that keep k and the widths."""
    only = plan.study_factors
    cells = [c for c in factor_cells(plan.study_datasets) if not only or c[0] in only or f"{c[2]}/{c[0]}" in only]
    if plan.quick:
        cells = [c for c in cells if not {"depth", "preset"} & set(c[3].get("edge", {}))][:3]
    edge_seeds = EDGE_SEEDS[:2] if plan.quick else EDGE_SEEDS
    cell_configs, cell_jobs = [], []
    for factor, level, dataset, over in cells:
        cfg = factor_config(plan, dataset, over)
        plan.log(f"factors: {dataset} / {factor}: {level}")
        cell_configs.append(cloud_configs(cfg, plan))
        cell_jobs.append(gap_jobs(cell_configs[-1], data_cache, plan, edge_seeds, plan.out / "runs" / "factors"))
    results = iter(execute([job for jobs in cell_jobs for job in jobs], plan, "factors"))
    rows = []
    for (factor, level, dataset, _), configs, jobs in zip(cells, cell_configs, cell_jobs):
        res = cell_gap(configs, jobs, [next(results) for _ in jobs], data_cache, plan)
        rows.append({"factor": factor, "level": level, "dataset": dataset, **res["summary"],
                     "clouds_detail": res["clouds"]})
    summary = {"target": "factors", "preset": plan.preset, "quick": plan.quick, "cloud_seeds": list(plan.seeds),
               "edge_seeds": list(edge_seeds), "rows": rows,
               "compute_seconds": sum(c.get("seconds", 0) for r in rows for c in r["clouds_detail"])}
    return write_outputs(plan, "factors", summary, rows, COLUMNS, plot_factors, factors_markdown)


def _pm(row):
    if "gap" not in row:
        return "no cloud trained"
    return f"{row['gap']:+.2f} [{row['gap_low']:+.2f}, {row['gap_high']:+.2f}]"


def factors_markdown(s):
    L = [f"EdgeCNN1-k minus EdgeCNN0-k after the initialization phase on N = 120 labeled images, in points "
         f"of test accuracy: mean over {len(s['cloud_seeds'])} CloudCNN seeds x {len(s['edge_seeds'])} edge "
         f"seeds, with a 95% t interval over the per-cloud mean gaps (cloudedge/experiments/study.py). One factor "
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
    plt = pyplot()
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
