"""Declares the Cython extensions; all other metadata lives in pyproject.toml."""
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

extensions = [
    Extension(
        f"tinycnn.{name}",
        [f"tinycnn/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # No OpenMP: on 2 cores its threads spun against OpenBLAS's and a training
        # step got slower, not faster (measured); the kernels are single-threaded.
        extra_compile_args=["-O3"],
    )
    for name in ("_im2col", "_pool", "_relu", "_sgd", "_winograd")
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
