"""Engine speed: conv GFLOP/s vs same-run sgemm, training throughput, batch-1 latency.

Run (the machine's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE slow NumPy; unset them here only):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_engine.py

If torch is importable, the same nets run in PyTorch with the same thread count and
the tinycnn/PyTorch ratios are printed. Every figure is a median of repeated runs.
Beside each batch-1 latency ratio stands its floor: the net's largest Dense layer alone (a GEMV
that reads each of its weights once) against PyTorch's whole forward.

Threads: OMP_NUM_THREADS (default: all cores). tinycnn runs with tinycnn.set_threads(n)
(the batch split over n threads, BLAS single-threaded in each), PyTorch with
torch.set_num_threads(n), the sgemm reference with n BLAS threads.
Peak memory: each library trains CloudCNN for 3 steps in a fresh subprocess, which
reports its peak RSS (VmHWM in /proc, so Linux only) and its RSS before the first step.

A CPU with AVX2 but no AVX-512, imitated on one that has AVX-512 (every library held to AVX2;
the run prints what each one used):
    TINYCNN_KERNELS=cython-avx2 OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 \
        ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python benchmarks/bench_engine.py
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

# After each multi-threaded call OpenBLAS's worker threads spin about 0.1 s before they sleep
# (measured: 110 ms of CPU in the second after a 2-thread sgemm), so the sgemm reference would
# leave one spinning on a core through the start of the next tinycnn block. 2^4 cycles puts
# them to sleep at once. Read when OpenBLAS loads, so before NumPy is imported.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

import tinycnn  # noqa: E402
from tinycnn import Conv2D, Dense, SGD, softmax_cross_entropy  # noqa: E402
from cloudedge.system.models import DEFAULT_PRESET, cloud_cnn, edge_cnn, shared_prefix  # noqa: E402

CONV_SHAPES = [(1, 32), (32, 32), (32, 48), (48, 80), (80, 80), (80, 128), (128, 128)]  # the paper plan's; 3x3, pad 1
BATCH, SIZE = 32, 28
# Environment variables that hold a library to an instruction set; the run records those set.
ISA_LIMITS = ("TINYCNN_KERNELS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def median_seconds(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# Untimed calls before each timed block, for at least this long. After the 2048^3 sgemm the
# next few calls of a short step run slow: the 1 -> 32 conv took 0.62-0.71 ms in its timed
# block after one untimed call, 0.44-0.45 ms after 20 ms of them (measured, one thread).
WARM_SECONDS = 0.02

# The nets' comparisons run rounds for at least this long (and at least --repeat of them).
# Five rounds of the laptop EdgeCNN-3's training take under a second, and six such
# measurements within two minutes on two threads gave ratios from 0.93 to 1.29 (measured);
# five rounds of CloudCNN take longer than this anyway.
MIN_NET_SECONDS = 3.0


def paired_seconds(fn_a, fn_b, rounds, block=3, min_seconds=0.0):
    """Time fn_a and fn_b in alternating blocks, so both see the same machine load.

    Each round runs untimed calls of fn_a (at least one, for WARM_SECONDS) then `block`
    timed calls, then the same for fn_b. The untimed calls let the other library's idle
    threads stop spinning (OpenBLAS and PyTorch's OpenMP both spin after a call and slowed
    each other when strictly alternated) and the caches refill. Runs `rounds` rounds, and more
    until min_seconds have passed. Returns (median a, median b, median of per-round a/b ratios).
    """
    a, b = [], []
    begin = time.perf_counter()
    while len(a) < rounds or time.perf_counter() - begin < min_seconds:
        for fn, times in ((fn_a, a), (fn_b, b)):
            start = time.perf_counter()
            fn()
            while time.perf_counter() - start < WARM_SECONDS:
                fn()
            block_times = []
            for _ in range(block):
                start = time.perf_counter()
                fn()
                block_times.append(time.perf_counter() - start)
            times.append(statistics.median(block_times))
    return statistics.median(a), statistics.median(b), statistics.median(x / y for x, y in zip(a, b))


def cpu_description(cpuinfo="/proc/cpuinfo"):
    """This CPU as "<model name> (<vendor_id>, family F, model M, N logical CPUs)", from the first
    processor of /proc/cpuinfo; platform.processor() where that file is missing (not Linux). The
    same figures differ between hosts (docs/performance.md), so every run names its own."""
    try:
        with open(cpuinfo) as f:
            fields = {}
            for line in f:
                if not line.strip():                   # the first processor's block ends here
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return f"{platform.processor() or 'unknown'} ({os.cpu_count()} logical CPUs)"
    return (f"{fields.get('model name', 'unknown')} ({fields.get('vendor_id', 'unknown vendor')}, family "
            f"{fields.get('cpu family', '?')}, model {fields.get('model', '?')}, {os.cpu_count()} logical CPUs)")


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed (pip install threadpoolctl)"}]
    # NumPy's BLAS runs the Dense layers and Winograd GEMMs; SciPy's (its own OpenBLAS in the
    # wheels) the im2col convolution kernels: the library file tells them apart.
    return [{"library": os.path.basename(pool.get("filepath") or ""),
             **{k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}}
            for pool in threadpool_info() if pool.get("user_api") == "blas"]


SGEMM_N = 2048


def sgemm_step(threads):
    """A float32 2048^3 matrix product on `threads` BLAS threads: the peak this run is
    compared against."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    a = rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32)
    b = rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32)

    def step():
        with threadpool_limits(limits=threads, user_api="blas"):
            a @ b
    return step


