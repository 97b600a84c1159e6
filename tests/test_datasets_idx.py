"""Strict IDX reader and CIFAR record parser: good input, each defect, and fuzzing."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest_datasets import idx_bytes, isolated_data_env  # noqa: F401  (autouse fixture)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinycnn.datasets import decode_idx, parse_cifar_records, read_idx
from tinycnn.datasets.cifar import RECORD_BYTES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(idx_bytes(images, gz=gz))
    out = read_idx(path, ndim=3)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)
    out[0, 0, 0] = 99  # writable, owned by the caller


def test_read_idx_any_ndim_when_not_given():
    data = idx_bytes(np.zeros((2, 2, 2, 2), np.uint8))
    assert decode_idx(data).shape == (2, 2, 2, 2)


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


LABELS = idx_bytes(np.array([1, 2, 3], np.uint8))


@pytest.mark.parametrize(
    "data, ndim, message",
    [
        (idx_bytes(np.zeros((1, 2, 2), np.uint8)), 1,
         "expected magic 0x00000801 (labels, 1 dim), got 0x00000803"),
        (idx_bytes(np.zeros(3, np.uint8)), 3,
         "expected magic 0x00000803 (images, 3 dims), got 0x00000801"),
        (b"\x01" + LABELS[1:], None, "two zero bytes"),
        (LABELS[:2] + b"\x0d" + LABELS[3:], None, "expected data type code 0x08 (unsigned byte), got 0x0D"),
        (b"\x00\x00\x08\x00", None, "expected at least 1 dimension, got 0"),
        (LABELS[:4] + b"\x00\x00\x00\x00", None, "expected every dimension > 0"),
        (b"\x00\x00", None, "truncated header: expected a 4-byte magic number, got 2 bytes"),
        (LABELS[:6], None, "truncated header: expected 4 bytes of dimension sizes"),
        (LABELS[:-1], None, "truncated payload: shape (3,) needs 3 bytes, got 2 (1 missing)"),
        (LABELS + b"\x00\x00", None, "trailing bytes: expected the file to end after 11 bytes"),
        (b"", None, "got 0 bytes"),
    ],
)
def test_read_idx_defects_name_the_file(tmp_path, data, ndim, message):
    path = write(tmp_path, "t10k-labels-idx1-ubyte", data)
    with pytest.raises(ValueError) as info:
        read_idx(path, ndim=ndim)
    assert str(info.value).startswith("t10k-labels-idx1-ubyte: ")
    assert message in str(info.value)


def test_gzip_defects(tmp_path):
    good = gzip.compress(LABELS, mtime=0)
    cases = {
        "truncated gzip": good[:-5],
        "trailing inside gzip": gzip.compress(LABELS + b"\x07", mtime=0),
        "second gzip member": good + gzip.compress(b"\x00", mtime=0),
        "garbage after member": good + b"junk",
        "corrupt deflate": good[:10] + bytes(b ^ 0xFF for b in good[10:20]) + good[20:],
        "bad crc": good[:-8] + bytes(b ^ 1 for b in good[-8:-4]) + good[-4:],
    }
    for what, data in cases.items():
        path = write(tmp_path, "labels.gz", data)
        with pytest.raises(ValueError, match=r"^labels\.gz: ") as info:
            read_idx(path, ndim=1)
        assert info.value is not None, what


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


def _check_idx_outcome(data: bytes) -> None:
    try:
        out = decode_idx(data, name="fuzz")
    except ValueError as exc:
        assert str(exc).startswith("fuzz: ")
    else:
        assert out.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    _check_idx_outcome(data)
    _check_idx_outcome(b"\x1f\x8b" + data)  # gzip magic, then garbage


_VALID = idx_bytes(np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5))
_VALID_GZ = gzip.compress(_VALID, mtime=0)


@FUZZ
@given(
    base=st.sampled_from([_VALID, _VALID_GZ]),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
    tail=st.binary(max_size=8),
)
def test_fuzz_mutated_valid_bytes(base, flips, cut, tail):
    data = bytearray(base)
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _check_idx_outcome(bytes(data) + tail)


@FUZZ
@given(st.binary(max_size=50))
def test_fuzz_read_idx_from_disk(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "f.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + data)
    with pytest.raises(ValueError, match=r"^f\.gz: "):
        read_idx(path)


# --- CIFAR-10 binary records ---------------------------------------------------


def test_cifar_records_layout():
    record = bytes([3]) + bytes(range(256)) * 12  # 3072 pixel bytes
    images, labels = parse_cifar_records(record * 2, "b.bin")
    assert images.shape == (2, 3, 32, 32) and images.dtype == np.uint8
    assert labels.tolist() == [3, 3] and labels.dtype == np.int64
    # Plane-major: red plane first, row-major within a plane.
    assert images[0, 0, 0, :4].tolist() == [0, 1, 2, 3]
    assert images[0, 1, 0, 0] == 1024 % 256


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "expected at least one 3073-byte record, got 0 bytes"),
        (bytes(RECORD_BYTES + 5), "got 3078 bytes (1 records + 5 extra)"),
        (bytes(RECORD_BYTES - 1), "expected a multiple of 3073 bytes"),
        (bytes([10]) + bytes(3072), "label out of range: expected 0..9, got 10 in record 0"),
    ],
)
def test_cifar_defects(data, message):
    with pytest.raises(ValueError, match=r"^data_batch_1\.bin: ") as info:
        parse_cifar_records(data, "data_batch_1.bin")
    assert message in str(info.value)


@FUZZ
@given(st.one_of(st.binary(max_size=64), st.binary(min_size=3073, max_size=3073 * 2 + 3)))
def test_fuzz_cifar_records(data):
    try:
        images, labels = parse_cifar_records(data, "fuzz.bin")
    except ValueError as exc:
        assert str(exc).startswith("fuzz.bin: ")
    else:
        assert images.shape == (len(data) // 3073, 3, 32, 32)
        assert labels.max() < 10
