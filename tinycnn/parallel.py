"""The engine's threads: a batch split into contiguous chunks, one chunk per thread.

With ``set_threads(n)`` (or ``with threads(n):``) the layers run their per-image loops
(Conv2D), their GEMMs (Dense) and the SGD update as n chunks at once, and every BLAS call
runs single-threaded inside its chunk. The alternative, one BLAS call multi-threaded over a
thin matrix, gained little on 2 cores: the engine's GEMMs are a few dozen rows tall.

NumPy's matmul and ufuncs and the Cython kernels release the GIL, so Python threads suffice.
Results depend on n only through the order of floating-point sums (a chunk's partial
gradient is added in chunk order): for a given n they are repeatable.

Default: 1 thread, BLAS left at its own default (all cores).
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

_state = {"threads": 1, "pool": None, "blas_limit": None}
_local = threading.local()  # per thread: scratch buffers, and whether it is a pool worker


def get_threads():
    """The engine's thread count (1 unless set_threads was called)."""
    return _state["threads"]


def set_threads(n):
    """Use n threads from now on, and limit BLAS to 1 thread (each chunk calls it on its own).

    n: int >= 1. The BLAS limit stays after set_threads(1); threads(n) restores it on exit.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads must be an int >= 1, got {n!r}")
    _resize_pool(n)
    if _state["blas_limit"] is None:
        _state["blas_limit"] = threadpool_limits(limits=1, user_api="blas")


@contextmanager
def threads(n):
    """with threads(n): the engine uses n threads (BLAS 1 each) inside the block."""
    previous, had_limit = _state["threads"], _state["blas_limit"] is not None
    set_threads(n)
    try:
        yield
    finally:
        if not had_limit:
            _state["blas_limit"].restore_original_limits()
            _state["blas_limit"] = None
        _resize_pool(previous)


def _resize_pool(n):
    """n - 1 pool threads (the caller is the n-th); the old pool finishes its work first."""
    old = _state["pool"]
    _state["pool"] = ThreadPoolExecutor(n - 1, thread_name_prefix="tinycnn") if n > 1 else None
    _state["threads"] = n
    if old is not None:
        old.shutdown(wait=True)


def chunks(n, parts):
    """range(n) as up to `parts` contiguous (lo, hi) ranges of near-equal length."""
    parts = max(1, min(parts, n))
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


# Work (multiply-adds) below which a chunk is not worth a thread hand-off (tens of microseconds):
# at batch 1 the laptop preset's layers are that small, and splitting them made EdgeCNN-3's
# latency 3.5x PyTorch's instead of 0.8x (measured, 2 threads).
MIN_CHUNK_WORK = 1 << 22


# A one-pass elementwise kernel (ReLU, max-pool) moves ~10 bytes per float32 element, about
# 0.1 ns, the time sgemm takes for ~10 multiply-adds here: its work per element, for grain().
ELEMENT_WORK = 10


# At batch 1 a layer's GEMM is a GEMV that streams each weight from memory once, at about the
# time of 8 GEMM multiply-adds here (6272 x 1024 float32 weights: 0.54 ms); Dense counts each
# weight as this many multiply-adds when the batch is smaller. With 4, 6272 x 1024 is split on
# 2 threads (0.64 -> 0.46 ms) and 6272 x 256 is not (split: 0.08 -> 0.17 ms, the hand-off costs
# more than it saves); measured.
WEIGHT_READ_WORK = 4


def grain(work_per_item):
    """The fewest items a chunk should hold when each costs work_per_item multiply-adds."""
    return max(1, -(-MIN_CHUNK_WORK // max(1, int(work_per_item))))


def parallel_for(n, body, grain=1):
    """Run body(lo, hi) over chunks covering range(n), one per engine thread (none shorter
    than grain), and return their results in chunk order. The calling thread runs the
    first chunk. A call made from inside a chunk runs serially (no nested pools)."""
    pool, parts = _state["pool"], min(_state["threads"], n // max(1, grain))
    if pool is None or parts < 2 or getattr(_local, "in_chunk", False):
        return [body(0, n)]
    bounds = chunks(n, parts)
    futures = [pool.submit(_in_chunk, body, lo, hi) for lo, hi in bounds[1:]]
    try:
        first = _in_chunk(body, *bounds[0])
    finally:
        results = [f.result() for f in futures]  # wait for every chunk even if ours raised
    return [first] + results


def _in_chunk(body, lo, hi):
    _local.in_chunk = True
    try:
        return body(lo, hi)
    finally:
        _local.in_chunk = False


def scratch(name, shape, dtype):
    """A reusable array private to the calling thread (a fresh one costs page faults).

    Its content is whatever the last user left: write before reading.
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    key = (name, tuple(shape), np.dtype(dtype))
    buf = buffers.get(key)
    if buf is None:
        buf = buffers[key] = np.empty(shape, dtype=dtype)
    return buf
