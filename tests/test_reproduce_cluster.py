"""`cloudedge reproduce` on Dask: nothing changes without a cluster, a run stores the same JSON
wherever it ran, a killed worker loses only its run, and an interrupt keeps the store whole.

The clusters are local (127.0.0.1, no dashboard); their workers import cloudedge from this
checkout. A job below waits at a gate (a file the test creates) so that the test knows a run is
in progress when it acts; every wait is bounded and fails the test when it runs out.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from functools import partial

import cloudpickle
import pytest
from distributed import Client, KilledWorker, LocalCluster

from cloudedge.cli import main
from cloudedge.reproduce import DataCache, Plan, runs
from cloudedge.reproduce.driver import open_cluster
from cloudedge.reproduce.runs import Job, execute
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)

WAIT = 60   # seconds any wait below may take before the test fails


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of 2 worker processes, one task at a time each; killed workers restart."""
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as local, Client(local) as client:
        yield local, client


def until(condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {WAIT} s for {what}")
        time.sleep(0.05)


def gated_jobs(folder, n):
    """n jobs; job i writes started-<i>-<pid> and returns once the file go-<i> exists. Its
    function is made here so that it travels to the workers by value (the workers cannot
    import this test module)."""
    def gated(i):
        (folder / f"started-{i}-{os.getpid()}").touch()
        deadline = time.monotonic() + WAIT
        while not (folder / f"go-{i}").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {i}: its gate never opened")
            time.sleep(0.05)
        return {"job": i, "pid": os.getpid()}
    return [Job(folder / "runs" / f"{i}.json", partial(gated, i)) for i in range(n)]


def starts(folder):
    """{job: [pids of the processes that started it]}."""
    out = {}
    for f in folder.glob("started-*"):
        _, i, pid = f.name.split("-")
        out.setdefault(int(i), []).append(int(pid))
    return out


def counting_store(monkeypatch):
    """Count runs.store calls per path (execute stores through it)."""
    counts, real = Counter(), runs.store

    def store(path, result):
        real(path, result)
        counts[path.name] += 1
    monkeypatch.setattr(runs, "store", store)
    return counts


def test_a_job_travels_as_its_config_not_its_data():
    """A job pickled for a worker carries a DataCache's settings, never the arrays it holds."""
    plan = Plan(quick=True, seeds=(0,), progress=False, log=lambda m: None)
    cache = DataCache(quick=True, progress=False)
    x_train = cache("mnist")[0]
    job = runs.experiment_job(plan, runs.run_config(plan, "mnist", 3, 0), cache)
    blob = cloudpickle.dumps(job.run)
    assert x_train.nbytes > 1_000_000 and len(blob) < 20_000
    again = pickle.loads(blob)
    assert again.args[1] is runs.shared_data_cache(True, False) and again.args[0] == job.run.args[0]


def test_without_a_cluster_dask_is_never_imported(tmp_path):
    code = ("import sys; from cloudedge.cli import main; "
            f"code = main(['reproduce', 'table2', '--quick', '--seeds', '1', '--quiet', '--out', "
            f"{str(tmp_path / 'reproduction')!r}, '--workdir', {str(tmp_path / 'cache')!r}]); "
            "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    assert out.stdout.splitlines()[-1] == "0 []"
    assert len(list((tmp_path / "reproduction" / "runs").glob("table-*.json"))) == 1


def test_a_run_stores_the_same_json_in_process_and_on_a_local_cluster(tmp_path):
    """variants --quick (tiny preset: 4 runs on one CloudCNN) in this process, then on --workers 2
    at the same paths (the stored JSON names its CloudCNN file). The stored files must be
    identical but for the wall-clock fields: every key named "seconds" or ending in "_seconds".
    Each run also records whether it trained the CloudCNN or read it from the cache: the first
    trains it, the others read it, on the cluster too."""
    root, target, n_runs = tmp_path / "sweep", "variants", 4
    args = ["reproduce", target, "--quick", "--quiet",
            "--out", str(root / "reproduction"), "--workdir", str(root / "cache")]
    assert main(args) == 0
    serial = tmp_path / "serial"
    root.rename(serial)
    assert main(args + ["--workers", "2"]) == 0
    summary = json.loads((root / "reproduction" / f"{target}.json").read_text())
    assert summary["workers"] == 2 and summary["runs_run"] == n_runs

    def timeless(obj):
        if isinstance(obj, dict):
            return {k: timeless(v) for k, v in obj.items() if k != "seconds" and not k.endswith("_seconds")}
        return [timeless(v) for v in obj] if isinstance(obj, list) else obj

    names = sorted(p.name for p in (root / "reproduction" / "runs").iterdir())
    assert names == sorted(p.name for p in (serial / "reproduction" / "runs").iterdir()) and len(names) == n_runs
    for name in names:
        here, there = (json.loads((r / "reproduction" / "runs" / name).read_text())
                       for r in (serial, root))
        assert json.dumps(timeless(here), indent=1) == json.dumps(timeless(there), indent=1)
        assert here["edges"][0]["curve"][0]["accuracy"] == there["edges"][0]["curve"][0]["accuracy"]


def kill_the_first_started_then_open_the_gates(folder, n):
    """In a thread: SIGKILL the worker process running the first job seen to start, then let every
    job finish. Returns (thread, {"job", "pid"} of the run killed)."""
    victim = {}

    def act():
        until(lambda: starts(folder), "a run to start")
        i, pids = next(iter(starts(folder).items()))
        victim.update(job=i, pid=pids[0])
        os.kill(pids[0], signal.SIGKILL)
        for k in range(n):
            (folder / f"go-{k}").touch()
    thread = threading.Thread(target=act)
    thread.start()
    return thread, victim


def test_a_killed_worker_loses_only_its_run_which_runs_again_elsewhere(tmp_path, monkeypatch):
    counts = counting_store(monkeypatch)
    jobs = gated_jobs(tmp_path, 4)
    helper, victim = kill_the_first_started_then_open_the_gates(tmp_path, len(jobs))
    plan = Plan(progress=False, log=lambda m: None, workers=2, retries=1)
    with open_cluster(plan):
        results = execute(jobs, plan)
    helper.join(WAIT)

    assert [r["job"] for r, _ in results] == [0, 1, 2, 3]
    assert counts == {f"{i}.json": 1 for i in range(4)}                      # every run stored once
    started = starts(tmp_path)
    assert len(started[victim["job"]]) == 2 and results[victim["job"]][0]["pid"] != victim["pid"]
    assert all(len(started[i]) == 1 for i in range(4) if i != victim["job"])  # no other run started again
    assert os.getpid() not in {p for pids in started.values() for p in pids}  # they ran on the workers


def test_retries_bound_the_restarts_of_a_run_whose_worker_died(tmp_path):
    jobs = gated_jobs(tmp_path, 2)
    helper, victim = kill_the_first_started_then_open_the_gates(tmp_path, len(jobs))
    plan = Plan(progress=False, log=lambda m: None, workers=2, retries=0)
    with pytest.raises(KilledWorker), open_cluster(plan):
        execute(jobs, plan)
    helper.join(WAIT)
    assert not (tmp_path / "runs" / f"{victim['job']}.json").exists()
    assert len(starts(tmp_path)[victim["job"]]) == 1                         # retries=0: not started again


def test_an_interrupt_cancels_the_rest_and_keeps_what_was_stored(tmp_path, cluster, monkeypatch):
    local, client = cluster
    real = runs.store

    def store_then_interrupt(path, result):   # Ctrl-C arrives just after the first run is stored
        real(path, result)
        raise KeyboardInterrupt
    monkeypatch.setattr(runs, "store", store_then_interrupt)
    jobs = gated_jobs(tmp_path, 4)
    (tmp_path / "go-0").touch()                # only job 0 may finish
    plan = Plan(progress=False, log=lambda m: None, scheduler=local.scheduler_address)
    with pytest.raises(KeyboardInterrupt), open_cluster(plan):
        execute(jobs, plan)
    for k in range(1, len(jobs)):
        (tmp_path / f"go-{k}").touch()         # let a run that had started end on its worker

    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["0.json"]   # whole, and no temp file
    assert json.loads((tmp_path / "runs" / "0.json").read_text())["job"] == 0
    until(lambda: not client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks)),
          "the scheduler to forget the cancelled runs")
    # job 1 holds the other worker until after the interrupt: of the queued jobs 2 and 3, only the
    # one that job 0's worker may have picked up before the cancel reached it can have started
    assert 2 not in starts(tmp_path) or 3 not in starts(tmp_path)


def test_cluster_options_are_checked(tmp_path, capsys):
    assert main(["reproduce", "table2", "--quick", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert "not both" in capsys.readouterr().err
    plan = Plan(progress=False, log=lambda m: None, workers=2)
    with pytest.raises(runs.ReproductionError, match="none is open"):   # never quietly in-process
        execute(gated_jobs(tmp_path, 1), plan)
