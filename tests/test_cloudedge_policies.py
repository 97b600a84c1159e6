"""Label policies, retrain triggers and load traces."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudedge.policies.labels import ConfidenceThreshold, SoftLabels, TrustAll, make_policy, noise_report
from cloudedge.policies.loads import Constant, Diurnal, RandomLoad, Trace, make_load
from cloudedge.policies.retrain import EveryM, ExpectedGain, RetrainContext, fit_power_law, make_trigger
from cloudedge.system.wire import LabelReply
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


def reply(n=50, seed=0, probs=True):
    p = np.random.default_rng(seed).dirichlet(np.full(10, 0.3), n).astype(np.float32)
    return LabelReply(np.arange(n), p.argmax(1), p.max(1), p if probs else None)


@settings(deadline=None, max_examples=40)
@given(t=st.floats(0, 1), seed=st.integers(0, 1000))
def test_confidence_keeps_exactly_the_confident(t, seed):
    r = reply(seed=seed)
    keep, hard, soft = ConfidenceThreshold(t).apply(r)
    assert np.array_equal(keep, r.confidence >= t) and np.array_equal(hard, r.labels) and soft is None


def test_trust_all_and_soft():
    r = reply()
    keep, hard, soft = TrustAll().apply(r)
    assert keep.all() and soft is None and np.array_equal(hard, r.labels)
    keep, hard, soft = SoftLabels().apply(r)
    assert keep.all() and np.array_equal(soft, r.probs) and SoftLabels.needs_probs
    with pytest.raises(ValueError, match="probabilities"):
        SoftLabels().apply(reply(probs=False))


@pytest.mark.parametrize("spec", ["trust-all", "confidence:0.8", "soft:2.0"])
def test_policy_specs_round_trip(spec):
    policy = make_policy(spec)
    assert make_policy(policy.spec()).spec() == policy.spec()
    with pytest.raises(ValueError, match="label policy"):
        make_policy("oracle")


def test_noise_report_counts_against_ground_truth():
    r = reply(10)
    truth = r.labels.copy()
    truth[:3] = (truth[:3] + 1) % 10
    keep = np.zeros(10, bool)
    keep[2:] = True
    rep = noise_report(r.labels, keep, truth)
    assert rep == {"sent": 10, "sent_wrong": 3, "sent_noise": 0.3, "kept": 8, "kept_wrong": 1, "kept_noise": 0.125}


def test_every_m():
    assert EveryM(120).decide(RetrainContext(120, 120))[0]
    assert not EveryM(120).decide(RetrainContext(120, 119))[0]
    with pytest.raises(ValueError, match="M must be"):
        EveryM(0)


@settings(deadline=None, max_examples=40)
@given(a=st.floats(0.05, 2.0), b=st.floats(0.05, 1.5))
def test_power_law_fit_recovers_exact_curves(a, b):
    ns = np.array([120, 240, 480, 960])
    err = np.minimum(a * ns ** -b, 1.0)
    if err.min() <= 1e-3 or err.max() >= 1.0:   # outside the clipped range the fit cannot see the law
        return
    fa, fb = fit_power_law([(n, 1 - e, 100) for n, e in zip(ns, err)])
    assert np.isclose(fa, a, rtol=1e-6) and np.isclose(fb, b, rtol=1e-6)


def test_expected_gain_warms_up_then_waits_longer_as_the_curve_flattens():
    policy = ExpectedGain(rate=5, min_new=10, warmup_m=120, max_pending=None, b_min=0.0)
    assert policy.decide(RetrainContext(120, 5))[0] is False                # below min_new
    assert policy.decide(RetrainContext(120, 60))[0] is False               # warm-up: every 120
    assert policy.decide(RetrainContext(120, 120))[0] is True
    curve = [(n, 1 - 0.5 * n ** -0.5, 200) for n in (120, 240, 480)]
    needed = []
    for n in (240, 480, 960, 1920):
        needed.append(next((p for p in range(10, 20000, 10)
                            if policy.decide(RetrainContext(n, p, curve, [20]))[0]), np.inf))
    assert needed[0] < needed[1] < needed[2] < needed[3]   # diminishing returns -> rarer retraining
    assert needed[3] == np.inf                              # eventually not worth its cost at all
    assert make_trigger(policy.spec()).spec() == policy.spec()
    assert make_trigger("every:7").M == 7
    capped = ExpectedGain(rate=5, min_new=10, max_pending=300)
    assert capped.decide(RetrainContext(1920, 300, curve, [20]))[0]      # never waits past the cap
    assert make_trigger(capped.spec()).spec() == capped.spec()


def test_a_flat_noisy_curve_cannot_stop_retraining_for_good():
    policy = ExpectedGain(rate=50, min_new=30, warmup_m=120, max_pending=None)
    curve = [(120, 0.80, 120), (240, 0.78, 120)]              # the second version scored worse
    assert policy.predicted_gain(RetrainContext(240, 120, curve)) > 0  # b >= b_min keeps a gain
    few = [(120, 0.8, 120), (240, 0.9, 10)]                   # 10 scored uploads are too few
    assert policy.predicted_gain(RetrainContext(240, 120, few)) is None


def test_load_traces():
    assert Constant(0.3)(123.0) == 0.3
    d = Diurnal(100, 0.1, 0.9)
    assert np.isclose(d(0), 0.1) and np.isclose(d(50), 0.9) and np.isclose(d(100), 0.1)
    tr = Trace([0.8, 0.1], step=2)
    assert [tr(t) for t in (0, 1, 2, 3, 4)] == [0.8, 0.8, 0.1, 0.1, 0.8]
    r1, r2 = RandomLoad(5), RandomLoad(5)
    vals = [r1(t) for t in range(50)]
    assert vals == [r2(t) for t in range(50)] and all(0 <= v <= 1 for v in vals)
    assert make_load("constant:0.25")(9) == 0.25
    with pytest.raises(ValueError, match="load must be"):
        make_load("sunny")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Constant(2)
