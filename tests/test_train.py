"""The paper's training procedure: determinism, resume, Ctrl-C, the lr/stop schedule,
frozen layers, 10-crop testing, and a learning test on real MNIST digits."""
import json
import math
import time

import numpy as np
import pytest

import tinycnn
from tinycnn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential
from tinycnn.crops import crop_offsets, default_crop, resize_bilinear, ten_crop_predict_proba, ten_crops
from tinycnn.datasets import load_mnist_sample, split
from tinycnn.train import TrainConfig, _State, _update_schedule, evaluate, fit


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Conv2D(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2, 2), Dropout(0.25),
                       Flatten(), Dense(4 * 7 * 7, 10, rng=rng)])


@pytest.fixture(scope="module")
def digits():
    x, y = load_mnist_sample("train")
    x_a, y_a, _, _ = split(x, y, n_per_class=20, seed=1)
    return x_a[:, :, ::2, ::2].copy(), y_a  # 200 digits, 14x14: fast


def rows_without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history.rows]


def assert_same_params(a, b):
    for (name, pa), (_, pb) in zip(a.named_params(), b.named_params()):
        assert np.array_equal(pa, pb), name


CFG = dict(max_epochs=4, progress=False, lr_patience=1, restore_best=False)


def test_same_seed_gives_bit_identical_weights_and_history(digits):
    x, y = digits
    a, b = small_net(), small_net()
    ha = fit(a, x, y, TrainConfig(**CFG))
    hb = fit(b, x, y, TrainConfig(**CFG))
    assert rows_without_time(ha) == rows_without_time(hb)
    assert_same_params(a, b)
    c = small_net()
    hc = fit(c, x, y, TrainConfig(**{**CFG, "seed": 1}))
    assert rows_without_time(hc) != rows_without_time(ha)


def test_resume_equals_uninterrupted(digits, tmp_path):
    x, y = digits
    full = small_net()
    h_full = fit(full, x, y, TrainConfig(**CFG))
    ckpt = tmp_path / "run.npz"
    part = small_net()
    h_part = fit(part, x, y, TrainConfig(**{**CFG, "max_epochs": 2}), checkpoint=ckpt)
    assert len(h_part.rows) == 2 and h_part.stopped == "max_epochs"
    resumed = small_net(seed=99)  # different init: everything must come from the checkpoint
    h_res = fit(resumed, x, y, TrainConfig(**CFG), checkpoint=ckpt, resume=True)
    assert rows_without_time(h_res) == rows_without_time(h_full)
    assert_same_params(resumed, full)