MEMORY_PROBE = """
import resource, sys, numpy as np
lib = sys.argv[1]
from cloudedge.system.models import cloud_cnn
model = cloud_cnn(seed=0)
x = np.random.default_rng(0).random((32, 1, 28, 28), dtype=np.float32)
y = np.random.default_rng(0).integers(0, 10, 32)
if lib == "tinycnn":
    import tinycnn
    tinycnn.set_threads(int(sys.argv[2]))
    opt = tinycnn.SGD(model, lr=0.01, momentum=0.9)
    def step():
        loss, d = tinycnn.softmax_cross_entropy(model.forward(x, training=True), y)
        model.backward(d)
        opt.step()
else:
    import torch
    sys.path.insert(0, sys.argv[3])
    from bench_engine import torch_net
    torch.set_num_threads(int(sys.argv[2]))
    net = torch_net(model, torch)
    del model
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
for _ in range(3):
    step()
# VmHWM, not getrusage: ru_maxrss carries the parent's peak across fork + exec
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(before, int(hwm.split()[1]) * 1024)
"""


def peak_memory(lib, threads):
    """(RSS before the first step, peak RSS) in bytes of a fresh process training CloudCNN."""
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, lib, str(threads),
                          os.path.dirname(os.path.abspath(__file__))],
                         check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1])


def conv_step(cin, cout, algorithm="auto"):
    """Forward + backward (dW, db, dx) of one Conv2D; FLOPs = 3 GEMMs x 2 x MACs of the direct
    convolution (the Winograd path multiplies 4/9 of them: its GFLOP/s are effective ones)."""
    rng = np.random.default_rng(0)
    layer = Conv2D(cin, cout, 3, padding=1, rng=rng)
    layer.algorithm = algorithm
    x = rng.standard_normal((BATCH, cin, SIZE, SIZE), dtype=np.float32)
    dout = rng.standard_normal((BATCH, cout, SIZE, SIZE), dtype=np.float32)

    def step():
        layer.forward(x, training=True)
        layer.backward(dout)

    return step, 3 * 2 * BATCH * cout * SIZE * SIZE * cin * 9, layer.winograd_applies()


def step_flops(model, shape):
    """FLOPs of one training step at batch BATCH: forward + backward (tinycnn.flops)."""
    from tinycnn.flops import profile
    totals = profile(model, shape, batch=BATCH).totals
    return totals["flops"] + totals["backward_flops"]


def tinycnn_train_step(model, shape):
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, *shape), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    opt = SGD(model, lr=0.01, momentum=0.9)

    def step():
        loss, dlogits = softmax_cross_entropy(model.forward(x, training=True), y)
        model.backward(dlogits, need_dx=False)
        opt.step()

    return step


def tinycnn_infer_step(model, shape):
    x = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    return lambda: model.forward(x)


