"""SHA-256 helpers: hashing files, checking them against pinned sums."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

from .sources import FileSpec, Source

__all__ = ["sha256_file", "read_sha256sums", "checksum_table", "check_file"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: str | PathLike[str]) -> str:
    """SHA-256 of a file's bytes, lower-case hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_sha256sums(path: str | PathLike[str]) -> dict[str, str]:
    """Parse a ``sha256sum``-style file (``<hex>  <name>`` per line) into {name: hex}."""
    path = Path(path)
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or not _HEX64.fullmatch(digest):
            raise ValueError(
                f"{path.name}: line {lineno}: expected '<64 hex digits>  <file name>', got {line!r}"
            )
        sums[parts[1].strip().lstrip("*")] = digest
    return sums


def _as_spec(value: FileSpec | str, name: str) -> FileSpec:
    spec = FileSpec(value) if isinstance(value, str) else value
    for digest in (spec.sha256, spec.payload_sha256):
        if digest is not None and not _HEX64.fullmatch(digest):
            raise ValueError(f"checksum for {name}: expected 64 lower-case hex digits, got {digest!r}")
    return spec


def checksum_table(
    source: Source, overrides: Mapping[str, FileSpec | str] | None = None
) -> dict[str, FileSpec]:
    """The source's pinned sums, with ``overrides`` (file name -> FileSpec or hex) on top."""
    table = {name: _as_spec(spec, name) for name, spec in source.files.items()}
    for name, value in (overrides or {}).items():
        table[name] = _as_spec(value, name)
    return table


def check_file(path: Path, spec: FileSpec, payload_sha256: str | None = None) -> None:
    """Raise ValueError unless the file's bytes or its decompressed payload match ``spec``.

    ``payload_sha256`` is the digest of the decompressed IDX bytes if the caller has
    it (see :func:`tinycnn.datasets.idx.read_idx_hashed`).
    """
    if payload_sha256 is not None and payload_sha256 == spec.payload_sha256:
        return
    got = sha256_file(path)
    if got == spec.sha256:
        return
    expected = f"file SHA-256 {spec.sha256}"
    came = f"file SHA-256 {got}"
    if spec.payload_sha256 is not None:
        expected += f" or decompressed-payload SHA-256 {spec.payload_sha256}"
        if payload_sha256 is not None:
            came += f", decompressed-payload SHA-256 {payload_sha256}"
    raise ValueError(f"{path.name} ({path}): checksum mismatch: expected {expected}; got {came}")
