"""The measurements behind `cloudedge timing` (see timing.py): inference of the real
models on this machine, preprocessing of uploaded images, Fig. 11 runs, and the
response-time model (cloudedge.timing.network) applied to them.

Every time is a median of repeated runs made now, with the real models (random
weights: inference cost does not depend on their values) on random inputs.
"""
import os
import platform
import statistics
import time

import numpy as np

import tinycnn
from tinycnn.flops import profile

from .. import paper
from ..timing import network
from .flops import build_model

PAPER_SIZES_K = (60, 124, 256, 512, 1024, 2048, 4096)
PAPER_FIG11_IMAGES = (2000, 4000, 6000, 8000, 10000)
EDGE, CLOUD = "edgecnn-3", "cloudcnn"
FIG11_MODELS = ("edgecnn-3", "edgecnn-5", "edgecnn-10")
# Break-even chart: cloud speed-ups over this machine; 4 = the paper's cloud/edge
# core-count ratio (16 Xeon cores vs a 4-core i5).
BREAK_EVEN_SPEEDUPS = (1, 4, 16, 64)
BREAK_EVEN_WAN_RATES = tuple(float(r) for r in np.logspace(np.log10(100 * network.KiB),
                                                           np.log10(100 * network.MiB), 31))
# The paper's reported reductions (fractions), for the comparison table.
PAPER = {"response_60K_lte": round(paper.RESPONSE_TIME_REDUCTION["lte_60K"] / 100, 6),
         "upload_512K_lte": 0.5542,  # Section 4.2.2; not in cloudedge.paper
         "inference_60K": round(paper.INFERENCE_TIME_REDUCTION / 100, 6),
         "response_60K_wifi": round(paper.RESPONSE_TIME_REDUCTION["wifi"] / 100, 6),
         "fig11_3_vs_10": round(paper.FIG11_EDGE3_VS["EdgeCNN1-10"] / 100, 6),
         "fig11_3_vs_5": round(paper.FIG11_EDGE3_VS["EdgeCNN1-5"] / 100, 6)}


def median_seconds(fn, repeat, min_seconds=0.0, warmup=1, max_runs=200):
    """Median wall time of fn() over at least `repeat` runs and at least min_seconds
    of timed runs (at most max_runs), after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    while len(times) < repeat or (sum(times) < min_seconds and len(times) < max_runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def raw_image(nbytes, rng):
    """A square uint8 RGB image (side, side, 3) of about nbytes bytes."""
    side = max(1, int((nbytes / 3) ** 0.5))
    return rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)


def preprocess(raw, input_shape):
    """raw (S, S, 3) uint8 -> (1, C, H, W) float32 in [0, 1]: area-average resize
    (crop to a multiple of H, W), grey when C == 1."""
    C, H, W = input_shape
    if C not in (1, 3):
        raise ValueError(f"preprocess makes 1- or 3-channel inputs, got C={C}")
    bh, bw = raw.shape[0] // H, raw.shape[1] // W
    if bh < 1 or bw < 1:
        raise ValueError(f"image {raw.shape[:2]} is smaller than the model input {H}x{W}")
    x = raw[:H * bh, :W * bw].astype(np.float32).reshape(H, bh, W, bw, 3).mean(axis=(1, 3))
    x = x.mean(axis=2, keepdims=True) if C == 1 else x
    return (x.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)


def sgemm_gflops(n, repeat):
    """GFLOP/s of one (n x n) @ (n x n) float32 product on this machine, 2*n^3 FLOPs."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((n, n), dtype=np.float32) for _ in range(2))
    return 2 * n ** 3 / median_seconds(lambda: a @ b, repeat, min_seconds=0.5) / 1e9


def measure_all(cfg):
    """Run every measurement of the command; returns a JSON-able dict."""
    start, load0 = time.perf_counter(), os.getloadavg()
    rng = np.random.default_rng(0)
    shape, repeat, batch = cfg["input"], cfg["repeat"], cfg["batch"]
    names = [CLOUD, *FIG11_MODELS]
    models = {n: build_model(n, shape, cfg["preset"], cfg["pool_stride"]) for n in names}
    gflops = sgemm_gflops(256 if cfg["preset"] == "laptop" else 1024, repeat)
    rows = _inference(models, shape, batch, repeat, gflops, rng)
    b1 = {row["model"]: row["batch1_s"] for row in rows}

    execution = []
    for k in cfg["sizes_k"]:
        raw = raw_image(k * network.KiB, rng)
        prep = median_seconds(lambda raw=raw: preprocess(raw, shape), repeat, min_seconds=0.2)
        execution.append({"size_k": k, "bytes": k * network.KiB, "preprocess_s": prep,
                          EDGE: prep + b1[EDGE], CLOUD: prep + b1[CLOUD]})
    per_byte = _per_byte(execution)
    edge_exec, cloud_exec = (network.Execution(b1[n], per_byte) for n in (EDGE, CLOUD))

    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "numpy": np.__version__, "tinycnn_backend": tinycnn.backend(),
                    "sgemm_gflops": gflops, "loadavg_start": load0},
        "config": {"preset": cfg["preset"], "pool_stride": cfg["pool_stride"], "input": list(shape),
                   "sizes_k": cfg["sizes_k"],
                   "batch": batch, "repeat": repeat, "cloud_speedup": cfg["cloud_speedup"],
                   "fig11_images": cfg["fig11_images"], "result_bytes": network.RESULT_BYTES,
                   "links": {n: vars(link) for n, link in cfg["links"].items()},
                   "wan": vars(cfg["wan"])},
        "inference": rows, "execution": execution,
        "execution_model": {"preprocess_s_per_byte": per_byte, "base_s": b1},
        "response": {name: _responses(link, cfg, execution) for name, link in cfg["links"].items()},
        "fig11": _fig11(models, shape, batch, repeat, cfg["fig11_images"], rng),
        "break_even": _break_even(cfg, edge_exec, cloud_exec),
    }
    result["paper_comparison"] = _compare(result)
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["wall_seconds"] = time.perf_counter() - start
    return result


