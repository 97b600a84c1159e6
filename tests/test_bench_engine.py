"""benchmarks/bench_engine.py's helpers on the tiny preset. The benchmark itself is run by
hand: its figures are timings, which no test asserts (docs/performance.md)."""
import importlib.util
import os

import numpy as np
import pytest

from tinycnn import Dense
from cloudedge.system.models import edge_cnn

BENCH = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "bench_engine.py")


@pytest.fixture(scope="module")
def bench():
    """The benchmark as a module, loaded once without running it; the environment it sets at
    import is put back."""
    before = dict(os.environ)
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(before)
    return module


def test_the_latency_floor_runs_the_dense_layer_with_the_most_weights(bench):
    model = edge_cnn(3, preset="tiny", seed=0)
    dense, forward = bench.largest_dense_step(model)
    sizes = sorted(layer.params["W"].size for layer in model if isinstance(layer, Dense))
    assert len(sizes) == 2 and dense.params["W"].size == sizes[-1]
    out = forward()
    assert out.shape == (1, dense.out_features) and out.dtype == np.float32


def test_the_markdown_report_gives_each_latency_ratio_its_floor(bench):
    net = {"train_images_per_s": 500.0, "latency_ms": 1.98, "train_gflops": 64.3,
           "torch_train_images_per_s": 379.4, "torch_latency_ms": 2.86, "train_ratio": 1.34,
           "latency_ratio": 0.70, "largest_dense": [6272, 1024], "largest_dense_latency_ms": 1.23,
           "latency_floor_ratio": 0.46}
    result = {"cpu": "Some CPU (GenuineIntel, family 6, model 167, 2 logical CPUs)",
              "blas": [{"internal_api": "openblas", "version": "0", "architecture": "X", "num_threads": 1}],
              "OPENBLAS_CORETYPE": "<unset>", "OPENBLAS_L2_SIZE": "<unset>", "OPENBLAS_THREAD_TIMEOUT": "4",
              "threads": 1, "load_average_start": (0.5, 0.5, 0.5), "tinycnn_backend": "cython",
              "tinycnn_instruction_set": "avx2", "tinycnn_dense_kernels": "avx512", "tinycnn_direct_kernels": "avx512",
              "tinycnn_winograd_gemm": "blas", "isa_limits": {"TINYCNN_KERNELS": "cython"}, "numpy": np.__version__, "torch": "2.13.0",
              "conv": [], "nets": {"EdgeCNN-3": net}, "sgemm_gflops": 93.5,
              "memory": {"tinycnn": {"rss_before_bytes": 2 ** 28, "peak_rss_bytes": 2 ** 29}}}
    report = bench.markdown_report(result, "bench_engine.py")
    row = next(line for line in report.splitlines() if line.startswith("| EdgeCNN-3 |"))
    assert row.endswith("| 1.34 | 0.70 | 6272 -> 1024: 1.23 / 0.46 |")
    assert ("(avx2 build; fully connected GEMMs at batch >= 16: avx512; direct convolution of thin layers: avx512; "
            "Winograd products: blas)") in report
    assert "OPENBLAS_THREAD_TIMEOUT=4, TINYCNN_KERNELS=cython)" in report
    assert "CPU: Some CPU (GenuineIntel, family 6, model 167, 2 logical CPUs)." in report
    header = next(line for line in report.splitlines() if line.startswith("| net |"))
    assert header.count("|") == row.count("|")


def test_each_run_names_its_cpu(bench, tmp_path):
    """The first processor's block of /proc/cpuinfo, and a fallback where there is none."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 49\n"
                       "model name\t: AMD EPYC 7B12\n\nprocessor\t: 1\nvendor_id\t: other\n")
    assert bench.cpu_description(str(cpuinfo)) == (f"AMD EPYC 7B12 (AuthenticAMD, family 23, model 49, "
                                                   f"{os.cpu_count()} logical CPUs)")
    assert bench.cpu_description(str(tmp_path / "missing")).endswith(f"({os.cpu_count()} logical CPUs)")
