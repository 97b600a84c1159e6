"""tinycnn.parallel: chunking, error handling, per-thread scratch; and layers, SGD and a
whole training step give the same numbers on 1 and on several threads."""
import os
import subprocess
import sys
import threading
import weakref
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn
from tinycnn import SGD, Conv2D, Dense, MaxPool2D, ReLU, Sequential, kernels, optim, parallel, softmax_cross_entropy
from tinycnn.parallel import chunks, grain, parallel_for, run_tasks, scratch, threads
from cloudedge.system.models import edge_cnn
from conftest import conv_geometries, conv_naive, module_setting, seeds


@contextmanager
def any_chunk_size():
    """Split work however small (the layers' tests use tiny shapes that would run on one thread)."""
    with module_setting(parallel, "MIN_CHUNK_WORK", 1), module_setting(parallel, "TASK_MIN_WORK", 1):
        yield


def test_grain_keeps_small_work_on_one_thread():
    assert grain(parallel.MIN_CHUNK_WORK) == 1 and grain(1) == parallel.MIN_CHUNK_WORK
    assert grain(parallel.MIN_CHUNK_WORK // 3) == 4


@given(st.integers(0, 200), st.integers(1, 9))
def test_chunks_cover_the_range_in_order_with_near_equal_lengths(n, parts):
    bounds = chunks(n, parts)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    lengths = [hi - lo for lo, hi in bounds]
    assert max(lengths) - min(lengths) <= 1
    assert len(bounds) == max(1, min(parts, n))


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_parallel_for_runs_every_index_once_and_returns_chunk_results_in_order(n_threads):
    seen = []
    lock = threading.Lock()

    def body(lo, hi):
        with lock:
            seen.extend(range(lo, hi))
        return lo

    with threads(n_threads):
        starts = parallel_for(10, body)
        assert tinycnn.get_threads() == n_threads
    assert sorted(seen) == list(range(10))
    assert starts == sorted(starts) and starts[0] == 0 and len(starts) == min(n_threads, 10)


def test_grain_keeps_short_ranges_on_one_thread():
    calls = []
    with threads(2):
        parallel_for(100, lambda lo, hi: calls.append((lo, hi)), grain=64)
        parallel_for(200, lambda lo, hi: calls.append((lo, hi)), grain=64)
    assert calls[0] == (0, 100)
    assert sorted(calls[1:]) == [(0, 100), (100, 200)]


def test_an_error_in_a_chunk_is_raised_after_every_chunk_finished():
    finished = []

    def body(lo, hi):
        if lo == 0:
            raise ValueError("chunk 0 failed")
        finished.append(lo)

    with threads(2):
        with pytest.raises(ValueError, match="chunk 0 failed"):
            parallel_for(2, body)
        assert finished == [1]


def test_nested_calls_run_serially_inside_a_chunk():
    inner = []
    with threads(2):
        parallel_for(2, lambda lo, hi: inner.append(parallel_for(4, lambda a, b: (a, b))))
    assert inner == [[(0, 4)], [(0, 4)]]


def test_an_error_in_a_pool_threads_chunk_reaches_the_caller_and_the_pool_keeps_working():
    def body(lo, hi):
        if lo > 0:
            raise KeyError(f"chunk at {lo} failed")
        return lo

    with threads(3):
        with pytest.raises(KeyError, match="chunk at 1 failed"):
            parallel_for(3, body)
        assert parallel_for(3, lambda lo, hi: (lo, hi)) == [(0, 1), (1, 2), (2, 3)]


def gate_types():
    types = [parallel.Gate]
    if tinycnn.backend() == "cython":
        from tinycnn import _gate
        types.append(_gate.Gate)
    return types


def test_the_pool_uses_the_compiled_gate_with_the_compiled_kernels():
    gate = parallel.gate_type()
    if tinycnn.backend() == "numpy":
        assert gate is parallel.Gate
    else:
        assert f"{gate.__module__}.{gate.__name__}" == "tinycnn._gate.Gate"


@pytest.mark.parametrize("make", gate_types())
@pytest.mark.parametrize("spin", [0.0, 1e-5, 0.01])
def test_two_threads_handing_a_turn_back_and_forth_through_gates_never_miss_a_post(make, spin):
    """Ping-pong: each side waits for the other's k-th post. Spin 0 makes every wait sleep, 1e-5
    mixes spinning and sleeping, 0.01 mostly spins. Both sides run in daemon threads, so a
    missed wake-up fails the join's timeout instead of hanging the test run."""
    rounds, ping, pong, trace = 2000, make(), make(), []

    def one_side():
        for k in range(1, rounds + 1):
            trace.append(k)
            assert pong.serve(ping, k, spin, post_first=True) == k     # ping.post(), then pong.wait(k)

    def other_side():
        for k in range(1, rounds + 1):
            ping.wait(k, spin)
            trace.append(-k)
            pong.post()

    sides = [threading.Thread(target=f, daemon=True) for f in (one_side, other_side)]
    for side in sides:
        side.start()
    for side in sides:
        side.join(timeout=60)
    assert not any(side.is_alive() for side in sides)
    assert trace == [v for k in range(1, rounds + 1) for v in (k, -k)]
    assert ping.count == pong.count == rounds


@pytest.mark.parametrize("make", gate_types())
def test_a_gate_wait_sleeps_until_the_post_comes(make):
    gate, woke = make(), []
    waiter = threading.Thread(target=lambda: (gate.wait(2, 0.001), woke.append(gate.count)), daemon=True)
    waiter.start()
    gate.post()
    waiter.join(timeout=0.2)
    assert waiter.is_alive() and woke == []      # one post of the two it waits for
    gate.post()
    waiter.join(timeout=30)
    assert woke == [2]


@pytest.mark.skipif(tinycnn.backend() != "cython", reason="the compiled Gate runs with the compiled kernels")
def test_the_compiled_gate_rejects_a_handoff_to_something_that_is_not_a_gate():
    from tinycnn import _gate
    with pytest.raises(TypeError, match="expected tinycnn._gate.Gate, got NoneType"):
        _gate.Gate().serve(None, 1)
    with pytest.raises(ValueError, match="Gate.post_task: fn is NULL"):
        _gate.Gate().post_task(0, 0)


def _band_tasks(x, U, b, outs, bands):
    """One compiled Winograd forward task per band of tile rows, each into its own out."""
    tasks = []
    for out, rows in zip(outs, bands):
        T = (rows[1] - rows[0]) * ((x.shape[3] + 1) // 2)
        V, M = np.empty((16, x.shape[1], T), x.dtype), np.empty((16, U.shape[1], T), x.dtype)
        tasks.append(kernels.winograd_conv_task(x, U, b, out, V, M, 0, x.shape[0], rows))
    return tasks


@pytest.mark.skipif(tinycnn.backend() != "cython", reason="compiled tasks come with the compiled kernels")
def test_a_serving_thread_runs_compiled_tasks_until_a_python_task_arrives():
    """serve() runs each task posted with post_task (posting done after each), and returns the
    count at which a plain post (a Python task) arrived: the pool thread's loop."""
    from tinycnn import _gate
    rng = np.random.default_rng(0)
    x, W, b = (rng.standard_normal(s).astype(np.float32) for s in ((1, 3, 8, 8), (4, 3, 3, 3), (4,)))
    U = kernels.winograd_weights(W, np.float32)
    expected = conv_naive(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64), (1, 1), (1, 1))
    outs = [np.full((1, 4, 8, 8), np.nan, np.float32) for _ in range(2)]
    tasks = _band_tasks(x, U, b, outs, [(0, 2), (2, 4)])
    todo, done, returned = _gate.Gate(), _gate.Gate(), []
    server = threading.Thread(target=lambda: returned.append(todo.serve(done, 1, 0.001)), daemon=True)
    server.start()
    for k, task in enumerate(tasks, start=1):
        todo.post_task(*task.address)
        done.wait(k)
        task.check()
    todo.post()                                  # no task: serve returns
    server.join(timeout=30)
    assert returned == [3] and not server.is_alive()
    np.testing.assert_allclose(outs[0][:, :, :4], expected[:, :, :4], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outs[1][:, :, 4:], expected[:, :, 4:], rtol=1e-4, atol=1e-4)
    assert np.isnan(outs[0][:, :, 4:]).all() and np.isnan(outs[1][:, :, :4]).all()


@pytest.mark.parametrize("n_threads", [1, 2])
def test_same_bytes_finds_any_changed_byte_in_every_threads_share(n_threads, monkeypatch):
    monkeypatch.setattr(parallel, "SAME_BYTES_MIN_ENTRIES", 4)
    a = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    with threads(n_threads):
        assert parallel.same_bytes(a, a.copy())
        for i in range(a.size):                      # one entry changed, in either thread's share
            b = a.copy()
            b.flat[i] = np.nextafter(b.flat[i], np.inf)
            assert not parallel.same_bytes(a, b)
        zero, minus_zero = np.zeros(3), -np.zeros(3)
        nan = np.full(3, np.nan)
        assert not parallel.same_bytes(zero, minus_zero) and parallel.same_bytes(nan, nan.copy())   # bytes, not ==
        assert not parallel.same_bytes(a, a.astype(np.float64)) and not parallel.same_bytes(a, a.reshape(3, 5))


def test_same_bytes_tasks_reject_arrays_they_cannot_compare():
    a = np.zeros((4, 4), np.float32)
    types = [parallel.SameBytesTask] + ([parallel._compiled_gate().SameBytesTask] if tinycnn.backend() == "cython" else [])
    for task in types:
        with pytest.raises(ValueError, match="SameBytesTask: a and b must be C-contiguous"):
            task(a, a.T, 0, 16)
        with pytest.raises(ValueError, match=r"SameBytesTask: lo..hi-1 must lie in 0..15, got lo=3, hi=17"):
            task(a, a, 3, 17)


def test_run_tasks_runs_each_task_once_on_its_own_thread_and_raises_after_all_finished():
    ran = []

    def record(name):
        ran.append((name, threading.get_ident()))

    def fail():
        raise FloatingPointError("task failed")

    with threads(2):
        run_tasks([kernels.Task(record, "a"), kernels.Task(record, "b")])
        assert sorted(name for name, _ in ran) == ["a", "b"] and len({ident for _, ident in ran}) == 2
        ran.clear()
        with pytest.raises(FloatingPointError, match="task failed"):
            run_tasks([kernels.Task(fail), kernels.Task(record, "after")])
        assert [name for name, _ in ran] == ["after"]
        with pytest.raises(ValueError, match="run_tasks: 3 tasks for 2 threads"):
            run_tasks([kernels.Task(record, "x")] * 3)
    ran.clear()
    run_tasks([kernels.Task(record, "one thread"), kernels.Task(record, "serially")])
    assert [name for name, _ in ran] == ["one thread", "serially"] and len({ident for _, ident in ran}) == 1


@pytest.mark.parametrize("n_threads", [1, 2])
def test_run_tasks_runs_compiled_winograd_bands_like_one_call(n_threads):
    """Both bands' tasks, on 2 threads (a pool thread starts its task without the GIL) or serially,
    write what one call over all tile rows writes."""
    rng = np.random.default_rng(1)
    x, W, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 5, 9, 7), (6, 5, 3, 3), (6,)))
    U = kernels.winograd_weights(W, np.float32)
    whole = np.empty((2, 6, 9, 7), np.float32)
    kernels.winograd_conv_forward(x, U, b, whole, np.empty((16, 5, 40), np.float32), np.empty((16, 6, 40), np.float32), 0, 2)
    out = np.full_like(whole, np.nan)
    with threads(n_threads):
        for _ in range(50):                      # many hand-offs: a missed or early post shows as NaN
            out[...] = np.nan
            run_tasks(_band_tasks(x, U, b, [out] * n_threads, [(0, 2), (2, 5)][:n_threads] if n_threads == 2 else [(0, 5)]))
            np.testing.assert_allclose(out, whole, rtol=1e-5, atol=1e-5)