def _inference(models, shape, batch, repeat, gflops, rng):
    """Batch-1 and batched time per model, and how well FLOPs predict them.

    Two predictions: FLOPs / sgemm rate, and FLOPs / CloudCNN's batched rate (the
    engine's rate on its largest workload; its own batched error is 0 by construction).
    """
    rows = []
    for n, model in models.items():
        x1 = rng.random((1, *shape), dtype=np.float32)
        xb = rng.random((batch, *shape), dtype=np.float32)
        f = profile(model, shape).totals
        t1 = median_seconds(lambda m=model, x=x1: m.forward(x), repeat, min_seconds=1.0)
        tb = median_seconds(lambda m=model, x=xb: m.forward(x), repeat) / batch
        rows.append({"model": n, "macs": f["macs"], "flops": f["flops"],
                     "paper_formula": f["paper_formula"], "params": f["params"],
                     "batch1_s": t1, "batched_s_per_image": tb, "batch": batch,
                     "gflops_batch1": f["flops"] / t1 / 1e9, "gflops_batched": f["flops"] / tb / 1e9})
    engine = next(r["gflops_batched"] for r in rows if r["model"] == CLOUD)
    for row in rows:
        for key, rate in (("sgemm", gflops), ("engine", engine)):
            predicted = row["flops"] / (rate * 1e9)
            row[f"predicted_{key}_s"] = predicted
            row[f"error_{key}_batch1"] = predicted / row["batch1_s"] - 1
            row[f"error_{key}_batched"] = predicted / row["batched_s_per_image"] - 1
    return rows


def _per_byte(execution):
    """Least-squares slope (s/byte, >= 0) of preprocessing time over image size."""
    b = np.array([row["bytes"] for row in execution], dtype=float)
    t = np.array([row["preprocess_s"] for row in execution], dtype=float)
    if len(b) < 2:
        return float(t[0] / b[0])
    return max(float(np.polyfit(b, t, 1)[0]), 0.0)


def _fig11(models, shape, batch, repeat, counts, rng):
    """Time to infer N images in batches, per EdgeCNN-k; repeats interleave the models
    so load from other processes hits them alike."""
    inputs = {count: rng.random((count, *shape), dtype=np.float32) for count in counts}
    times = {(n, c): [] for n in FIG11_MODELS for c in counts}
    for n in FIG11_MODELS:  # warm-up: one batch per model
        models[n].forward(inputs[counts[0]][:batch])
    for _ in range(repeat):
        for n in FIG11_MODELS:
            for count, x in inputs.items():
                t = time.perf_counter()
                for i in range(0, count, batch):
                    models[n].forward(x[i:i + batch])
                times[(n, count)].append(time.perf_counter() - t)
    return [{"model": n, "images": c, "seconds": statistics.median(ts)}
            for (n, c), ts in times.items()]


def _responses(link, cfg, execution):
    edge, cloud = network.edge_path(link), network.cloud_path(link, cfg["wan"])
    out = []
    for row in execution:
        e = network.response_time(edge, row["bytes"], row[EDGE])
        c = network.response_time(cloud, row["bytes"], row[CLOUD] / cfg["cloud_speedup"])
        out.append({"size_k": row["size_k"], "edge": {**vars(e), "total": e.total},
                    "cloud": {**vars(c), "total": c.total},
                    "response_reduction": network.reduction(c.total, e.total),
                    "upload_reduction": network.reduction(c.upload, e.upload)})
    return out


def _break_even(cfg, edge_exec, cloud_exec):
    """Image-size crossing (cloud vs edge) per access link, cloud speed-up k over this
    machine, and WAN rate (the WAN rtt as configured)."""
    out = {}
    for name, link in cfg["links"].items():
        edge = network.edge_path(link)
        out[name] = [
            {"cloud_speedup": k, "wan_rate": rate,
             **vars(network.break_even_size(
                 edge, network.cloud_path(link, network.wan_link(rate, cfg["wan"].rtt)),
                 edge_exec, cloud_exec.scaled(k)))}
            for k in BREAK_EVEN_SPEEDUPS for rate in BREAK_EVEN_WAN_RATES]
    return out


def _compare(result):
    """Our counterparts of the reductions the paper reports."""
    ours = {}
    for link, key in (("lte", "response_60K_lte"), ("wifi", "response_60K_wifi")):
        row = _at(result["response"].get(link, []), 60)
        if row:
            ours[key] = row["response_reduction"]
    row = _at(result["response"].get("lte", []), 512)
    if row:
        ours["upload_512K_lte"] = row["upload_reduction"]
    row = _at(result["execution"], 60)
    if row:
        ours["inference_60K"] = network.reduction(row[CLOUD], row[EDGE])
    smallest = min(r["images"] for r in result["fig11"])
    t = {r["model"]: r["seconds"] for r in result["fig11"] if r["images"] == smallest}
    ours["fig11_3_vs_10"] = network.reduction(t["edgecnn-10"], t["edgecnn-3"])
    ours["fig11_3_vs_5"] = network.reduction(t["edgecnn-5"], t["edgecnn-3"])
    return [{"what": k, "paper": PAPER[k], "ours": ours.get(k)} for k in PAPER]


def _at(rows, size_k):
    return next((r for r in rows if r["size_k"] == size_k), None)
