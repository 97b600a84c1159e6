"""The cloudedge subcommands, end to end on tiny models (JSON output parsed and checked)."""
import json

import numpy as np
import pytest

from cloudedge.system import edge_files
from cloudedge.cli import main
from cloudedge.system.cloud import Cloud
from cloudedge.system.data import load_dataset
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


def run(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


EXPERIMENT = ("experiment", "--preset", "tiny", "--labeled", "100", "--uploads", "120", "--step", "60", "--chunk",
              "30", "--cloud-epochs", "1", "--edge-epochs", "2", "--cloud-fraction", "0.1", "--json", "--quiet")


def test_experiment_json_reports_what_ran(capsys, tmp_path):
    out = run(capsys, *EXPERIMENT, "--workdir", str(tmp_path), "--plot", str(tmp_path / "acc.png"))
    _, _, x_test, y_test = load_dataset("mnist")
    assert out["cloud_acc"] == Cloud.load(out["cloud"]["path"]).evaluate(x_test, y_test)
    assert (out["n_labeled"], out["uploads"]) == (100, 120)
    edges = {e["model"]: e for e in out["edges"]}
    assert set(edges) == {"EdgeCNN0-3", "EdgeCNN1-3"}
    assert out["edge0_acc"] == edges["EdgeCNN0-3"]["accuracy"] and out["edge1_acc"] == edges["EdgeCNN1-3"]["accuracy"]
    for e in edges.values():
        # N labeled, then a retraining every M = 60 cloud labels (trust-all keeps them all)
        assert [p["n_images"] for p in e["curve"]] == [100, 160, 220]
        assert e["accuracy"] == e["curve"][-1]["accuracy"] and e["uploads"] == 120
    # both edges uploaded the same objects; only EdgeCNN1 received a layer package
    cloud = out["cloud"]
    assert cloud["bytes_in"] == sum(e["bytes_up"] for e in edges.values())
    assert cloud["bytes_out"] == sum(e["bytes_down"] for e in edges.values()) and cloud["packages"] == 1
    assert cloud["objects_labeled"] == 240 and not cloud["cached"]
    h = out["headline"]
    assert h["labeled"] == 100 and len(h["acc0"]) == len(h["acc1"]) == len(h["edge_seeds"]) == 5
    assert h["this_cloud"]["gap"] == pytest.approx(100 * np.mean(np.subtract(h["acc1"], h["acc0"])))
    assert (tmp_path / "acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run(capsys, *EXPERIMENT, "--workdir", str(tmp_path))
    assert again["cloud"]["cached"] and again["cloud"]["path"] == cloud["path"]
    curves = [[(p["n_images"], p["accuracy"]) for p in e["curve"]] for e in out["edges"]]
    assert [[(p["n_images"], p["accuracy"]) for p in e["curve"]] for e in again["edges"]] == curves


def test_step_by_step_commands(capsys, tmp_path):
    _, _, x_test, y_test = load_dataset("mnist")
    cloud = str(tmp_path / "cloud.npz")
    made = run(capsys, "train-cloud", "--preset", "tiny", "--epochs", "1", "--cloud-fraction", "0.1",
               "--out", cloud, "--json", "--quiet")
    assert made["path"] == cloud and made["cloud_acc"] == Cloud.load(cloud).evaluate(x_test, y_test)
    edge = str(tmp_path / "edge")
    init = run(capsys, "init-edge", "--cloud", cloud, "--out", edge, "--labeled", "100", "--trigger", "every:50",
               "--json", "--quiet")
    saved = edge_files.load(edge)
    assert init["n_labeled"] == 100 == len(saved.store) and init["accuracy"] == saved.evaluate(x_test, y_test)
    assert init["bytes_down"] == len(Cloud.load(cloud).export_layers(3))
    busy = run(capsys, "update", "--edge", edge, "--uploads", "30", "--load", "0.9", "--json", "--quiet")
    assert busy["sync"]["uploaded"] == 0 and busy["buffered"] == 30 and not busy["retrained"]
    idle = run(capsys, "update", "--edge", edge, "--uploads", "30", "--json", "--quiet")
    assert idle["sync"]["uploaded"] == 60 and idle["retrained"] and idle["n_samples"] == 160


def test_simulate_json(capsys, tmp_path):
    out = run(capsys, "simulate", "--preset", "tiny", "--cloud-epochs", "1", "--edges", "2", "--duration", "60",
              "--tick", "20", "--labeled", "60", "--trigger", "every:40", "--workdir", str(tmp_path),
              "--cloud-fraction", "0.1", "--load", "constant:0.1", "--json", "--quiet")
    names = [e["name"] for e in out["edges"]]
    assert names == ["edge0-EdgeCNN1-3", "edge1-EdgeCNN1-3"]
    assert [(r["t"], r["edge"]) for r in out["timeline"] if r["event"] == "init"] == [(0.0, n) for n in names]
    for e in out["edges"]:
        rows = [r for r in out["timeline"] if r["edge"] == e["name"]]
        syncs = [r for r in rows if r["event"] == "sync"]
        # an idle network (load 0.1 < 0.5): every tick with uploads syncs, nothing waits
        assert e["syncs"] == len(syncs) > 0 and e["syncs_skipped"] == 0 and e["buffered"] == 0
        assert e["uploads"] == sum(r["uploaded"] for r in syncs) == e["uploads_made"]
        assert e["bytes_up"] == sum(r["bytes_up"] for r in syncs)
        assert e["trainings"] == len([r for r in rows if r["event"] in ("init", "retrain")])
    assert out["cloud"]["bytes_in"] == sum(e["bytes_up"] for e in out["edges"])
    assert out["config"]["n_edges"] == 2 and out["config"]["edge"]["preset"] == "tiny"


def test_demo_config_is_the_papers_mnist_setting():
    from cloudedge.cli import build_parser
    from cloudedge.commands.demo import demo_config
    cfg = demo_config(build_parser().parse_args(["demo"]))
    assert (cfg.edge.depth, cfg.labeled, cfg.labeled + cfg.uploads, cfg.step, cfg.edge.preset) == (3, 120, 1200, 120, "laptop")


def test_bad_arguments_are_errors(tmp_path, capsys):
    assert main(["experiment", "--labeled", "0", "--workdir", str(tmp_path)]) == 2
    assert "--labeled must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "--dataset", "imagenet"])
