"""EdgeCNN-3 on the full Fashion-MNIST with the paper's training procedure.

    python examples/train_fashion_mnist.py [--max-epochs 10] [--ten-crop] [--checkpoint run.npz]

Needs the 70,000 Fashion-MNIST images: Debian's `dataset-fashion-mnist` package, or the
files in $TINYCNN_DATA / ~/.cache/tinycnn (see docs/datasets.md). The paper trains until
its stopping rules fire; --max-epochs caps that for a laptop. With --checkpoint, Ctrl-C
keeps the last finished epoch and --resume continues from it.
"""
import argparse
import json
import time

from cloudedge.system.models import edge_cnn
from tinycnn.datasets import load_fashion_mnist
from tinycnn.train import TrainConfig, evaluate, fit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--pool-stride", type=int, default=2, choices=(1, 2))
    parser.add_argument("--ten-crop", action="store_true", help="also report 10-crop test accuracy")
    parser.add_argument("--checkpoint", help="epoch checkpoint (.npz)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="write history and results as JSON")
    args = parser.parse_args()

    x_train, y_train = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    model = edge_cnn(3, input_shape=(1, 28, 28), pool_stride=args.pool_stride, seed=args.seed)
    start = time.perf_counter()
    history = fit(model, x_train, y_train,
                  TrainConfig(max_epochs=args.max_epochs, seed=args.seed, progress=not args.quiet),
                  checkpoint=args.checkpoint, resume=args.resume)
    train_seconds = time.perf_counter() - start
    for row in history.rows:
        print(f"epoch {row['epoch']:2d}  loss {row['loss']:.4f}  train {row['train_acc']:.4f}  "
              f"val {row['val_acc']:.4f}  lr {row['lr']:g}  {row['seconds']:.0f} s", flush=True)
    result = {"epochs": len(history.rows), "stopped": history.stopped,
              "train_seconds": train_seconds, "test_acc": evaluate(model, x_test, y_test)[1]}
    if args.ten_crop:
        result["test_acc_10crop"] = evaluate(model, x_test, y_test, ten_crop=True)[1]
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"history": history.rows, **result}, f, indent=2)


if __name__ == "__main__":
    main()
