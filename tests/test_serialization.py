"""save / load / load_weights / to_bytes: round trips, the pickle-free file format,
rejection of unusable files with ValueError, atomic writes, and layer transfer."""
import io
import json
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinycnn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential, load, load_weights, save
from conftest import dtypes, seeds


def make_model(seed=0, dtype=np.float32, hidden=6):
    rng = np.random.default_rng(seed)
    model = Sequential([Conv2D(1, 3, (3, 2), stride=(1, 2), padding=(1, 0), rng=rng), ReLU(),
                        MaxPool2D(2, stride=1), Flatten(), Dropout(0.3),
                        Dense(3 * 5 * 2, hidden, rng=rng), ReLU(), Dense(hidden, 4, rng=rng)])
    for _, p in model.named_params():  # non-zero biases too
        p[...] = rng.standard_normal(p.shape)
    return model.astype(dtype)


X_SHAPE = (1, 6, 6)


def assert_same_model(a, b, x):
    assert a.specs() == b.specs()
    assert [layer.trainable for layer in a] == [layer.trainable for layer in b]
    pa, pb = dict(a.named_params()), dict(b.named_params())
    assert list(pa) == list(pb)
    for name in pa:
        assert pa[name].dtype == pb[name].dtype, name
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))


@st.composite
def architectures(draw):
    """A random small conv net, its per-sample input shape, and a freeze count."""
    C = draw(st.integers(1, 3))
    H, W = draw(st.integers(4, 9)), draw(st.integers(4, 9))
    F = draw(st.integers(1, 4))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    pool = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    layers = [Conv2D(C, F, k, stride=s, padding=p, rng=rng), ReLU(), MaxPool2D(pool, stride=1)]
    try:
        flat = int(np.prod(Sequential(layers).output_shape((C, H, W))))
    except ValueError:
        assume(False)
    layers += [Flatten(), Dropout(draw(st.sampled_from([0.0, 0.5]))),
               Dense(flat, draw(st.integers(1, 5)), rng=rng)]
    model = Sequential(layers)
    model.freeze(draw(st.integers(0, len(layers))))
    return model, (C, H, W), seed


# --- round trips -------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(arch=architectures(), dtype=dtypes, via_bytes=st.booleans())
def test_round_trip_is_bit_identical(tmp_path_factory, arch, dtype, via_bytes):
    model, shape, seed = arch
    model.astype(dtype)
    x = np.random.default_rng(seed).standard_normal((3, *shape)).astype(dtype)
    if via_bytes:
        loaded = load(model.to_bytes())
    else:
        path = tmp_path_factory.mktemp("rt") / "model.npz"
        model.save(path)
        loaded = load(path)
    assert_same_model(model, loaded, x)
    # the loaded model is independent of the original
    next(iter(loaded[0].params.values()))[...] = 0
    assert not np.all(model[0].params["W"] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_preserves_trainable_flags_and_predictions(tmp_path, dtype):
    model = make_model(dtype=dtype).freeze(3)
    model[6].trainable = False  # a non-prefix frozen layer too
    path = tmp_path / "m.npz"
    save(model, path)
    loaded = load(str(path))
    assert [layer.trainable for layer in loaded] == [False] * 3 + [True] * 3 + [False, True]
    x = np.random.default_rng(0).standard_normal((5, *X_SHAPE)).astype(dtype)
    assert_same_model(model, loaded, x)
    assert loaded.predict_proba(x).dtype == dtype


def test_file_is_a_plain_npz_without_pickle(tmp_path):
    model = make_model()
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        files = set(npz.files)
        meta = json.loads(str(npz["__meta__"]))
        params = {k: npz[k] for k in files - {"__meta__"}}
    assert files == {"__meta__", "0.W", "0.b", "5.W", "5.b", "7.W", "7.b"}
    assert meta["format"] == "tinycnn.Sequential" and meta["version"] == 2
    assert meta["layers"] == model.specs()
    assert meta["trainable"] == [True] * len(model)
    for name, p in model.named_params():
        np.testing.assert_array_equal(params[name], p)


def test_to_bytes_equals_saved_file_contents(tmp_path):
    model = make_model(1)
    path = tmp_path / "m.npz"
    model.save(path)
    x = np.random.default_rng(2).standard_normal((2, *X_SHAPE)).astype(np.float32)
    assert_same_model(load(path.read_bytes()), load(model.to_bytes()), x)


def test_load_weights_into_same_architecture(tmp_path):
    src, dst = make_model(1), make_model(2)
    src.save(tmp_path / "m.npz")
    dst.freeze(2)
    assert load_weights(dst, tmp_path / "m.npz") is dst
    for (n, a), (_, b) in zip(src.named_params(), dst.named_params()):
        np.testing.assert_array_equal(a, b, err_msg=n)
    assert dst.frozen_prefix == 2  # flags of the target are kept


# --- rejection of unusable input --------------------------------------------------------------------------

def test_load_weights_into_different_architecture_names_the_layer(tmp_path):
    make_model(hidden=6).save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"layer 5 differs: this model has .*'out_features': 7.* "
                                         r"the file has .*'out_features': 6"):
        load_weights(make_model(hidden=7), tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"saved from a 8-layer model, this model has 2"):
        load_weights(Sequential([Flatten(), Dense(36, 4)]), tmp_path / "m.npz")


