"""The engine's threads: a batch split into contiguous chunks, one chunk per thread.

With ``set_threads(n)`` (or ``with threads(n):``) the layers run their per-image loops
(Conv2D), their GEMMs (Dense) and the SGD update as n chunks at once, and every BLAS call
runs single-threaded inside its chunk. The alternative, one BLAS call multi-threaded over a
thin matrix, gained little on 2 cores: the engine's GEMMs are a few dozen rows tall.

NumPy's matmul and ufuncs and the Cython kernels release the GIL, so Python threads suffice.
Results depend on n only through the order of floating-point sums (a chunk's partial
gradient is added in chunk order): for a given n they are repeatable.

The n - 1 pool threads are handed their chunks through Gates (a count one thread raises and
another waits for). The compiled Gate (tinycnn/_gate.pyx, with the compiled kernels) spins
for SPIN_SECONDS before it sleeps; Gate below is its reference, which only sleeps. A chunk is
a Python call (parallel_for), or a task (run_tasks): a compiled task is a C function and its
argument, which a pool thread runs inside the compiled Gate without taking the GIL.

Default: 1 thread, BLAS left at its own default (all cores).
"""
import functools
import os
import threading
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

from . import kernels

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
    """n - 1 pool threads (the caller is the n-th); the old pool's threads are stopped first."""
    old = _state["pool"]
    _state["pool"] = None
    if old is not None:
        old.shutdown()
    _state["pool"] = Pool(n - 1) if n > 1 else None
    _state["threads"] = n


def _forget_pool_in_child():
    """After fork the child has none of the pool's threads: it makes a new pool when it needs one.
    The old one is kept, never freed: the child's copies of its condition variables may record
    waiters the child does not have, and destroying one with waiters is undefined (POSIX)."""
    if _state["pool"] is not None:
        _orphaned_pools.append(_state["pool"])
    _state["pool"] = None


_orphaned_pools = []


os.register_at_fork(after_in_child=_forget_pool_in_child)


def chunks(n, parts):
    """range(n) as up to `parts` contiguous (lo, hi) ranges of near-equal length."""
    parts = max(1, min(parts, n))
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


# Work (multiply-adds) below which a chunk is not worth a thread hand-off (tens of microseconds):
# at batch 1 the laptop preset's layers are that small, and splitting them made EdgeCNN-3's
# latency 3.5x PyTorch's instead of 0.8x (measured, 2 threads).
MIN_CHUNK_WORK = 1 << 22


# A one-pass elementwise kernel (ReLU, max-pool) costs about what sgemm takes for this many
# multiply-adds per element: its work per element, for grain(). In a training step on an Intel
# Xeon, ReLU over (32, 32, 28, 28) float32 took 0.18 ms on one thread, 17 multiply-adds' time at
# that machine's sgemm rate. With 20 instead of 10 such a ReLU is split over two threads: the
# EdgeCNN-3 and laptop CloudCNN training steps 1.03x faster, the others 1.00-1.01x (6 rounds in
# alternating blocks, measured).
ELEMENT_WORK = 20


# At batch 1 a layer's GEMM is a GEMV that streams each weight from memory once, at about the
# time of 8 GEMM multiply-adds here (6272 x 1024 float32 weights: 0.54 ms); Dense counts each
# weight as this many multiply-adds when the batch is smaller. With 4, 6272 x 1024 is split on
# 2 threads (0.64 -> 0.46 ms) and 6272 x 256 is not (split: 0.08 -> 0.17 ms, the hand-off costs
# more than it saves); measured.
WEIGHT_READ_WORK = 4


# The same for a compiled task (run_tasks), which a pool thread starts without the GIL. Batch-1
# Winograd forward on 2 threads, split into 2 tasks or not (us, medians of 7 alternating
# rounds): 12 -> 12 channels (1.0M multiply-adds) 47 vs 40, 20 -> 20 (2.8M) 62-64 vs 70,
# 32 -> 32 (7.2M) 91-95 vs 124 (measured).
TASK_MIN_WORK = 1 << 20


