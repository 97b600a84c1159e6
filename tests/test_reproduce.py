"""`cloudedge reproduce`: smoke runs (--quick, tiny preset) and the report's arithmetic."""
import csv
import json

import numpy as np
import pytest

from cloudedge import paper
from cloudedge.cli import main
from cloudedge.reproduce import NAMES, DataCache, Plan, ReproductionError, reproduce, variants
from cloudedge.reproduce.cost import estimate_cost, preset_cost_ratio
from cloudedge.reproduce.report import rises, verdicts, write_report
from cloudedge.reproduce.runs import Job, execute
from cloudedge.reproduce.tables import summarize_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick table2 through the CLI (JSON), shared by the tests below."""
    root = tmp_path_factory.mktemp("repro")
    out, cache = root / "reproduction", root / "cache"
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["reproduce", "table2", "--quick", "--seeds", "1", "--out", str(out), "--workdir", str(cache),
                     "--quiet", "--json"])
    assert code == 0
    return {"out": out, "cache": cache, "json": json.loads(buf.getvalue())}


def test_table2_quick_writes_csv_png_md_and_report(quick):
    out = quick["out"]
    for ext in ("csv", "png", "md", "json"):
        assert (out / f"table2.{ext}").stat().st_size > 0
    assert (out / "table2.png").read_bytes()[:8] == PNG_MAGIC
    rows = list(csv.DictReader(open(out / "table2.csv")))
    assert {r["model"] for r in rows} == {"EdgeCNN0-3", "EdgeCNN1-3"}
    for r in rows:
        n = int(r["n_images"])
        per_seed = json.loads(r["ours_per_seed"])
        assert len(per_seed) == int(r["n_seeds"]) == 1
        assert float(r["ours_mean"]) == pytest.approx(per_seed[0]) and 0 <= per_seed[0] <= 100
        # the paper's column is cloudedge.paper's number at that N
        assert float(r["paper"]) == paper.TABLE2_MNIST[r["model"]][paper.LABELED_SIZES.index(n)]
    assert sorted({int(r["n_images"]) for r in rows}) == [120, 240, 360]
    report = (out.parent / "REPRODUCTION.md").read_text()
    assert "## Targets" in report and "## Deviations from the paper" in report
    assert "reproduction/table2.png" in report
    assert f"{paper.TABLE2_MNIST['EdgeCNN1-3'][0]:.2f}" in report  # the paper's number beside ours
    statuses = {v["target"]: v["status"] for v in quick["json"]["verdicts"]}
    assert statuses["EdgeCNN1-k >= EdgeCNN0-k at every N <= 600 (Fashion-MNIST)"] == "not run"


def test_runs_are_reused_and_fig10_comes_from_their_curves(quick):
    out = quick["out"]
    before = sorted(p.name for p in (out / "runs").iterdir())
    plan = Plan(quick=True, seeds=(0,), out=out, workdir=quick["cache"], progress=False, depths=(3,),
                log=lambda m: None)
    res = reproduce(["table2", "fig10"], plan)
    assert sorted(p.name for p in (out / "runs").iterdir()) == before  # nothing re-ran
    runs = [json.loads((out / "runs" / n).read_text()) for n in before]
    init = {m: np.mean([e["curve"][0]["train_seconds"] for r in runs for e in r["edges"] if e["model"] == m])
            for m in ("EdgeCNN0-3", "EdgeCNN1-3")}
    row = res["fig10"]["rows"][0]
    assert row["init_ratio"] == pytest.approx(init["EdgeCNN1-3"] / init["EdgeCNN0-3"])
    assert (out / "fig10.png").read_bytes()[:8] == PNG_MAGIC


def test_variants_report_noise_and_cache_identity(quick):
    plan = Plan(quick=True, seeds=(0,), out=quick["out"], workdir=quick["cache"], progress=False, log=lambda m: None)
    s = variants.run(plan, DataCache(plan.quick, plan.progress), names=("confidence:0.9", "no feature cache"))
    rows = {(r["variant"], r["model"]): r for r in s["rows"]}
    trust = rows[("trust-all (paper)", "EdgeCNN1-3")]
    gated = rows[("confidence:0.9", "EdgeCNN1-3")]
    assert trust["kept"] == trust["cloud_labels_sent"] > 0
    assert 0 <= gated["kept"] <= gated["cloud_labels_sent"]
    assert 0 <= trust["sent_noise_pct"] <= 100
    # the feature cache changes the time, not the model: same accuracies with and without it
    for c in s["cache"]:
        assert c["acc_final_with"] == c["acc_final_without"]
    assert "Feature cache" in (quick["out"] / "variants.md").read_text()


def test_missing_dataset_is_a_clear_error_and_reported_as_not_run(tmp_path, monkeypatch):
    from tinycnn.datasets import DatasetNotFoundError

    def no_cifar(name, progress=True):
        raise DatasetNotFoundError(f"CIFAR-10: cifar-10-binary.tar.gz not found ({name})")
    monkeypatch.setattr("cloudedge.reproduce.runs.load_dataset", no_cifar)
    plan = Plan(seeds=(0,), out=tmp_path / "reproduction", progress=False, log=lambda m: None)
    with pytest.raises(DatasetNotFoundError, match="CIFAR-10"):
        reproduce(["fig7"], plan)
    assert "CIFAR-10" in json.loads((tmp_path / "reproduction" / "fig7.json").read_text())["error"]
    assert "Not run here: `DatasetNotFoundError: CIFAR-10" in (tmp_path / "REPRODUCTION.md").read_text()


def test_bad_arguments_raise(capsys):
    with pytest.raises(ReproductionError, match="unknown target"):
        reproduce(["table9"], Plan(progress=False))
    from cloudedge.commands.reproduce import plan_from_args
    from cloudedge.cli import build_parser
    with pytest.raises(ValueError, match="--seeds must be >= 1"):
        plan_from_args(build_parser().parse_args(["reproduce", "table2", "--seeds", "0"]))
    # through the CLI: a one-line message and exit code 2, no traceback
    assert main(["reproduce", "table2", "--depths", "3,x"]) == 2
    assert "--depths must be comma-separated integers" in capsys.readouterr().err


def _fake_runs(acc0, acc1, seeds=(0, 1)):
    """Minimal run dicts: EdgeCNN0-3 / EdgeCNN1-3 curves at the paper's N, one per seed."""
    runs = []
    for i, s in enumerate(seeds):
        edges = [{"model": m, "curve": [{"n_images": n, "accuracy": a[i][j], "epochs": 5, "train_seconds": 1.0}
                                        for j, n in enumerate(paper.LABELED_SIZES)], "noise": None}
                 for m, a in (("EdgeCNN0-3", acc0), ("EdgeCNN1-3", acc1))]
        runs.append({"seed": s, "depth": 3, "dataset": "mnist", "preset": "laptop", "cloud_acc": 0.95,
                     "edges": edges, "seconds": 1.0,
                     "cloud": {"cached": True, "info": {"n_train": 6000}},
                     "config": {"pool_stride": 2, "cloud_fraction": 0.75, "cloud_train": {"max_epochs": 4},
                                "edge_train": {"max_epochs": 30}, "label_policy": "trust-all",
                                "feature_cache": True, "segment": True, "trigger": "", "step": 120,
                                "labeled": 120, "uploads": 1080}})
    return runs