def rewrite_checkpoint(path, change):
    """Apply change(arrays, meta) to the checkpoint at path, in place."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["__state__"]))
    change(arrays, meta)
    arrays["__state__"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def test_a_version_1_checkpoint_resumes_with_its_dense_weights_transposed(digits, tmp_path):
    # version 1 wrote no "version" and stored Dense W and its velocity as (in, out)
    x, y = digits
    cfg = {**CFG, "restore_best": True}
    full = small_net()
    h_full = fit(full, x, y, TrainConfig(**cfg))
    ckpt = tmp_path / "run.npz"
    fit(small_net(), x, y, TrainConfig(**{**cfg, "max_epochs": 2}), checkpoint=ckpt)

    def to_version_1(arrays, meta):
        assert meta.pop("version") == 2
        dense = [key for key in arrays if key.endswith("5.W")]
        assert sorted(dense) == ["best/5.W", "model/5.W", "opt/velocity/5.W"]
        for key in dense:
            arrays[key] = np.ascontiguousarray(arrays[key].T)
    rewrite_checkpoint(ckpt, to_version_1)
    resumed = small_net(seed=99)
    h_res = fit(resumed, x, y, TrainConfig(**cfg), checkpoint=ckpt, resume=True)
    assert rows_without_time(h_res) == rows_without_time(h_full)
    assert_same_params(resumed, full)

    rewrite_checkpoint(ckpt, lambda arrays, meta: meta.update(version=7))
    with pytest.raises(ValueError, match="expected checkpoint version 1 or 2, got 7"):
        fit(small_net(), x, y, TrainConfig(**cfg), checkpoint=ckpt, resume=True)


def test_ctrl_c_keeps_last_checkpoint_and_resume_finishes_the_run(digits, tmp_path, monkeypatch):
    x, y = digits
    reference = small_net()
    h_ref = fit(reference, x, y, TrainConfig(**CFG))
    ckpt = tmp_path / "run.npz"
    calls = {"n": 0}
    real_step = tinycnn.optim.SGD.step
    batches_per_epoch = math.ceil(len(x) * 0.9 / 32)

    def interrupting_step(self):
        calls["n"] += 1
        if calls["n"] == 2 * batches_per_epoch + 2:  # inside epoch 3
            raise KeyboardInterrupt
        real_step(self)

    monkeypatch.setattr(tinycnn.optim.SGD, "step", interrupting_step)
    model = small_net()
    h = fit(model, x, y, TrainConfig(**CFG), checkpoint=ckpt)
    monkeypatch.setattr(tinycnn.optim.SGD, "step", real_step)
    assert h.stopped == "interrupted"
    assert len(h.rows) == 2
    assert not [p for p in tmp_path.iterdir() if p.name != "run.npz"], "temporary files left behind"
    with np.load(ckpt, allow_pickle=False) as npz:  # intact and holding epoch 2's weights
        for name, value in model.named_params():
            assert np.array_equal(npz[f"model/{name}"], value), name
    h_res = fit(model, x, y, TrainConfig(**CFG), checkpoint=ckpt, resume=True)
    assert rows_without_time(h_res) == rows_without_time(h_ref)
    assert_same_params(model, reference)


def test_history_columns(digits):
    x, y = digits
    h = fit(small_net(), x, y, TrainConfig(**{**CFG, "max_epochs": 2}))
    assert [r["epoch"] for r in h.rows] == [1, 2]
    for key in ("loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"):
        assert len(h.column(key)) == 2
    assert all(0.0 <= a <= 1.0 for a in h.column("val_acc"))
    assert all(s > 0 for s in h.column("seconds"))


def run_schedule(val_accs, **cfg):
    config = TrainConfig(progress=False, **cfg)
    state = _State(config.lr)

    class Opt:
        lr = config.lr

    opt, model = Opt(), small_net()
    lrs = []
    for acc in val_accs:
        _update_schedule(state, {"val_acc": acc}, opt, config, model, None)
        lrs.append(opt.lr)
        if state.history.stopped:
            break
    return lrs, state.history.stopped


def test_lr_divided_by_10_after_patience_epochs_without_improvement():
    lrs, stopped = run_schedule([0.5, 0.6, 0.6, 0.6, 0.7, 0.7], lr_patience=2, stop_patience=30)
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001, 0.001])
    assert stopped == ""


def test_stops_once_lr_fell_more_than_1000x():
    lrs, stopped = run_schedule([0.5] * 20, lr_patience=1, stop_patience=30)
    assert stopped == "lr_floor"
    assert lrs[-1] == pytest.approx(1e-6)  # 10^4 x below 0.01: the first factor above 1000
    assert len(lrs) == 5


def test_stops_when_val_error_has_not_dropped_for_stop_patience_epochs():
    lrs, stopped = run_schedule([0.5] * 10, lr_patience=100, stop_patience=4)
    assert stopped == "val_error_plateau"
    assert len(lrs) == 5  # the first epoch sets the record, 4 more without a drop


def test_frozen_prefix_is_neither_updated_nor_backpropagated(digits):
    x, y = digits
    model = small_net().freeze(3)
    before = {k: v.copy() for k, v in model[:3].named_params()}
    calls = []
    for i in range(3):
        layer = model[i]
        original = layer.backward
        layer.backward = lambda dout, need_dx=True, _i=i, _f=original, **kw: calls.append(_i) or _f(dout, need_dx, **kw)
    fit(model, x, y, TrainConfig(**{**CFG, "max_epochs": 2, "weight_decay": 1e-3}))
    assert calls == []
    for name, value in model[:3].named_params():
        assert np.array_equal(value, before[name]), name


def test_soft_labels_need_a_validation_set(digits):
    x, y = digits
    soft = np.eye(10, dtype=np.float32)[y]
    with pytest.raises(ValueError, match="validation set"):
        fit(small_net(), x, soft, TrainConfig(**CFG))
    h = fit(small_net(), x, soft, TrainConfig(**{**CFG, "max_epochs": 1}), x_val=x[:50], y_val=y[:50])
    assert len(h.rows) == 1


def test_bad_arguments(digits, tmp_path):
    x, y = digits
    with pytest.raises(ValueError, match="samples"):
        fit(small_net(), x, y[:-1], TrainConfig(**CFG))
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        fit(small_net(), x, y, TrainConfig(**CFG), checkpoint=tmp_path / "none.npz", resume=True)
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(val_fraction=1.5)


# --- 10-crop testing ---------------------------------------------------------------------------

def test_crop_offsets_and_default_size():
    assert default_crop(28, 28) == (24, 24)
    assert default_crop(32, 32) == (28, 28)
    assert crop_offsets(6, 8, (4, 4)) == [(0, 0), (0, 4), (2, 0), (2, 4), (1, 2)]
    with pytest.raises(ValueError, match="fit"):
        crop_offsets(6, 8, (7, 4))


def test_ten_crops_pad_mode_by_hand():
    x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
    views = list(ten_crops(x, (4, 4), "pad"))
    assert len(views) == 10
    expected_first = np.zeros((6, 6), np.float32)
    expected_first[:4, :4] = x[0, 0, :4, :4]
    assert np.array_equal(views[0][0, 0], expected_first)
    mirrored = x[0, 0, :, ::-1]
    expected_mirror_br = np.zeros((6, 6), np.float32)
    expected_mirror_br[2:, 2:] = mirrored[2:, 2:]
    assert np.array_equal(views[8][0, 0], expected_mirror_br)
    for view in views:  # pad mode keeps exactly one 4x4 window of the (mirrored) image
        assert np.count_nonzero(view) <= 16


def test_resize_bilinear_identity_and_corners():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 5, 7)).astype(np.float32)
    assert np.allclose(resize_bilinear(x, 5, 7), x)
    up = resize_bilinear(x, 9, 13)
    assert np.allclose(up[:, :, [0, -1]][:, :, :, [0, -1]], x[:, :, [0, -1]][:, :, :, [0, -1]])
    assert up.min() >= x.min() - 1e-6 and up.max() <= x.max() + 1e-6


@pytest.mark.parametrize("mode", ["pad", "resize"])
def test_ten_crop_predict_proba_is_the_mean_over_views(mode):
    rng = np.random.default_rng(0)
    model = Sequential([Flatten(), Dense(64, 5, rng=rng)])
    x = rng.random((7, 1, 8, 8)).astype(np.float32)
    probs = ten_crop_predict_proba(model, x, crop=(6, 6), mode=mode, batch_size=3)
    manual = np.mean([tinycnn.softmax(model.forward(v)) for v in ten_crops(x, (6, 6), mode)], axis=0)
    assert probs.shape == (7, 5)
    assert np.allclose(probs, manual, atol=1e-6)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_evaluate_with_ten_crop(digits):
    x, y = digits
    model = small_net()
    fit(model, x, y, TrainConfig(**{**CFG, "max_epochs": 2}))
    _, plain = evaluate(model, x, y)
    loss, acc = evaluate(model, x, y, ten_crop={"crop": (12, 12)})
    assert 0.0 <= acc <= 1.0 and loss > 0
    assert abs(acc - plain) < 0.5  # the same model: views change it, not beyond recognition


# --- learning on real digits -------------------------------------------------------------------

def test_edgecnn3_learns_mnist_from_1000_digits():
    """EdgeCNN-3 (paper filter plan, fc 1024) on 1,000 embedded MNIST digits: >= 90% on
    1,000 held-out digits, in well under a minute on 2 cores."""
    from cloudedge.system.models import edge_cnn

    x_train, y_train = load_mnist_sample("train")
    x_test, y_test = load_mnist_sample("test")
    x, y, _, _ = split(x_train, y_train, n_per_class=100, seed=0)
    start = time.perf_counter()
    model = edge_cnn(3, seed=0)
    fit(model, x, y, TrainConfig(max_epochs=6, progress=False, seed=0))
    _, acc = evaluate(model, x_test[:1000], y_test[:1000])
    seconds = time.perf_counter() - start
    assert acc >= 0.90, f"accuracy {acc:.3f} after {seconds:.1f} s"


def test_warmup_ramps_lr_linearly_then_holds_it(digits, monkeypatch):
    x, y = digits                                    # 180 training digits: 6 batches of 32 per epoch
    seen = []
    real_step = tinycnn.SGD.step

    def record(opt):
        seen.append(opt.lr)
        real_step(opt)
    monkeypatch.setattr(tinycnn.SGD, "step", record)
    fit(small_net(), x, y, TrainConfig(max_epochs=2, lr=0.01, warmup_steps=8, progress=False))
    assert len(seen) == 12
    np.testing.assert_allclose(seen[:8], [0.01 * (s + 1) / 8 for s in range(8)])
    np.testing.assert_allclose(seen[8:], 0.01)


def test_warmup_and_clipping_are_deterministic_and_resumable(digits, tmp_path):
    x, y = digits
    cfg = dict(CFG, warmup_steps=10, clip_norm=1.0)
    full = small_net()
    h_full = fit(full, x, y, TrainConfig(**cfg))
    ckpt = tmp_path / "run.npz"
    fit(small_net(), x, y, TrainConfig(**{**cfg, "max_epochs": 1}), checkpoint=ckpt)
    resumed = small_net(seed=99)
    h_res = fit(resumed, x, y, TrainConfig(**cfg), checkpoint=ckpt, resume=True)
    assert rows_without_time(h_res) == rows_without_time(h_full)
    assert_same_params(resumed, full)
    plain = small_net()
    fit(plain, x, y, TrainConfig(**CFG))
    assert not np.array_equal(plain[0].params["W"], full[0].params["W"])


def test_warmup_and_clip_reject_negative_values():
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(warmup_steps=-1)
    with pytest.raises(ValueError, match="clip_norm"):
        TrainConfig(clip_norm=-0.5)
