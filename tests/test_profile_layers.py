"""benchmarks/profile_layers.py on the tiny preset: its timers run inside the real Sequential
calls, change no result, and leave no trace on the layers. No timing is asserted."""
import importlib.util
import json
import os

import numpy as np
import pytest

from tinycnn import SGD, Conv2D, softmax_cross_entropy
from cloudedge.system.models import edge_cnn

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "profile_layers.py")


@pytest.fixture(scope="module")
def prof():
    spec = importlib.util.spec_from_file_location("profile_layers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data(batch=3):
    rng = np.random.default_rng(1)
    return rng.random((batch, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, batch)


def test_a_training_step_times_every_layer_and_trains_as_an_untimed_one(prof):
    x, y = _data()
    timed, plain = edge_cnn(3, preset="tiny", seed=0), edge_cnn(3, preset="tiny", seed=0)
    timed.reseed(5)
    plain.reseed(5)
    result = prof.measure(timed, x, y, repeat=1, warmup=1)   # one timed pass: medians are its values
    assert len(result["forward"]) == len(result["backward"]) == len(timed)
    assert all(s > 0 for s in result["forward"]) and all(s > 0 for s in result["backward"])
    assert result["loss"] > 0 and result["step"] > 0
    assert result["total"] >= sum(result["forward"]) + sum(result["backward"])
    opt = SGD(plain, lr=0.01, momentum=0.9)
    for _ in range(2):                                 # the same two steps, untimed
        _, d = softmax_cross_entropy(plain.forward(x, training=True), y)
        plain.backward(d, need_dx=False)
        opt.step()
    for (name, a), (_, b) in zip(timed.named_params(), plain.named_params()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_the_timers_are_removed_afterwards_even_when_a_layer_raises(prof):
    model = edge_cnn(3, preset="tiny", seed=0)
    prof.measure(model, _data()[0], repeat=1, warmup=0)
    assert not any(kind in vars(layer) for layer in model for kind in prof.KINDS)
    with pytest.raises(ValueError, match="Conv2D expected 1 input channels"):
        prof.measure(model, np.zeros((1, 2, 28, 28), np.float32), repeat=1, warmup=0)
    assert not any(kind in vars(layer) for layer in model for kind in prof.KINDS)


def test_an_eval_forward_leaves_backward_untimed(prof):
    model = edge_cnn(3, preset="tiny", seed=0)
    result = prof.measure(model, _data(1)[0], repeat=2, warmup=1)
    assert all(s > 0 for s in result["forward"]) and not any(result["backward"])
    assert result["loss"] == result["step"] == 0


def test_each_conv_is_named_with_the_path_it_takes(prof):
    wide, thin, odd = Conv2D(12, 12, 3, padding=1), Conv2D(1, 2, 3, padding=1), Conv2D(1, 2, 5, padding=2)
    assert prof.describe(wide) == "Conv2D 12->12 3x3 winograd"
    assert prof.describe(thin) == f"Conv2D 1->2 3x3 {'direct' if thin.direct_applies() else 'im2col'}"
    assert prof.describe(odd) == "Conv2D 1->2 5x5 im2col"
    thin.algorithm = "im2col"
    assert prof.describe(thin) == "Conv2D 1->2 3x3 im2col"


def test_the_command_writes_a_table_json_and_png(prof, tmp_path, capsys):
    js, png = tmp_path / "layers.json", tmp_path / "layers.png"
    assert prof.main(["--preset", "tiny", "--batch", "2", "--train", "--threads", "1", "--repeat", "2",
                      "--json", str(js), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    path = "direct" if Conv2D(1, 2, 3, padding=1).direct_applies() else "im2col"
    assert f"Conv2D 1->2 3x3 {path}" in out and "Dense 392->32" in out and "whole pass" in out
    data = json.loads(js.read_text())
    assert [r["index"] for r in data["layers"]] == list(range(12))
    timed = sum(r["share"] for r in data["layers"]) + (data["loss"] + data["step"]) / data["total"]
    assert 0 < timed <= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
