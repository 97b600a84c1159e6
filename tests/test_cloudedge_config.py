"""cloudedge.system.config: nested configs, one default each, and run keys that stored runs are found by."""
from dataclasses import asdict

import pytest

from cloudedge.cli import build_parser
from cloudedge.commands import demo, experiment, simulate
from cloudedge.system.config import EdgeConfig, RunConfig, SimConfig, config_json, updated
from cloudedge.reproduce.factors import factor_config
from cloudedge.reproduce.runs import Plan, cell_hash, run_config, run_path
from cloudedge.experiments.study import EDGE_SEEDS


def test_stored_runs_keep_their_keys():
    """Keys of runs stored in docs/reproduction/runs when configs were flat: nesting moved no result."""
    plan = Plan()
    assert run_path(plan, run_config(plan, "mnist", 3, 0)).name == "table-mnist-laptop-k3-s0-fded5899336f.json"
    assert run_path(plan, run_config(plan, "mnist", 5, 2)).name == "table-mnist-laptop-k5-s2-1ab409bb854d.json"
    base = factor_config(plan, "mnist", {})
    assert cell_hash(updated(base, seed=1), EDGE_SEEDS) == "cdf34da810233293"
    eighth = factor_config(plan, "mnist", {"edge": {"preset": "eighth"}})
    assert eighth.edge.preset == "eighth" and eighth.edge.depth == base.edge.depth


def test_the_run_record_is_flat():
    """config_json lays the edge settings out as fields of the run, as stored runs have them."""
    cfg = RunConfig(edge=EdgeConfig(depth=5, preset="half", segment=False))
    record = config_json(cfg)
    assert set(record) == {"dataset", "depth", "labeled", "uploads", "step", "chunk", "seed", "edge_seed", "preset",
                           "pool_stride", "cloud_fraction", "cloud_images", "cloud_sees_edges", "init", "cloud_train",
                           "edge_train", "label_policy", "trigger", "segment", "feature_cache", "warm_start", "load",
                           "load_threshold", "models"}
    assert (record["depth"], record["preset"], record["segment"]) == (5, "half", False)
    assert record["edge_train"] == asdict(cfg.edge.train)


@pytest.mark.parametrize("owner", [RunConfig, SimConfig])
@pytest.mark.parametrize("field, value", [("seed", 3), ("shared", False), ("num_classes", 100)])
def test_per_edge_fields_are_not_set_through_the_nested_config(owner, field, value):
    with pytest.raises(ValueError, match=f"sets {field}"):
        owner(edge=EdgeConfig(**{field: value}))


def test_updated_reaches_the_nested_edge_config():
    cfg = updated(RunConfig(), labeled=60, edge={"preset": "tiny", "depth": 5})
    assert (cfg.labeled, cfg.edge.preset, cfg.edge.depth) == (60, "tiny", 5)
    assert cfg.edge.train == EdgeConfig().train and cfg.uploads == RunConfig().uploads


def test_command_line_defaults_are_the_configs():
    parser = build_parser()
    default_run = config_json(RunConfig())
    assert config_json(experiment.config_from_args(parser.parse_args(["experiment"]))) == default_run
    assert config_json(demo.demo_config(parser.parse_args(["demo"]))) == default_run
    sim, cloud_run = simulate.config_from_args(parser.parse_args(["simulate"]))
    assert sim == SimConfig()
    assert config_json(cloud_run) == default_run


def test_a_field_added_later_enters_the_record_only_when_it_changes_behaviour():
    assert "max_samples" not in config_json(RunConfig())              # stored runs keep their keys
    assert config_json(RunConfig(edge=EdgeConfig(max_samples=500)))["max_samples"] == 500
