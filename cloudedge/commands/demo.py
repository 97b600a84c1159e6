"""`cloudedge demo`: the whole framework on the embedded MNIST sample, in a few minutes.

CloudCNN (laptop preset) trained on 6,000 of the 8,000 embedded training digits comes from
the cache, else from the package (shipped, trained with seed 0), else is trained now;
EdgeCNN0-3 and EdgeCNN1-3 start from the same 120 labeled digits of the other 2,000 and
stream 1,080 uploads through the update phase (users send 60 per tick, the core network is
idle every other tick, retrain every M = 120 new labels); prints accuracy on the 2,000 test
digits vs number of training images, then the N = 120 gap over 5 edge seeds with its 95%
interval, and the factors study's gap over CloudCNN seeds.
"""
from ..cloud import CLOUD_MAX_EPOCHS, cloud_train_config
from ._common import add_common, kb


def register(subparsers):
    p = subparsers.add_parser("demo", help="CloudCNN + EdgeCNN0-3 / EdgeCNN1-3 through both phases (minutes)",
                              description=__doc__.split("\n\n")[1] if "\n\n" in __doc__ else __doc__)
    add_common(p)
    p.add_argument("--workdir", default=None,
                   help="where the trained CloudCNN is cached (default ~/.cache/tinycnn/cloudedge)")
    p.add_argument("--train-cloud", "--no-cache", dest="no_cache", action="store_true",
                   help="train CloudCNN from scratch (default: the cached one, else the one shipped in the package)")
    p.add_argument("--cloud-epochs", type=int, default=CLOUD_MAX_EPOCHS,
                   help=f"CloudCNN's max epochs (default {CLOUD_MAX_EPOCHS})")
    p.add_argument("--plot", default=None, help="also write the accuracy curve to this PNG")
    p.set_defaults(func=run)


def demo_config(args):
    from ..experiment import RunConfig
    return RunConfig(dataset=args.dataset, depth=3, labeled=120, uploads=1080, step=120, chunk=60,
                     seed=args.seed, preset=args.preset,
                     cloud_train=cloud_train_config(max_epochs=args.cloud_epochs))


def run(args):
    from .experiment import run_and_print
    return run_and_print(demo_config(args), args)


def accuracy_table(out):
    """Rows: number of training images, then each edge's test accuracy after training on that many;
    on MNIST also the paper's Table 2 for the same models (its numbers, not ours)."""
    from ..paper import LABELED_SIZES, TABLE2_MNIST
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
    from ..study import headline_text
    c = out["cloud"]
    info = c["info"]
    how = {"shipped": f"shipped in the package, {c['path']}: trained by `cloudedge train-cloud` with seed "
                      f"{info['seed']} fixed in advance (cloudedge/pretrained/MANIFEST.json); --train-cloud "
                      f"retrains it",
           "cache": f"loaded from the cache, {c['path']}",
           "trained": f"trained now on {info['n_train']:,} images, {info['epochs']} epochs, "
                      f"{info['train_seconds']:.0f} s"}[c["source"]]
    lines = [f"CloudCNN ({out['preset']} preset, 15 conv layers): test accuracy {100 * out['cloud_acc']:.2f}% "
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
