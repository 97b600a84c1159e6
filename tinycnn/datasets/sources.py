"""Pinned descriptions of the public data sets: file names, mirrors, SHA-256 sums.

Each file has two sums:

* ``sha256``: the file exactly as the public mirrors serve it (a ``.gz`` or
  ``.tar.gz``). Downloads are checked against this one.
* ``payload_sha256`` (IDX files only): the decompressed IDX bytes. Copies that were
  re-compressed (Debian's Fashion-MNIST package, the embedded MNIST test files) have
  different ``.gz`` bytes but the same payload, so local files pass if either sum
  matches.

Provenance (no sum here was typed from memory):

* MNIST ``.gz`` sums: tensorflow/datasets ``tensorflow_datasets/url_checksums/mnist.txt``
  (also ankane/torchvision-ruby ``lib/torchvision/datasets/mnist.rb``).
* Fashion-MNIST ``.gz`` sums: tensorflow/datasets
  ``tensorflow_datasets/url_checksums/fashion_mnist.txt`` (also ankane/torchvision-ruby
  ``lib/torchvision/datasets/fashion_mnist.rb``).
* CIFAR-10 binary archive: tensorflow/datasets ``tensorflow_datasets/url_checksums/cifar10.txt``;
  its six ``.bin`` members: ankane/torchvision-ruby ``lib/torchvision/datasets/cifar10.rb``
  (commit 9bf22501fd5c3d782244bbc8409a95d9dadb3808).
* Payload sums: MNIST t10k and all four Fashion-MNIST payloads were computed here
  from the embedded files and from Debian's ``dataset-fashion-mnist`` package, and
  each equals the value published in several public repositories; the MNIST train
  payload sums are those published values (not recomputed here: no local copy).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FileSpec", "Source", "MNIST", "FASHION_MNIST", "CIFAR10", "SOURCES"]


@dataclass(frozen=True)
class FileSpec:
    """Pinned SHA-256 sums of one file (lower-case hex).

    ``sha256`` is the file as served; ``payload_sha256`` the decompressed IDX bytes,
    or None for files that are not IDX.
    """

    sha256: str
    payload_sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """Where one data set's files live.

    ``subdir``: folder name under ``$TINYCNN_DATA``, the user cache and a mirror root.
    ``mirrors``: default base URLs; a file is fetched from ``base + file_name``.
    ``files``: pinned sums by file name.
    ``system_dirs``: read-only (label, folder) pairs searched after the user cache.
    """

    name: str
    subdir: str
    mirrors: tuple[str, ...]
    files: Mapping[str, FileSpec]
    system_dirs: tuple[tuple[str, Path], ...] = field(default_factory=tuple)


# The embedded MNIST test files ship with the package (see data/README.md).
EMBEDDED_DIR = Path(__file__).resolve().parent / "data"

MNIST = Source(
    name="MNIST",
    subdir="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    files={
        "train-images-idx3-ubyte.gz": FileSpec(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "train-labels-idx1-ubyte.gz": FileSpec(
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "t10k-images-idx3-ubyte.gz": FileSpec(
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "t10k-labels-idx1-ubyte.gz": FileSpec(
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    # Holds only the two t10k files; saves a download of the test split.
    system_dirs=(("embedded in tinycnn, t10k files only", EMBEDDED_DIR),),
)

FASHION_MNIST = Source(
    name="Fashion-MNIST",
    subdir="fashion-mnist",
    mirrors=(
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    files={
        "train-images-idx3-ubyte.gz": FileSpec(
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train-labels-idx1-ubyte.gz": FileSpec(
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "t10k-images-idx3-ubyte.gz": FileSpec(
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "t10k-labels-idx1-ubyte.gz": FileSpec(
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    # Debian's dataset-fashion-mnist: re-compressed .gz files, identical payloads.
    system_dirs=(("Debian package dataset-fashion-mnist", Path("/usr/share/datasets/fashion-mnist")),),
)

CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_MEMBER_DIR = "cifar-10-batches-bin"

CIFAR10 = Source(
    name="CIFAR-10",
    subdir="cifar10",
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    files={
        CIFAR10_ARCHIVE: FileSpec(
            "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
        ),
        "data_batch_1.bin": FileSpec(
            "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5"
        ),
        "data_batch_2.bin": FileSpec(
            "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed"
        ),
        "data_batch_3.bin": FileSpec(
            "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67"
        ),
        "data_batch_4.bin": FileSpec(
            "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48"
        ),
        "data_batch_5.bin": FileSpec(
            "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add"
        ),
        "test_batch.bin": FileSpec(
            "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b"
        ),
    },
)

SOURCES = {s.subdir: s for s in (MNIST, FASHION_MNIST, CIFAR10)}
