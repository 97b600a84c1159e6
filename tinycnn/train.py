"""Training for any Sequential: mini-batch SGD with momentum, a validation split, lr decay
on a plateau, stopping rules, checkpoints and resume.

Without an explicit validation set, a stratified ``val_fraction`` of the data is held out.
The lr is divided by 10 when validation accuracy has not improved for ``lr_patience``
epochs; training stops when validation error has not dropped for ``stop_patience`` epochs,
when the lr has fallen by more than ``max_lr_drop`` in total, or after ``max_epochs``.

Determinism: epoch e shuffles with default_rng([seed, e]) and reseeds Dropout with
[seed, e], so a run resumed from its epoch checkpoint is bit-identical to one that
was never interrupted.
"""
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import serialization
from .atomic import atomic_write
from .crops import ten_crop_predict_proba
from .losses import softmax_cross_entropy
from .optim import SGD
from .sampling import stratified_split


@dataclass
class TrainConfig:
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    val_fraction: float = 0.1       # used only when no validation set is passed
    lr_patience: int = 5            # epochs without a new best val accuracy before lr /= 10
    stop_patience: int = 30         # epochs without a new lowest val error before stopping
    max_lr_drop: float = 1000.0     # stop once lr0 / lr > max_lr_drop
    max_epochs: int = 50
    restore_best: bool = True       # end with the weights of the best validation epoch
    warmup_steps: int = 0           # lr ramps linearly from lr/warmup_steps to lr over these steps
    clip_norm: float = 0.0          # > 0: clip the global gradient L2 norm to this before each step
    seed: int = 0
    progress: bool = True           # a tqdm bar per epoch

    def __post_init__(self):
        if self.batch_size < 1 or self.max_epochs < 0 or self.lr <= 0:
            raise ValueError(f"need batch_size >= 1, max_epochs >= 0, lr > 0; got {self}")
        if self.warmup_steps < 0 or self.clip_norm < 0:
            raise ValueError(f"need warmup_steps >= 0 and clip_norm >= 0 (0 = off); got {self}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass
class History:
    """One row per finished epoch; ``stopped`` says why training ended."""
    rows: list = field(default_factory=list)
    stopped: str = ""

    def column(self, key):
        return [row[key] for row in self.rows]


def evaluate(model, x, y, batch_size=256, ten_crop=False):
    """Mean loss and accuracy of model on (x, y), in eval mode. Returns (loss, acc).

    ten_crop: average the softmax over the 10 standard crops (tinycnn.crops; pass a
    dict such as {"crop": (24, 24), "mode": "resize"} to choose).
    """
    if ten_crop:
        options = ten_crop if isinstance(ten_crop, dict) else {}
        probs = ten_crop_predict_proba(model, x, batch_size=batch_size, **options)
        loss = float(-np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12)).mean()) if len(y) else 0.0
        return loss, float((probs.argmax(axis=1) == y).mean()) if len(y) else 0.0
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model.infer(x[i:i + batch_size])
        loss, _ = softmax_cross_entropy(logits, y[i:i + batch_size])
        total_loss += loss * len(logits)
        correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
    return total_loss / max(len(x), 1), correct / max(len(x), 1)


