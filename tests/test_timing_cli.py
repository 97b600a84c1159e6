"""`cloudedge flops` and `cloudedge timing --quick`: output, figures and errors."""
import json
import re

import numpy as np
import pytest

from cloudedge.cli import main
from cloudedge.commands.timing_measure import PAPER, preprocess, raw_image
from cloudedge.system.models import edge_cnn, shared_prefix
from tinycnn.flops import profile


def run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_flops_json_has_rows_and_totals(capsys):
    out = run_json(capsys, ["flops", "edgecnn-3", "--preset", "laptop", "--input", "1,28,28",
                            "--freeze", "3", "--json"])
    want = profile(edge_cnn(3, (1, 28, 28), preset="laptop"), (1, 28, 28), frozen=shared_prefix(3))
    assert out["totals"] == want.totals
    assert {"paper_formula", "macs", "flops", "params"} <= set(out["totals"])
    assert [row["kind"] for row in out["layers"]][:2] == ["Conv2D", "ReLU"]
    assert out["frozen_prefix"] == 6 and out["totals"]["backward_flops"] < out["totals"]["backward_flops_unfrozen"]


def test_flops_table(capsys):
    assert main(["flops", "cloudcnn", "--preset", "laptop"]) == 0
    text = capsys.readouterr().out
    assert "paper formula (conv only)" in text and "softmax" in text


@pytest.mark.parametrize("argv, message", [
    (["flops", "vgg16"], "MODEL must be cloudcnn or edgecnn-K"),
    (["flops", "edgecnn-3", "--input", "28,28"], "three positive ints C,H,W"),
    (["flops", "edgecnn-3", "--freeze", "4"], "--freeze must be in 0..3"),
])
def test_flops_errors(argv, message, capsys):
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_timing_quick_makes_tables_json_and_figures(capsys, tmp_path):
    out = run_json(capsys, ["timing", "--quick", "--link", "lte,wifi,5g", "--json",
                            "--plot", str(tmp_path)])
    names = {row["model"] for row in out["inference"]}
    assert names == {"cloudcnn", "edgecnn-3", "edgecnn-5", "edgecnn-10"}
    for row in out["inference"]:
        assert row["batch1_s"] > 0 and row["batched_s_per_image"] > 0
        assert row["predicted_sgemm_s"] == pytest.approx(row["flops"] / (out["machine"]["sgemm_gflops"] * 1e9))
    assert [row["size_k"] for row in out["execution"]] == [60, 512]
    assert set(out["response"]) == {"lte", "wifi", "5g"}
    for rows in out["response"].values():
        for row in rows:
            for where in ("edge", "cloud"):
                r = row[where]
                assert r["total"] == pytest.approx(r["upload"] + r["execution"] + r["download"])
            assert row["cloud"]["upload"] > row["edge"]["upload"]
    assert {row["what"] for row in out["paper_comparison"]} == set(PAPER)
    assert {(r["model"], r["images"]) for r in out["fig11"]} == {
        (m, n) for m in ("edgecnn-3", "edgecnn-5", "edgecnn-10") for n in out["config"]["fig11_images"]}
    expected = {"timing_response_lte.png", "timing_response_wifi.png", "timing_response_5g.png",
                "timing_execution.png", "timing_inference_vs_images.png", "timing_break_even.png"}
    assert {p.name for p in tmp_path.iterdir()} == expected
    for path in tmp_path.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_timing_text_and_custom_link(capsys):
    assert main(["timing", "--quick", "--link", "custom", "--custom-link", "2000,4000,10",
                 "--wan-rate", "800", "--wan-rtt", "25"]) == 0
    text = capsys.readouterr().out
    assert "Figs. 4/6 (custom)" in text and "Fig. 11" in text and "paper reduction" in text


@pytest.mark.parametrize("argv, message", [
    (["timing", "--quick", "--link", "3g"], "one of .'5g', 'lte', 'wifi'., got '3g'"),
    (["timing", "--quick", "--link", "custom"], "needs --custom-link UP,DOWN,RTT"),
    (["timing", "--quick", "--sizes", "60,-1"], "positive ints"),
    (["timing", "--quick", "--cloud-speedup", "0"], "must be > 0"),
])
def test_timing_errors(argv, message, capsys):
    assert main(argv) == 2      # before any measuring
    assert re.search(message, capsys.readouterr().err)


def test_preprocess_is_an_area_average():
    raw = raw_image(60 * 1024, np.random.default_rng(0))
    assert raw.dtype == np.uint8 and abs(raw.nbytes - 60 * 1024) < 3 * 2 * raw.shape[0] + 3
    x = preprocess(raw, (3, 32, 32))
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    b = raw.shape[0] // 32
    assert x[0, 1, 0, 0] == pytest.approx(raw[:b, :b, 1].mean() / 255, rel=1e-5)
    square = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    grey = preprocess(square, (1, 8, 8))
    assert grey.shape == (1, 1, 8, 8)
    assert grey[0, 0, 7, 0] == pytest.approx(square[56:, :8].mean() / 255, rel=1e-5)
    with pytest.raises(ValueError, match="smaller than the model input 32x32"):
        preprocess(raw[:10, :10], (3, 32, 32))
