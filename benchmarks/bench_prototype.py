"""Load and memory of the networked prototype on loopback (docs/prototype.md, "Load and memory").

Starts `cloudedge serve-cloud --untrained` and `cloudedge serve-edge` as subprocesses on
127.0.0.1 (ephemeral ports, a random token, temporary state folders), then:

1. load: for each --concurrency C, a burst of --requests POST /infer of one 28x28 digit,
   C at once, to the cloud and to an edge without its uploader (an edge /infer is a device
   upload: answered by EdgeCNN and fsynced to the store). Prints requests/s, p50/p99
   latency and errors, and each server's RSS before and after the bursts.
2. growth: a fresh edge, its uploader on (as a server runs), gets --labels digits, --step at
   a time; after each step, once the uploader has had them labeled by the cloud (64 objects
   an upload; the edge retrains when its --retrain trigger says so), both servers' RSS is
   read. The slope of a least-squares line gives MB per 1,000 absorbed labels, over all
   readings and over the last half (once a --max-samples bound is reached, that one shows
   what still grows).
3. --breakdown (instead of 1 and 2): the same edge in this process, labels from a local
   untrained CloudCNN; after --warmup labels, tracemalloc counts what --labels more leave
   held, by line of code, in MB per 1,000 labels. This is where the memory goes.

Every request has a timeout, every count is bounded, the servers are stopped with SIGTERM
at the end. RSS is VmRSS from /proc (Linux only). Run from the repository root:

    python benchmarks/bench_prototype.py [--labels 4000] [--max-samples N] [--json out.json]
    python benchmarks/bench_prototype.py --breakdown [--warmup 1000] [--labels 2000] [--max-samples N]
"""
import argparse
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cloudedge.commands.client import stream_digits
from cloudedge.server import httpclient, payload

READY_SECONDS = 600.0      # the edge trains EdgeCNN (Alg. 1) before it listens
REQUEST_TIMEOUT = 60.0
STEP_TIMEOUT = 600.0       # for the uploader to have one growth step labeled (retrainings included)


