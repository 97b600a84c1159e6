"""Exceptions raised by tinycnn.datasets.

Malformed or mismatching data is always a plain ``ValueError``; only the
two conditions below have their own types.
"""
from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """A data file is in none of the places searched and could not be downloaded.

    The message lists every directory looked in, every URL tried with the reason it
    failed, and how to provide the file.
    """


class DownloadError(OSError):
    """One URL could not be fetched (HTTP error, network error, incomplete body).

    ``url`` is the URL, ``reason`` a short human-readable cause such as
    ``"HTTP 404 Not Found"`` or ``"connection refused (3 attempts)"``.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
