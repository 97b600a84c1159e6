"""Every number and figure of docs/cloudedge.md, measured now on the embedded MNIST sample.

    python examples/cloudedge_studies.py [--out docs] [--quiet] [--only NAME ...]

Uses the demo's CloudCNN (trained once and cached, like `cloudedge demo`) and the demo's
stream (N = 120 labeled, 1,080 uploads, M = 120), then varies one thing at a time:

    params        parameter counts of CloudCNN / EdgeCNN-k for each preset and pool stride
    n120          EdgeCNN0-3 vs EdgeCNN1-3 after Alg. 1 only, N = 120, ten edge seeds
    demo          EdgeCNN0-3 vs EdgeCNN1-3, accuracy vs images (figure)
    segmentation  segmented objects vs raw uploads: bytes and accuracy
    cache         frozen-feature cache: training seconds, bit-identical weights
    labels        trust-all / confidence / soft labels: label noise, accuracy, bytes
    trigger       retrain every M vs expected gain: trainings, cost, accuracy served
    simulate      3 edges with different data, one cloud, a diurnal load (figure)

(The paper's full tables, k = 3, 5, 10 on three data sets, are `cloudedge reproduce`'s job.)

Writes <out>/cloudedge_results.json and PNGs in <out>/figures/.
"""
import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cloudedge.system.data import load_dataset
from cloudedge.system.config import RunConfig, SimConfig, updated
from cloudedge.experiments.experiment import get_cloud, public, run_edges
from cloudedge.experiments.figures import plot_accuracy, plot_dataflow
from cloudedge.system.models import PRESETS, cloud_cnn, edge_cnn
from cloudedge.paper import LABELED_SIZES, TABLE2_MNIST
from cloudedge.policies.segmentation import Segmenter
from cloudedge.timing.simulator import Simulator
from cloudedge.threads import engine_threads
from tinycnn.train import TrainConfig, evaluate

STUDIES = ("params", "n120", "demo", "segmentation", "cache", "labels", "trigger", "simulate")


def demo_config(**changes):
    """RunConfig's defaults (the paper's MNIST setting), CloudCNN trained 4 epochs; changes as config.updated takes them."""
    return updated(RunConfig(cloud_train=TrainConfig(max_epochs=4, progress=False)), **changes)


def curve(edge_report):
    return [(p["n_images"], p["accuracy"]) for p in edge_report["curve"]]


def served_accuracy(edge, chunk, n_ticks):
    """Mean test accuracy of the model in service, over the stream's ticks (step function)."""
    trainings = [r for r in edge.history if r["event"] in ("init", "retrain")]
    acc, k = [], 0
    for t in range(n_ticks):
        while k + 1 < len(trainings) and trainings[k + 1]["t"] is not None and trainings[k + 1]["t"] <= t:
            k += 1
        acc.append(trainings[k]["accuracy"])
    return float(np.mean(acc))


def study_params():
    from tinycnn.flops import profile
    rows = []
    for preset in PRESETS:
        for stride in (1, 2):
            cloud = cloud_cnn(preset=preset, pool_stride=stride)
            row = {"preset": preset, "pool_stride": stride, "CloudCNN": cloud.num_params(),
                   "CloudCNN_macs": profile(cloud, (1, 28, 28)).totals["macs"]}
            for k in (3, 5, 10):
                row[f"EdgeCNN-{k}"] = edge_cnn(k, preset=preset, pool_stride=stride).num_params()
            rows.append(row)
    return rows


def study_n120(cloud, data, seeds=range(10)):
    """Initialization phase only, N = 120, many edge seeds; and how active the shared channels are."""
    x, y, x_test, y_test = data
    cfg = demo_config(uploads=0)
    acc = []
    for seed in seeds:
        run = public(run_edges(cloud, data, replace(cfg, edge_seed=seed)))
        acc.append([e["accuracy"] for e in run["edges"]])
    prefix = cloud.model[:6]
    h = x_test[:500]
    active = []
    for i, layer in enumerate(prefix):
        h = layer.forward(h)
        if i % 2 == 1:
            active.append((h > 0).mean(axis=(0, 2, 3)).round(4).tolist())
    prefix.clear_cache()
    acc = np.array(acc)
    return {"seeds": list(seeds), "accuracy": acc.tolist(), "mean": acc.mean(0).tolist(),
            "edge1_wins": int((acc[:, 1] > acc[:, 0]).sum()), "min": acc.min(0).tolist(),
            "shared_channel_active_fraction": active}


