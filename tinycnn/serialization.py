"""Save and load Sequential models as one .npz that needs no pickle.

File layout (``np.load(path, allow_pickle=False)`` reads it):
    "<i>.<key>"   every parameter, e.g. "0.W" (out_channels, in_channels, kh, kw)
    "__meta__"    a 0-d unicode array holding JSON:
                  {"format": "tinycnn.Sequential", "version": 2,
                   "layers": [{"type": "Conv2D", ...constructor args}, ...],
                   "trainable": [true, ...]}
Writes go to a temporary file in the target directory, then os.replace: a reader
never sees a half-written model.

Version 1 stored a Dense layer's W as (in_features, out_features); version 2 stores it
(out_features, in_features), as the layer holds it now. Version 1 files still load: their
Dense weights are transposed as they are read (migrate_dense_weights).
"""
import io
import json
import os
import zipfile

import numpy as np

from .atomic import atomic_write
from .layers import LAYER_TYPES

FORMAT = "tinycnn.Sequential"
VERSION = 2
READABLE_VERSIONS = (1, VERSION)


def _arrays(model):
    meta = {"format": FORMAT, "version": VERSION, "layers": model.specs(),
            "trainable": [layer.trainable for layer in model]}
    arrays = dict(model.named_params())
    arrays["__meta__"] = np.array(json.dumps(meta))
    return arrays


def to_bytes(model):
    """The .npz file contents as bytes."""
    buf = io.BytesIO()
    np.savez(buf, **_arrays(model))
    return buf.getvalue()


def save(model, path):
    """Write model to path (.npz) atomically: temp file + fsync + os.replace."""
    with atomic_write(path) as f:
        np.savez(f, **_arrays(model))


def _read(source, label):
    """All arrays of an .npz (path or bytes) -> (meta dict, {name: array}); ValueError if unusable."""
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        loaded = np.load(source, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError(f"expected an .npz archive, got a single {type(loaded).__name__}")
        with loaded as npz:
            arrays = {name: npz[name] for name in npz.files}
    # zipfile reports damaged archives through all of these, depending on the damaged byte
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError,
            NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"{label}: not a readable tinycnn .npz (truncated or foreign file?): {exc}") from exc
    if "__meta__" not in arrays:
        raise ValueError(f"{label}: .npz without tinycnn metadata ('__meta__'); "
                         f"it holds {sorted(arrays)[:5]}")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{label}: metadata is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{label}: expected format {FORMAT!r}, got {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if meta.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"{label}: expected format version {' or '.join(map(str, READABLE_VERSIONS))}, "
                         f"got {meta.get('version')!r}")
    layers = meta.get("layers")
    if not isinstance(layers, list) or not all(isinstance(spec, dict) for spec in layers):
        raise ValueError(f"{label}: metadata needs 'layers', a list of layer specs, got {layers!r:.80}")
    if meta["version"] == 1:  # Dense W stored (in_features, out_features)
        migrate_dense_weights(arrays, [spec.get("type") for spec in layers], "{}.W")
    return meta, arrays


def migrate_dense_weights(arrays, kinds, name):
    """Transpose in `arrays` each Dense layer's W written as (in_features, out_features) by an
    older tinycnn, to today's (out_features, in_features). kinds: the layers' type names, in
    order; name: the key of layer i's W, e.g. "{}.W" or "model/{}.W"."""
    for i, kind in enumerate(kinds):
        key = name.format(i)
        if kind == "Dense" and key in arrays and np.ndim(arrays[key]) == 2:
            arrays[key] = np.ascontiguousarray(arrays[key].T)


def read_layers(source):
    """A file or bytes written by save/to_bytes -> (layers, arrays, meta, label): fresh layers
    built from the specs, to go into a Sequential (tinycnn.model.load) and then ``fill``."""
    label = "<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    meta, arrays = _read(source, label)
    return _build(meta, label), arrays, meta, label


def _build(meta, label):
    layers = []
    for i, spec in enumerate(meta["layers"]):
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in LAYER_TYPES:
            raise ValueError(f"{label}: layer {i} has unknown type {kind!r}; known: {sorted(LAYER_TYPES)}")
        try:
            layers.append(LAYER_TYPES[kind](**spec))
        except TypeError as exc:
            raise ValueError(f"{label}: layer {i} ({kind}) has bad arguments {spec}: {exc}") from exc
    return layers


def fill(model, arrays, meta, label):
    """Give a model built from read_layers its saved dtypes, params and trainable flags."""
    for i, layer in enumerate(model):  # match the file's dtype (float32 or float64)
        dtypes = {arrays[f"{i}.{k}"].dtype for k in layer.params if f"{i}.{k}" in arrays}
        if len(dtypes) == 1:
            layer.astype(dtypes.pop())
    try:
        model.load_state_dict(arrays)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from exc
    trainable = meta.get("trainable", [True] * len(model))
    if len(trainable) != len(model):
        raise ValueError(f"{label}: 'trainable' has {len(trainable)} flags for {len(model)} layers")
    for layer, flag in zip(model, trainable):
        layer.trainable = bool(flag)
    return model


def load_weights(model, source):
    """Load params from a file into an existing model of the same architecture."""
    label = "<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    meta, arrays = _read(source, label)
    theirs, ours = meta["layers"], model.specs()
    if len(theirs) != len(ours):
        raise ValueError(f"{label}: saved from a {len(theirs)}-layer model, this model has {len(ours)}")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            raise ValueError(f"{label}: layer {i} differs: this model has {a}, the file has {b}")
    try:
        model.load_state_dict(arrays)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from exc
    return model
