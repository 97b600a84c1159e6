"""The text report of one run (demo and experiment): the accuracy table, bytes, the headline."""
from ..experiments.study import headline_text
from ..paper import LABELED_SIZES, TABLE2_MNIST
from ._common import kb


def accuracy_table(out):
    """Rows: number of training images, then each edge's test accuracy after training on that many;
    on MNIST also the paper's Table 2 for the same models (its numbers, not ours)."""
    names = [e["model"] for e in out["edges"]]
    curves = [{p["n_images"]: p["accuracy"] for p in e["curve"]} for e in out["edges"]]
    paper = {}
    if out["dataset"] == "mnist":
        paper = {f"paper {n}": dict(zip(LABELED_SIZES, (v / 100 for v in TABLE2_MNIST[n])))
                 for n in names if n in TABLE2_MNIST}
    sizes = sorted(set().union(*curves))
    columns = names + list(paper)
    lines = ["images  " + "  ".join(f"{n:>16}" for n in columns)]
    for n in sizes:
        cells = [f"{100 * c[n]:15.2f}%" if n in c else f"{'-':>16}" for c in curves + list(paper.values())]
        lines.append(f"{n:>6}  " + "  ".join(cells))
    return "\n".join(lines)


def report(out):
    c = out["cloud"]
    info = c["info"]
    how = {"shipped": f"shipped in the package, {c['path']}: trained by `cloudedge train-cloud` with seed "
                      f"{info['seed']} fixed in advance (cloudedge/pretrained/MANIFEST.json); --train-cloud "
                      f"retrains it",
           "cache": f"loaded from the cache, {c['path']}",
           "trained": f"trained now on {info['n_train']:,} images, {info['epochs']} epochs, "
                      f"{info['train_seconds']:.0f} s"}[c["source"]]
    crop = (f"; {100 * info['test_acc_10crop']:.2f}% with the paper's 10-crop testing, recorded when it was "
            f"trained" if info.get("test_acc_10crop") is not None else "")
    lines = [f"CloudCNN ({out['preset']} preset, 15 conv layers): test accuracy {100 * out['cloud_acc']:.2f}%{crop} "
             f"({how})", "",
             f"EdgeCNN test accuracy vs training images (N = {out['n_labeled']} labeled, then cloud-labeled uploads):",
             accuracy_table(out), ""]
    for e in out["edges"]:
        noise = e["noise"] or {}
        saved = 1 - e["bytes_up"] / e["raw_bytes_up"] if e["raw_bytes_up"] else 0.0
        lines.append(f"{e['model']}: up {kb(e['bytes_up'])} of segmented objects for {e['uploads']} uploads "
                     f"(raw images: {kb(e['raw_bytes_up'])}, {100 * saved:.0f}% saved); down {kb(e['bytes_down'])}"
                     f"{' incl. the layer package' if e['model'].startswith('EdgeCNN1') else ''}; "
                     f"{e['syncs']} syncs, {e['syncs_skipped']} skipped (core network busy); "
                     f"{e['trainings']} trainings, {e['train_seconds']:.1f} s; cloud labels wrong for "
                     f"{100 * noise.get('sent_noise', 0):.1f}% of uploads")
    lines.append(f"cloud: {kb(c['bytes_in'])} in, {kb(c['bytes_out'])} out ({c['packages']} layer package(s), "
                 f"{c['objects_labeled']} objects labeled)")
    if out.get("headline"):
        lines += [""] + headline_text(out["headline"])
    lines.append(f"time: cloud {c['load_seconds']:.0f} s, edges {out['edge_seconds']:.0f} s, "
                 f"total {out['wall_seconds']:.0f} s")
    return "\n".join(lines)
