"""Reproduce the paper's experiments (Section 4.3): Tables 2 and 3, Figs. 7-10, the studies
behind the headline, and variants the paper did not run.

    plan = Plan(seeds=(0, 1, 2))               # preset, seeds, output folder, --quick, --force ...
    reproduce(["table2", "fig10"], plan)       # runs them, writes their files and the report

Every target (``targets.TARGETS``, one module each) runs the framework, stores each run as JSON
under ``<out>/runs/`` and writes ``<out>/<target>.csv``, ``.png``, ``.md`` and ``.json`` with the
paper's numbers (cloudedge.paper) beside ours (``render``). ``report`` assembles
docs/REPRODUCTION.md from those files, so nothing in it is typed by hand.

A run is reused when a file with the same configuration hash exists (``runs``: ``force``
re-runs), so ``fig10`` reads the runs of ``table2``/``table3`` and ``all`` never repeats work.
Runs go in-process, or to a Dask cluster (``Plan(workers=2)`` or ``Plan(scheduler="tcp://host:8786")``,
``cluster``); the stored results are the same either way.

    runs.py        Plan, a run's config and hash, the store, execute (the one place runs happen)
    cluster.py     execute's runs on Dask (optional: pip install -e '.[cluster]')
    render.py      the CSV / PNG / markdown / JSON writer every target uses
    tables.py      table2, table3, fig7      large.py       fig8, fig9
    fig10.py       fig10                     variants.py    variants
    stability.py   stability                 factors.py     factors
    targets.py     the list of targets       cost.py        the paper preset's cost estimate
    report.py      docs/REPRODUCTION.md      driver.py      reproduce(): targets in order, then the report
"""
from .driver import reproduce
from .runs import DataCache, Plan, ReproductionError
from .targets import NAMES, TARGETS

__all__ = ["NAMES", "TARGETS", "DataCache", "Plan", "ReproductionError", "reproduce"]