def largest_dense_step(model):
    """(layer, its batch-1 forward alone) for the model's Dense layer with the most weights.
    At batch 1 that layer is a GEMV that reads each of its weights once (from memory, when
    they outgrow the cache), and the whole forward can take no less than it: timed against
    PyTorch's whole forward, it is the floor of the latency ratio."""
    dense = max((layer for layer in model if isinstance(layer, Dense)), key=lambda layer: layer.params["W"].size)
    x = np.random.default_rng(0).random((1, dense.in_features), dtype=np.float32)
    return dense, lambda: dense.forward(x)


def frozen_prefix_steps(torch):
    """(tinycnn step, PyTorch step) for EdgeCNN1-3 with its 3 conv layers frozen.

    tinycnn: the head trains on the prefix's output computed once, as the edge's feature
    cache does (cloudedge.policies.feature_cache). PyTorch: the whole net runs each step, with
    requires_grad=False on the prefix (autograd then skips its backward).
    """
    model = edge_cnn(3, seed=0)
    p = shared_prefix(3)
    model.freeze(p)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, SIZE, SIZE), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    head, features = model[p:], model[:p].infer(x)
    opt = SGD(head, lr=0.01, momentum=0.9)

    def ours():
        loss, dlogits = softmax_cross_entropy(head.forward(features, training=True), y)
        head.backward(dlogits, need_dx=False)
        opt.step()

    net = torch_net(model, torch)
    for layer in list(net)[:p]:
        for param in layer.parameters():
            param.requires_grad_(False)
    topt = torch.optim.SGD([q for q in net.parameters() if q.requires_grad], lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def theirs():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        topt.step()

    return ours, theirs


def torch_net(model, torch):
    """The same architecture (and weights) as a tinycnn Sequential, in torch.nn."""
    nn = torch.nn
    layers = []
    for layer in model:
        kind = type(layer).__name__
        if kind == "Conv2D":
            m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          stride=layer.stride, padding=layer.padding)
            m.weight.data = torch.from_numpy(layer.params["W"].copy())
            m.bias.data = torch.from_numpy(layer.params["b"].copy())
        elif kind == "Dense":
            m = nn.Linear(layer.in_features, layer.out_features)
            m.weight.data = torch.from_numpy(layer.params["W"].copy())   # both (out, in)
            m.bias.data = torch.from_numpy(layer.params["b"].copy())
        elif kind == "ReLU":
            m = nn.ReLU()
        elif kind == "MaxPool2D":
            m = nn.MaxPool2d(layer.size, layer.stride)
        elif kind == "Dropout":
            m = nn.Dropout(layer.p)
        elif kind == "Flatten":
            m = nn.Flatten()
        else:
            raise ValueError(f"no torch equivalent for {kind}")
        layers.append(m)
    return nn.Sequential(*layers)