def grain(work_per_item, compiled_task=False):
    """The fewest items a chunk should hold when each costs work_per_item multiply-adds: at least
    MIN_CHUNK_WORK per chunk, or TASK_MIN_WORK per compiled task."""
    min_work = TASK_MIN_WORK if compiled_task else MIN_CHUNK_WORK
    return max(1, -(-min_work // max(1, int(work_per_item))))


def split(n, grain=1):
    """The chunks of range(n) that parallel_for runs: one per engine thread, none shorter than
    grain; a single chunk inside a chunk (no nested pools)."""
    parts = min(_state["threads"], n // max(1, grain))
    if parts < 2 or getattr(_local, "in_chunk", False):
        return [(0, n)]
    return chunks(n, parts)


def parallel_for(n, body, grain=1):
    """Run body(lo, hi) over chunks covering range(n), one per engine thread (none shorter
    than grain), and return their results in chunk order. The calling thread runs the
    first chunk. A call made from inside a chunk runs serially (no nested pools)."""
    bounds = split(n, grain)
    if len(bounds) < 2:
        return [body(0, n)]
    if _state["pool"] is None:                # a child process after fork
        _state["pool"] = Pool(_state["threads"] - 1)
    return _state["pool"].run(body, bounds)


def run_tasks(tasks):
    """Run the tasks at once, one per engine thread (the caller runs the first); serially on one
    thread, or from inside a chunk. A task has run() (which raises its errors) and check()
    (which raises the errors of a run that a pool thread made); a compiled one also has
    `address`, so that a pool thread starts it without the GIL (kernels.winograd_conv_task)."""
    if len(tasks) < 2 or _state["threads"] == 1 or getattr(_local, "in_chunk", False):
        for task in tasks:
            task.run()
        return
    if len(tasks) > _state["threads"]:
        raise ValueError(f"run_tasks: {len(tasks)} tasks for {_state['threads']} threads")
    if _state["pool"] is None:                # a child process after fork
        _state["pool"] = Pool(_state["threads"] - 1)
    _state["pool"].run_tasks(tasks)


# How long a waiting thread re-checks its Gate before it sleeps (compiled Gate only). Waking a
# sleeping thread took tens of microseconds here, and a batch-1 conv's chunk takes 0.1-0.5 ms.
# With 0.2, 1, 2 and 5 ms, alternating blocks against ThreadPoolExecutor on two threads gave
# CloudCNN batch-1 1.10x, 1.14x, 1.16x, 1.17x faster and the laptop EdgeCNN-3 training step
# 1.09x, 1.13x, 1.17x, 1.15x (measured). A thread that spins holds no GIL and idles after this.
SPIN_SECONDS = 0.002


class Gate:
    """A count that one thread raises (post) and another waits to reach (wait).

    The reference of the compiled Gate (tinycnn/_gate.pyx), which spins up to `spin` seconds
    before it sleeps; this one sleeps at once and ignores `spin`.
    """

    def __init__(self):
        self.count = 0
        self._cond = threading.Condition()

    def post(self):
        """count += 1, and wake the waiter."""
        with self._cond:
            self.count += 1
            self._cond.notify()

    def wait(self, target, spin=0.0):
        """Return once count >= target."""
        with self._cond:
            self._cond.wait_for(lambda: self.count >= target)

    def serve(self, done, target, spin=0.0, post_first=False):
        """done.post() if post_first, then wait until count >= target; returns target. (The
        compiled Gate also runs the compiled tasks posted to it here; none reach this one.)"""
        if post_first:
            done.post()
        self.wait(target, spin)
        return target


class SameBytesTask:
    """Whether a.flat[lo:hi] and b.flat[lo:hi] hold the same bytes, as a task for run_tasks: the
    reference of the compiled one (tinycnn/_gate.pyx), which a pool thread starts without the
    GIL. `same` holds the answer once it has run."""
    address = None

    def __init__(self, a, b, lo, hi):
        if a.shape != b.shape or a.dtype != b.dtype or not (a.flags.c_contiguous and b.flags.c_contiguous):
            raise ValueError(f"SameBytesTask: a and b must be C-contiguous of one dtype and shape, got "
                             f"{a.dtype} {a.shape} and {b.dtype} {b.shape}")
        if not 0 <= lo <= hi <= a.size:
            raise ValueError(f"SameBytesTask: lo..hi-1 must lie in 0..{a.size - 1}, got lo={lo}, hi={hi}")
        self.a, self.b = a.reshape(-1)[lo:hi], b.reshape(-1)[lo:hi]
        self.same = False

    def run(self):
        self.same = np.array_equal(self.a.view(np.uint8), self.b.view(np.uint8))

    def check(self):
        """Nothing can fail."""


# same_bytes gives each thread at least this many entries to compare. Conv2D checks its cached
# Winograd weights this way (W against the copy they came from): the batch-1 CloudCNN forward
# on 2 threads took 10.41 ms against 10.86 with np.array_equal on one thread (1.042x, medians of
# 9 alternating rounds), EdgeCNN-3 1.015x; on one thread 1.011x and 1.000x (measured).
SAME_BYTES_MIN_ENTRIES = 1 << 13


def same_bytes(a, b):
    """True if the C-contiguous arrays a and b have one shape and dtype and hold the same bytes.
    The comparison is memory-bound, so it is split over the engine's threads."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    task = SameBytesTask if kernels.backend() == "numpy" else _compiled_gate().SameBytesTask
    tasks = [task(a, b, lo, hi) for lo, hi in split(a.size, SAME_BYTES_MIN_ENTRIES)]
    run_tasks(tasks)
    return all(t.same for t in tasks)


def gate_type():
    """The Gate the pool uses: the compiled one with the compiled kernels, else the reference."""
    return Gate if kernels.backend() == "numpy" else _compiled_gate().Gate


@functools.cache
def _compiled_gate():
    """tinycnn._gate: the compiled Gate, and the pool's own compiled task (SameBytesTask)."""
    try:
        from . import _gate
    except ImportError as exc:
        raise ImportError(f"tinycnn's compiled kernels are loaded but not its compiled Gate ({exc}); "
                          f"rebuild them with `pip install -e .`") from exc
    return _gate


class Pool:
    """`workers` threads, each of which runs one chunk per run() call.

    Worker i waits on todo[i] for its k-th chunk, runs it, and posts done[i]. run() gives the
    caller the first chunk and returns when every chunk has finished.
    """

    def __init__(self, workers, spin=SPIN_SECONDS):
        make = gate_type()
        self.spin = spin
        self.todo = [make() for _ in range(workers)]
        self.done = [make() for _ in range(workers)]
        self.tasks = [None] * workers             # (body, lo, hi) to run, or _STOP
        self.results = [None] * workers           # (True, value) or (False, exception)
        self.posted = [0] * workers               # chunks handed to each worker so far
        self.busy = threading.Lock()              # held by the thread whose chunks the workers run
        self.threads = [threading.Thread(target=self._work, args=(i,), name=f"tinycnn-{i}", daemon=True)
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def _work(self, i):
        k = self.todo[i].serve(self.done[i], 1, self.spin)   # compiled tasks run inside serve
        while True:
            task, self.tasks[i] = self.tasks[i], None   # drop the chunk's arrays once it has run
            if task is _STOP:
                return
            try:
                self.results[i] = (True, _in_chunk(*task))
            except BaseException as exc:          # handed to the caller of run()
                self.results[i] = (False, exc)
            del task
            k = self.todo[i].serve(self.done[i], k + 1, self.spin, post_first=True)

    def run(self, body, bounds):
        """body(lo, hi) for each (lo, hi) in bounds, the first by the caller; -> results in order.
        An exception from any chunk is raised once every chunk has finished. While another
        thread of the program is using the workers, the caller runs every chunk itself."""
        if len(bounds) - 1 > len(self.threads):
            raise ValueError(f"Pool.run: {len(bounds)} chunks for {len(self.threads)} workers and the caller")
        if not self.busy.acquire(blocking=False):
            return [_in_chunk(body, lo, hi) for lo, hi in bounds]
        workers = range(len(bounds) - 1)
        try:
            for i in workers:
                self.tasks[i] = (body, *bounds[i + 1])
                self.posted[i] += 1
                self.todo[i].post()
            try:
                first = _in_chunk(body, *bounds[0])
            finally:
                for i in workers:               # wait for every chunk even if ours raised
                    self.done[i].wait(self.posted[i], self.spin)
                outcomes = [self.results[i] for i in workers]
                for i in workers:
                    self.results[i] = None
        finally:
            self.busy.release()
        results = [first]
        for ok, value in outcomes:
            if not ok:
                raise value
            results.append(value)
        return results

    def run_tasks(self, tasks):
        """task.run() for each task, the first by the caller, the others by one pool thread each;
        returns when all have finished. A compiled task (one whose `address` is a task function's
        and its argument's, see _gate.pyx) starts on its thread without the GIL; any other runs
        as a Python chunk. Errors are raised, by task.check(), once every task has finished."""
        if len(tasks) - 1 > len(self.threads):
            raise ValueError(f"Pool.run_tasks: {len(tasks)} tasks for {len(self.threads)} workers and the caller")
        if not all(getattr(task, "address", None) for task in tasks[1:]):
            self.run(lambda lo, hi: tasks[lo].run(), [(i, i + 1) for i in range(len(tasks))])
            return
        if not self.busy.acquire(blocking=False):
            for task in tasks:
                task.run()
            return
        workers = range(len(tasks) - 1)
        try:
            for i in workers:
                self.posted[i] += 1
                self.todo[i].post_task(*tasks[i + 1].address)
            try:
                tasks[0].run()
            finally:
                for i in workers:               # every task has finished before any error is raised
                    self.done[i].wait(self.posted[i], self.spin)
        finally:
            self.busy.release()
        for task in tasks[1:]:
            task.check()

    def shutdown(self):
        """Stop the threads (after the chunks they run) and wait for them to exit."""
        with self.busy:
            for i in range(len(self.threads)):
                self.tasks[i] = _STOP
                self.todo[i].post()
        for thread in self.threads:
            thread.join()


_STOP = ("stop",)


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
