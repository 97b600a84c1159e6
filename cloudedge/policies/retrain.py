"""When an edge retrains (Alg. 2 line 4; the paper fixes M, the rest is beyond it).

``EveryM(M)``: the paper's rule, retrain once M new labels have accumulated.

``ExpectedGain(rate)``: the paper's future work ("study the relationship between the
accuracy of EdgeCNN and the number of training samples to determine the frequency of
its retraining"). The edge already knows how each of its model versions did on the
uploads it answered: when the cloud's labels come back they are compared with the
answers given (``agreement``). Those points (n_trained, agreement) are fitted by a
power law err(n) = a * n**-b (weighted least squares in log-log). With ``pending``
new labels, retraining on n + pending samples is expected to gain
err(n) - err(n + pending) and to cost (n + pending) x epochs sample passes (epochs:
mean of past trainings). It retrains when

    100 * gain / (cost / 1e6) >= rate        (accuracy points per million sample passes)

Guards against a noisy curve: only versions scored on >= ``min_scored`` uploads count;
until two such versions exist it retrains every ``warmup_m``; the fitted exponent is
kept >= ``b_min`` (learning curves do fall); and it never waits past ``max_pending`` new
labels (None: no cap). Decisions depend only on counts, never on wall time, so
simulations stay deterministic.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class RetrainContext:
    """What a trigger may look at. curve: [(n_trained, agreement, count)] per model version."""
    n_trained: int
    pending: int
    curve: list = field(default_factory=list)
    epochs: list = field(default_factory=list)


class RetrainPolicy:
    name = "policy"

    def decide(self, ctx):
        """-> (retrain: bool, why: str)."""
        raise NotImplementedError

    def describe(self):
        return self.name

    def spec(self):
        """The string make_trigger turns back into this policy."""
        raise NotImplementedError


class EveryM(RetrainPolicy):
    """Retrain when at least M new labeled objects are waiting (the paper)."""
    name = "every-m"

    def __init__(self, M=120):
        if not isinstance(M, (int, np.integer)) or M < 1:
            raise ValueError(f"M must be an int >= 1, got {M!r}")
        self.M = int(M)

    def decide(self, ctx):
        if ctx.pending >= self.M:
            return True, f"{ctx.pending} >= M={self.M} new labels"
        return False, f"{ctx.pending} < M={self.M} new labels"

    def describe(self):
        return f"every-{self.M}"

    def spec(self):
        return f"every:{self.M}"


def fit_power_law(curve, b_min=0.0):
    """curve: [(n, accuracy, count)] -> (a, b) of err(n) = a * n**-b, or None if < 2 distinct n.

    Weighted least squares of log err on log n (weights sqrt(count)); b is clipped to [b_min, 2]
    and a refitted for that b."""
    n = np.array([c[0] for c in curve], dtype=float)
    if len(np.unique(n)) < 2:
        return None
    err = np.clip(1.0 - np.array([c[1] for c in curve], dtype=float), 1e-3, 1.0)
    w = np.sqrt(np.array([c[2] for c in curve], dtype=float))
    A = np.stack([np.ones_like(n), -np.log(n)], axis=1) * w[:, None]
    (log_a, b), *_ = np.linalg.lstsq(A, np.log(err) * w, rcond=None)
    clipped = float(np.clip(b, b_min, 2.0))
    if clipped != b:
        log_a = float(np.sum(w ** 2 * (np.log(err) + clipped * np.log(n))) / np.sum(w ** 2))
    return float(np.exp(log_a)), clipped


class ExpectedGain(RetrainPolicy):
    """Retrain when the predicted accuracy gain per unit of training cost is high enough."""
    name = "expected-gain"

    def __init__(self, rate=50.0, min_new=30, warmup_m=120, max_pending=600, min_scored=50, b_min=0.1,
                 default_epochs=20):
        if rate < 0 or min_new < 1 or warmup_m < 1 or (max_pending is not None and max_pending < min_new):
            raise ValueError(f"need rate >= 0, min_new >= 1, warmup_m >= 1, max_pending >= min_new or None; "
                             f"got {rate}, {min_new}, {warmup_m}, {max_pending}")
        self.rate, self.min_new, self.warmup_m = float(rate), int(min_new), int(warmup_m)
        self.max_pending = None if max_pending is None else int(max_pending)
        self.min_scored, self.b_min, self.default_epochs = int(min_scored), float(b_min), default_epochs

    def predicted_gain(self, ctx):
        """Expected accuracy gain (fraction) of retraining now, or None before the curve exists."""
        fitted = fit_power_law([c for c in ctx.curve if c[2] >= self.min_scored], self.b_min)
        if fitted is None:
            return None
        a, b = fitted
        n0, n1 = max(ctx.n_trained, 1), max(ctx.n_trained, 1) + ctx.pending
        return a * n0 ** -b - a * n1 ** -b

    def decide(self, ctx):
        if ctx.pending < self.min_new:
            return False, f"{ctx.pending} < min_new={self.min_new} new labels"
        if self.max_pending is not None and ctx.pending >= self.max_pending:
            return True, f"{ctx.pending} >= max_pending={self.max_pending} new labels"
        gain = self.predicted_gain(ctx)
        if gain is None:
            ok = ctx.pending >= self.warmup_m
            return ok, f"warm-up: {ctx.pending} {'>=' if ok else '<'} {self.warmup_m} new labels"
        epochs = float(np.mean(ctx.epochs)) if ctx.epochs else float(self.default_epochs)
        cost = (ctx.n_trained + ctx.pending) * epochs
        score = 100.0 * gain / (cost / 1e6)
        ok = score >= self.rate
        verdict = ">=" if ok else "<"
        return ok, f"gain {100 * gain:.2f} pt / {cost / 1e6:.3f} M passes = {score:.1f} {verdict} {self.rate:g}"

    def describe(self):
        return f"expected-gain(rate={self.rate:g})"

    def spec(self):
        cap = "none" if self.max_pending is None else self.max_pending
        return f"gain:{self.rate!r}:{self.min_new}:{self.warmup_m}:{cap}"


def make_trigger(spec):
    """"every:M" or "gain:RATE[:MIN_NEW[:WARMUP_M[:MAX_PENDING|none]]]" -> a RetrainPolicy."""
    if isinstance(spec, RetrainPolicy):
        return spec
    name, _, arg = str(spec).partition(":")
    if name == "every":
        return EveryM(int(arg) if arg else 120)
    if name == "gain":
        parts = arg.split(":") if arg else []
        rate = float(parts[0]) if parts else 50.0
        ints = [int(v) for v in parts[1:3]]
        if len(parts) > 3:
            ints.append(None if parts[3] == "none" else int(parts[3]))
        return ExpectedGain(rate, *ints)
    raise ValueError(f"retrain trigger must be 'every[:M]' or 'gain[:rate]', got {spec!r}")
