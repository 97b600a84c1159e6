"""Run targets in order, then write docs/REPRODUCTION.md (``cloudedge reproduce`` calls reproduce)."""
import json
import time
from pathlib import Path

from .cost import estimate_cost
from .render import write_json
from .report import write_report
from .runs import DataCache, ReproductionError
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
    data_cache = DataCache(plan)
    results = {}
    for target in order:
        start = time.perf_counter()
        try:
            results[target] = TARGETS[target].run(plan, data_cache)
        except Exception as exc:    # any failure of one target: recorded in its JSON, shown in the report
            _write_error(plan, target, exc)
            if "all" not in targets:
                write_report(plan.out, report_path)
                raise
            results[target] = {"target": target, "error": f"{type(exc).__name__}: {exc}"}
        results[target]["wall_seconds"] = time.perf_counter() - start
        _record_wall(plan, target, results[target])
        plan.log(f"{target}: done in {results[target]['wall_seconds']:.0f} s"
                 + (f" ({results[target]['error'].splitlines()[0]})" if "error" in results[target] else ""))
    write_report(plan.out, report_path)
    return results


def _write_error(plan, target, exc):
    plan.out.mkdir(parents=True, exist_ok=True)
    write_json(plan.out / f"{target}.json", {"target": target, "preset": plan.preset, "quick": plan.quick,
                                             "error": f"{type(exc).__name__}: {exc}"})


def _record_wall(plan, target, summary):
    """Add the invocation's wall time to <target>.json (the report's cost table reads it)."""
    f = plan.out / f"{target}.json"
    if f.exists():
        d = json.loads(f.read_text())
        d["wall_seconds"] = summary["wall_seconds"]
        write_json(f, d)
