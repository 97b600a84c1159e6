"""`cloudedge train-cloud`: train CloudCNN on the cloud part of a data set and save it."""
import time
from pathlib import Path

from ._common import add_common, blas_threads, dump


def register(subparsers):
    p = subparsers.add_parser("train-cloud", help="train CloudCNN and save it (step-by-step use)",
                              description="Train CloudCNN on the cloud's part of the train split "
                                          "(--cloud-fraction, stratified, seeded) and save it as OUT "
                                          "(.npz) plus OUT.json; init-edge and update read them.")
    add_common(p)
    p.add_argument("--out", required=True, help="path of the CloudCNN .npz to write")
    p.add_argument("--pool-stride", type=int, choices=(1, 2), default=2)
    p.add_argument("--epochs", type=int, default=4, help="max epochs (default 4)")
    p.add_argument("--cloud-fraction", type=float, default=0.75)
    p.set_defaults(func=run)


def run(args):
    from tinycnn.train import TrainConfig

    from ..cloud import Cloud
    from ..data import load_dataset, split_cloud_edges
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = load_dataset(args.dataset, progress=not args.quiet)
    cloud_ids, _ = split_cloud_edges(y_train, args.cloud_fraction, args.seed)
    with blas_threads(args.threads):
        cloud = Cloud.train(x_train[cloud_ids], y_train[cloud_ids], preset=args.preset,
                            pool_stride=args.pool_stride, seed=args.seed,
                            config=TrainConfig(max_epochs=args.epochs, seed=args.seed, progress=not args.quiet))
        acc = cloud.evaluate(x_test, y_test)
    cloud.info.update(dataset=args.dataset, cloud_fraction=args.cloud_fraction, test_acc=acc)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cloud.save(args.out)
    out = {"path": str(args.out), "cloud_acc": acc, "seconds": time.perf_counter() - start, **cloud.info}
    print(dump(out) if args.json else
          f"CloudCNN ({args.preset}) trained on {len(cloud_ids):,} {args.dataset} images in "
          f"{cloud.info['train_seconds']:.0f} s: test accuracy {100 * acc:.2f}%; saved to {args.out}")
    return 0