def test_verdicts_say_met_or_missed_by_how_much():
    rising = np.linspace(0.70, 0.90, len(paper.LABELED_SIZES))
    acc0 = [rising, rising]
    acc1 = [rising + 0.02, rising + 0.04]          # mean +3 points over EdgeCNN0 everywhere
    s = summarize_table("table2", "mnist", _fake_runs(acc0, acc1), Plan(progress=False))
    first = next(r for r in s["rows"] if r["model"] == "EdgeCNN1-3" and r["n_images"] == 120)
    assert first["ours_mean"] == pytest.approx(100 * (0.70 + 0.03))
    assert first["ours_std"] == pytest.approx(100 * np.std([0.72, 0.74], ddof=1))
    v = {label: (status, text) for label, status, text in verdicts({"table2": s})}
    assert v["EdgeCNN1-k >= EdgeCNN0-k at every N <= 600 (MNIST)"][0] == "met"
    n120 = v[f"EdgeCNN1-3 at N=120 >= the paper's {paper.TABLE2_MNIST['EdgeCNN1-3'][0]:.2f}% (MNIST)"]
    assert n120[0] == "missed"
    assert f"short by {paper.TABLE2_MNIST['EdgeCNN1-3'][0] - 73.0:.2f} points" in n120[1]
    rises_label = next(k for k in v if k.startswith("accuracy rises with N as labeled uploads arrive (MNIST)"))
    assert v[rises_label][0] == "met"
    # EdgeCNN1 below EdgeCNN0 at N=240: missed, by the measured gap
    worse = [a.copy() for a in acc1]
    for a in worse:
        a[1] = rising[1] - 0.05
    s2 = summarize_table("table2", "mnist", _fake_runs(acc0, worse), Plan(progress=False))
    status, text = dict((lab, (st, t)) for lab, st, t in verdicts({"table2": s2}))[
        "EdgeCNN1-k >= EdgeCNN0-k at every N <= 600 (MNIST)"]
    assert status == "missed" and "k=3 N=240 by 5.00" in text