def torch_steps(model, shape, torch):
    """(train step, batch-1 inference step) of the same net in PyTorch."""
    net = torch_net(model, torch)
    x = torch.rand(BATCH, *shape)
    y = torch.randint(0, 10, (BATCH,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    eval_net = torch_net(model, torch).eval()
    x1 = torch.rand(1, *shape)

    def train():
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()

    def infer():
        with torch.no_grad():
            eval_net(x1)

    return train, infer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="also write the results as markdown tables")
    args = parser.parse_args()

    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    tinycnn.set_threads(threads)
    result = {"cpu": cpu_description(), "python": platform.python_version(), "numpy": np.__version__,
              "tinycnn_backend": tinycnn.backend(),
              "tinycnn_instruction_set": tinycnn.kernels.instruction_set(),
              "tinycnn_dense_kernels": tinycnn.kernels.dense_kernels(),
              "tinycnn_direct_kernels": tinycnn.kernels.direct_kernels(),
              "tinycnn_winograd_gemm": tinycnn.kernels.winograd_gemm(), "threads": threads, "blas": blas_info(),
              "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "<unset>"),
              "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "<unset>"),
              "OPENBLAS_THREAD_TIMEOUT": os.environ["OPENBLAS_THREAD_TIMEOUT"],
              "isa_limits": {k: os.environ[k] for k in ISA_LIMITS if k in os.environ}}
    print(f"CPU: {result['cpu']}")
    print(f"tinycnn backend: {result['tinycnn_backend']} ({result['tinycnn_instruction_set']} build, fully "
          f"connected GEMMs: {result['tinycnn_dense_kernels']}, direct convolution of thin layers: "
          f"{result['tinycnn_direct_kernels']}, Winograd products: {result['tinycnn_winograd_gemm']}), "
          f"numpy {np.__version__}, threads {threads}, "
          f"load average {os.getloadavg()[0]:.2f}")
    result["load_average_start"] = os.getloadavg()
    for pool in result["blas"]:
        print(f"BLAS: {pool}")
    print(f"OPENBLAS_CORETYPE={result['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={result['OPENBLAS_L2_SIZE']} "
          f"OPENBLAS_THREAD_TIMEOUT={result['OPENBLAS_THREAD_TIMEOUT']}"
          + "".join(f" {k}={v}" for k, v in result["isa_limits"].items()))

    sgemm = sgemm_step(threads)
    print(f"\nConv2D 3x3 pad 1, batch {BATCH}, {SIZE}x{SIZE}, forward+backward, timed in turn with "
          f"a NumPy sgemm {SGEMM_N}^3 (median of {args.repeat} rounds of 3):")
    print("(GFLOP/s count the direct convolution's FLOPs; 'x im2col' is the speed-up over the same layer "
          "with algorithm='im2col', timed in turn)")
    print(f"{'channels':>10} {'path':>9} {'GFLOP/s':>8} {'sgemm GFLOP/s':>14} {'% of sgemm':>10} {'x im2col':>9}")
    result["conv"] = []
    peaks = []
    for cin, cout in CONV_SHAPES:
        step, flops, winograd = conv_step(cin, cout)
        t_conv, t_gemm, ratio = paired_seconds(step, sgemm, args.repeat)
        g, peak = flops / t_conv / 1e9, 2 * SGEMM_N ** 3 / t_gemm / 1e9
        frac = (flops / (2 * SGEMM_N ** 3)) / ratio  # median per-round conv/sgemm rate ratio
        speedup = 1.0
        if winograd:
            _, _, over = paired_seconds(conv_step(cin, cout, "im2col")[0], step, args.repeat)
            speedup = over
        peaks.append(peak)
        path = "winograd" if winograd else "im2col"
        result["conv"].append({"in": cin, "out": cout, "path": path, "gflops": g, "sgemm_gflops": peak,
                               "fraction_of_sgemm": frac, "speedup_over_im2col": speedup})
        print(f"{cin:>4} -> {cout:<3} {path:>9} {g:8.1f} {peak:14.1f} {100 * frac:9.1f}% {speedup:8.2f}x")

    try:
        import torch
        torch.set_num_threads(threads)
        result["torch"] = f"{torch.__version__} (ATen {torch.backends.cpu.get_cpu_capability()})"
    except ImportError:
        torch = None
        print("\ntorch not importable: skipping the PyTorch comparison")

    nets = {"EdgeCNN-3": edge_cnn(3, seed=0), "CloudCNN": cloud_cnn(seed=0),
            f"EdgeCNN-3 {DEFAULT_PRESET}": edge_cnn(3, seed=0, preset=DEFAULT_PRESET),
            f"CloudCNN {DEFAULT_PRESET}": cloud_cnn(seed=0, preset=DEFAULT_PRESET)}
    shape = (1, SIZE, SIZE)
    result["nets"] = {}
    header = f"\n{'net':<17} {'train img/s':>12} {'batch-1 ms':>11}"
    if torch is not None:
        header += f" {'torch img/s':>12} {'torch ms':>9} {'train ratio':>12} {'latency ratio':>14} {'floor':>6}"
    print(header + f"   (ratios: tinycnn/PyTorch, median of per-round ratios; at least {args.repeat} "
                   f"rounds and {MIN_NET_SECONDS:g} s per figure)")
    if torch is not None:
        print("(floor: the net's largest Dense layer alone at batch 1, timed in turn with PyTorch's whole "
              "forward: no latency ratio can fall below it while that GEMV costs what it does)")
    for name, model in nets.items():
        train, infer = tinycnn_train_step(model, shape), tinycnn_infer_step(model, shape)
        if torch is None:
            t_ours = median_seconds(train, args.repeat)
            row = {"train_images_per_s": BATCH / t_ours,
                   "train_gflops": step_flops(model, shape) / t_ours / 1e9,
                   "latency_ms": 1e3 * median_seconds(infer, args.repeat * 8, warmup=3)}
            print(f"{name:<17} {row['train_images_per_s']:12.1f} {row['latency_ms']:11.2f}")
        else:
            torch_train, torch_infer = torch_steps(model, shape, torch)
            t_ours, t_torch, r_time = paired_seconds(train, torch_train, args.repeat, min_seconds=MIN_NET_SECONDS)
            l_ours, l_torch, r_lat = paired_seconds(infer, torch_infer, args.repeat, block=20,
                                                    min_seconds=MIN_NET_SECONDS)
            dense, dense_infer = largest_dense_step(model)
            l_dense, _, r_floor = paired_seconds(dense_infer, torch_infer, args.repeat, block=20,
                                                 min_seconds=MIN_NET_SECONDS)
            row = {"train_images_per_s": BATCH / t_ours, "latency_ms": 1e3 * l_ours,
                   "train_gflops": step_flops(model, shape) / t_ours / 1e9,
                   "torch_train_images_per_s": BATCH / t_torch, "torch_latency_ms": 1e3 * l_torch,
                   "train_ratio": 1.0 / r_time, "latency_ratio": r_lat,
                   "largest_dense": [dense.in_features, dense.out_features],
                   "largest_dense_latency_ms": 1e3 * l_dense, "latency_floor_ratio": r_floor}
            print(f"{name:<17} {row['train_images_per_s']:12.1f} {row['latency_ms']:11.2f}"
                  f" {row['torch_train_images_per_s']:12.1f} {row['torch_latency_ms']:9.2f}"
                  f" {row['train_ratio']:12.2f} {row['latency_ratio']:14.2f} {r_floor:6.2f}")
        result["nets"][name] = row
    if torch is not None:
        frozen = frozen_prefix_steps(torch)
        t_ours, t_torch, r_time = paired_seconds(*frozen, args.repeat, min_seconds=MIN_NET_SECONDS)
        result["frozen"] = {"train_images_per_s": BATCH / t_ours, "torch_train_images_per_s": BATCH / t_torch,
                            "train_ratio": 1.0 / r_time}
        print(f"EdgeCNN1-3, its 3 conv layers frozen: tinycnn trains the head on cached prefix features "
              f"{BATCH / t_ours:.1f} img/s; PyTorch (requires_grad=False on the prefix) {BATCH / t_torch:.1f} "
              f"img/s; ratio {1.0 / r_time:.2f}")
    result["sgemm_gflops"] = statistics.median(peaks)
    print(f"\ntraining step GFLOP/s as a share of this run's sgemm ({result['sgemm_gflops']:.1f} GFLOP/s): "
          + ", ".join(f"{name} {row['train_gflops']:.1f} ({100 * row['train_gflops'] / result['sgemm_gflops']:.1f}%)"
                      for name, row in result["nets"].items()))
    libs = ["tinycnn"] + (["torch"] if torch is not None else [])
    result["memory"] = {lib: dict(zip(("rss_before_bytes", "peak_rss_bytes"), peak_memory(lib, threads)))
                        for lib in libs}
    print("CloudCNN, 3 training steps at batch 32 in a fresh process: "
          + ", ".join(f"{lib} peak RSS {m['peak_rss_bytes'] / 2**20:.0f} MiB "
                      f"(+{(m['peak_rss_bytes'] - m['rss_before_bytes']) / 2**20:.0f} MiB over its RSS before the first step)"
                      for lib, m in result["memory"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown_report(result, " ".join(sys.argv)))
    return 0


def markdown_report(result, command):
    """The run's figures as markdown tables, for docs/performance.md."""
    blas = ", ".join(f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} "
                     f"({p.get('num_threads')} threads{', ' + p['library'] if p.get('library') else ''})"
                     for p in result["blas"])
    lines = [f"Command: `{command}` (with OPENBLAS_CORETYPE={result['OPENBLAS_CORETYPE']}, "
             f"OPENBLAS_L2_SIZE={result['OPENBLAS_L2_SIZE']}, "
             f"OPENBLAS_THREAD_TIMEOUT={result['OPENBLAS_THREAD_TIMEOUT']}"
             + "".join(f", {k}={v}" for k, v in result.get("isa_limits", {}).items()) + ")", "",
             f"CPU: {result.get('cpu', 'not reported')}.", "",
             f"Threads: {result['threads']} (tinycnn.set_threads, BLAS single-threaded inside; PyTorch "
             f"set_num_threads; sgemm on {result['threads']} BLAS threads). Load average at start: "
             f"{result['load_average_start'][0]:.2f}.", "",
             f"tinycnn kernels: {result['tinycnn_backend']} ({result['tinycnn_instruction_set']} build; fully connected "
             f"GEMMs at batch >= {tinycnn.kernels.DENSE_MIN_BATCH}: {result['tinycnn_dense_kernels']}; direct "
             f"convolution of thin layers: {result.get('tinycnn_direct_kernels', 'not reported')}; Winograd "
             f"products: {result.get('tinycnn_winograd_gemm', 'not reported')}); "
             f"NumPy {result['numpy']}; BLAS: {blas}; "
             f"PyTorch: {result.get('torch', 'not installed')}", "",
             "| Conv2D 3x3 pad 1, batch 32, 28x28, fwd+bwd | path | GFLOP/s (effective) | same-run sgemm GFLOP/s "
             "| % of sgemm | speed-up over im2col |",
             "|---|---|---|---|---|---|"]
    for row in result["conv"]:
        lines.append(f"| {row['in']} -> {row['out']} | {row['path']} | {row['gflops']:.1f} | {row['sgemm_gflops']:.1f} "
                     f"| {100 * row['fraction_of_sgemm']:.1f}% | {row['speedup_over_im2col']:.2f}x |")
    lines += ["", "| net | train img/s (batch 32) | batch-1 latency ms | PyTorch img/s | PyTorch ms "
              "| train ratio | latency ratio | latency floor (largest Dense alone, ms / ratio) |",
              "|---|---|---|---|---|---|---|---|"]
    for name, row in result["nets"].items():
        torch_cells = (f"{row['torch_train_images_per_s']:.1f} | {row['torch_latency_ms']:.2f} | "
                       f"{row['train_ratio']:.2f} | {row['latency_ratio']:.2f} | "
                       f"{row['largest_dense'][0]} -> {row['largest_dense'][1]}: "
                       f"{row['largest_dense_latency_ms']:.2f} / {row['latency_floor_ratio']:.2f}"
                       if "train_ratio" in row else "- | - | - | - | -")
        lines.append(f"| {name} | {row['train_images_per_s']:.1f} | {row['latency_ms']:.2f} | {torch_cells} |")
    if "frozen" in result:
        f = result["frozen"]
        lines += ["", f"EdgeCNN1-3 with its 3 conv layers frozen (tinycnn: head on cached prefix features; "
                      f"PyTorch: requires_grad=False on the prefix): {f['train_images_per_s']:.1f} vs "
                      f"{f['torch_train_images_per_s']:.1f} img/s, ratio {f['train_ratio']:.2f}"]
    lines += ["", f"Training step GFLOP/s as a share of this run's sgemm ({result['sgemm_gflops']:.1f} GFLOP/s): "
                  + ", ".join(f"{name} {row['train_gflops']:.1f} "
                              f"({100 * row['train_gflops'] / result['sgemm_gflops']:.1f}%)"
                              for name, row in result["nets"].items())]
    lines += ["", "Peak RSS, CloudCNN (paper widths), 3 training steps at batch 32 in a fresh process: "
                  + "; ".join(f"{lib} {m['peak_rss_bytes'] / 2**20:.0f} MiB "
                              f"(+{(m['peak_rss_bytes'] - m['rss_before_bytes']) / 2**20:.0f} MiB over its RSS "
                              "before the first step)" for lib, m in result["memory"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