def test_load_weights_dtype_mismatch(tmp_path):
    make_model(dtype=np.float32).save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"parameter '0.W': expected float64\(3, 1, 3, 2\), got float32"):
        load_weights(make_model(dtype=np.float64), tmp_path / "m.npz")


def test_truncated_file(tmp_path):
    data = make_model().to_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.npz: not a readable tinycnn .npz"):
        load(path)
    with pytest.raises(ValueError, match="not a readable tinycnn .npz"):
        load_weights(make_model(), path)


@settings(max_examples=30, deadline=None)
@given(cut=st.floats(0.0, 0.999))
def test_any_truncation_is_rejected(cut):
    data = make_model().to_bytes()
    with pytest.raises(ValueError):
        load(data[:int(len(data) * cut)])


def test_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    rng = np.random.default_rng(0)
    np.savez(path, a=rng.standard_normal(3), b=rng.integers(0, 5, (2, 2)))
    with pytest.raises(ValueError, match=r"foreign.npz: .npz without tinycnn metadata .*\['a', 'b'\]"):
        load(path)
    with pytest.raises(ValueError, match="without tinycnn metadata"):
        load_weights(make_model(), path)


def test_random_bytes_file(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="not a readable tinycnn .npz"):
        load(path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable tinycnn .npz"):
        load(tmp_path / "empty.npz")


def test_foreign_npy_file_is_rejected_with_value_error(tmp_path):
    """A plain .npy (np.save) is a foreign file like any other: expect ValueError."""
    path = tmp_path / "array.npy"
    np.save(path, np.arange(6.0))
    with pytest.raises(ValueError, match="array.npy"):
        load(path)


def _npz_with_meta(meta, **arrays):
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(meta if isinstance(meta, str) else json.dumps(meta)), **arrays)
    return buf.getvalue()


def _meta(model, **changes):
    meta = {"format": "tinycnn.Sequential", "version": 2, "layers": model.specs(),
            "trainable": [True] * len(model)}
    meta.update(changes)
    return meta


def test_wrong_format_version():
    model = make_model()
    data = _npz_with_meta(_meta(model, version=3), **dict(model.named_params()))
    with pytest.raises(ValueError, match="expected format version 1 or 2, got 3"):
        load(data)
    with pytest.raises(ValueError, match="expected format version 1 or 2, got 3"):
        load_weights(model, data)


def test_a_version_1_file_loads_with_its_dense_weights_transposed():
    # version 1 stored Dense W as (in_features, out_features); conv weights are unchanged
    model = make_model()
    params = dict(model.named_params())
    old = {name: (p.T if isinstance(model[int(name.split(".")[0])], Dense) and name.endswith(".W") else p)
           for name, p in params.items()}
    assert old["5.W"].shape == (30, 6) and params["5.W"].shape == (6, 30)
    data = _npz_with_meta(_meta(model, version=1), **old)
    for loaded in (load(data), load_weights(make_model(seed=1), data)):
        for (name, p), (_, q) in zip(model.named_params(), loaded.named_params()):
            np.testing.assert_array_equal(q, p, err_msg=name)
            assert q.flags.c_contiguous
        x = np.random.default_rng(0).random((2, *X_SHAPE), dtype=np.float32)
        np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_wrong_format_name():
    model = make_model()
    data = _npz_with_meta(_meta(model, format="keras"), **dict(model.named_params()))
    with pytest.raises(ValueError, match="expected format 'tinycnn.Sequential', got 'keras'"):
        load(data)


def test_bad_metadata_json():
    with pytest.raises(ValueError, match="metadata is not valid JSON"):
        load(_npz_with_meta("{not json"))


def test_unknown_layer_type():
    model = make_model()
    meta = _meta(model)
    meta["layers"][1] = {"type": "GELU"}
    with pytest.raises(ValueError, match=r"layer 1 has unknown type 'GELU'"):
        load(_npz_with_meta(meta, **dict(model.named_params())))


def test_missing_parameter_array():
    model = make_model()
    params = dict(model.named_params())
    del params["5.W"]
    with pytest.raises(ValueError, match=r"missing \['5.W'\]"):
        load(_npz_with_meta(_meta(model), **params))