def study_demo(cloud, data, figures, seeds=(0, 1, 2)):
    """The demo's stream for several edge seeds (labeled images, init, shuffles); CloudCNN fixed."""
    runs = []
    for seed in seeds:
        res = public(run_edges(cloud, data, demo_config(edge_seed=seed)))
        runs.append({e["model"]: e for e in res["edges"]})
    models = list(runs[0])
    sizes = [n for n, _ in curve(runs[0][models[0]])]
    acc = {m: np.array([[a for _, a in curve(r[m])] for r in runs]) for m in models}   # (seed, size)
    mean = {"dataset": "mnist", "depth": 3, "cloud_acc": cloud.evaluate(data[2], data[3]),
            "edges": [{"model": m, "curve": [{"n_images": n, "accuracy": a}
                                             for n, a in zip(sizes, acc[m].mean(0))]} for m in models]}
    paper = {f"paper {k}": (LABELED_SIZES, v) for k, v in TABLE2_MNIST.items() if k.endswith("-3")}
    plot_accuracy(mean, figures / "cloudedge_accuracy.png", paper=paper,
                  title=f"embedded MNIST, laptop preset, mean of {len(seeds)} seeds (paper dashed)")
    return {"cloud_acc": mean["cloud_acc"], "sizes": sizes, "seeds": list(seeds),
            "accuracy": {m: acc[m].tolist() for m in models},
            "mean": {m: acc[m].mean(0).tolist() for m in models},
            "edge1_wins": int((acc[models[1]] > acc[models[0]]).sum()), "points": int(acc[models[0]].size),
            "train_seconds": {m: [r[m]["train_seconds"] for r in runs] for m in models},
            "bytes": {m: {k: runs[0][m][k] for k in ("bytes_up", "raw_bytes_up", "bytes_down")} for m in models},
            "noise": runs[0][models[1]]["noise"]}


def study_segmentation(cloud, data):
    out = {}
    for segment in (True, False):
        run = run_edges(cloud, data, demo_config(edge={"segment": segment}))
        out["segmented" if segment else "raw"] = {
            e["model"]: {"curve": curve(e), "final": e["accuracy"], "bytes_up": e["bytes_up"]}
            for e in public(run)["edges"]}
        if segment:
            x_test, y_test = data[2], data[3]
            seg_test = Segmenter().roundtrip(x_test)
            out["test_on_segmented"] = {e.name: {"raw": evaluate(e.model, x_test, y_test)[1],
                                                 "segmented": evaluate(e.model, seg_test, y_test)[1]}
                                        for e in run["_edges"]}
    out["delta_final_points"] = {m: 100 * (out["segmented"][m]["final"] - out["raw"][m]["final"])
                                 for m in out["raw"]}
    out["delta_mean_points"] = {m: 100 * float(np.mean([a for _, a in out["segmented"][m]["curve"]])
                                               - np.mean([a for _, a in out["raw"][m]["curve"]]))
                                for m in out["raw"]}
    out["cloud_acc_segmented_test"] = cloud.evaluate(Segmenter().roundtrip(data[2]), data[3])
    return out


def study_cache(cloud, data):
    out = {}
    runs = {}
    for cached in (True, False):
        start = time.perf_counter()
        runs[cached] = run_edges(cloud, data, demo_config(models=(1,), edge={"feature_cache": cached}))
        e = public(runs[cached])["edges"][0]
        out["cached" if cached else "uncached"] = {"train_seconds": e["train_seconds"],
                                                   "wall_seconds": time.perf_counter() - start,
                                                   "curve": curve(e)}
    a, b = runs[True]["_edges"][0].model, runs[False]["_edges"][0].model
    out["bit_identical"] = all(np.array_equal(p, q) for p, q in zip(a.state_dict().values(),
                                                                    b.state_dict().values()))
    out["probe_max_abs_diff"] = max(r["cache_probe_max_diff"] for r in runs[True]["_edges"][0].history
                                    if r["event"] in ("init", "retrain"))
    out["speedup"] = out["uncached"]["train_seconds"] / out["cached"]["train_seconds"]
    return out


