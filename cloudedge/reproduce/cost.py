"""What a target will cost with another preset, estimated before it runs from the laptop runs
measured here and the presets' training FLOPs."""
import json

import numpy as np

from tinycnn.flops import profile

from ..system.models import cloud_cnn, edge_cnn
from . import large, tables, variants
from .runs import DEPTHS


def preset_cost_ratio(preset, base="laptop", input_shape=(1, 28, 28)):
    """Training FLOPs per image of CloudCNN and EdgeCNN-k under ``preset`` over ``base``."""
    def flops(model):
        t = profile(model, input_shape).totals
        return t["flops"] + t["backward_flops"]
    out = {"cloud": flops(cloud_cnn(input_shape, preset=preset)) / flops(cloud_cnn(input_shape, preset=base))}
    for k in DEPTHS:
        out[f"edge{k}"] = flops(edge_cnn(k, input_shape, preset=preset)) / flops(edge_cnn(k, input_shape, preset=base))
    return out


def estimate_cost(targets, plan):
    """Seconds expected for the targets: the laptop runs already measured here, scaled by the
    preset's FLOP ratio. Returns (seconds or None, explanation)."""
    measured = []
    for f in sorted((plan.out / "runs").glob("table-*-laptop-*.json")) if (plan.out / "runs").exists() else []:
        r = json.loads(f.read_text())
        if not r.get("quick"):
            measured.append(r)
    if not measured:
        return None, ("no laptop-preset run is recorded in " + str(plan.out / "runs") +
                      "; run a laptop target first to calibrate the estimate")
    ratio = preset_cost_ratio(plan.preset) if plan.preset != "laptop" else {"cloud": 1.0}
    per_run = float(np.mean([r.get("wall_seconds", r["seconds"]) for r in measured]))
    n_runs = 0
    for t in targets:
        if t in tables.DATASETS:
            n_runs += len(plan.depths) * len(plan.seeds)
        elif t == "variants":
            n_runs += len(variants.VARIANTS)
        elif t in large.DATASETS:
            n_runs += len(plan.large_depths) * len(plan.seeds) * 5
    scale = max(ratio.values())
    seconds = n_runs * per_run * scale
    return seconds, (f"{n_runs} runs x {per_run:.0f} s per laptop run measured here (mean of {len(measured)}) x "
                     f"{scale:.1f} (training FLOPs per image, {plan.preset} / laptop, worst model)")
