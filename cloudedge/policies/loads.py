"""Core-network load traces: a load trace is any callable t (seconds) -> load in [0, 1].

An edge uploads its buffered objects only while load < its threshold (Alg. 2 line 1).
Pass your own function, or one of these:

    Constant(0.2)                      always 0.2
    Diurnal(period=86400, low, high)   a sinusoid: low at t = 0, high at period / 2
    Trace(values, step)                piecewise constant: values[i] on [i*step, (i+1)*step), cyclic
    RandomLoad(seed, step, mean)       seeded i.i.d. Beta loads per step (deterministic per seed)
"""
import math

import numpy as np


def _check(value, what):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {value!r}")
    return float(value)


class Constant:
    def __init__(self, load):
        self.load = _check(load, "load")

    def __call__(self, t):
        return self.load


class Diurnal:
    def __init__(self, period=86400.0, low=0.1, high=0.9):
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period!r}")
        self.period, self.low, self.high = float(period), _check(low, "low"), _check(high, "high")

    def __call__(self, t):
        return self.low + (self.high - self.low) * 0.5 * (1.0 - math.cos(2.0 * math.pi * t / self.period))


class Trace:
    def __init__(self, values, step=1.0):
        values = [_check(float(v), "every trace value") for v in values]
        if not values or step <= 0:
            raise ValueError(f"need at least one value and step > 0, got {len(values)} values, step {step!r}")
        self.values, self.step = values, float(step)

    def __call__(self, t):
        return self.values[int(t // self.step) % len(self.values)]


class RandomLoad:
    def __init__(self, seed=0, step=1.0, mean=0.5, concentration=4.0):
        if step <= 0 or not 0 < mean < 1 or concentration <= 0:
            raise ValueError(f"need step > 0, 0 < mean < 1, concentration > 0; got {step}, {mean}, {concentration}")
        self.seed, self.step = seed, float(step)
        self.a, self.b = mean * concentration, (1 - mean) * concentration

    def __call__(self, t):
        k = int(t // self.step)
        return float(np.random.default_rng([self.seed, k]).beta(self.a, self.b))


def make_load(spec):
    """"constant:0.2", "diurnal:PERIOD", "random:SEED" or a callable -> a load trace."""
    if callable(spec):
        return spec
    name, _, arg = str(spec).partition(":")
    if name == "constant":
        return Constant(float(arg) if arg else 0.0)
    if name == "diurnal":
        return Diurnal(float(arg) if arg else 86400.0)
    if name == "random":
        return RandomLoad(int(arg) if arg else 0)
    raise ValueError(f"load must be 'constant:L', 'diurnal:PERIOD', 'random:SEED' or a callable, got {spec!r}")