def rss_mb(pid, field="VmRSS"):
    """Resident set size of a process, MB (VmRSS, or VmHWM for the peak, from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def start(args, ready_file, log_file, token):
    """A server subprocess and its URL, once its ready file names one."""
    env = {**os.environ, "CLOUDEDGE_TOKEN": token}
    proc = subprocess.Popen([sys.executable, "-m", "cloudedge.cli", *args, "--host", "127.0.0.1", "--port", "0",
                             "--ready-file", str(ready_file), "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(log_file, "w"))
    deadline = time.monotonic() + READY_SECONDS
    while not ready_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{args[0]} did not start; see {log_file}:\n{Path(log_file).read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, ready_file.read_text().strip()


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def burst(url, images, token, concurrency):
    """POST /infer each image (C at once) -> requests/s, p50/p99 ms, errors."""
    def one(image):
        body, headers = payload.encode_images(image)
        start = time.perf_counter()
        try:
            httpclient.call(url, "POST", "/infer", body, headers, token=token, timeout=REQUEST_TIMEOUT)
            return time.perf_counter() - start, ""
        except (httpclient.CallError, httpclient.StatusError) as exc:
            return time.perf_counter() - start, str(exc)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, images))
    wall = time.perf_counter() - start
    ok = np.array([s for s, error in results if not error]) * 1e3
    return {"requests": len(images), "concurrency": concurrency, "errors": sum(bool(e) for _, e in results),
            "requests_per_s": len(images) / wall, "p50_ms": float(np.percentile(ok, 50)) if len(ok) else None,
            "p99_ms": float(np.percentile(ok, 99)) if len(ok) else None}


def labeled_count(url, token):
    reply = httpclient.call(url, "GET", "/metrics", token=token, timeout=REQUEST_TIMEOUT).json()
    return reply["edge"]["store"]["labeled"]


def upload(url, digits, token, batch=64):
    """Store the digits at the edge, `batch` per request (not timed)."""
    for i in range(0, len(digits), batch):
        body, headers = payload.encode_images(digits[i:i + batch, :, :, None])
        httpclient.call(url, "POST", "/infer", body, headers, token=token, timeout=REQUEST_TIMEOUT)


def growth(edge_url, edge_pid, cloud_pid, digits, token, labels, step):
    """Upload `labels` digits, `step` at a time, each time waiting (bounded) until the edge's
    uploader has had them labeled; both servers' RSS after each step."""
    def reading():
        return {"labels": labeled_count(edge_url, token), "rss_mb": rss_mb(edge_pid),
                "cloud_rss_mb": rss_mb(cloud_pid), "seconds": time.perf_counter() - start}

    def show(row):
        print(f"  {row['labels']:6d} labels  edge RSS {row['rss_mb']:7.1f} MB  cloud RSS "
              f"{row['cloud_rss_mb']:7.1f} MB  {row['seconds']:6.1f} s", flush=True)

    start = time.perf_counter()
    rows = [reading()]
    show(rows[0])
    for done in range(step, labels + 1, step):
        upload(edge_url, digits[np.arange(done - step, done) % len(digits)], token)
        target, deadline = rows[0]["labels"] + done, time.monotonic() + STEP_TIMEOUT
        while labeled_count(edge_url, token) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the edge labeled fewer than {target} objects in {STEP_TIMEOUT:g} s")
            time.sleep(0.5)
        rows.append(reading())
        show(rows[-1])
    return {"rows": rows, "mb_per_1000_labels": slope(rows), "mb_per_1000_labels_last_half": slope(rows[len(rows) // 2:]),
            "peak_rss_mb": rss_mb(edge_pid, "VmHWM")}


def slope(rows):
    """MB of RSS per 1,000 labels: least-squares slope over the readings (None for fewer than 3)."""
    if len(rows) < 3:
        return None
    n, mb = np.array([r["labels"] for r in rows], float), np.array([r["rss_mb"] for r in rows])
    return float(np.polyfit(n, mb, 1)[0] * 1000)


def breakdown(args, digits):
    """Allocations still held after args.labels labels (counted after args.warmup more), by line of
    code, MB per 1,000 labels."""
    import gc
    import tracemalloc

    from cloudedge.cli import build_parser
    from cloudedge.system.cloud import Cloud
    from cloudedge.commands.serve_edge import build_runtime
    from cloudedge.system.models import cloud_cnn

    class LocalCloud:               # the RemoteCloud calls, answered by an untrained CloudCNN here
        url = "local"

        def __init__(self, input_shape):
            self.cloud = Cloud(cloud_cnn(input_shape, preset=args.preset, seed=0), input_shape)

        def layers(self, m):
            return self.cloud.export_layers(m)

        def label(self, message, probs=False):
            return self.cloud.handle(message, probs=probs)

    with tempfile.TemporaryDirectory(prefix="bench_prototype_") as tmp:
        cli = ["serve-edge", "--cloud", "http://127.0.0.1:9", "--state-dir", tmp, "--no-auth",
               "--preset", args.preset, "--retrain", args.retrain]
        if args.max_samples is not None:
            cli += ["--max-samples", str(args.max_samples)]
        runtime, _ = build_runtime(build_parser().parse_args(cli), None)
        runtime.cloud = LocalCloud(runtime.make_edge().config.input_shape)
        runtime.start()

        def absorb(first, count):
            for i in range(first, first + count, 64):
                runtime.serve(digits[np.arange(i, i + 64) % len(digits), :, :, None])
                runtime.sync_once(0.0)
            gc.collect()          # count what is held, not cyclic garbage waiting for the collector

        warmup, n = -(-args.warmup // 64) * 64, -(-args.labels // 64) * 64
        tracemalloc.start()       # from here on, so that what the counted labels free is seen too
        absorb(0, warmup)
        before = tracemalloc.take_snapshot()
        absorb(warmup, n)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    diffs = after.compare_to(before, "lineno")
    held = sum(d.size_diff for d in diffs)
    rows = [{"line": str(d.traceback[0]), "mb_per_1000_labels": d.size_diff / 1e6 / n * 1000, "blocks": d.count_diff}
            for d in diffs[:8]]
    for r in rows:
        print(f"  {r['mb_per_1000_labels']:8.3f} MB per 1,000 labels  {r['blocks']:6d} blocks  {r['line']}")
    print(f"  all: {held / 1e6 / n * 1000:.3f} MB per 1,000 labels (labels {warmup} to {warmup + n})")
    return {"warmup": warmup, "labels": n, "mb_per_1000_labels": held / 1e6 / n * 1000, "top": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop", choices=["laptop", "paper"], help="model widths (both servers)")
    ap.add_argument("--requests", type=int, default=200, help="requests per burst (default 200)")
    ap.add_argument("--concurrency", default="1,8", help="bursts' concurrency, comma-separated (default 1,8)")
    ap.add_argument("--labels", type=int, default=4000, help="labels the edge absorbs in the growth phase")
    ap.add_argument("--step", type=int, default=500, help="labels between RSS readings (default 500)")
    ap.add_argument("--retrain", default="every:120", help="the edge's --retrain (default: the server's)")
    ap.add_argument("--max-samples", type=int, default=None, help="the edge's --max-samples (default: the server's)")
    ap.add_argument("--breakdown", action="store_true", help="only the in-process allocation breakdown")
    ap.add_argument("--warmup", type=int, default=0, help="--breakdown: labels absorbed before counting")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.requests < 1 or args.requests > 10_000 or args.labels < 0 or args.labels > 50_000 or args.step < 1:
        raise SystemExit("need 1 <= --requests <= 10000, 0 <= --labels <= 50000, --step >= 1")

    token = secrets.token_hex(16)
    digits, _ = stream_digits("mnist", 120, 0, 0, 1500)      # (n, 28, 28) uint8, the edge's upload stream
    out = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "load_average_start": os.getloadavg(),
           "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
           "preset": args.preset, "retrain": args.retrain, "max_samples": args.max_samples}
    if args.breakdown:
        out["breakdown"] = breakdown(args, digits)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
        return
    with tempfile.TemporaryDirectory(prefix="bench_prototype_") as tmp:
        tmp = Path(tmp)
        cloud, cloud_url = start(["serve-cloud", "--untrained", "--preset", args.preset],
                                 tmp / "cloud.url", tmp / "cloud.log", token)
        edge = None

        def start_edge(name, *extra):
            edge_args = ["serve-edge", "--cloud", cloud_url, "--state-dir", str(tmp / name), "--preset", args.preset,
                         "--retrain", args.retrain, *extra]
            if args.max_samples is not None:
                edge_args += ["--max-samples", str(args.max_samples)]
            return start(edge_args, tmp / f"{name}.url", tmp / f"{name}.log", token)

        try:
            # 1. load, on an edge without its uploader: the bursts alone
            edge, edge_url = start_edge("edge-load", "--no-uploader")
            out["rss_before_mb"] = {"cloud": rss_mb(cloud.pid), "edge": rss_mb(edge.pid)}
            out["bursts"] = []
            for c in (int(v) for v in args.concurrency.split(",")):
                for name, url in (("cloud", cloud_url), ("edge", edge_url)):
                    images = digits[np.arange(args.requests) % len(digits)]
                    burst(url, images[:min(8, len(images))], token, c)     # warm-up, not counted
                    row = {"target": name, **burst(url, images, token, c)}
                    out["bursts"].append(row)
                    print(f"  {name:5s} /infer  c={c}  {row['requests_per_s']:7.1f} req/s  p50 {row['p50_ms']:7.1f} ms"
                          f"  p99 {row['p99_ms']:7.1f} ms  errors {row['errors']}", flush=True)
            out["rss_after_mb"] = {"cloud": rss_mb(cloud.pid), "edge": rss_mb(edge.pid)}
            print(f"  RSS before {out['rss_before_mb']}, after {out['rss_after_mb']}", flush=True)
            stop(edge)
            edge = None
            # 2. growth, on a fresh edge whose uploader labels what comes in, as a server runs
            if args.labels:
                edge, edge_url = start_edge("edge-growth")
                out["growth"] = growth(edge_url, edge.pid, cloud.pid, digits, token, args.labels, args.step)
                g = out["growth"]

                def mb(value):
                    return "n/a (fewer than 3 readings)" if value is None else f"{value:.1f} MB"
                print(f"  edge: {mb(g['mb_per_1000_labels'])} per 1,000 labels ({mb(g['mb_per_1000_labels_last_half'])} "
                      f"over the last half), peak RSS {g['peak_rss_mb']:.1f} MB", flush=True)
        finally:
            for proc in (edge, cloud):
                if proc is not None:
                    stop(proc)
    out["load_average_end"] = os.getloadavg()
    print(json.dumps({k: out[k] for k in ("date", "load_average_start", "load_average_end", "cpus")}))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
