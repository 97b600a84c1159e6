"""Numerical gradient check by central differences.

For a layer or Sequential f and a fixed random R shaped like f(x), the scalar
L = sum(f(x) * R) has dL/dout = R, so one backward(R) gives the analytic
gradients; each input and parameter entry v is then perturbed:
    dL/dv ~ (L(v + eps) - L(v - eps)) / (2 eps)
Use float64 params and inputs: in float32 the rounding error of L swamps eps.
"""
import numpy as np

from .model import Sequential


def _max_relative_error(analytic, numeric):
    """max |a - n| over entries, relative to the largest |entry| of either (0 if both are 0)."""
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.abs(analytic - numeric).max() / scale)


def numeric_grad(f, array, eps=1e-6):
    """Central-difference gradient of the scalar function f() wrt array, perturbed in place
    (and restored): grad[i] = (f(array[i] + eps) - f(array[i] - eps)) / (2 eps)."""
    grad = np.zeros_like(array, dtype=np.float64)
    for idx in np.ndindex(array.shape):
        orig = array[idx]
        array[idx] = orig + eps
        plus = f()
        array[idx] = orig - eps
        minus = f()
        array[idx] = orig
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(net, x, eps=1e-6, seed=0, training=True):
    """Compare backward() with central differences for x and every trainable parameter.

    net: a Layer or a Sequential (float64 params recommended)
    x:   its input, e.g. (N, C, H, W) float64
    returns {"x": err, "<i>.<key>" or "<key>": err, ...}: the max absolute difference
    between analytic and numeric gradient, divided by the largest gradient entry.
    Stochastic layers are reseeded before every forward, so Dropout's mask is fixed.
    """
    model = net if isinstance(net, Sequential) else Sequential([net])
    x = np.array(x, copy=True)
    if x.dtype != np.float64:
        raise TypeError(f"gradcheck needs a float64 input, got {x.dtype}; float32 cannot resolve eps={eps}")

    def loss():
        model.reseed(seed)
        return float((model.forward(x, training=training) * R).sum())

    model.reseed(seed)
    out = model.forward(x, training=training)
    R = np.random.default_rng(seed).standard_normal(out.shape)
    dx = model.backward(R, need_dx=True)
    slots = list(model.trainable_slots())
    analytic = {"x": dx, **{name: layer.grads[key].copy() for name, layer, key in slots}}
    targets = {"x": x, **{name: layer.params[key] for name, layer, key in slots}}

    errors = {}
    for name, array in targets.items():
        numeric = numeric_grad(loss, array, eps)
        key = name if isinstance(net, Sequential) or name == "x" else name.split(".", 1)[1]
        errors[key] = _max_relative_error(analytic[name], numeric)
    model.clear_cache()
    return errors
