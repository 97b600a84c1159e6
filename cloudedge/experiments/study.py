"""The headline, measured over cloud and edge seeds: EdgeCNN1-k vs EdgeCNN0-k after the
initialization phase (Algorithm 1 on N labeled images).

    clouds = [measure_cloud(replace(cfg, seed=s), data) for s in (0, 1, 2)]   # 5 edge seeds each
    summarize(clouds)   # mean gap, its 95% interval, accuracies, clouds that did not train

One (cloud seed, edge seed) pair gives one gap: EdgeCNN1-k minus EdgeCNN0-k on the same N
labeled images with the same init seed, both scored on the test split. A cloud seed fixes the
CloudCNN and the cloud/edge split; an edge seed fixes the N images and the edges' init. Clouds
move the gap far more than edges do, so the interval treats each cloud's mean gap as one
observation: mean over clouds +- t(0.975, C-1) * sd / sqrt(C). With one cloud the interval is
over its edges and says so. A CloudCNN that did not train (Cloud.check_trained) is counted and
left out, as a deployment would refuse it; the seeds are fixed before anything is measured.

What makes the gap move, one factor at a time, is the factors target
(cloudedge/reproduce/factors.py), which stores each cloud's result and reuses it.
"""
import json
import math
import time
from pathlib import Path

import numpy as np

from tinycnn.train import evaluate

from ..system.cloud import UntrainedCloudError
from ..system.data import edge_data
from .experiment import cloud_part, get_cloud, make_edge

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


STUDY_FILE = Path(__file__).resolve().parents[2] / "docs" / "reproduction" / "factors.json"


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
