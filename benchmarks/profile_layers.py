"""Where a net's time goes: each layer timed inside the real Sequential calls, beside its FLOPs.

Run (the machine's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE slow NumPy; unset them here only):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_layers.py --net edge --batch 1
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_layers.py --net cloud \
        --preset laptop --train --png runs/cloud-layers.png

Each pass is one batch-N forward (eval mode), or with --train one training step: forward,
softmax cross-entropy, backward (need_dx=False) and an SGD step. During the run every layer's
forward and backward is wrapped in a timer, so a figure is what the layer costs where it sits
in the net, after its neighbours have filled the cache with their own data. The same layer
timed alone can read several times faster (docs/performance.md). "between layers" is the
whole pass minus its timed parts: Sequential's loop and the timers themselves.

FLOPs are tinycnn.flops.profile's (the direct convolution's count, so a Winograd layer's
GFLOP/s are effective ones). Threads: --threads (default: all cores), as tinycnn.set_threads.
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import numpy as np

import tinycnn
from tinycnn import SGD, softmax_cross_entropy
from tinycnn.flops import profile
from cloudedge.system.models import DEFAULT_PRESET, PRESETS, cloud_cnn, edge_cnn

KINDS = ("forward", "backward")


@contextlib.contextmanager
def timed_layers(model, seconds):
    """Within the block, each call of layer i's forward (backward) adds its wall time to
    seconds["forward"][i] (seconds["backward"][i]). The timer is an instance attribute that
    hides the class's method; it is removed on exit."""
    for i, layer in enumerate(model):
        for kind in KINDS:
            if kind in vars(layer):
                raise ValueError(f"layer {i} ({type(layer).__name__}) already has an instance attribute "
                                 f"{kind!r}; profile_layers would hide it")
            method = getattr(layer, kind)

            def timer(*args, _method=method, _total=seconds[kind], _i=i, **kwargs):
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    _total[_i] += time.perf_counter() - start
            setattr(layer, kind, timer)
    try:
        yield
    finally:
        for layer in model:
            for kind in KINDS:
                vars(layer).pop(kind, None)


def measure(model, x, y=None, repeat=20, warmup=3, progress=None):
    """Median seconds over `repeat` passes (after `warmup` untimed ones): per layer "forward"
    and "backward" (lists, one entry per layer; 0 where a layer did not run), "loss" and "step"
    (softmax cross-entropy and SGD, 0 without y), and "total", one whole pass.

    x: (N, ...) float input; y: (N,) int labels for a training step, or None for an eval
    forward. progress: called with the number of timed passes done so far, or None."""
    opt = SGD(model, lr=0.01, momentum=0.9) if y is not None else None
    seconds = {kind: [0.0] * len(model) for kind in KINDS}
    passes = []
    with timed_layers(model, seconds):
        for p in range(warmup + repeat):
            for kind in KINDS:
                seconds[kind][:] = [0.0] * len(model)
            loss_s = step_s = 0.0
            start = time.perf_counter()
            if y is None:
                model.forward(x)
            else:
                logits = model.forward(x, training=True)
                t = time.perf_counter()
                _, dlogits = softmax_cross_entropy(logits, y)
                loss_s = time.perf_counter() - t
                model.backward(dlogits, need_dx=False)
                t = time.perf_counter()
                opt.step()
                step_s = time.perf_counter() - t
            total = time.perf_counter() - start
            if p >= warmup:
                passes.append({"forward": list(seconds["forward"]), "backward": list(seconds["backward"]),
                               "loss": loss_s, "step": step_s, "total": total})
                if progress is not None:
                    progress(p - warmup + 1)
    return {"forward": [statistics.median(q["forward"][i] for q in passes) for i in range(len(model))],
            "backward": [statistics.median(q["backward"][i] for q in passes) for i in range(len(model))],
            **{key: statistics.median(q[key] for q in passes) for key in ("loss", "step", "total")}}


