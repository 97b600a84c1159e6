"""`cloudedge train-cloud`: train CloudCNN on the cloud part of a data set and save it."""
import time
from pathlib import Path

from ..experiments.experiment import train_cloud
from ..experiments.study import ten_crop_accuracy
from ..system.cloud import CLOUD_MAX_EPOCHS, UntrainedCloudError, cloud_train_config
from ..system.config import EdgeConfig, RunConfig
from ..system.data import load_dataset
from ._common import add_common, engine_threads, dump


def register(subparsers):
    p = subparsers.add_parser("train-cloud", help="train CloudCNN and save it (step-by-step use)",
                              description="Train CloudCNN on the cloud's part of the train split "
                                          "(--cloud-fraction, stratified, seeded) and save it as OUT "
                                          "(.npz) plus OUT.json; init-edge and update read them.")
    add_common(p)
    p.add_argument("--out", required=True, help="path of the CloudCNN .npz to write")
    p.add_argument("--pool-stride", type=int, choices=(1, 2), default=EdgeConfig.pool_stride)
    p.add_argument("--epochs", type=int, default=CLOUD_MAX_EPOCHS,
                   help=f"max epochs (default {CLOUD_MAX_EPOCHS})")
    p.add_argument("--cloud-fraction", type=float, default=RunConfig.cloud_fraction)
    p.set_defaults(func=run)


def run(args):
    start = time.perf_counter()
    data = load_dataset(args.dataset, progress=not args.quiet)
    cfg = RunConfig(dataset=args.dataset, seed=args.seed, cloud_fraction=args.cloud_fraction,
                    cloud_train=cloud_train_config(max_epochs=args.epochs),
                    edge=EdgeConfig(preset=args.preset, pool_stride=args.pool_stride))
    with engine_threads(args.threads):
        cloud = train_cloud(data, cfg, progress=not args.quiet)
        acc = cloud.evaluate(data[2], data[3])
        acc10 = ten_crop_accuracy(cloud, data)
    cloud.info.update(test_acc=acc, test_acc_10crop=acc10)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cloud.save(args.out)
    out = {"path": str(args.out), "cloud_acc": acc, "seconds": time.perf_counter() - start, **cloud.info}
    try:
        cloud.check_trained()
        trained = ""
    except UntrainedCloudError as exc:
        trained = f"; but {exc}"
    print(dump(out) if args.json else
          f"CloudCNN ({args.preset}) trained on {cloud.info['n_train']:,} {args.dataset} images in "
          f"{cloud.info['train_seconds']:.0f} s ({len(cloud.info['attempts'])} attempt(s)): test accuracy "
          f"{100 * acc:.2f}% ({100 * acc10:.2f}% with 10-crop testing); saved to {args.out}{trained}")
    return 1 if trained else 0