def test_a_pool_refuses_more_chunks_than_its_threads_and_the_caller_can_run():
    pool = parallel.Pool(1)
    try:
        with pytest.raises(ValueError, match=r"Pool.run: 3 chunks for 1 workers and the caller"):
            pool.run(lambda lo, hi: None, chunks(3, 3))
        assert pool.run(lambda lo, hi: (lo, hi), chunks(2, 2)) == [(0, 1), (1, 2)]
    finally:
        pool.shutdown()


def test_two_threads_of_a_program_can_call_parallel_for_at_once():
    """The second caller finds the pool busy and runs its chunks itself: same results."""
    def body(lo, hi):
        return sum(k * k for k in range(lo, hi))

    expected = [sum(k * k for k in range(lo, hi)) for lo, hi in chunks(3000, 2)]
    results, errors = [], []

    def caller():
        try:
            for _ in range(200):
                results.append(parallel_for(3000, body))
        except Exception as exc:      # reported below
            errors.append(exc)

    with threads(2):
        callers = [threading.Thread(target=caller, daemon=True) for _ in range(3)]
        for c in callers:
            c.start()
        for c in callers:
            c.join(timeout=60)
    assert errors == [] and len(results) == 600 and all(r == expected for r in results)


def test_two_threads_of_a_program_can_run_compiled_tasks_at_once():
    """Batch-1 Winograd convs (tile-row tasks) from three program threads sharing one pool: a
    caller that finds the pool busy runs its tasks itself; every output is the serial one (to
    float rounding: the bands' GEMMs are narrower than the whole image's)."""
    layer = Conv2D(16, 16, 3, padding=1, rng=0)
    assert layer.winograd_applies()
    x = np.random.default_rng(0).standard_normal((1, 16, 12, 12)).astype(np.float32)
    expected = layer.forward(x).copy()
    results, errors = [], []

    def caller():
        try:
            conv = Conv2D(16, 16, 3, padding=1, rng=0)     # a layer per thread: layers cache their input
            for _ in range(100):
                results.append(np.allclose(conv.forward(x), expected, rtol=1e-6, atol=1e-6))
        except Exception as exc:      # reported below
            errors.append(exc)

    with threads(2), any_chunk_size():
        callers = [threading.Thread(target=caller, daemon=True) for _ in range(3)]
        for c in callers:
            c.start()
        for c in callers:
            c.join(timeout=60)
    assert errors == [] and len(results) == 300 and all(results)


