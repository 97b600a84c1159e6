"""HTTP download of one file: bounded retries with backoff, SHA-256 check, atomic write.

The file is streamed into a temporary file in the destination folder, fsynced, and
renamed over the destination only after its SHA-256 matched; on any failure the
temporary file is removed, so a partial or bad download never appears as a file.
"""
from __future__ import annotations

import hashlib
import os
import http.client
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from ..atomic import atomic_write
from .errors import DownloadError

__all__ = ["download_file"]

# HTTP statuses worth another try; every other error status is final.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16


class _Incomplete(Exception):
    """The body ended before Content-Length bytes arrived."""


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str,
    *,
    progress: bool = True,
    attempts: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` if and only if its SHA-256 equals ``sha256``.

    Args:
        url: http(s) URL.
        dest: final path; its folder is created if missing.
        sha256: expected lower-case hex digest of the whole body.
        progress: show a tqdm progress bar on stderr.
        attempts: tries in all (>= 1) for network errors, incomplete bodies and
            HTTP 408/425/429/5xx; other HTTP errors are not retried.
        timeout: socket timeout in seconds for connect and each read.
        backoff: sleep ``backoff * 2**k`` seconds before retry k+1.

    Returns:
        ``Path(dest)``.

    Raises:
        ValueError: the body's SHA-256 differs (not retried; nothing is written).
        DownloadError: HTTP or network failure, after the allowed attempts.
    """
    if attempts < 1:
        raise ValueError(f"attempts: expected >= 1, got {attempts}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)  # a local failure here is not retried
    for attempt in range(1, attempts + 1):
        try:
            _download_once(url, dest, sha256, progress, timeout)
            return dest
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}"
            if exc.code not in _RETRY_STATUS:
                raise DownloadError(url, reason) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError, _Incomplete) as exc:
            # URLError wraps socket errors; OSError covers timeouts and resets mid-body.
            reason = _describe(exc)
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    raise DownloadError(url, f"{reason} ({attempts} attempts)")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, str):
        exc = exc.reason  # type: ignore[assignment]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _download_once(url: str, dest: Path, sha256: str, progress: bool, timeout: float) -> None:
    # atomic_write discards the partial file on any error, checksum mismatch included
    with atomic_write(dest) as out, urllib.request.urlopen(url, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length is not None and length.isdigit() else None
        hasher = hashlib.sha256()
        received = 0
        with tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024,
            desc=dest.name, disable=not progress, leave=False,
        ) as bar:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise _Incomplete(f"body ended after {received} of {total} bytes")
        got = hasher.hexdigest()
        if got != sha256:
            raise ValueError(
                f"{dest.name}: downloaded from {url}: checksum mismatch: expected SHA-256 "
                f"{sha256}, got {got} ({received} bytes); the download was discarded"
            )