def describe(layer):
    """A short name: the kind, its shape, and for Conv2D the path it takes."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        path = ("winograd" if layer.winograd_applies() else
                "direct" if layer.direct_applies(layer.params["W"].dtype) else "im2col")
        kh, kw = layer.kernel_size
        return f"Conv2D {layer.in_channels}->{layer.out_channels} {kh}x{kw} {path}"
    if kind == "Dense":
        return f"Dense {layer.in_features}->{layer.out_features}"
    return kind


def rows(model, input_shape, batch, result, train):
    """One dict per layer: name, ms forward/backward, FLOPs, GFLOP/s, share of the pass."""
    costs = profile(model, input_shape, batch=batch, softmax=False).rows
    total = result["total"]
    out = []
    for i, (layer, cost) in enumerate(zip(model, costs)):
        fwd, bwd = result["forward"][i], result["backward"][i] if train else 0.0
        flops = cost.flops + (cost.backward_flops if train else 0)
        out.append({"index": i, "layer": describe(layer), "forward_ms": 1e3 * fwd, "backward_ms": 1e3 * bwd,
                    "flops": flops, "gflops": flops / (fwd + bwd) / 1e9 if fwd + bwd > 0 else 0.0,
                    "share": (fwd + bwd) / total})
    return out


def table(layer_rows, result, train):
    """The rows as fixed-width text, with the parts outside the layers and the whole pass."""
    head = f"{'#':>3} {'layer':<30} {'fwd ms':>8} {'bwd ms':>8} {'GFLOP/s':>8} {'share':>6}"
    lines = [head, "-" * len(head)]
    for r in layer_rows:
        lines.append(f"{r['index']:>3} {r['layer']:<30} {r['forward_ms']:8.3f} "
                     f"{r['backward_ms'] if train else 0:8.3f} {r['gflops']:8.1f} {100 * r['share']:5.1f}%")
    timed = sum(r["forward_ms"] + r["backward_ms"] for r in layer_rows) + 1e3 * (result["loss"] + result["step"])
    total = 1e3 * result["total"]
    if train:
        lines.append(f"{'':>3} {'softmax cross-entropy':<30} {1e3 * result['loss']:8.3f}")
        lines.append(f"{'':>3} {'SGD step':<30} {1e3 * result['step']:8.3f}")
    lines.append(f"{'':>3} {'between layers':<30} {total - timed:8.3f}")
    lines += ["-" * len(head), f"{'':>3} {'whole pass':<30} {total:8.3f}"]
    return "\n".join(lines)


def plot(layer_rows, path, title):
    """Horizontal bars of each layer's forward and backward ms, written to path (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [f"{r['index']} {r['layer']}" for r in layer_rows]
    fwd = [r["forward_ms"] for r in layer_rows]
    bwd = [r["backward_ms"] for r in layer_rows]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1.5))
    ax.barh(names, fwd, label="forward")
    if any(bwd):
        ax.barh(names, bwd, left=fwd, label="backward")
    ax.invert_yaxis()
    ax.set_xlabel("ms per pass (median)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", choices=("edge", "cloud"), default="edge")
    parser.add_argument("--depth", type=int, default=3, help="EdgeCNN-k's k (--net edge)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                        help=f"layer widths (default: paper; the package's default preset is {DEFAULT_PRESET})")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--train", action="store_true", help="time training steps instead of forwards")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=20, help="timed passes (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--png", metavar="PATH", help="also draw the per-layer times")
    args = parser.parse_args(argv)
    for name in ("batch", "threads", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")

    tinycnn.set_threads(args.threads)
    model = (edge_cnn(args.depth, seed=0, preset=args.preset) if args.net == "edge"
             else cloud_cnn(seed=0, preset=args.preset))
    name = (f"EdgeCNN-{args.depth}" if args.net == "edge" else "CloudCNN") + f" {args.preset}"
    rng = np.random.default_rng(0)
    input_shape = (1, 28, 28)
    x = rng.random((args.batch, *input_shape), dtype=np.float32)
    y = rng.integers(0, 10, args.batch) if args.train else None
    what = f"training step at batch {args.batch}" if args.train else f"forward at batch {args.batch}"
    print(f"{name}, {what}, {args.threads} thread(s), tinycnn {tinycnn.backend()} "
          f"({tinycnn.kernels.instruction_set()} build), load average {os.getloadavg()[0]:.2f}", file=sys.stderr)

    from tqdm import tqdm
    with tqdm(total=args.repeat, desc="passes", unit="pass", file=sys.stderr) as bar:
        result = measure(model, x, y, repeat=args.repeat, progress=lambda done: bar.update(done - bar.n))
    layer_rows = rows(model, input_shape, args.batch, result, args.train)
    print(f"{name}: {what}, {args.threads} thread(s), median of {args.repeat} passes")
    print(table(layer_rows, result, args.train))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"net": name, "batch": args.batch, "train": args.train, "threads": args.threads,
                       "repeat": args.repeat, "layers": layer_rows,
                       **{key: result[key] for key in ("loss", "step", "total")}}, f, indent=2)
    if args.png:
        plot(layer_rows, args.png, f"{name}: {what}, {args.threads} thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
