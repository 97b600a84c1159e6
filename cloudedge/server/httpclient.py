"""A small HTTP client over http.client (standard library), with link shaping and timings.

``call`` makes one request on a fresh connection (the servers close after each answer)
and returns a Reply with the body and the timing of the exchange:

    connect_s   TCP connect
    total_s     first request byte sent .. last response byte received
    head_s      first request byte sent .. response headers received
    recv_s      from the server: request line .. last body byte (X-Recv-Seconds)
    server_s    from the server: last body byte .. answer ready (X-Server-Seconds)

and, assuming the path's one-way latency is the same both ways,

    latency_s   = (head_s - recv_s - server_s) / 2      one one-way latency
    upload_s    = latency_s + recv_s                    first byte out .. last byte in
    download_s  = total_s - upload_s - server_s         answer ready .. last byte back

so upload_s + server_s + download_s == total_s. urllib is not used because a shaped
transport needs the socket, which http.client exposes.
"""
import http.client
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass

from .shaping import ShapedSocket

DEFAULT_TIMEOUT = 60.0


class CallError(Exception):
    """The server could not be reached or the exchange broke off."""


class StatusError(Exception):
    """The server answered with status >= 400; ``status`` and its JSON ``message``."""

    def __init__(self, status, message, url):
        super().__init__(f"{url}: HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes
    connect_s: float
    total_s: float
    head_s: float
    recv_s: float
    server_s: float

    @property
    def latency_s(self):
        return max(0.0, (self.head_s - self.recv_s - self.server_s) / 2)

    @property
    def upload_s(self):
        return self.latency_s + self.recv_s

    @property
    def download_s(self):
        return max(0.0, self.total_s - self.upload_s - self.server_s)

    def json(self):
        return json.loads(self.body)


class _Connection(http.client.HTTPConnection):
    def __init__(self, host, port, timeout, shape):
        super().__init__(host, port, timeout=timeout)
        self._shape = shape

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._shape is not None:
            self.sock = ShapedSocket(self.sock, self._shape)


def split_url(url):
    """'http://host:port' -> (host, port); ValueError for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"expected a base URL like http://127.0.0.1:8000, got {url!r}")
    return parts.hostname, parts.port or 80


def call(url, method, path, body=None, headers=None, token=None, shape=None, timeout=DEFAULT_TIMEOUT):
    """One request to base `url` + `path`. Returns a Reply for 2xx; raises StatusError for
    an answered error, CallError when no answer came."""
    host, port = split_url(url)
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Length"] = str(len(body))
    conn = _Connection(host, port, timeout, shape)
    try:
        start = time.perf_counter()
        try:
            conn.connect()
        except OSError as exc:
            raise CallError(f"{url}: cannot connect: {exc}") from exc
        connected = time.perf_counter()
        sent_error = None
        try:
            conn.request(method, path, body=body, headers=headers)
        except OSError as exc:   # e.g. the server refused a large body and closed: its answer may be there
            sent_error = exc
        try:
            response = conn.getresponse()
            head = time.perf_counter()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            cause = sent_error or exc
            raise CallError(f"{url}{path}: no complete answer: {cause}") from cause
        end = time.perf_counter()
    finally:
        conn.close()
    reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data,
                  connected - start, end - connected, head - connected,
                  _seconds(response, "X-Recv-Seconds"), _seconds(response, "X-Server-Seconds"))
    if response.status >= 400:
        raise StatusError(response.status, _error_message(data), url + path)
    return reply


def _seconds(response, name):
    value = response.getheader(name)
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def _error_message(data):
    try:
        return json.loads(data).get("error", data[:200].decode(errors="replace"))
    except (ValueError, AttributeError):
        return data[:200].decode(errors="replace")
