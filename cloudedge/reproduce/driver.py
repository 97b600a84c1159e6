"""Run targets in order, then write docs/REPRODUCTION.md (``cloudedge reproduce`` calls reproduce)."""
import json
import time
from contextlib import contextmanager
from pathlib import Path

from .cost import estimate_cost
from .render import write_json
from .report import write_report
from .runs import DataCache, ReproductionError, worker_count
from .targets import NAMES, TARGETS


def reproduce(targets, plan, report_path=None):
    """Run the targets in order; write each target's files and the report. Returns {target: summary}.

    With 'all', a target that fails (e.g. CIFAR-10 not on this machine) is recorded as not run and
    the others go on; a single target's failure is recorded, the report rewritten, then re-raised.
    """
    order = list(NAMES) if "all" in targets else list(dict.fromkeys(targets))
    unknown = [t for t in order if t not in TARGETS]
    if unknown:
        raise ReproductionError(f"unknown target(s) {unknown}; choose from {NAMES + ('all', 'report')}")
    report_path = Path(report_path) if report_path else plan.out.parent / "REPRODUCTION.md"
    if plan.preset == "paper":
        seconds, why = estimate_cost(order, plan)
        plan.log("expected cost with the paper preset: " +
                 (f"about {seconds / 3600:.1f} h ({why})" if seconds is not None else f"unknown ({why})"))
    data_cache = DataCache(plan.quick, plan.progress)
    results = {}
    with open_cluster(plan):        # a Dask cluster, when the plan names one, open for every target
        for target in order:
            start, ran = time.perf_counter(), len(plan.ran)
            try:
                results[target] = TARGETS[target].run(plan, data_cache)
            except Exception as exc:    # any failure of one target: recorded in its JSON, shown in the report
                _write_error(plan, target, exc)
                if "all" not in targets:
                    write_report(plan.out, report_path)
                    raise
                results[target] = {"target": target, "error": f"{type(exc).__name__}: {exc}"}
            s = results[target]
            s.update(wall_seconds=time.perf_counter() - start, workers=worker_count(plan),
                     runs_run=len(plan.ran) - ran, runs_run_seconds=sum(plan.ran[ran:]))
            _record_wall(plan, target, s)
            plan.log(f"{target}: done in {s['wall_seconds']:.0f} s; ran {s['runs_run']} run(s), "
                     f"{s['runs_run_seconds']:.0f} s of compute on {s['workers']} worker(s)"
                     + (f" ({s['error'].splitlines()[0]})" if "error" in s else ""))
    write_report(plan.out, report_path)
    return results


@contextmanager
def open_cluster(plan):
    """Inside the block, plan.cluster runs execute's runs on the Dask cluster the plan names
    (plan.scheduler, or a local one of plan.workers processes, closed at the end); nothing to do
    for a plan without one."""
    if not (plan.scheduler or plan.workers):
        yield
        return
    try:
        from . import cluster   # optional dependency (Dask): imported only when a plan names a cluster
    except ImportError as exc:
        raise ReproductionError(f"running on a Dask cluster needs Dask: pip install -e '.[cluster]' ({exc})") from exc
    with cluster.connect(plan) as runner:
        plan.cluster = runner
        try:
            yield
        finally:
            plan.cluster = None


def _write_error(plan, target, exc):
    plan.out.mkdir(parents=True, exist_ok=True)
    write_json(plan.out / f"{target}.json", {"target": target, "preset": plan.preset, "quick": plan.quick,
                                             "error": f"{type(exc).__name__}: {exc}"})


def _record_wall(plan, target, summary):
    """Add the invocation's wall time, workers, and the runs it ran with their summed seconds to
    <target>.json (the report's cost table reads them)."""
    f = plan.out / f"{target}.json"
    if f.exists():
        d = json.loads(f.read_text())
        d.update({k: summary[k] for k in ("wall_seconds", "workers", "runs_run", "runs_run_seconds")})
        write_json(f, d)