def holdout_split(y, val_fraction, seed):
    """Stratified indices (train_idx, val_idx), each ascending: round(val_fraction * n_c) of
    each class c go to val, drawn by default_rng(seed).permutation of each class in turn."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    order = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in classes])
    val_idx, train_idx = stratified_split(y, order, [int(round(int(n) * val_fraction)) for n in counts])
    return np.sort(train_idx), np.sort(val_idx)


class _State:
    """Everything besides weights and velocities that a resumed run needs."""

    def __init__(self, lr):
        self.epoch = 0
        self.lr = lr
        self.best_val_acc = -math.inf
        self.lowest_val_err = math.inf
        self.epochs_since_best_acc = 0
        self.epochs_since_lowest_err = 0
        self.history = History()


# Checkpoint version 2: Dense W (and its velocity) stored (out_features, in_features); version 1
# (no "version" in __state__) stored them (in_features, out_features) and is migrated on load.
CHECKPOINT_VERSION = 2


def _save_checkpoint(path, model, opt, state, best_weights):
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"opt/{k}": v for k, v in opt.state_dict().items()})
    if best_weights is not None:
        arrays.update({f"best/{k}": v for k, v in best_weights.items()})
    meta = {k: v for k, v in vars(state).items() if k != "history"}
    meta["rows"], meta["stopped"] = state.history.rows, state.history.stopped
    meta["version"] = CHECKPOINT_VERSION
    arrays["__state__"] = np.array(json.dumps(meta))
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def _load_checkpoint(path, model, opt, state):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if "__state__" not in arrays:
        raise ValueError(f"{path}: not a tinycnn training checkpoint (no '__state__')")
    meta = json.loads(str(arrays["__state__"]))
    version = meta.pop("version", 1)  # version 1 wrote none
    if version not in (1, CHECKPOINT_VERSION):
        raise ValueError(f"{path}: expected checkpoint version 1 or {CHECKPOINT_VERSION}, got {version!r}")
    if version == 1:  # Dense W, its best copy and its velocity stored (in, out)
        kinds = [type(layer).__name__ for layer in model]
        for name in ("model/{}.W", "best/{}.W", "opt/velocity/{}.W"):
            serialization.migrate_dense_weights(arrays, kinds, name)
    model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
    opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")})
    best = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")} or None
    state.history = History(meta.pop("rows"), meta.pop("stopped"))
    for key, value in meta.items():
        setattr(state, key, value)
    return best


def fit(model, x, y, config=None, x_val=None, y_val=None, checkpoint=None, resume=False):
    """Train model on (x, y) with SGD and the rules of the module docstring; returns a History.

    x: (N, C, H, W) float32, y: (N,) int labels (or (N, K) soft labels, then pass x_val/y_val).
    Without x_val/y_val, a stratified ``val_fraction`` of (x, y) is held out.
    checkpoint: path of an .npz written atomically after every epoch; with resume=True
    training continues from it. Ctrl-C ends training after the last finished epoch:
    the checkpoint stays intact and history.stopped == "interrupted".
    Frozen layers are neither updated nor back-propagated into.
    """
    cfg = config or TrainConfig()
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if x_val is None:
        if y.ndim != 1:
            raise ValueError("soft labels need an explicit validation set (x_val, y_val)")
        train_idx, val_idx = holdout_split(y, cfg.val_fraction, cfg.seed)
        x, y, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    opt = SGD(model, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    state = _State(cfg.lr)
    best_weights = None
    if resume:
        if checkpoint is None or not os.path.exists(checkpoint):
            raise FileNotFoundError(f"resume=True needs an existing checkpoint, got {checkpoint!r}")
        best_weights = _load_checkpoint(checkpoint, model, opt, state)
        opt.lr = state.lr
        if state.history.stopped not in ("", "interrupted"):  # that run had finished
            if cfg.restore_best and best_weights is not None:
                model.load_state_dict(best_weights)
            return state.history
    state.history.stopped = ""
    hard = y.ndim == 1
    try:
        while state.epoch < cfg.max_epochs:
            row = _train_epoch(model, opt, x, y, cfg, state.epoch, hard)
            row["val_loss"], row["val_acc"] = evaluate(model, x_val, y_val)
            row["lr"] = opt.lr
            state.epoch += 1
            state.history.rows.append(row)
            best_weights = _update_schedule(state, row, opt, cfg, model, best_weights)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, opt, state, best_weights)
            if state.history.stopped:
                break
        else:
            state.history.stopped = "max_epochs"
    except KeyboardInterrupt:
        state.history.stopped = "interrupted"
        model.clear_cache()
        if checkpoint is not None and os.path.exists(checkpoint):
            # restore the last finished epoch, so model == checkpoint
            _load_checkpoint(checkpoint, model, opt, state)
            state.history.stopped = "interrupted"
        return state.history
    if cfg.restore_best and best_weights is not None:
        model.load_state_dict(best_weights)
    return state.history


def _train_epoch(model, opt, x, y, cfg, epoch, hard):
    """One pass over a seeded shuffle of (x, y); returns the epoch's row (loss, acc, seconds)."""
    start = time.perf_counter()
    order = np.random.default_rng([cfg.seed, epoch]).permutation(len(x))
    model.reseed([cfg.seed, epoch])
    total_loss, correct = 0.0, 0
    batches = range(0, len(x), cfg.batch_size)
    if cfg.progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, unit="batch")
    scheduled_lr = opt.lr
    for i in batches:
        step = epoch * len(batches) + i // cfg.batch_size      # global step, so resume is exact
        if step < cfg.warmup_steps:                              # linear warm-up
            opt.lr = min(scheduled_lr, cfg.lr * (step + 1) / cfg.warmup_steps)
        idx = order[i:i + cfg.batch_size]
        logits = model.forward(x[idx], training=True)
        loss, dlogits = softmax_cross_entropy(logits, y[idx])
        model.backward(dlogits, need_dx=False)     # grads only: nothing below the lowest trainable layer
        if cfg.clip_norm:
            opt.clip_grad_norm(cfg.clip_norm)
        opt.step()
        total_loss += loss * len(idx)
        labels = y[idx] if hard else y[idx].argmax(axis=1)
        correct += int((logits.argmax(axis=1) == labels).sum())
        if cfg.progress:
            batches.set_postfix(loss=f"{loss:.4f}", refresh=False)
    opt.lr = scheduled_lr
    return {"epoch": epoch + 1, "loss": total_loss / len(x), "train_acc": correct / len(x),
            "seconds": time.perf_counter() - start}


def _update_schedule(state, row, opt, cfg, model, best_weights):
    """Apply the lr decay and stopping rules after an epoch; returns best weights."""
    if row["val_acc"] > state.best_val_acc:
        state.best_val_acc = row["val_acc"]
        state.epochs_since_best_acc = 0
        best_weights = model.state_dict()
    else:
        state.epochs_since_best_acc += 1
    val_err = 1.0 - row["val_acc"]
    if val_err < state.lowest_val_err:
        state.lowest_val_err = val_err
        state.epochs_since_lowest_err = 0
    else:
        state.epochs_since_lowest_err += 1
    if state.epochs_since_best_acc >= cfg.lr_patience:
        opt.lr /= 10.0
        state.epochs_since_best_acc = 0
    state.lr = opt.lr
    if state.epochs_since_lowest_err >= cfg.stop_patience:
        state.history.stopped = "val_error_plateau"
    elif cfg.lr / opt.lr > cfg.max_lr_drop * (1 + 1e-9):
        state.history.stopped = "lr_floor"
    return best_weights