def test_rises_is_a_trend_over_thirds_with_few_dips():
    up = [(n, a) for n, a in zip(range(120, 1320, 120), [70, 74, 76, 78, 79, 80, 80.5, 81, 81, 81.2])]
    ok, text = rises(up)
    assert ok and "first third 73.33 → last third 81.07 (+7.73)" in text and "0 dip(s)" in text
    last_above_first_but_noisy = [(n, a) for n, a in zip(range(10), [70, 75, 71, 76, 72, 77, 73, 78, 74, 71.5])]
    ok, text = rises(last_above_first_but_noisy)                     # last > first, yet 5 of 9 steps dip
    assert not ok and "5 dip(s)" in text
    flat = [(n, 80.0 + 0.1 * (n % 2)) for n in range(9)]
    assert not rises(flat)[0]                                         # no dips, but no rise either


def test_headline_and_fig9_verdicts_are_judged_as_stated():
    row = {"dataset": "mnist", "factor": "baseline", "gap": 5.5, "gap_low": 0.4, "gap_high": 10.6, "acc0": 76.0,
           "acc1": 81.5, "clouds_trained": 3, "edges_per_cloud": 5, "gap_per_cloud": [2.0, 5.5, 9.0]}
    v = {label: (status, text) for label, status, text in verdicts({"factors": {"rows": [row]}})}
    gap = next(k for k in v if k.startswith("N=120, k=3: mean gap") and "(MNIST)" in k)
    assert v[gap][0] == "met" and "+5.50 [+0.40, +10.60] over 3 clouds x 5 edges" in v[gap][1]
    row["gap_low"] = -0.1                                             # interval reaches 0: missed
    v = {label: (status, text) for label, status, text in verdicts({"factors": {"rows": [row]}})}
    assert v[gap][0] == "missed"
    fashion = next(k for k in v if k.startswith("N=120, k=3: mean gap") and "Fashion" in k)
    assert v[fashion][0] == "not run"
    fig9 = {"rows": [{"model": "EdgeCNN1-3", "n_images": 100, "ours_mean": 90.0, "paper": None}], "n_train": 100,
            "cloud_acc_mean": 89.0, "cloud_train_size": 100}
    v = {label: (status, text) for label, status, text in verdicts({"fig9": fig9})}
    label = next(k for k in v if k.startswith("Fashion-MNIST, all train images"))
    assert v[label][0] == "missed" and "EdgeCNN1-3 is the more accurate" in v[label][1]   # two-sided


def test_report_without_results_lists_every_target_as_not_run(tmp_path):
    path = write_report(tmp_path / "reproduction", tmp_path / "REPRODUCTION.md")
    text = path.read_text()
    assert text.count("**not run**") == len(verdicts({})) >= 12
    assert text.count("Not run.") == len(NAMES)


def test_paper_preset_cost_estimate(tmp_path):
    ratio = preset_cost_ratio("paper")
    assert ratio["cloud"] > ratio["edge3"] > 1  # wider filters cost more, most in the 15-layer cloud
    plan = Plan(preset="paper", out=tmp_path, progress=False)
    seconds, why = estimate_cost(["table2"], plan)
    assert seconds is None and "run a laptop target first" in why



def test_execute_reuses_stored_runs_force_reruns_and_only_existing_runs_nothing(tmp_path):
    calls = []

    def job(name):
        return Job(tmp_path / f"{name}.json", lambda: calls.append(name) or {"name": name, "value": np.float32(0.5)})
    plan = Plan(progress=False, log=lambda m: None)
    assert execute([job("a")], plan) == [({"name": "a", "value": 0.5}, False)]
    assert execute([job("a")], plan) == [({"name": "a", "value": 0.5}, True)] and calls == ["a"]
    plan.only_existing = True
    assert execute([job("a"), job("b")], plan) == [({"name": "a", "value": 0.5}, True), (None, False)]
    assert calls == ["a"] and not (tmp_path / "b.json").exists()
    plan.only_existing, plan.force = False, True
    execute([job("a")], plan)
    assert calls == ["a", "a"]


@pytest.mark.parametrize("target", ["stability", "variants", "fig8"])
def test_only_existing_with_no_stored_run_trains_nothing(tmp_path, target):
    plan = Plan(quick=True, seeds=(0,), out=tmp_path / "reproduction", workdir=tmp_path / "clouds", progress=False,
                only_existing=True, log=lambda m: None)
    with pytest.raises(ReproductionError, match=f"{target}: no finished run"):
        reproduce([target], plan)
    assert not (tmp_path / "clouds").exists() and not (tmp_path / "reproduction" / "runs").exists()