def test_metadata_without_layer_list_is_rejected_with_value_error():
    """Well-formed header but no "layers" entry: still an unusable file -> ValueError."""
    model = make_model()
    meta = _meta(model)
    del meta["layers"]
    data = _npz_with_meta(meta, **dict(model.named_params()))
    with pytest.raises(ValueError):
        load(data)
    with pytest.raises(ValueError):
        load_weights(model, data)


# Byte offsets inside a zip central-directory file header (PKZIP APPNOTE 4.3.12), which is
# what zipfile trusts: general-purpose flags at +8, compression method at +10.
_CD_FLAGS, _CD_METHOD = 8, 10


@pytest.mark.parametrize("offset,value", [(_CD_METHOD, 99), (_CD_FLAGS, 1)],
                         ids=["unknown-compression-method", "encrypted-flag"])
def test_corrupted_zip_directory_is_rejected_with_value_error(offset, value):
    """A damaged header field is an unusable file like a truncated one: ValueError, not
    zipfile's NotImplementedError ("That compression method is not supported") or
    RuntimeError ("... is encrypted, password required")."""
    data = bytearray(make_model().to_bytes())
    start = data.find(b"PK\x01\x02")
    assert start > 0
    data[start + offset] = value
    with pytest.raises(ValueError, match="<bytes>"):
        load(bytes(data))


def test_every_single_byte_corruption_is_rejected_or_harmless():
    """Flip each byte of a saved model in turn: load must either raise ValueError or
    return the very same model (a few zip header bytes are ignored by readers)."""
    model = Sequential([Dense(2, 2, rng=0), ReLU(), Dense(2, 1, rng=1)])
    data = model.to_bytes()
    x = np.ones((1, 2), dtype=np.float32)
    unexpected = {}
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0xFF
        try:
            loaded = load(bytes(bad))
        except ValueError:
            continue
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            unexpected.setdefault(type(exc).__name__, []).append((i, str(exc)[:60]))
            continue
        assert_same_model(model, loaded, x)
    assert not unexpected, f"non-ValueError exceptions for corrupted bytes: {unexpected}"


# --- atomic writes ---------------------------------------------------------------------------------------

def test_save_leaves_no_temp_files(tmp_path):
    for i in range(3):
        make_model(i).save(tmp_path / "m.npz")
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    save(make_model(), tmp_path / "other.npz")
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "other.npz"]


def test_failed_save_keeps_existing_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    make_model(1).save(path)
    before = path.read_bytes()

    def failing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a model ...")  # some bytes hit the temp file
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        make_model(2).save(path)
    with pytest.raises(OSError, match="disk full"):
        save(make_model(2), tmp_path / "new.npz")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temp file, no half-written new.npz
    x = np.zeros((1, *X_SHAPE), dtype=np.float32)
    assert_same_model(load(path), make_model(1), x)


def test_interrupt_during_save_also_cleans_up(tmp_path, monkeypatch):
    def interrupted(file, *args, **kwargs):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_model().save(tmp_path / "m.npz")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


# --- layer transfer ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", [1, 3, 6])
def test_prefix_save_and_transfer_into_another_model(tmp_path, m):
    source, target = make_model(1), make_model(2)
    untouched = {n: p.copy() for n, p in target.named_params() if int(n.split(".")[0]) >= m}
    source[:m].save(tmp_path / "prefix.npz")
    prefix = load(tmp_path / "prefix.npz")
    assert len(prefix) == m and prefix.specs() == source.specs()[:m]
    target[:m].load_state_dict(prefix.state_dict())  # through the slice: shared layers
    src, tgt = dict(source.named_params()), dict(target.named_params())
    for name, value in tgt.items():
        if int(name.split(".")[0]) < m:
            np.testing.assert_array_equal(value, src[name], err_msg=name)
        else:
            np.testing.assert_array_equal(value, untouched[name], err_msg=name)
    # load_weights into the slice works the same way
    third = make_model(3)
    load_weights(third[:m], tmp_path / "prefix.npz")
    for name, value in third[:m].named_params():
        np.testing.assert_array_equal(value, src[name])


def test_load_state_dict_rejects_mismatches():
    model = make_model()
    state = model.state_dict()
    state["9.W"] = np.zeros(1, dtype=np.float32)
    with pytest.raises(ValueError, match=r"unexpected \['9.W'\]"):
        model.load_state_dict(state)
    state = model.state_dict()
    state["5.W"] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"parameter '5.W': expected float32\(6, 30\), got float32\(2, 2\)"):
        model.load_state_dict(state)
    # a failed load changes nothing
    before = model.state_dict()
    bad = model.state_dict()
    bad["0.W"] = bad["0.W"] + 1
    bad["7.b"] = np.zeros(5, dtype=np.float32)
    with pytest.raises(ValueError):
        model.load_state_dict(bad)
    for name, p in model.named_params():
        np.testing.assert_array_equal(p, before[name])
