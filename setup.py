"""Declares the Cython extensions; all other metadata lives in pyproject.toml."""
import platform

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

# The one place where Cython directives are set, for every kernel.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "nonecheck": False,
}
KERNELS = ("_im2col", "_pool", "_relu", "_sgd", "_winograd")


def kernel(module, source, flags=()):
    return Extension(
        module, [source],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # No OpenMP: on 2 cores its threads spun against OpenBLAS's and a training
        # step got slower, not faster (measured); the kernels are single-threaded.
        # -fno-trapping-math: the kernels never read floating-point exception flags, and
        # without it gcc keeps every float compare in a branch; with it the 2x2 max-pool
        # forward becomes vector selects: about 1 ms -> 0.11 ms on (32, 32, 28, 28) float32
        # (measured, AVX2 build). Rounding is untouched.
        extra_compile_args=["-O3", "-fno-trapping-math", *flags],
    )


extensions = [kernel(f"tinycnn.{name}", f"tinycnn/{name}.pyx") for name in KERNELS]
# On x86-64 the same kernels are built a second time with AVX2, for the CPUs that have it
# (tinycnn.kernels picks the build at import). The baseline build may only use SSE2, and
# gcc's vectorised loops then move 4 floats at a time: the SGD update of 6.4M weights took
# 4.0 ms vs 2.4 ms with AVX2, an EdgeCNN-3 training step 38.5-40.1 vs 35.2-36.5 ms (measured,
# alternating runs). No
# -mfma: without it gcc cannot fuse a multiply and an add, so both builds round alike.
if platform.machine().lower() in ("x86_64", "amd64"):
    extensions += [kernel(f"tinycnn._avx2.{name}", f"tinycnn/_avx2/{name}.pyx", ["-mavx2"]) for name in KERNELS]
    # The fully connected layer's float32 GEMMs (tinycnn/_dense.pyx), written with AVX-512
    # intrinsics: built for x86-64 only, imported only on a CPU with AVX-512F and FMA. They
    # replace BLAS, which rounds differently anyway, so this build may fuse multiply-adds.
    extensions.append(kernel("tinycnn._dense", "tinycnn/_dense.pyx", ["-mavx512f", "-mfma"]))
    # The direct 3x3 convolution of the layers too thin for Winograd (tinycnn/_direct.pyx), written
    # over the vectors of tinycnn/_vec.pxi: built with AVX-512 (imported on CPUs with AVX-512F and
    # FMA) and with AVX2 (imported on CPUs with AVX2 and FMA but no AVX-512F).
    extensions.append(kernel("tinycnn._direct", "tinycnn/_direct.pyx", ["-mavx512f", "-mfma"]))
    extensions.append(kernel("tinycnn._avx2._direct", "tinycnn/_avx2/_direct.pyx", ["-mavx2", "-mfma"]))
    # The Winograd products' GEMM for CPUs with AVX2 and FMA but no AVX-512 (tinycnn/_gemm.pyx).
    extensions.append(kernel("tinycnn._avx2._gemm", "tinycnn/_avx2/_gemm.pyx", ["-mavx2", "-mfma"]))

# The thread pool's Gate (tinycnn.parallel): one build, it has no loops to vectorise.
extensions.append(kernel("tinycnn._gate", "tinycnn/_gate.pyx"))

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
