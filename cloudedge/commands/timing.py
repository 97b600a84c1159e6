"""`cloudedge timing`: measure inference on this machine, feed it to the response-time
model (cloudedge.timing.network) and reproduce the paper's Figs. 4, 5, 6 and 11.

Options and text output here; the measurements in timing_measure.py, the figures in
timing_plots.py.
"""
import json

from threadpoolctl import threadpool_info

from ..system.models import PRESETS
from ..timing import network
from ._common import engine_threads
from .flops import parse_shape
from .timing_measure import (
    BREAK_EVEN_SPEEDUPS,
    CLOUD,
    EDGE,
    FIG11_MODELS,
    PAPER_FIG11_IMAGES,
    PAPER_SIZES_K,
    measure_all,
)

# Defaults of the options, and the ones --quick sets unless given.
DEFAULTS = {"preset": "paper", "input": "3,32,32", "sizes": ",".join(map(str, PAPER_SIZES_K)),
            "batch": 64, "repeat": 5, "fig11_scale": 0.02}
QUICK = {"preset": "laptop", "input": "1,16,16", "sizes": "60,512", "batch": 4, "repeat": 1,
         "fig11_scale": 0.002}


def register(subparsers):
    p = subparsers.add_parser(
        "timing", help="measure inference, model edge vs cloud response time, plot Figs. 4-6, 11",
        description="Measures CloudCNN and EdgeCNN inference on this machine and combines it "
                    "with link models into response times (see docs/flops_and_timing.md).")
    p.add_argument("--link", default="lte,wifi",
                   help="access links, comma-separated from lte, wifi, 5g, custom (default lte,wifi)")
    p.add_argument("--custom-link", default=None, metavar="UP,DOWN,RTT",
                   help="the 'custom' access link: up and down in KiB/s, rtt in ms")
    p.add_argument("--wan-rate", type=float, default=network.WAN_RATE / network.KiB, metavar="KIB_S",
                   help="wide-area rate to the cloud, KiB/s (default %(default)g)")
    p.add_argument("--wan-rtt", type=float, default=network.WAN_RTT * 1000, metavar="MS",
                   help="wide-area round-trip time, ms (default %(default)g)")
    p.add_argument("--cloud-speedup", type=float, default=1.0,
                   help="cloud server this many times faster than this machine (default 1)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="model preset (default paper)")
    p.add_argument("--input", help="per-sample model input C,H,W (default 3,32,32)")
    p.add_argument("--pool-stride", type=int, choices=(1, 2), default=2,
                   help="max-pool stride: 1 as the paper writes, 2 (default) as cloudedge.system.models builds")
    p.add_argument("--sizes", help="image sizes in K (1024 bytes), default the paper's "
                                   + ",".join(map(str, PAPER_SIZES_K)))
    p.add_argument("--batch", type=int, help="batch size of batched inference (default 64)")
    p.add_argument("--repeat", type=int, help="runs per median, at least (default 5)")
    p.add_argument("--fig11-scale", type=float,
                   help="Fig. 11 image counts = the paper's 2000..10000 times this "
                        "(default 0.02; 1 = the paper's counts, over an hour here)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1; 0 = the library's default). With 2 threads on "
                        "shared cores batch-1 inference stalls; needs threadpoolctl")
    p.add_argument("--quick", action="store_true",
                   help="defaults for a run of seconds (tests): " + ", ".join(
                       f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    p.add_argument("--plot", default=None, metavar="DIR", help="write the PNG figures into DIR")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def run(args):
    config = _config(args)
    with engine_threads(args.threads):
        result = measure_all(config)
        result["machine"]["blas"] = _blas_info()
    if args.plot:
        from .timing_plots import plot_all
        result["figures"] = plot_all(result, args.plot)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


def _config(args):
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.repeat < 1 or args.batch < 1:
        raise ValueError(f"--repeat and --batch must be >= 1, got {args.repeat} and {args.batch}")
    if not args.cloud_speedup > 0 or not args.fig11_scale > 0:
        raise ValueError(f"--cloud-speedup and --fig11-scale must be > 0, "
                         f"got {args.cloud_speedup} and {args.fig11_scale}")
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--sizes must be positive ints (K = 1024 bytes), got {args.sizes!r}")
    links = {}
    for name in args.link.split(","):
        links[name] = network.parse_custom_link(args.custom_link) if name == "custom" else network.access_link(name)
    return {"preset": args.preset, "pool_stride": args.pool_stride,
            "input": parse_shape(args.input), "sizes_k": sizes,
            "links": links, "wan": network.wan_link(args.wan_rate * network.KiB, args.wan_rtt / 1000),
            "cloud_speedup": args.cloud_speedup, "batch": args.batch, "repeat": args.repeat,
            "fig11_images": sorted({max(1, round(n * args.fig11_scale)) for n in PAPER_FIG11_IMAGES})}


def _blas_info():
    """The BLAS libraries' thread counts in force."""
    return [{"library": i.get("internal_api"), "threads": i.get("num_threads")}
            for i in threadpool_info() if i.get("user_api") == "blas"]


def _blas_text(info):
    if isinstance(info, list):
        return ", ".join(f"{i['library']} {i['threads']} thread(s)" for i in info)
    return str(info)


# --- output -------------------------------------------------------------------------------

def _pct(value):
    return "n/a" if value is None else f"{100 * value:6.2f}%"


def render(r):
    """The result as text tables."""
    m, c = r["machine"], r["config"]
    ms = 1000.0
    lines = [(f"machine: {m['cpus']} cpus, numpy {m['numpy']}, kernels {m['tinycnn_backend']}, "
             f"BLAS {_blas_text(m.get('blas'))}, "
             f"sgemm {m['sgemm_gflops']:.1f} GFLOP/s, load {m['loadavg_start'][0]:.2f} -> "
             f"{m['loadavg_end'][0]:.2f}; {c['preset']} preset, input {tuple(c['input'])}, "
             f"medians of >= {c['repeat']} runs"),
             "", (f"inference (batched: batch {c['batch']}); predicted = FLOPs / sgemm rate "
             "(sg) or / CloudCNN's batched rate (en); err = predicted / measured - 1"),
             (f"{'model':<11} {'MFLOPs':>8} {'b1 ms':>8} {'bat ms/img':>10} {'GF/s b1':>8} "
             f"{'GF/s bat':>8} {'sg b1':>8} {'sg bat':>8} {'en b1':>8} {'en bat':>8}")]
    for row in r["inference"]:
        lines.append(f"{row['model']:<11} {row['flops'] / 1e6:>8.1f} {row['batch1_s'] * ms:>8.2f} "
                     f"{row['batched_s_per_image'] * ms:>10.2f} {row['gflops_batch1']:>8.2f} "
                     f"{row['gflops_batched']:>8.2f} " + " ".join(
                         f"{_pct(row[f'error_{k}_{b}']):>8}"
                         for k in ("sgemm", "engine") for b in ("batch1", "batched")))
    lines += ["", "Fig. 5: execution = preprocessing + batch-1 inference, each measured (ms)",
              f"{'size':>6} {'prep':>8} {EDGE:>10} {CLOUD:>10} {'saving':>8}"]
    for row in r["execution"]:
        lines.append(f"{row['size_k']:>5}K {row['preprocess_s'] * ms:>8.2f} {row[EDGE] * ms:>10.2f} "
                     f"{row[CLOUD] * ms:>10.2f} {_pct(network.reduction(row[CLOUD], row[EDGE])):>8}")
    for link, rows in r["response"].items():
        lines += ["", (f"Figs. 4/6 ({link}): upload time UT and response time RT (s), "
                      f"cloud speed-up {c['cloud_speedup']:g}"),
                  (f"{'size':>6} {'edge UT':>9} {'edge RT':>9} {'cloud UT':>9} {'cloud RT':>9} "
                  f"{'RT saving':>10} {'UT saving':>10}")]
        for row in rows:
            e, cl = row["edge"], row["cloud"]
            lines.append(f"{row['size_k']:>5}K {e['upload']:>9.4f} {e['total']:>9.4f} "
                         f"{cl['upload']:>9.4f} {cl['total']:>9.4f} "
                         f"{_pct(row['response_reduction']):>10} {_pct(row['upload_reduction']):>10}")
    lines += ["", "Fig. 11: inference time (s) of N images, batches of " + str(c["batch"]),
              f"{'N':>6} " + " ".join(f"{n:>11}" for n in FIG11_MODELS)]
    for count in c["fig11_images"]:
        t = {row["model"]: row["seconds"] for row in r["fig11"] if row["images"] == count}
        lines.append(f"{count:>6} " + " ".join(f"{t[n]:>11.3f}" for n in FIG11_MODELS))
    lines += ["", ("break-even (cloud k times faster than this machine): the slowest WAN rate "
                  "in the grid at which the cloud answers first for some image size")]
    for link, rows in r["break_even"].items():
        cells = []
        for k in BREAK_EVEN_SPEEDUPS:
            wins = [row for row in rows if row["cloud_speedup"] == k and row["cloud_wins"] != "never"]
            if not wins:
                cells.append(f"k={k}: never")
                continue
            row = wins[0]
            where = {"always": "any size", "below": f"< {row['size'] / network.KiB:.0f}K",
                     "above": f"> {row['size'] / network.KiB:.0f}K"}[row["cloud_wins"]]
            cells.append(f"k={k}: WAN {row['wan_rate'] / network.KiB:.0f} KiB/s, {where}")
        lines.append(f"  {link}: " + "; ".join(cells))
    lines += ["", f"{'paper reduction':<20} {'paper':>8} {'ours':>8}"]
    for row in r["paper_comparison"]:
        lines.append(f"{row['what']:<20} {_pct(row['paper']):>8} {_pct(row['ours']):>8}")
    lines.append(f"\nwall time {r['wall_seconds']:.1f} s")
    if r.get("figures"):
        lines.append("figures: " + ", ".join(r["figures"]))
    return "\n".join(lines)

