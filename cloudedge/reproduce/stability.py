"""CloudCNN training stability: does CloudCNN leave chance in its first epoch at lr 0.01?

For each cell (data set, init, cloud images) and warm-up (0 = the paper's plain SGD, 200 =
cloud_train_config's), one epoch per seed with no restart, recording the best validation
accuracy. A run below Cloud.MIN_VAL_ACC did not train. Each seed's run is stored under the key
of the CloudCNN it trains (``runs/stability/<cloud_key>.json``, which hashes only what that
training depends on, so changing an edge default keeps the stored runs) and reused.
"""
from dataclasses import replace
from functools import partial

import numpy as np

from ..system.cloud import MIN_VAL_ACC, Cloud, cloud_train_config
from ..system.config import EdgeConfig, RunConfig
from ..experiments.experiment import cloud_part
from .render import pyplot, write_outputs
from .runs import Job, ReproductionError, cloud_of, execute

COLUMNS = ["dataset", "init", "n_train", "warmup", "seeds", "trained", "stuck_seeds", "val_accs"]
CELLS = (("mnist", "he-normal", 0), ("mnist", "glorot-uniform", 0), ("fashion-mnist", "he-normal", 9600))
SEEDS = tuple(range(10))


def run(plan, data_cache, warmups=(0, 200)):
    """Every cell x warm-up x seed (--quick: the first cell, 2 seeds, tiny preset, 300 cloud
    images); writes CSV, PNG, MD, JSON."""
    seeds = SEEDS[:2] if plan.quick else SEEDS
    cells = CELLS[:1] if plan.quick else CELLS
    preset = "tiny" if plan.quick else plan.preset
    groups, jobs = [], []          # one group per (cell, warm-up): its seeds' jobs, all run in one execute
    for dataset, init, images in cells:
        for warmup in warmups:
            configs = [RunConfig(dataset=dataset, seed=s, edge=EdgeConfig(preset=preset, init=init),
                                 cloud_images=min(images, 300) if plan.quick and images else images,
                                 cloud_train=cloud_train_config(max_epochs=1, warmup_steps=warmup))
                       for s in seeds]
            groups.append((dataset, init, warmup, slice(len(jobs), len(jobs) + len(configs))))
            jobs += [Job(plan.out / "runs" / "stability" / f"{cloud_of(cfg, data_cache)}.json",
                         partial(one_epoch, cfg, data_cache, plan.log)) for cfg in configs]
    results = execute(jobs, plan, "stability")
    rows = []
    for dataset, init, warmup, part in groups:
        runs = [r for r, _ in results[part] if r is not None]
        if runs:
            rows.append({"dataset": dataset, "init": init, "n_train": runs[0]["n_train"], "warmup": warmup,
                         "seeds": len(runs), "trained": sum(r["trained"] for r in runs),
                         "stuck_seeds": [r["seed"] for r in runs if not r["trained"]],
                         "val_accs": [r["best_val_acc"] for r in runs]})
    if not rows:
        raise ReproductionError(f"stability: no finished run in {plan.out / 'runs' / 'stability'}")
    summary = {"target": "stability", "preset": preset, "quick": plan.quick, "threshold": MIN_VAL_ACC, "rows": rows,
               "compute_seconds": sum(r["seconds"] for r, _ in results if r is not None)}
    return write_outputs(plan, "stability", summary, rows, COLUMNS, plot_stability, stability_markdown)


def one_epoch(cfg, data_cache, log):
    """One epoch of CloudCNN for cfg (no restart): its best validation accuracy, and whether it trained."""
    data = data_cache(cfg.dataset)
    ids, _ = cloud_part(data[1], cfg)
    cloud = Cloud.train(data[0][ids], data[1][ids], preset=cfg.edge.preset, seed=cfg.seed, init=cfg.edge.init, restarts=0,
                        config=replace(cfg.cloud_train, seed=cfg.seed))
    result = {"dataset": cfg.dataset, "init": cfg.edge.init, "warmup": cfg.cloud_train.warmup_steps, "seed": cfg.seed,
              "n_train": int(len(ids)), "best_val_acc": cloud.info["best_val_acc"], "trained": cloud.info["trained"],
              "seconds": cloud.info["train_seconds"]}
    log(f"stability: {cfg.dataset} {cfg.edge.init} warm-up {result['warmup']} seed {cfg.seed}: "
        f"val acc {100 * result['best_val_acc']:.1f}%")
    return result


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
    plt = pyplot()
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
