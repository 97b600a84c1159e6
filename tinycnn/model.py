"""Sequential: a list of layers run in order, with freezing and slicing."""
import numpy as np

from . import serialization
from .layers import Layer
from .losses import softmax


class Sequential:
    """Sequential(layers): out = layers[-1](...layers[0](x)).

    Parameters are named "<layer index>.<key>", e.g. "0.W". ``model[:m]`` is a
    Sequential over the *same* layer objects (no copy): training or freezing the
    slice changes the model, which is how shared layers are used.
    """

    def __init__(self, layers):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential expects tinycnn Layer objects, item {i} is "
                                f"{type(layer).__name__}")
        self.layers = layers

    # --- container --------------------------------------------------------------
    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(self.layers[index])
        return self.layers[index]

    def __repr__(self):
        rows = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{rows}\n)"

    # --- forward / backward -------------------------------------------------------
    def forward(self, x, training=False):
        """x: the first layer's input, e.g. (N, C, H, W) float32 -> last layer's output.

        The caller's x is never written to. A layer that can overwrite its input (ReLU) does so
        when that input is an array an earlier layer of this call made (_overwrite)."""
        given = x
        for layer in self.layers:
            x = layer.forward(x, training=training, **_overwrite(layer, x, given))
        return x

    def infer(self, x):
        """Eval-mode forward that frees each layer's backward cache as soon as the layer
        has run: for prediction only. Peak memory is one layer's im2col matrix instead of
        all of them (about 1 GB for CloudCNN at batch 256). Overwrites as forward does."""
        given = x
        for layer in self.layers:
            x = layer.forward(x, **_overwrite(layer, x, given))
            layer.clear_cache()
        return x

    def lowest_trainable(self):
        """Index of the lowest layer with trainable params, or None if there is none."""
        for i, layer in enumerate(self.layers):
            if layer.trainable and layer.params:
                return i
        return None

    def backward(self, dout, need_dx=True):
        """Back-propagate dout (gradient of the loss wrt the output); fills each trainable
        layer's grads. Returns dL/dx of the model's input if need_dx, else None (the
        layer contract, tinycnn.layers.base).

        need_dx=False is what training wants: layers below the lowest trainable one are
        not visited and the lowest trainable layer computes its grads but no dx.
        """
        stop = 0 if need_dx else self.lowest_trainable()
        if stop is None:
            for layer in self.layers:
                layer.clear_cache()
            return None
        given = dout                                   # the caller's gradient: never written to
        for i in range(len(self.layers) - 1, stop - 1, -1):
            layer = self.layers[i]
            dout = layer.backward(dout, need_dx=need_dx or i > stop, **_overwrite(layer, dout, given))
        for layer in self.layers[:stop]:
            layer.clear_cache()
        return dout if need_dx else None

    def predict_proba(self, x, batch_size=256):
        """x: (N, ...) -> class probabilities (N, K), in eval mode, batched."""
        out = [softmax(self.infer(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.empty((0, 0), dtype=x.dtype)

    def predict(self, x, batch_size=256):
        """x: (N, ...) -> predicted class indices (N,) int64."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    def clear_cache(self):
        for layer in self.layers:
            layer.clear_cache()

    def reseed(self, seed):
        """Make stochastic layers (Dropout) repeat their draws. seed: an int or a list of
        ints (e.g. [seed, epoch]); layer i gets the i-th child of SeedSequence(seed)."""
        children = np.random.SeedSequence(seed).spawn(len(self.layers))
        for layer, child in zip(self.layers, children):
            layer.reseed(child)

    # --- parameters -----------------------------------------------------------------
    def named_params(self):
        """Yield ("<i>.<key>", array) for every parameter, frozen ones included."""
        for i, layer in enumerate(self.layers):
            for key, value in layer.params.items():
                yield f"{i}.{key}", value

    def trainable_slots(self):
        """Yield (name, layer, key) for every parameter of a trainable layer."""
        for i, layer in enumerate(self.layers):
            if layer.trainable:
                for key in layer.params:
                    yield f"{i}.{key}", layer, key

    def num_params(self):
        return sum(int(p.size) for _, p in self.named_params())

    def freeze(self, m):
        """Freeze the first m layers (``trainable = False``); the rest are left as they are."""
        if not isinstance(m, (int, np.integer)) or not 0 <= m <= len(self.layers):
            raise ValueError(f"freeze(m) needs 0 <= m <= {len(self.layers)}, got {m!r}")
        for layer in self.layers[:m]:
            layer.trainable = False
        return self

    def unfreeze(self):
        for layer in self.layers:
            layer.trainable = True
        return self

    @property
    def frozen_prefix(self):
        """Number of leading layers that are frozen."""
        n = 0
        while n < len(self.layers) and not self.layers[n].trainable:
            n += 1
        return n

    def astype(self, dtype):
        """Cast every parameter to dtype in place (e.g. float64 for gradient checks)."""
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def output_shape(self, input_shape):
        """Per-sample output shape for a per-sample input shape; raises on any mismatch."""
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.output_shape(shape))
        return shape

    # --- state ----------------------------------------------------------------------------
    def specs(self):
        return [layer.spec() for layer in self.layers]

    def state_dict(self):
        """{"<i>.<key>": copy of the parameter}: params only, never grads or velocities."""
        return {name: value.copy() for name, value in self.named_params()}

    def load_state_dict(self, state):
        """Copy parameters in by name, after checking names, shapes and dtypes match."""
        own = dict(self.named_params())
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(f"parameter names differ: missing {missing}, unexpected {extra}")
        for name, value in state.items():
            value = np.asarray(value)
            if value.shape != own[name].shape or value.dtype != own[name].dtype:
                raise ValueError(f"parameter {name!r}: expected {own[name].dtype}{own[name].shape}, "
                                 f"got {value.dtype}{value.shape}")
        for name, value in state.items():
            own[name][...] = value
        return self

    def save(self, path):
        """Write specs + params to one .npz, atomically. See tinycnn.serialization."""
        serialization.save(self, path)

    def to_bytes(self):
        return serialization.to_bytes(self)


def load(source):
    """Rebuild a Sequential from a path or bytes written by ``save``/``to_bytes``."""
    layers, arrays, meta, label = serialization.read_layers(source)
    return serialization.fill(Sequential(layers), arrays, meta, label)


def _overwrite(layer, arr, given):
    """{"overwrite": True} if layer can write its result into arr and arr is the Sequential's
    own: an array an earlier layer of this call returned, sharing no memory with the caller's
    `given`; else {} (the plain layer contract).
    Safe because the layers that keep an array for backward keep their input (Conv2D, Dense),
    which is not the array the next layer receives, or their own output (ReLU), which a
    second ReLU leaves unchanged; Flatten and an eval-mode Dropout pass arrays on and keep none."""
    own = (layer.can_overwrite_input and isinstance(arr, np.ndarray) and arr is not given
           and not np.may_share_memory(arr, given))
    return {"overwrite": True} if own else {}
