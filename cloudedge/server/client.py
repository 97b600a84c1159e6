"""The mobile-device load generator: upload real images, time every exchange.

Images are digits from the edge's upload stream (cloudedge.system.data: never the test split,
never the edge's labeled images), made `size` KiB large by nearest-neighbour upscaling
to a square RGB picture (side = sqrt(size * 1024 / 3)), as a phone camera would send a
bigger picture of the same object. Each request goes over its own connection shaped as
the device's access link (shaping.Shape.client_side); a WAN in front of the cloud is the
cloud server's shaping (serve-cloud --wan), so the cloud path is access link + WAN.

Every row: target, size_k, bytes, image, label (ground truth, never sent), answer,
confidence, model_version, total/upload/server/download/connect seconds (see
httpclient), the server's own preprocess/infer/store seconds, error.
"""
import csv
import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..timing.network import KiB
from . import httpclient, payload
from .imaging import upscale

COLUMNS = ("target", "size_k", "bytes", "image", "label", "answer", "confidence", "model_version",
           "total_s", "upload_s", "server_s", "download_s", "connect_s", "preprocess_s", "infer_s",
           "store_s", "error")


def side_for(size_k, channels=3):
    """Square side whose (side, side, channels) uint8 image is closest to size_k KiB."""
    return max(1, round(math.sqrt(size_k * KiB / channels)))


def make_images(digits, size_k):
    """digits (n, 28, 28) uint8 -> (n, side, side, 3) uint8 of about size_k KiB each."""
    return upscale(digits, side_for(size_k), 3)


def one_request(url, image, token, shape, timeout):
    """POST one (H, W, C) uint8 image to url/infer -> dict of the row's measured fields."""
    body, headers = payload.encode_images(image)
    try:
        reply = httpclient.call(url, "POST", "/infer", body, headers, token=token, shape=shape, timeout=timeout)
    except (httpclient.CallError, httpclient.StatusError) as exc:
        return {"bytes": len(body), "error": str(exc)}
    out = reply.json()
    h = reply.headers
    return {"bytes": len(body), "answer": out["labels"][0], "confidence": out["confidences"][0],
            "model_version": out.get("model_version", ""), "total_s": reply.total_s,
            "upload_s": reply.upload_s, "server_s": reply.server_s, "download_s": reply.download_s,
            "connect_s": reply.connect_s, "preprocess_s": float(h.get("x-preprocess-seconds", "nan")),
            "infer_s": float(h.get("x-infer-seconds", "nan")), "store_s": float(h.get("x-store-seconds", "nan")),
            "error": ""}


def run_load(targets, digits, labels, sizes_k, token=None, shape=None, concurrency=1, timeout=120.0,
             warmup=1):
    """Upload every digit at every size to every target ({"edge": url, "cloud": url}).

    Requests are interleaved (for each size, for each image, each target in turn) so both
    targets see the same machine load; `concurrency` devices send at once, each over its own
    shaped link. `warmup` untimed requests per target go first. Returns the list of rows.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if len(digits) != len(labels) or len(digits) == 0:
        raise ValueError(f"need as many labels as digits (>= 1), got {len(digits)} and {len(labels)}")
    for name, url in targets.items():
        for _ in range(warmup):
            one_request(url, make_images(digits[:1], sizes_k[0])[0], token, shape, timeout)
    jobs = []
    for size_k in sizes_k:
        images = make_images(digits, size_k)
        for i, image in enumerate(images):
            for name, url in targets.items():
                jobs.append(({"target": name, "size_k": size_k, "image": i, "label": int(labels[i])}, url, image))

    def work(job):
        row, url, image = job
        return {**{c: "" for c in COLUMNS}, **row, **one_request(url, image, token, shape, timeout)}

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(work, jobs))


def summarize(rows):
    """Per (target, size_k): count, errors, accuracy and response/upload/server time statistics."""
    out = []
    keys = sorted({(r["target"], r["size_k"]) for r in rows}, key=lambda k: (k[1], k[0]))
    for target, size_k in keys:
        group = [r for r in rows if r["target"] == target and r["size_k"] == size_k]
        ok = [r for r in group if not r["error"]]
        entry = {"target": target, "size_k": size_k, "requests": len(group), "errors": len(group) - len(ok)}
        if ok:
            total = np.array([r["total_s"] for r in ok])
            entry.update({
                "accuracy": float(np.mean([r["answer"] == r["label"] for r in ok])),
                "total_mean_s": float(total.mean()),
                "total_p50_s": float(np.percentile(total, 50)),
                "total_p90_s": float(np.percentile(total, 90)),
                "total_p99_s": float(np.percentile(total, 99)),
                "upload_mean_s": float(np.mean([r["upload_s"] for r in ok])),
                "server_mean_s": float(np.mean([r["server_s"] for r in ok])),
                "download_mean_s": float(np.mean([r["download_s"] for r in ok])),
            })
        out.append(entry)
    return out


def reductions(summary):
    """Per size with both targets: 1 - edge/cloud for mean response and mean upload time."""
    by = {(s["target"], s["size_k"]): s for s in summary if "total_mean_s" in s}
    out = []
    for size_k in sorted({k[1] for k in by}):
        edge, cloud = by.get(("edge", size_k)), by.get(("cloud", size_k))
        if edge and cloud:
            out.append({"size_k": size_k,
                        "response_reduction": 1 - edge["total_mean_s"] / cloud["total_mean_s"],
                        "upload_reduction": 1 - edge["upload_mean_s"] / cloud["upload_mean_s"]})
    return out


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def timestamp():
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
