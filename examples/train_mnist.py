"""Train a small CNN on the embedded MNIST sample (offline) and print its test accuracy.

    python examples/train_mnist.py [--epochs 5] [--quiet]

Data: the 10,000 real MNIST test digits shipped with tinycnn, split 8,000 train /
2,000 test (fixed, seeded, stratified; see docs/datasets.md). The training part is
split 9:1 again into train/validation by the paper's procedure (tinycnn.train).
"""
import argparse
import time

from tinycnn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential
from tinycnn.datasets import load_mnist_sample
from tinycnn.train import TrainConfig, evaluate, fit


def small_cnn(seed=0):
    """Conv 1->16, Conv 16->32 (3x3, pad 1, ReLU), MaxPool 2x2, Dropout, Dense 6272->128->10."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return Sequential([
        Conv2D(1, 16, 3, padding=1, rng=rng), ReLU(),
        Conv2D(16, 32, 3, padding=1, rng=rng), ReLU(),
        MaxPool2D(2), Dropout(0.25), Flatten(),
        Dense(32 * 14 * 14, 128, rng=rng), ReLU(), Dense(128, 10, rng=rng),
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="max epochs (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    x_train, y_train = load_mnist_sample("train")
    x_test, y_test = load_mnist_sample("test")
    model = small_cnn(args.seed)
    start = time.perf_counter()
    history = fit(model, x_train, y_train,
                  TrainConfig(max_epochs=args.epochs, seed=args.seed, progress=not args.quiet))
    for row in history.rows:
        print(f"epoch {row['epoch']:2d}  loss {row['loss']:.4f}  train {row['train_acc']:.4f}  "
              f"val {row['val_acc']:.4f}  lr {row['lr']:g}  {row['seconds']:.1f} s")
    _, acc = evaluate(model, x_test, y_test)
    print(f"test accuracy {acc:.4f} on {len(y_test)} held-out digits "
          f"({time.perf_counter() - start:.0f} s, stopped: {history.stopped})")


if __name__ == "__main__":
    main()
