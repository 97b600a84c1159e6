"""Where data files are looked for, and fetching them when absent.

Search order for a file of data set ``source`` (first hit wins):

1. the ``data_dir`` argument, then ``data_dir/<subdir>``;
2. ``$TINYCNN_DATA/<subdir>``;
3. the user cache ``$XDG_CACHE_HOME/tinycnn/<subdir>`` (default ``~/.cache/tinycnn/<subdir>``);
4. the source's read-only system folders (Debian's ``/usr/share/datasets/fashion-mnist``
   for Fashion-MNIST; the package's embedded t10k files for MNIST);
5. download into the user cache, from ``mirror`` / ``$TINYCNN_MIRROR`` if set (as
   ``<mirror>/<subdir>/<file>``), else from the source's public mirrors.

In each folder a file ``name.gz`` may also be present decompressed, as ``name``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .download import download_file
from .errors import DatasetNotFoundError, DownloadError
from .sources import FileSpec, Source

__all__ = [
    "ENV_DATA", "ENV_MIRROR", "DEFAULT_OPTIONS", "DownloadOptions", "cache_root", "search_dirs",
    "candidate_names", "find_file", "mirror_urls", "fetch_file",
]

ENV_DATA = "TINYCNN_DATA"
ENV_MIRROR = "TINYCNN_MIRROR"


@dataclass(frozen=True)
class DownloadOptions:
    """How to download when a file is not found locally (see :func:`download_file`).

    ``mirror``: one base URL or several, laid out as ``<mirror>/<subdir>/<file>``;
    None means ``$TINYCNN_MIRROR`` if set, else the source's public mirrors.
    """

    enabled: bool = True
    mirror: str | Sequence[str] | None = None
    progress: bool = True
    attempts: int = 3
    timeout: float = 30.0
    backoff: float = 1.0


DEFAULT_OPTIONS = DownloadOptions()


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/tinycnn`` if that variable is an absolute path, else ``~/.cache/tinycnn``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "tinycnn"


def search_dirs(
    source: Source, data_dir: str | os.PathLike[str] | None = None
) -> list[tuple[str, Path]]:
    """The folders searched for ``source``'s files, in order, as (label, folder) pairs."""
    dirs: list[tuple[str, Path]] = []
    if data_dir is not None:
        dirs.append(("data_dir argument", Path(data_dir)))
        dirs.append(("data_dir argument", Path(data_dir) / source.subdir))
    env = os.environ.get(ENV_DATA)
    if env:
        dirs.append((f"${ENV_DATA}", Path(env) / source.subdir))
    dirs.append(("user cache", cache_root() / source.subdir))
    dirs.extend(source.system_dirs)
    return dirs


def candidate_names(file_name: str) -> tuple[str, ...]:
    """Names a file may have on disk: as published, and decompressed if it is a ``.gz``."""
    if file_name.endswith(".gz") and not file_name.endswith(".tar.gz"):
        return (file_name, file_name[: -len(".gz")])
    return (file_name,)


def find_file(
    source: Source, file_name: str, data_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """First existing copy of ``file_name`` in :func:`search_dirs` order, or None."""
    for _, folder in search_dirs(source, data_dir):
        for name in candidate_names(file_name):
            path = folder / name
            if path.is_file():
                return path
    return None


def mirror_urls(source: Source, file_name: str, mirror: str | Sequence[str] | None = None) -> list[str]:
    """URLs to try for ``file_name``, in order (see :class:`DownloadOptions`)."""
    if mirror is None:
        mirror = os.environ.get(ENV_MIRROR) or None
    if mirror is None:
        return [base.rstrip("/") + "/" + file_name for base in source.mirrors]
    bases = [mirror] if isinstance(mirror, str) else list(mirror)
    return [f"{base.rstrip('/')}/{source.subdir}/{file_name}" for base in bases]


def fetch_file(
    source: Source,
    file_name: str,
    checksums: Mapping[str, FileSpec],
    data_dir: str | os.PathLike[str] | None = None,
    options: DownloadOptions | None = None,
) -> Path:
    """Path of a local copy of ``file_name``, downloading it into the user cache if needed.

    A local copy is returned as found; callers verify it (its payload may be
    decompressed or re-compressed). A download is verified against
    ``checksums[file_name].sha256`` before it is kept.

    Raises:
        DatasetNotFoundError: not found locally and download disabled or failed for
            every URL; the message lists every place tried.
        ValueError: a download arrived with a wrong checksum from every URL tried
            that answered (nothing is cached).
    """
    found = find_file(source, file_name, data_dir)
    if found is not None:
        return found
    options = options or DEFAULT_OPTIONS
    attempts: list[str] = []
    mismatches: list[str] = []
    if options.enabled:
        if file_name not in checksums:
            raise ValueError(
                f"{file_name}: no pinned SHA-256 for this file; expected one of {sorted(checksums)}"
            )
        dest = cache_root() / source.subdir / file_name
        for url in mirror_urls(source, file_name, options.mirror):
            try:
                return download_file(
                    url, dest, checksums[file_name].sha256, progress=options.progress,
                    attempts=options.attempts, timeout=options.timeout, backoff=options.backoff,
                )
            except DownloadError as exc:
                attempts.append(f"{url}: {exc.reason}")
            except ValueError as exc:
                mismatches.append(str(exc))
    if mismatches:
        raise ValueError("; ".join(mismatches))
    raise DatasetNotFoundError(_not_found_message(source, file_name, data_dir, options, attempts))


def _not_found_message(
    source: Source,
    file_name: str,
    data_dir: str | os.PathLike[str] | None,
    options: DownloadOptions,
    attempts: list[str],
) -> str:
    names = " or ".join(candidate_names(file_name))
    lines = [f"{source.name}: {file_name} not found. Looked for {names} in:"]
    lines += [f"  - {folder} ({label})" for label, folder in search_dirs(source, data_dir)]
    if data_dir is None:
        lines.append("  (no data_dir argument given)")
    if not os.environ.get(ENV_DATA):
        lines.append(f"  (${ENV_DATA} is not set)")
    if not options.enabled:
        lines.append("Download: disabled (DownloadOptions(enabled=False)).")
    else:
        lines.append("Download failed:")
        lines += [f"  - {a}" for a in attempts] or ["  - no mirror URL to try"]
    either = " (gzip or decompressed)" if len(candidate_names(file_name)) > 1 else ""
    lines.append(
        f"To provide it offline, put {file_name}{either} into the data_dir "
        f"folder you pass, into ${ENV_DATA}/{source.subdir}/, or into "
        f"{cache_root() / source.subdir}/; or set ${ENV_MIRROR} to a mirror serving "
        f"<mirror>/{source.subdir}/{file_name}."
    )
    return "\n".join(lines)
