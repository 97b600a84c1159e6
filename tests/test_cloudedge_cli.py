"""The cloudedge subcommands, end to end on tiny models (JSON output parsed and checked)."""
import json

import pytest

from cloudedge.cli import main
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


def run(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_experiment_json_has_the_paper_table_fields(capsys, tmp_path):
    out = run(capsys, "experiment", "--preset", "tiny", "--labeled", "100", "--uploads", "120", "--step", "60",
              "--chunk", "30", "--cloud-epochs", "1", "--edge-epochs", "2", "--cloud-fraction", "0.1",
              "--workdir", str(tmp_path), "--json", "--quiet", "--plot", str(tmp_path / "acc.png"))
    for key in ("cloud_acc", "edge0_acc", "edge1_acc", "n_labeled", "seconds"):
        assert key in out
    assert out["n_labeled"] == 100 and 0 <= out["edge1_acc"] <= 1
    assert [p["n_images"] for p in out["edges"][1]["curve"]][0] == 100
    assert (tmp_path / "acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run(capsys, "experiment", "--preset", "tiny", "--labeled", "100", "--uploads", "120", "--step", "60",
                "--chunk", "30", "--cloud-epochs", "1", "--edge-epochs", "2", "--cloud-fraction", "0.1",
                "--workdir", str(tmp_path), "--json", "--quiet")
    assert again["cloud"]["cached"] and again["edge1_acc"] == out["edge1_acc"]


def test_step_by_step_commands(capsys, tmp_path):
    cloud = str(tmp_path / "cloud.npz")
    made = run(capsys, "train-cloud", "--preset", "tiny", "--epochs", "1", "--cloud-fraction", "0.1",
               "--out", cloud, "--json", "--quiet")
    assert made["path"] == cloud and 0 <= made["cloud_acc"] <= 1
    edge = str(tmp_path / "edge")
    init = run(capsys, "init-edge", "--cloud", cloud, "--out", edge, "--labeled", "100", "--trigger", "every:50",
               "--json", "--quiet")
    assert init["n_labeled"] == 100 and init["bytes_down"] > 0
    busy = run(capsys, "update", "--edge", edge, "--uploads", "30", "--load", "0.9", "--json", "--quiet")
    assert busy["sync"]["uploaded"] == 0 and busy["buffered"] == 30 and not busy["retrained"]
    idle = run(capsys, "update", "--edge", edge, "--uploads", "30", "--json", "--quiet")
    assert idle["sync"]["uploaded"] == 60 and idle["retrained"] and idle["n_samples"] == 160


def test_simulate_json(capsys, tmp_path):
    out = run(capsys, "simulate", "--preset", "tiny", "--cloud-epochs", "1", "--edges", "2", "--duration", "60",
              "--tick", "20", "--labeled", "60", "--trigger", "every:40", "--workdir", str(tmp_path),
              "--cloud-fraction", "0.1",
              "--json", "--quiet")
    assert len(out["edges"]) == 2 and out["timeline"][0]["event"] == "init"


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
