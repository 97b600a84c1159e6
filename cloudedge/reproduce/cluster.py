"""Runs on a Dask distributed cluster: ``cloudedge reproduce ... --scheduler tcp://host:8786`` or
``--workers N`` (a local cluster of N processes on 127.0.0.1). Dask is an optional extra
(``pip install -e '.[cluster]'``); driver.open_cluster imports this module only when a plan names
a cluster.

What travels: each job's run (a config, a DataCache's settings and a module-level function,
pickled) and the engine's thread count go to a worker; its result (a JSON-able dict) and its
wall seconds come back. The worker loads the data set itself; this process stores the result.

Faults: a worker that dies (killed, out of memory) loses only the run it was running; the
scheduler starts that run again on another worker, at most ``allowed-failures`` times
(Plan.retries for a local cluster; the scheduler's own setting for a remote one), then the
sweep fails with KilledWorker. A run that raises is not retried: runs are deterministic, so
it would raise again. On any error or Ctrl-C the runs not finished are cancelled; the ones
already stored stay.
"""
from contextlib import contextmanager

from distributed import Client, LocalCluster, as_completed

from .runs import ReproductionError, run_job


@contextmanager
def connect(plan):
    """A Runner on plan.scheduler, or on a new local cluster of plan.workers processes (loopback
    only, no dashboard), closed at the end of the block."""
    if plan.workers:
        with LocalCluster(n_workers=plan.workers, processes=True, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None, scheduler_kwargs={"allowed_failures": plan.retries}) as local, \
                Client(local) as client:
            yield Runner(client)
        return
    try:
        client = Client(plan.scheduler, timeout="30s")
    except OSError as exc:
        raise ReproductionError(f"cannot reach the Dask scheduler at {plan.scheduler!r}: {exc}") from exc
    with client:
        busy = {w["name"]: w["nthreads"] for w in client.scheduler_info()["workers"].values() if w["nthreads"] != 1}
        if busy:
            # tinycnn.set_threads is per process: two runs in one process would change each other's count
            raise ReproductionError(f"workers {busy} run several tasks at once; start each worker with "
                                    "--nthreads 1 (a run's engine threads are set per process)")
        yield Runner(client)


class Runner:
    """What execute uses while a cluster is open (Plan.cluster): its workers, and running jobs."""

    def __init__(self, client):
        self.client = client

    def workers(self):
        """How many workers the scheduler has now."""
        return len(self.client.scheduler_info()["workers"])

    def run(self, jobs, threads, finished):
        """Run the jobs, each with the engine at `threads` threads; call finished(index, result,
        seconds) in this process as each one finishes. A job whose cloud an earlier job trains is
        submitted when that job has finished, so the CloudCNN is trained once and read from the
        cache after (a cache the workers of one machine share; a worker on another machine
        trains its own copy)."""
        first, waiting, index = {}, {}, {}
        pending = as_completed()

        def submit(i):
            future = self.client.submit(run_job, jobs[i].run, threads, pure=False)
            index[future.key] = i
            pending.add(future)

        for i, job in enumerate(jobs):
            if job.cloud in first:
                waiting.setdefault(job.cloud, []).append(i)
                continue
            if job.cloud is not None:
                first[job.cloud] = i
            submit(i)
        try:
            for future in pending:
                outcome = future.result()          # raises the run's own exception, or KilledWorker
                i = index.pop(future.key)
                finished(i, *outcome)
                future.release()                   # the scheduler forgets it: a finished run is never redone
                if first.get(jobs[i].cloud) == i:
                    for j in waiting.pop(jobs[i].cloud, []):
                        submit(j)
        except BaseException:                      # an error, or Ctrl-C: nothing more runs for this sweep
            self.client.cancel(list(pending.futures))
            raise
