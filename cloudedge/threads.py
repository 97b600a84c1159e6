"""The commands' --threads: how many threads the engine uses (tinycnn.threads).

The engine splits each batch over n threads, each calling single-threaded BLAS
(docs/engine.md, Threads). Commands default to 1: on cores shared with other processes,
threads that wait for a core slowed training down (OpenBLAS's spinning threads made it
~10-18x slower in our runs, docs/cloudedge.md).
"""
from contextlib import contextmanager

import tinycnn


@contextmanager
def engine_threads(n):
    """The engine uses n threads inside the block (n = 0: leave the engine and BLAS as they are)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"threads must be an int >= 0, got {n!r}")
    if n == 0:
        yield
        return
    with tinycnn.threads(n):
        yield
