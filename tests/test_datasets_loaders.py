"""Loaders on real data (embedded MNIST t10k, Debian Fashion-MNIST) and on small fixtures."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
from conftest_datasets import (  # noqa: F401  (isolated_data_env is an autouse fixture)
    DEBIAN_FASHION,
    cifar_bytes,
    cifar_tar,
    idx_bytes,
    isolated_data_env,
    sha,
    small_mnist,
    write_mnist_split,
)

from tinycnn import datasets as ds
from tinycnn.datasets import embedded

OFFLINE = ds.DownloadOptions(enabled=False)
MNIST_T10K_FIRST = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
MNIST_T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
SAMPLE_TRAIN_COUNTS = [784, 908, 826, 808, 786, 714, 766, 822, 779, 807]
SAMPLE_TEST_COUNTS = [196, 227, 206, 202, 196, 178, 192, 206, 195, 202]


# --- embedded MNIST sample -------------------------------------------------------


def test_embedded_all():
    x, y = ds.load_mnist_sample("all")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert y[:10].tolist() == MNIST_T10K_FIRST
    assert np.bincount(y, minlength=10).tolist() == MNIST_T10K_COUNTS


def test_embedded_split_sizes_stratified_disjoint():
    x_tr, y_tr = ds.load_mnist_sample("train")
    x_te, y_te = ds.load_mnist_sample("test")
    assert x_tr.shape == (8000, 1, 28, 28) and x_te.shape == (2000, 1, 28, 28)
    assert np.bincount(y_tr, minlength=10).tolist() == SAMPLE_TRAIN_COUNTS
    assert np.bincount(y_te, minlength=10).tolist() == SAMPLE_TEST_COUNTS
    # Each class is split 80/20 to within one sample.
    all_counts = np.array(MNIST_T10K_COUNTS)
    assert np.all(np.abs(np.array(SAMPLE_TRAIN_COUNTS) - 0.8 * all_counts) < 1)
    i_tr, i_te = ds.sample_indices("train"), ds.sample_indices("test")
    assert np.all(np.diff(i_tr) > 0) and np.all(np.diff(i_te) > 0)
    assert np.intersect1d(i_tr, i_te).size == 0
    assert np.union1d(i_tr, i_te).tolist() == list(range(10000))
    x_all, y_all = ds.load_mnist_sample("all")
    np.testing.assert_array_equal(x_all[i_te], x_te)
    np.testing.assert_array_equal(y_all[i_tr], y_tr)


def test_embedded_split_is_deterministic_and_pinned():
    a, b = ds.sample_indices("test"), ds.sample_indices("test")
    np.testing.assert_array_equal(a, b)
    x1, y1 = ds.load_mnist_sample("train")
    x2, y2 = ds.load_mnist_sample("train")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    x1[0] = 5.0  # callers get their own copy
    assert ds.load_mnist_sample("train")[0][0].max() <= 1.0
    # Golden values: a change here means the documented split changed.
    assert a[:8].tolist() == [1, 2, 5, 7, 14, 19, 23, 26]
    digest = hashlib.sha256(a.astype("<i8").tobytes()).hexdigest()
    assert digest == "cd228294d04d77dd70690327b7e5a180d63974363d94239eefdb18ea38f20509"


def test_embedded_unknown_split():
    with pytest.raises(ValueError, match="split: expected one of"):
        ds.load_mnist_sample("val")


def test_embedded_checksum_is_verified(tmp_path, monkeypatch):
    bad = tmp_path / "data"
    shutil.copytree(embedded.EMBEDDED_DIR, bad)
    sums = (bad / "SHA256SUMS")
    sums.chmod(0o644)
    sums.write_text(sums.read_text().replace(sums.read_text()[:8], "00000000", 1))
    monkeypatch.setattr(embedded, "EMBEDDED_DIR", bad)
    embedded._embedded_uint8.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz \(embedded\): checksum mismatch"):
            ds.load_mnist_sample("all")
    finally:
        embedded._embedded_uint8.cache_clear()


def test_mnist_test_split_offline_uses_embedded_files():
    x, y = ds.load_mnist("test", options=OFFLINE)
    x_all, y_all = ds.load_mnist_sample("all")
    np.testing.assert_array_equal(x, x_all)
    np.testing.assert_array_equal(y, y_all)


# --- Debian Fashion-MNIST ----------------------------------------------------------

needs_debian = pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian package dataset-fashion-mnist not installed ({DEBIAN_FASHION} missing); "
    "install it with: apt-get install dataset-fashion-mnist",
)


@pytest.fixture(scope="module")
def fashion():
    return {
        split: ds.load_fashion_mnist(split, data_dir=DEBIAN_FASHION, options=OFFLINE)
        for split in ("train", "test")
    }


@needs_debian
def test_debian_fashion_mnist(fashion):
    (x_tr, y_tr), (x_te, y_te) = fashion["train"], fashion["test"]
    assert x_tr.shape == (60000, 1, 28, 28) and x_te.shape == (10000, 1, 28, 28)
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int64
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    assert np.bincount(y_tr).tolist() == [6000] * 10
    assert np.bincount(y_te).tolist() == [1000] * 10
    assert y_tr[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


@needs_debian
def test_debian_fashion_found_without_data_dir():
    path = ds.find_file(ds.FASHION_MNIST, "t10k-labels-idx1-ubyte.gz")
    assert path == DEBIAN_FASHION / "t10k-labels-idx1-ubyte.gz"
    x, y = ds.load_fashion_mnist("test", options=OFFLINE)
    assert x.shape == (10000, 1, 28, 28) and y[:3].tolist() == [9, 2, 1]


# --- small fixtures: good and corrupted ---------------------------------------------


def test_fixture_pair_loads(tmp_path):
    sums = write_mnist_split(tmp_path, "train", n=20)
    x, y = ds.load_mnist("train", data_dir=tmp_path, options=OFFLINE, checksums=sums)
    images, labels = small_mnist(20)
    assert x.shape == (20, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], images.astype(np.float32) / 255)
    np.testing.assert_array_equal(y, labels)


def test_decompressed_files_accepted_by_payload_sum(tmp_path):
    images, labels = small_mnist(10)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    sums = {
        "train-images-idx3-ubyte.gz": ds.FileSpec("0" * 64, sha(idx_bytes(images))),
        "train-labels-idx1-ubyte.gz": ds.FileSpec("0" * 64, sha(idx_bytes(labels))),
    }
    x, y = ds.load_mnist("train", data_dir=tmp_path, options=OFFLINE, checksums=sums)
    assert x.shape == (10, 1, 28, 28) and y.tolist() == labels.tolist()


def _load_with(tmp_path, images, labels):
    img, lab = idx_bytes(images, gz=True), idx_bytes(labels, gz=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(img)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(lab)
    sums = {"train-images-idx3-ubyte.gz": sha(img), "train-labels-idx1-ubyte.gz": sha(lab)}
    return ds.load_mnist("train", data_dir=tmp_path, options=OFFLINE, checksums=sums)


def test_count_mismatch(tmp_path):
    images, labels = small_mnist(10)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz / train-images-idx3-ubyte\.gz: "
                       r"count mismatch: expected as many labels as images \(10\), got 9"):
        _load_with(tmp_path, images, labels[:9])


def test_label_out_of_range(tmp_path):
    images, labels = small_mnist(10)
    labels[4] = 10
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: label out of range: "
                       r"expected 0\.\.9, got 10 at index 4"):
        _load_with(tmp_path, images, labels)


def test_image_dims_wrong(tmp_path):
    images = np.zeros((10, 28, 27), np.uint8)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: expected images of 28x28 "
                       r"pixels, got 28x27"):
        _load_with(tmp_path, images, small_mnist(10)[1])


def test_bad_magic_in_loader(tmp_path):
    images, labels = small_mnist(10)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: expected magic 0x00000801 "
                       r"\(labels, 1 dim\), got 0x00000803"):
        _load_with(tmp_path, images, images)


def test_wrong_checksum_names_file(tmp_path):
    sums = write_mnist_split(tmp_path, "train", n=10)
    sums["train-labels-idx1-ubyte.gz"] = "f" * 64
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz \(.*\): checksum mismatch: "
                       r"expected file SHA-256 f{64}"):
        ds.load_mnist("train", data_dir=tmp_path, options=OFFLINE, checksums=sums)


def test_pinned_sums_reject_foreign_files(tmp_path):
    write_mnist_split(tmp_path, "train", n=10)  # valid IDX, but not the real MNIST
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz .*checksum mismatch"):
        ds.load_mnist("train", data_dir=tmp_path, options=OFFLINE)


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match=r"split: expected one of \['test', 'train'\], got 'val'"):
        ds.load_mnist("val", data_dir=tmp_path)


# --- search order and not-found ---------------------------------------------------------


def test_search_order(tmp_path, monkeypatch):
    cache = ds.cache_root()
    explicit, env_root = tmp_path / "explicit", tmp_path / "env"
    monkeypatch.setenv("TINYCNN_DATA", str(env_root))
    name = "train-labels-idx1-ubyte.gz"
    for folder in (explicit, env_root / "mnist", cache / "mnist"):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"x")
    assert ds.find_file(ds.MNIST, name, data_dir=explicit) == explicit / name
    (explicit / name).unlink()
    assert ds.find_file(ds.MNIST, name, data_dir=explicit) == env_root / "mnist" / name
    (env_root / "mnist" / name).unlink()
    assert ds.find_file(ds.MNIST, name, data_dir=explicit) == cache / "mnist" / name
    (cache / "mnist" / name).unlink()
    assert ds.find_file(ds.MNIST, name, data_dir=explicit) is None
    labels = [label for label, _ in ds.search_dirs(ds.MNIST, explicit)]
    assert labels[:4] == ["data_dir argument", "data_dir argument", "$TINYCNN_DATA", "user cache"]


def test_cache_respects_xdg_and_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ds.cache_root() == tmp_path / "xdg" / "tinycnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert ds.cache_root() == tmp_path / "h" / ".cache" / "tinycnn"


def test_env_data_dir_is_used_for_loading(tmp_path, monkeypatch):
    sums = write_mnist_split(tmp_path / "root" / "mnist", "train", n=10)
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "root"))
    x, _ = ds.load_mnist("train", options=OFFLINE, checksums=sums)
    assert x.shape == (10, 1, 28, 28)


def test_not_found_lists_every_place(tmp_path, monkeypatch):
    cache = ds.cache_root()
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "env"))
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_mnist("train", data_dir=tmp_path / "mine", options=OFFLINE)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for place in (tmp_path / "mine", tmp_path / "mine" / "mnist", tmp_path / "env" / "mnist",
                  cache / "mnist", embedded.EMBEDDED_DIR):
        assert str(place) in msg
    assert "train-images-idx3-ubyte.gz or train-images-idx3-ubyte" in msg
    assert "DownloadOptions(enabled=False)" in msg and "TINYCNN_MIRROR" in msg


# --- CIFAR-10 (binary) ----------------------------------------------------------------


def test_cifar_extracted_folder(tmp_path):
    data = cifar_bytes(7)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(data)
    x, y = ds.load_cifar10("test", data_dir=tmp_path, options=OFFLINE,
                           checksums={"test_batch.bin": sha(data)})
    assert x.shape == (7, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    records = np.frombuffer(data, np.uint8).reshape(7, 3073)
    np.testing.assert_array_equal(y, records[:, 0])
    np.testing.assert_array_equal(x.reshape(7, -1), records[:, 1:] / np.float32(255))


def test_cifar_from_tarball_without_extracting(tmp_path):
    members = {f"data_batch_{i}.bin": cifar_bytes(2, seed=i) for i in range(1, 6)}
    archive = cifar_tar(members)
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(archive)
    x, y = ds.load_cifar10("train", data_dir=tmp_path, options=OFFLINE,
                           checksums={"cifar-10-binary.tar.gz": sha(archive)})
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [0, 1] * 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-binary.tar.gz"]


def test_cifar_errors(tmp_path):
    archive = cifar_tar({"test_batch.bin": cifar_bytes(2)})
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(archive)
    with pytest.raises(ValueError, match=r"cifar-10-binary\.tar\.gz .*checksum mismatch"):
        ds.load_cifar10("test", data_dir=tmp_path, options=OFFLINE)  # pinned real sum
    with pytest.raises(ValueError, match=r"cifar-10-binary\.tar\.gz: expected members .*data_batch_1"):
        ds.load_cifar10("train", data_dir=tmp_path, options=OFFLINE,
                        checksums={"cifar-10-binary.tar.gz": sha(archive)})
    bad = bytes([12]) + bytes(3072)
    (tmp_path / "test_batch.bin").write_bytes(bad)
    with pytest.raises(ValueError, match=r"test_batch\.bin: label out of range"):
        ds.load_cifar10("test", data_dir=tmp_path, options=OFFLINE, checksums={"test_batch.bin": sha(bad)})
    with pytest.raises(ds.DatasetNotFoundError, match="cifar-10-binary.tar.gz not found"):
        ds.load_cifar10("test", data_dir=tmp_path / "empty", options=OFFLINE)
