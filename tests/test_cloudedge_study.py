"""cloudedge.experiments.study: the interval over clouds and the summary; the factors target's resumable cells;
the stability and factors targets' mechanics on the tiny preset (accuracy is not asserted here)."""
import json
import math

import numpy as np
import pytest

from cloudedge.experiments import study
from cloudedge.cli import main as cli_main
from cloudedge.reproduce import DataCache, Plan, factors
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


def test_t_interval_by_hand():
    mean, low, high = study.interval([1.0, 2.0, 3.0])              # sd 1, t(0.975, 2) = 4.303
    assert mean == 2.0 and high - mean == pytest.approx(4.303 / math.sqrt(3)) and mean - low == high - mean
    assert study.interval([5.0]) == (5.0, 5.0, 5.0)
    assert study.t975(1) == 12.706 and study.t975(100) == 1.96
    with pytest.raises(ValueError):
        study.t975(0)


def test_summary_takes_each_cloud_as_one_observation_and_leaves_untrained_clouds_out():
    clouds = [{"trained": True, "cloud_acc": 0.9, "acc0": [0.70, 0.72], "acc1": [0.75, 0.75]},   # +5, +3
              {"trained": True, "cloud_acc": 0.95, "acc0": [0.80, 0.80], "acc1": [0.80, 0.82]},  # 0, +2
              {"trained": False}]
    s = study.summarize(clouds)
    assert s["clouds"] == 3 and s["clouds_trained"] == 2 and s["pairs"] == 4 and s["edge_wins"] == 3
    assert s["gap_per_cloud"] == pytest.approx([4.0, 1.0])
    assert s["gap"] == pytest.approx(2.5) and s["interval_over"] == "clouds"
    assert s["gap_high"] - s["gap"] == pytest.approx(12.706 * np.std([4.0, 1.0], ddof=1) / math.sqrt(2))
    one = study.summarize(clouds[:1])
    assert one["interval_over"] == "edges of one cloud" and one["gap"] == pytest.approx(4.0)
    assert "gap" not in study.summarize([{"trained": False}])


def test_a_stored_cell_is_reused_unless_forced(tmp_path, monkeypatch):
    calls = []

    def fake(cfg, data, edge_seeds, workdir, progress):
        calls.append(cfg.seed)
        return {"cloud_seed": cfg.seed, "trained": True, "cloud_acc": 0.9, "cloud_acc_10crop": 0.8,
                "acc0": [0.7] * len(edge_seeds), "acc1": [0.72] * len(edge_seeds)}
    monkeypatch.setattr(factors, "measure_cloud", fake)
    cfg, plan = factors.base_config(), Plan(seeds=(0, 1), progress=False, log=lambda m: None)
    first = factors.measure_gap(cfg, DataCache(), plan, (0, 1), tmp_path)
    again = factors.measure_gap(cfg, DataCache(), plan, (0, 1), tmp_path)
    assert calls == [0, 1] and first["summary"] == again["summary"]
    assert first["summary"]["gap"] == pytest.approx(2.0)
    assert len(list(tmp_path.glob("*.json"))) == 2
    plan.force = True                                                # --force measures them again
    factors.measure_gap(cfg, DataCache(), plan, (0, 1), tmp_path)
    assert calls == [0, 1, 0, 1]


def test_factors_and_stability_targets_write_their_files(tmp_path, capsys):
    out = tmp_path / "reproduction"
    for target in ("stability", "factors"):
        assert cli_main(["reproduce", target, "--quick", "--quiet", "--out", str(out),
                         "--workdir", str(tmp_path / "clouds")]) == 0
        for ext in ("md", "json", "png", "csv"):
            assert (out / f"{target}.{ext}").exists()
    s = json.loads((out / "factors.json").read_text())
    assert [r["factor"] for r in s["rows"]] == ["baseline", "init", "edge procedure"]
    base = s["rows"][0]
    assert base["clouds"] == 3 and base["pairs"] == 3 * 2 and "Reading (generated" in s["markdown"]
    st = json.loads((out / "stability.json").read_text())
    assert [r["warmup"] for r in st["rows"]] == [0, 200] and all(r["seeds"] == 2 for r in st["rows"])
    report = (tmp_path / "REPRODUCTION.md").read_text()
    assert "What makes the headline hold" in report and "CloudCNN training stability" in report


def test_only_existing_counts_missing_clouds_as_not_run(tmp_path, monkeypatch):
    def fake(cfg, data, edge_seeds, workdir, progress):
        return {"cloud_seed": cfg.seed, "trained": True, "cloud_acc": 0.9, "cloud_acc_10crop": 0.8,
                "acc0": [0.7, 0.7], "acc1": [0.73, 0.71]}
    monkeypatch.setattr(factors, "measure_cloud", fake)
    cfg = factors.base_config()
    factors.measure_gap(cfg, DataCache(), Plan(seeds=(0,), progress=False, log=lambda m: None), (0, 1), tmp_path)
    s = factors.measure_gap(cfg, DataCache(), Plan(seeds=(0, 1, 2), progress=False, only_existing=True, log=lambda m: None),
                            (0, 1), tmp_path)["summary"]
    assert s["clouds"] == 1 and s["clouds_not_run"] == 2 and s["interval_over"] == "edges of one cloud"
    assert "2 not run in time" in factors.factors_markdown(
        {"cloud_seeds": [0, 1, 2], "edge_seeds": [0, 1], "rows": [{"dataset": "mnist", "factor": "baseline",
                                                                  "level": "x", **s}]})


def test_stability_runs_are_stored_under_the_cloud_key_and_survive_an_edge_change(tmp_path, monkeypatch):
    from dataclasses import replace
    from cloudedge.reproduce import stability
    from cloudedge.system import config as config_module

    def fake(cfg, data_cache, log):
        return {"dataset": cfg.dataset, "init": cfg.edge.init, "warmup": cfg.cloud_train.warmup_steps,
                "seed": cfg.seed, "n_train": 300, "best_val_acc": 0.9, "trained": True, "seconds": 1.0}
    monkeypatch.setattr(stability, "one_epoch", fake)
    plan = Plan(quick=True, progress=False, out=tmp_path, log=lambda m: None)
    stability.run(plan, DataCache(quick=True))
    stored = sorted(p.name for p in (tmp_path / "runs" / "stability").glob("*.json"))
    assert len(stored) == 4                                          # 1 cell x 2 warm-ups x 2 seeds
    # an edge-side default that the one-epoch cloud run never reads
    edge_default = replace(config_module.EdgeConfig().train, max_epochs=7)
    monkeypatch.setattr(stability, "one_epoch", lambda *a: pytest.fail("a stored run was trained again"))
    monkeypatch.setattr(stability, "RunConfig", lambda **kw: replace(config_module.RunConfig(**kw),
                                                                      uploads=360, edge=replace(kw["edge"], train=edge_default)))
    stability.run(plan, DataCache(quick=True))
    assert sorted(p.name for p in (tmp_path / "runs" / "stability").glob("*.json")) == stored
