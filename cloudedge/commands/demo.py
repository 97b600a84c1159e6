"""`cloudedge demo`: the whole framework on the embedded MNIST sample, in a few minutes.

CloudCNN (laptop preset) trained on 6,000 of the 8,000 embedded training digits comes from
the cache, else from the package (shipped, trained with seed 0), else is trained now;
EdgeCNN0-3 and EdgeCNN1-3 start from the same 120 labeled digits of the other 2,000 and
stream 1,080 uploads through the update phase (users send 60 per tick, the core network is
idle every other tick, retrain every M = 120 new labels); prints accuracy on the 2,000 test
digits vs number of training images, then the N = 120 gap over 5 edge seeds with its 95%
interval, and the factors study's gap over CloudCNN seeds.
"""
from ..system.cloud import CLOUD_MAX_EPOCHS, cloud_train_config
from ..system.config import EdgeConfig, RunConfig
from ._common import add_common
from .experiment import run_and_print


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
    """RunConfig's defaults (the paper's MNIST setting) with the common options."""
    return RunConfig(dataset=args.dataset, seed=args.seed, cloud_train=cloud_train_config(max_epochs=args.cloud_epochs),
                     edge=EdgeConfig(preset=args.preset))


def run(args):
    return run_and_print(demo_config(args), args)