def test_the_pool_keeps_no_reference_to_a_finished_chunks_arrays():
    """Sequential.infer frees each layer's arrays as it goes; a pool thread must not hold them."""
    with threads(2):
        x = np.ones(1000)
        freed = weakref.ref(x)
        assert parallel_for(1000, lambda lo, hi, x=x: float(x[lo:hi].sum())) == [500.0, 500.0]
        del x
        assert freed() is None


def test_resizing_the_pool_stops_the_old_pools_threads():
    def pool_threads():
        return [t for t in threading.enumerate() if t.name.startswith("tinycnn-") and t.is_alive()]

    before = len(pool_threads())
    for n in (3, 2, 4, 1):
        with threads(n):
            parallel_for(8, lambda lo, hi: None)
            assert len(pool_threads()) == n - 1          # the previous pool's threads are gone
    assert len(pool_threads()) == before


def test_a_forked_child_makes_its_own_pool():
    """The child inherits none of the pool's threads: its parallel_for must not wait for them."""
    code = """
import os, sys, time, tinycnn
from tinycnn.parallel import parallel_for
tinycnn.set_threads(2)
parallel_for(4, lambda lo, hi: None)
time.sleep(0.1)           # the pool thread has stopped spinning and sleeps on its Gate
pid = os.fork()
if pid == 0:
    os._exit(0 if parallel_for(4, lambda lo, hi: (lo, hi)) == [(0, 2), (2, 4)] else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    run = subprocess.run([sys.executable, "-W", "ignore", "-c", code], timeout=60, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_threads_context_restores_the_previous_count():
    before = tinycnn.get_threads()
    with threads(2):
        with threads(3):
            assert tinycnn.get_threads() == 3
        assert tinycnn.get_threads() == 2
    assert tinycnn.get_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_rejected(bad):
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        tinycnn.set_threads(bad)


def test_scratch_is_reused_within_a_thread_and_private_to_it():
    a = scratch("t", (3, 4), np.float32)
    assert scratch("t", (3, 4), np.float32) is a
    assert scratch("t", (3, 4), np.float64) is not a
    other = []
    t = threading.Thread(target=lambda: other.append(scratch("t", (3, 4), np.float32)))
    t.start()
    t.join()
    assert other[0] is not a


def assert_same_on_threads(layer, x, upstream, n_threads):
    """out, dx and grads (if any) of one forward + backward (dout = upstream(out)), float64,
    agree on 1 and on n_threads threads to 1e-12."""
    runs = []
    for n in (1, n_threads):
        with threads(n), any_chunk_size():
            out = layer.forward(x, training=True)
            dx = layer.backward(upstream(out))
            runs.append((out, dx) + tuple(g.copy() for g in layer.grads.values()))
    for one, many in zip(*runs):
        np.testing.assert_allclose(many, one, rtol=1e-12, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(geom=conv_geometries(max_n=5), F=st.integers(1, 4), seed=seeds, frozen=st.booleans())
def test_conv2d_gives_the_same_result_on_one_and_three_threads(geom, F, seed, frozen):
    N, C, H, W, kh, kw, sh, sw, ph, pw = geom
    rng = np.random.default_rng(seed)
    layer = Conv2D(C, F, (kh, kw), stride=(sh, sw), padding=(ph, pw), rng=seed, dtype=np.float64)
    layer.trainable = not frozen
    x = rng.standard_normal((N, C, H, W))
    assert_same_on_threads(layer, x, np.cos, 3)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), i=st.integers(1, 9), o=st.integers(1, 9), seed=seeds)
def test_dense_gives_the_same_result_on_one_and_two_threads(n, i, o, seed):
    layer = Dense(i, o, rng=seed, dtype=np.float64)
    x = np.random.default_rng(seed).standard_normal((n, i))
    assert_same_on_threads(layer, x, np.sin, 2)


def test_dense_forward_hands_each_thread_one_task_compiled_where_the_kernels_run(monkeypatch):
    """float32 at batch 1 (a GEMV over 1.2M weights) and 32: the forward on two threads is two
    tasks, compiled where the CPU runs the compiled fully connected GEMMs, and gives the
    one-thread result."""
    layer, made, task = Dense(2048, 600, rng=0), [], kernels.dense_forward_task
    monkeypatch.setattr(kernels, "dense_forward_task", lambda *args: (made.append(task(*args)), made[-1])[1])
    for batch in (1, 32):
        x = np.random.default_rng(batch).standard_normal((batch, 2048)).astype(np.float32)
        outs = []
        for n in (1, 2):
            with threads(n), any_chunk_size():
                outs.append(layer.forward(x))
        np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6, atol=1e-6)
    assert len(made) == 6                                   # 1 + 2 tasks per batch
    assert all(bool(t.address) == (kernels.dense_kernels() == "avx512") for t in made)


@pytest.mark.parametrize("n", [1, 3, 7])
def test_winograd_conv2d_gives_the_same_result_on_one_and_three_threads(n, monkeypatch):
    from tinycnn.layers import conv
    monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 1)
    layer = Conv2D(3, 4, 3, padding=1, rng=0, dtype=np.float64)
    assert layer.winograd_applies()
    x = np.random.default_rng(n).standard_normal((n, 3, 9, 8))
    calls, task = [], conv.winograd_conv_task
    monkeypatch.setattr(conv, "winograd_conv_task", lambda *a, **k: (calls.append(k.get("tile_rows")), task(*a, **k))[1])
    assert_same_on_threads(layer, x, np.cos, 3)
    bands = [rows for rows in calls if rows is not None]  # tile rows: the forward on 3 threads at n < 3
    assert bands == ([(0, 1), (1, 3), (3, 5)] if n < 3 else [])


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 7), c=st.integers(1, 3), hw=st.integers(2, 7), size=st.integers(1, 3),
       stride=st.integers(1, 3), seed=seeds)
def test_relu_and_maxpool_give_the_same_result_on_one_and_three_threads(n, c, hw, size, stride, seed):
    x = np.random.default_rng(seed).standard_normal((n, c, hw, hw))
    assert_same_on_threads(ReLU(), x, np.cos, 3)
    if size <= hw:
        assert_same_on_threads(MaxPool2D(size, stride), x, np.cos, 3)


def test_a_training_step_on_two_threads_matches_one_thread():
    """EdgeCNN-3 (tiny), 3 SGD steps: params agree to float32 rounding of reordered sums;
    the SGD update is split over threads (here with 2**15 entries per chunk, so the 90,000
    weights take two)."""
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    y = np.arange(8) % 10
    params = []
    for n_threads in (1, 2):
        model = edge_cnn(3, preset="tiny", seed=0, dropout=0.0)
        big = Sequential([Dense(300, 300, rng=0), Dense(300, 10, rng=1)])  # 90,000 weights
        opt, opt_big = SGD(model, lr=0.05), SGD(big, lr=0.05)
        with threads(n_threads), any_chunk_size(), module_setting(optim, "SPLIT_ENTRIES", 1 << 15):
            for _ in range(3):
                loss, d = softmax_cross_entropy(model.forward(x, training=True), y)
                model.backward(d)
                opt.step()
                loss, d = softmax_cross_entropy(big.forward(x.reshape(8, -1)[:, :300], training=True), y)
                big.backward(d)
                opt_big.step()
        params.append({**model.state_dict(), **{f"big.{k}": v for k, v in big.state_dict().items()}})
    for name, value in params[0].items():
        np.testing.assert_allclose(params[1][name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_malloc_tuning_is_on_by_default_and_can_be_turned_off():
    code = "import tinycnn.allocator as a; print(a.TUNED)"
    env = dict(os.environ)
    env.pop("TINYCNN_MALLOC", None)
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    env["TINYCNN_MALLOC"] = "system"
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert off.stdout.strip() == "False"
    if sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION"):
        assert default.stdout.strip() == "True"
    env["TINYCNN_MALLOC"] = "jemalloc"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "TINYCNN_MALLOC must be 'tuned' or 'system'" in bad.stderr
