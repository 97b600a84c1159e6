"""The layer contract every tinycnn layer follows.

    out = layer.forward(x, training=False)   caches on the layer what backward needs
    dx  = layer.backward(dout, need_dx=True)  fills layer.grads; returns dL/dx,
                                              or None when need_dx is False
    layer.params / layer.grads                dicts with the same keys and shapes
    layer.trainable                           False = frozen: the optimizer skips the
                                              params and backward skips their grads

A layer with can_overwrite_input = True (ReLU) also takes forward(x, training, overwrite=True)
and backward(dout, need_dx, overwrite=True): it may then write its result into x or dout
instead of a new array. Sequential asks for that only for arrays it made itself in the same
call, never for the caller's input or gradient.
"""
import numpy as np


def pair(value, name):
    """An int or a pair of ints -> (a, b); used for kernel, stride and padding."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def check_positive(value, name, minimum=1):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class Layer:
    """Base class: no params, identity caches. Subclasses implement forward/backward."""

    can_overwrite_input = False   # see the module docstring

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.trainable = True

    # --- the contract -------------------------------------------------------
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dout, need_dx=True):
        raise NotImplementedError

    def output_shape(self, input_shape):
        """Per-sample output shape for a per-sample input shape, e.g. (C, H, W) -> (F, OH, OW)."""
        raise NotImplementedError

    def config(self):
        """Constructor arguments as a JSON-able dict; ``type(self)(**config())`` rebuilds the layer."""
        return {}

    # --- shared helpers -----------------------------------------------------
    def spec(self):
        return {"type": type(self).__name__, **self.config()}

    def clear_cache(self):
        """Drop everything forward cached for backward."""

    def reseed(self, seed):
        """Reset the random stream of a stochastic layer (no-op for deterministic ones)."""

    def astype(self, dtype):
        """Cast params and grads to ``dtype`` in place; returns self."""
        for key in self.params:
            self.params[key] = self.params[key].astype(dtype)
            self.grads[key] = self.grads[key].astype(dtype)
        return self

    def grad_buffer(self, key):
        """grads[key] as a C-contiguous array shaped like params[key], to write into in place."""
        p, g = self.params[key], self.grads.get(key)
        if g is None or g.shape != p.shape or g.dtype != p.dtype or not g.flags.c_contiguous:
            g = self.grads[key] = np.empty_like(p)
        return g

    def _check_input(self, x, ndim, layout):
        """Raise TypeError/ValueError unless x is a float array of rank ndim (None: any rank >= 2)."""
        name = type(self).__name__
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} expected a numpy array {layout}, got {type(x).__name__}")
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} expected a float32 or float64 array, got dtype {x.dtype}")
        if (x.ndim < 2) if ndim is None else (x.ndim != ndim):
            rank = "an input of rank >= 2" if ndim is None else f"a {ndim}-D input"
            raise ValueError(f"{name} expected {rank} {layout}, got shape {x.shape}")
        if self.params:
            want = next(iter(self.params.values())).dtype
            if x.dtype != want:
                raise TypeError(f"{name} has {want} params and expected a {want} input, got {x.dtype}; "
                                f"cast the input with x.astype(np.{want}) or the model with .astype()")

    def _cached(self, value, what):
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs {what} from forward(); "
                               "call forward() first (each forward serves one backward)")
        return value

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        frozen = "" if self.trainable else " [frozen]"
        return f"{type(self).__name__}({args}){frozen}"


INITS = ("he-normal", "glorot-uniform")


def init_weights(rng, shape, fan_in, fan_out, init="he-normal"):
    """Random weights of ``shape`` (float64), drawn with rng:
        he-normal       N(0, 2 / fan_in)                                   (He et al. 2015)
        glorot-uniform  U(-a, a), a = sqrt(6 / (fan_in + fan_out))       (Keras' default)
    For a conv layer fan_in = C*kh*kw and fan_out = F*kh*kw, as Keras counts them."""
    if init == "he-normal":
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    if init == "glorot-uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    raise ValueError(f"init must be one of {INITS}, got {init!r}")
