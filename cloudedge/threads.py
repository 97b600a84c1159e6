"""BLAS thread limits. The engine's GEMMs are thin (a few to a few dozen output channels), so a
second BLAS thread gains little; when the cores are shared with other processes, OpenBLAS's
spinning threads made training ~10-18x slower in our runs (docs/cloudedge.md). Commands
therefore default to one thread."""
import warnings
from contextlib import contextmanager


@contextmanager
def blas_threads(n):
    """Limit BLAS threads to n inside the block (n = 0: unchanged). Uses threadpoolctl."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"threads must be an int >= 0, got {n!r}")
    if n == 0:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        warnings.warn("threadpoolctl is not installed, so the BLAS thread limit has no effect; "
                      "set OPENBLAS_NUM_THREADS=1 in the environment instead", RuntimeWarning, stacklevel=3)
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield
