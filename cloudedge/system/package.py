"""Layer packages: how the cloud ships its m lower layers to an edge (Alg. 1, line 1).

Wire format of ``LayerPackage.to_bytes()`` (every byte is counted as sent):

    b"CEPKG1\\n"                 7 bytes, magic + version
    manifest length             8 bytes, unsigned little-endian
    manifest                    UTF-8 JSON (below)
    payload                     the engine's .npz of ``cloud_model[:2m]`` (``Sequential.to_bytes()``)

Manifest::

    {"format": "cloudedge.LayerPackage", "version": 1,
     "m": 3, "input_shape": [1, 28, 28], "output_shape": [8, 28, 28],
     "layers": [{"type": "Conv2D", ...}, {"type": "ReLU"}, ...],
     "params": {"0.W": {"shape": [8, 1, 3, 3], "dtype": "float32", "sha256": "..."}, ...},
     "payload_bytes": 12345, "payload_sha256": "..."}

``open_package`` checks all of it (magic, payload size and hash, layer specs, every
parameter's shape, dtype and hash, the declared input shape) before an edge uses the
layers; any mismatch is a ValueError naming what was expected and what came.
"""
import hashlib
import json
import struct

import numpy as np

import tinycnn

MAGIC = b"CEPKG1\n"
FORMAT = "cloudedge.LayerPackage"
VERSION = 1
_LEN = struct.Struct("<Q")


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _param_sha256(array):
    """Hash of a parameter's raw C-order bytes."""
    return _sha256(np.ascontiguousarray(array).tobytes())


def make_package(model, m, input_shape):
    """Bytes of a package holding the m lower conv layers of ``model`` (its first 2m layers).

    model: a Sequential whose layers[:2m] are m (Conv2D, ReLU) pairs.
    input_shape: per-sample (C, H, W) the layers were trained on.
    """
    from .models import shared_prefix
    if not isinstance(m, (int, np.integer)) or not 1 <= 2 * m <= len(model):
        raise ValueError(f"m must be an int with 1 <= 2m <= {len(model)} layers, got {m!r}")
    prefix = model[:shared_prefix(int(m))]
    for i, layer in enumerate(prefix):
        want = "Conv2D" if i % 2 == 0 else "ReLU"
        if type(layer).__name__ != want:
            raise ValueError(f"layer {i} of the shared prefix should be {want}, got {type(layer).__name__}")
    input_shape = tuple(int(v) for v in input_shape)
    output_shape = prefix.output_shape(input_shape)
    payload = prefix.to_bytes()
    manifest = {
        "format": FORMAT, "version": VERSION, "m": int(m),
        "input_shape": list(input_shape), "output_shape": list(output_shape),
        "layers": prefix.specs(),
        "params": {name: {"shape": list(p.shape), "dtype": str(p.dtype), "sha256": _param_sha256(p)}
                   for name, p in prefix.named_params()},
        "payload_bytes": len(payload), "payload_sha256": _sha256(payload),
    }
    head = json.dumps(manifest, sort_keys=True).encode()
    return MAGIC + _LEN.pack(len(head)) + head + payload


def read_manifest(data):
    """Split package bytes into (manifest dict, payload bytes), checking framing and payload hash."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"a layer package is bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(MAGIC):
        raise ValueError(f"not a cloudedge layer package: expected magic {MAGIC!r}, got {data[:len(MAGIC)]!r}")
    start = len(MAGIC) + _LEN.size
    if len(data) < start:
        raise ValueError(f"layer package truncated: {len(data)} bytes, the header alone needs {start}")
    (n,) = _LEN.unpack_from(data, len(MAGIC))
    if len(data) < start + n:
        raise ValueError(f"layer package truncated: manifest needs {n} bytes, only {len(data) - start} came")
    try:
        manifest = json.loads(data[start:start + n].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"layer package manifest is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        got = (manifest.get("format"), manifest.get("version")) if isinstance(manifest, dict) else manifest
        raise ValueError(f"expected manifest format {FORMAT!r} version {VERSION}, got {got!r}")
    payload = data[start + n:]
    if len(payload) != manifest["payload_bytes"]:
        raise ValueError(f"payload size: manifest says {manifest['payload_bytes']} bytes, got {len(payload)}")
    digest = _sha256(payload)
    if digest != manifest["payload_sha256"]:
        raise ValueError(f"payload sha256: manifest says {manifest['payload_sha256']}, got {digest}")
    return manifest, payload


def open_package(data, input_shape=None, expected_layers=None):
    """Verify package bytes and rebuild its layers. Returns (manifest, Sequential of 2m layers).

    input_shape: the receiving edge's declared (C, H, W); must equal the package's.
    expected_layers: the specs the edge's own prefix has (e.g. ``edge_model[:2m].specs()``);
        if given, the package's layers must match them exactly.
    """
    manifest, payload = read_manifest(data)
    if input_shape is not None and tuple(manifest["input_shape"]) != tuple(input_shape):
        raise ValueError(f"layer package was trained on input {tuple(manifest['input_shape'])}, "
                         f"this edge declares input {tuple(input_shape)}")
    model = tinycnn.load(payload)
    if len(model) != 2 * manifest["m"]:
        raise ValueError(f"manifest says m={manifest['m']} conv layers ({2 * manifest['m']} layers), "
                         f"the payload has {len(model)} layers")
    if model.specs() != manifest["layers"]:
        raise ValueError(f"payload layers {model.specs()} differ from the manifest's {manifest['layers']}")
    if expected_layers is not None and list(expected_layers) != manifest["layers"]:
        raise ValueError(f"layer package holds {manifest['layers']}, this edge's lower layers are "
                         f"{list(expected_layers)}")
    params = dict(model.named_params())
    if sorted(params) != sorted(manifest["params"]):
        raise ValueError(f"payload parameters {sorted(params)} differ from the manifest's "
                         f"{sorted(manifest['params'])}")
    for name, want in manifest["params"].items():
        p = params[name]
        got = {"shape": list(p.shape), "dtype": str(p.dtype), "sha256": _param_sha256(p)}
        if got != want:
            raise ValueError(f"parameter {name}: manifest says {want}, payload has {got}")
    out = model.output_shape(tuple(manifest["input_shape"]))
    if list(out) != manifest["output_shape"]:
        raise ValueError(f"output shape: manifest says {manifest['output_shape']}, layers give {list(out)}")
    return manifest, model
