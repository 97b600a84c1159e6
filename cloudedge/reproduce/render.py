"""The one renderer: every target writes ``<out>/<target>.csv``, ``.png``, ``.md`` and ``.json``
through ``write_outputs``, given its rows, its plot and its markdown."""
import csv
import json

import numpy as np

from ..jsonable import jsonable


def mean_std(values):
    """(mean, sample std) of the values that are not None; (None, None) if none is; std 0 for one."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def fmt(mean, std=None, digits=2):
    """A table cell: "—" for no value, "m" or "m ± s"."""
    if mean is None:
        return "—"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (imported here: it takes a second to load)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=1, default=jsonable))


def write_csv(path, rows, columns):
    """One line per row, these columns; a list cell as JSON, None as empty."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, list) else ("" if v is None else v))
                        for k, v in r.items()})


def write_outputs(plan, target, summary, rows, columns, plot, markdown):
    """<target>.csv (rows), .png (plot(summary, path)), .md (markdown(summary)) and .json (summary).
    Returns the summary, with its markdown and the paths of the four files."""
    plan.out.mkdir(parents=True, exist_ok=True)
    write_csv(plan.out / f"{target}.csv", rows, columns)
    plot(summary, plan.out / f"{target}.png")
    summary["markdown"] = markdown(summary)
    (plan.out / f"{target}.md").write_text(summary["markdown"] + "\n")
    summary["files"] = {k: str(plan.out / f"{target}.{k}") for k in ("csv", "png", "md", "json")}
    write_json(plan.out / f"{target}.json", summary)
    return summary