def study_labels(cloud, data):
    out = {}
    for policy in ("trust-all", "confidence:0.9", "confidence:0.99", "soft"):
        run = public(run_edges(cloud, data, demo_config(models=(1,), label_policy=policy)))
        e = run["edges"][0]
        out[policy] = {"final": e["accuracy"], "curve": curve(e), "noise": e["noise"],
                       "bytes_down": e["bytes_down"], "n_samples": e["n_samples"]}
    return out


def study_trigger(cloud, data, rates):
    out = {}
    for trigger in ["every:120", "every:60"] + [f"gain:{rate:g}" for rate in rates]:
        cfg = demo_config(models=(1,), trigger=trigger, chunk=30, load=None)
        run = run_edges(cloud, data, cfg)
        e = public(run)["edges"][0]
        edge = run["_edges"][0]
        passes = sum(r["sample_passes"] for r in edge.history if r["event"] == "retrain")
        out[trigger] = {"retrains": e["trainings"] - 1, "retrain_sample_passes": passes,
                        "final": e["accuracy"], "served_accuracy": served_accuracy(edge, 30, 1080 // 30),
                        "n_images": [n for n, _ in curve(e)],
                        "why": [r["why"] for r in edge.history if r["event"] == "retrain"]}
    return out


def study_simulate(cloud, data, figures):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cfg = SimConfig(n_edges=3, shared=(True, True, False), alpha=0.5, rate=2.0, tick=10, duration=900,
                    load="diurnal:600", trigger="every:120", eval_images=2000)
    start = time.perf_counter()
    cloud.reset_stats()
    result = Simulator(cloud, data, cfg).run()
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for e in result["edges"]:
        rows = [r for r in result["timeline"] if r["edge"] == e["name"] and r["event"] in ("init", "retrain")]
        ax.step([r["t"] for r in rows] + [cfg.duration], [100 * r["local_accuracy"] for r in rows] +
                [100 * rows[-1]["local_accuracy"]], where="post", label=e["name"])
    t = np.linspace(0, cfg.duration, 200)
    ax2 = ax.twinx()
    from cloudedge.policies.loads import make_load
    ax2.plot(t, [make_load(cfg.load)(v) for v in t], color="gray", alpha=0.4, label="core load")
    ax2.axhline(cfg.edge.load_threshold, color="gray", linestyle=":", alpha=0.6)
    ax2.set_ylabel("core-network load")
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("accuracy on the edge's class mix (%)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(figures / "cloudedge_simulation.png")
    plt.close(fig)
    return {"config": result["config"], "edges": result["edges"], "cloud": result["cloud"],
            "timeline": [r for r in result["timeline"] if r["event"] != "sync"],
            "syncs": sum(1 for r in result["timeline"] if r["event"] == "sync"),
            "wall_seconds": time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs")
    parser.add_argument("--workdir", default=None, help="CloudCNN cache (default: the demo's)")
    parser.add_argument("--only", nargs="*", choices=STUDIES, default=None)
    parser.add_argument("--gain-rates", type=float, nargs="+", default=[50.0, 100.0, 200.0])
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    out_dir = Path(args.out)
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "cloudedge_results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    wanted = args.only or list(STUDIES)
    start = time.perf_counter()
    with engine_threads(1):
        data = load_dataset("mnist")
        cloud, meta = get_cloud(data, demo_config(), args.workdir, progress=not args.quiet)
        results["cloud"] = {"accuracy": cloud.evaluate(data[2], data[3]), "cached": meta["cached"],
                            "info": cloud.info}
        plot_dataflow(figures / "cloudedge_dataflow.png")
        for name in wanted:
            t = time.perf_counter()
            if name == "params":
                results[name] = study_params()
            elif name == "n120":
                results[name] = study_n120(cloud, data)
            elif name == "demo":
                results[name] = study_demo(cloud, data, figures)
            elif name == "segmentation":
                results[name] = study_segmentation(cloud, data)
            elif name == "cache":
                results[name] = study_cache(cloud, data)
            elif name == "labels":
                results[name] = study_labels(cloud, data)
            elif name == "trigger":
                results[name] = study_trigger(cloud, data, args.gain_rates)
            elif name == "simulate":
                results[name] = study_simulate(cloud, data, figures)
            results.setdefault("seconds", {})[name] = time.perf_counter() - t
            if not args.quiet:
                print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
    results["seconds"]["total"] = time.perf_counter() - start
    results_path.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {results_path} and {figures}/cloudedge_*.png")


if __name__ == "__main__":
    main()
