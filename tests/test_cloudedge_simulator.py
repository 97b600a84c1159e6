"""The multi-edge simulator is deterministic from its seed and keeps the edges' data apart."""
import numpy as np

from cloudedge.system.config import EdgeConfig, SimConfig, edge_train_config
from cloudedge.timing.simulator import Simulator
from tinycnn.datasets import load_mnist_sample
from test_cloudedge_support import tiny_cloud
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


def data():
    x, y = load_mnist_sample("train")
    xt, yt = load_mnist_sample("test")
    return x[:2400], y[:2400], xt[:200], yt[:200]


def simulate(seed, **kw):
    cfg = SimConfig(n_edges=3, shared=(True, False), labeled=60, rate=3.0, tick=10, duration=120,
                    load="random:3", trigger="every:40", seed=seed, eval_images=200,
                    edge=EdgeConfig(preset="tiny", train=edge_train_config(max_epochs=2)), **kw)
    sim = Simulator(tiny_cloud(seed=1), data(), cfg)
    return sim, sim.run()


def test_same_seed_same_run_different_seed_different_run():
    sim_a, a = simulate(0)
    _, b = simulate(0)
    _, c = simulate(1)
    strip = lambda r: {k: v for k, v in r.items() if k != "wall"}          # noqa: E731
    edges = lambda r: [{k: v for k, v in e.items() if k != "wall"} for e in r["edges"]]  # noqa: E731
    assert a["timeline"] == b["timeline"] and edges(a) == edges(b) and a["cloud"] == b["cloud"]
    assert strip(a)["config"] == strip(b)["config"]
    assert a["timeline"] != c["timeline"]
    events = {row["event"] for row in a["timeline"]}
    assert {"init", "sync", "retrain"} <= events            # the whole loop ran
    # weights too: every edge of run a is reproduced bit for bit
    sim_b, _ = simulate(0)
    for ea, eb in zip(sim_a.edges, sim_b.edges):
        assert all(np.array_equal(p, q) for p, q in zip(ea.model.state_dict().values(),
                                                        eb.model.state_dict().values()))


def test_edges_use_disjoint_data_and_the_trainer_is_busy_while_training():
    sim, result = simulate(2, throughput=15.0)      # slow trainers: a training outlasts the next tick
    ids = [set(e.store.arrays()[3]) for e in sim.edges]
    assert all(not (ids[i] & ids[j]) for i in range(3) for j in range(i + 1, 3))
    retrains = [r for r in result["timeline"] if r["event"] == "retrain"]
    assert all(r["busy_until"] == r["t"] + r["sample_passes"] / sim.cfg.throughput for r in retrains)
    pairs = []                                      # consecutive retrainings of one edge
    for e in sim.edges:
        mine = [r for r in retrains if r["edge"] == e.name]
        pairs += zip(mine, mine[1:])
    assert any(a["busy_until"] > a["t"] + sim.cfg.tick for a, _ in pairs)   # the trainer was busy across a tick
    assert all(b["t"] >= a["busy_until"] for a, b in pairs)                # and no training started meanwhile
    assert sum(r["bytes_up"] for r in result["edges"]) == result["cloud"]["bytes_in"]
