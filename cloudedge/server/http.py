"""The HTTP layer shared by the cloud and edge servers (standard library only).

An ``App`` maps (method, path) to a handler ``fn(request) -> Response``. The layer does,
for every request: bearer-token check (401), body size limit (413, checked on
Content-Length before reading), JSON errors for every failure (400/401/404/405/408/411/
413/500/503, a traceback goes to the server log, never to the client), per-route metrics,
optional link shaping of the connection, and these bounds on slow or greedy clients:

* an overall deadline for a request's head and body (``request_deadline``): a client that
  trickles bytes gets 408 and is closed, whatever its per-read pace;
* a cap on connections in flight (503), and a smaller cap per peer address, so one host
  cannot take every slot;
* at the cap, ``GET /health`` is still answered (a few spare threads read just its head).

One request per connection (HTTP/1.0 semantics): no idle keep-alive sockets, so a
graceful stop only waits for requests that are actually running.
"""
import hmac
import json
import logging
import re
import socket
import sys
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from . import prometheus
from .shaping import ShapedSocket

log = logging.getLogger("cloudedge.server")

DEFAULT_MAX_BODY = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0          # seconds a socket read or write may stall
DEFAULT_DEADLINE = 60.0         # seconds from accept to the last byte of a request's body
HEALTH_SPARE = 8                # threads that may answer /health while every slot is taken
HEALTH_HEAD_SECONDS = 2.0       # ... each reading at most this long for the request head
_INT = re.compile(r"-?[0-9]{1,18}\Z", re.ASCII)   # a plain ASCII decimal integer
LATENCY_WINDOW = 10_000         # latencies kept per route for percentiles
COUNTER_HELP = {                # the app counters, as GET /metrics in Prometheus form explains them
    "images_inferred": "Images answered by POST /infer",
    "objects_labeled": "Objects the cloud labeled with CloudCNN",
    "objects_relabel_avoided": "Objects sent again and answered from the cloud's label memory",
    "packages_sent": "Layer packages sent to edges",
    "rejected_busy": "Connections refused because every slot was taken",
    "deadline_408": "Requests not received within the request deadline (answered 408)",
}


class HttpError(Exception):
    """An error the client caused (or must be told about): status + message, sent as JSON."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = int(status)
        self.message = message


@dataclass
class Request:
    method: str
    path: str
    query: dict                 # name -> last value
    headers: object             # email.message.Message (case-insensitive get)
    body: bytes
    client: str
    received: float             # perf_counter when the body was fully read
    principal: str = "anyone"   # who the token says the caller is (App.authorize)

    def query_int(self, name, default=None, low=None, high=None):
        """An integer query parameter in [low, high]; HttpError(400) otherwise."""
        if name not in self.query:
            if default is None:
                raise HttpError(400, f"query parameter {name!r} is required, got none")
            return default
        text = self.query[name]
        if not _INT.match(text):
            raise HttpError(400, f"query parameter {name!r} must be a plain decimal integer, got {text!r}")
        value = int(text)
        if (low is not None and value < low) or (high is not None and value > high):
            raise HttpError(400, f"query parameter {name!r} must be in [{low}, {high}], got {value}")
        return value


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)

    @classmethod
    def json(cls, obj, status=200, headers=None):
        return cls(status, json.dumps(obj).encode(), "application/json", dict(headers or {}))

    @classmethod
    def binary(cls, data, content_type="application/octet-stream", headers=None):
        return cls(200, bytes(data), content_type, dict(headers or {}))


class Metrics:
    """Thread-safe counters: requests per route and status, body bytes in/out, latencies.

    A request's latency runs from its head being parsed to its answer being ready: the
    body upload is in it, sending the answer is not. ``snapshot()`` is the JSON view (latency
    percentiles over the last LATENCY_WINDOW requests); ``families()`` the Prometheus one
    (a latency histogram over every request).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests = {}          # "METHOD /path" -> {status: count}
        self.latency = {}           # "METHOD /path" -> deque of seconds
        self.histograms = {}        # "METHOD /path" -> prometheus.Histogram of seconds
        self.bytes_in = 0
        self.bytes_out = 0
        self.counters = {}          # app-defined counters

    def record(self, route, status, seconds, bytes_in, bytes_out):
        with self._lock:
            by_status = self.requests.setdefault(route, {})
            by_status[str(status)] = by_status.get(str(status), 0) + 1
            self.latency.setdefault(route, deque(maxlen=LATENCY_WINDOW)).append(seconds)
            histogram = self.histograms.setdefault(route, prometheus.Histogram())
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out
        histogram.observe(seconds)

    def add(self, name, amount=1):
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + amount

    def snapshot(self):
        """JSON-able state; latency percentiles in milliseconds over the last LATENCY_WINDOW."""
        with self._lock:
            latency = {}
            for route, values in self.latency.items():
                ms = np.asarray(values, dtype=float) * 1e3
                p50, p90, p99 = np.percentile(ms, [50, 90, 99])
                latency[route] = {"count": len(ms), "p50_ms": float(p50), "p90_ms": float(p90),
                                  "p99_ms": float(p99), "max_ms": float(ms.max())}
            return {"uptime_s": time.time() - self.started,
                    "requests": {r: dict(s) for r, s in self.requests.items()},
                    "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                    "latency": latency,
                    "counters": dict(self.counters)}

    def families(self):
        """The same counters as Prometheus metric families (prometheus.Family)."""
        def route_labels(route):
            method, path = route.split(" ", 1)
            return {"method": method, "path": path}

        with self._lock:
            requests = [({**route_labels(r), "status": s}, n) for r, by in self.requests.items() for s, n in by.items()]
            histograms = [(route_labels(r), h) for r, h in self.histograms.items()]
            counters = sorted(self.counters.items())
            bytes_in, bytes_out = self.bytes_in, self.bytes_out
        Family = prometheus.Family
        return [
            Family("cloudedge_uptime_seconds", "gauge", "Seconds since the server started.",
                   [({}, time.time() - self.started)]),
            Family("cloudedge_requests_total", "counter", "Requests answered, by method, path and status.", requests),
            Family("cloudedge_request_seconds", "histogram",
                   "Seconds from a request's head parsed to its answer ready (the body upload included).", histograms),
            Family("cloudedge_request_body_bytes_total", "counter", "Request body bytes received.", [({}, bytes_in)]),
            Family("cloudedge_response_body_bytes_total", "counter", "Response body bytes sent.", [({}, bytes_out)]),
        ] + [Family(f"cloudedge_{name}_total", "counter", COUNTER_HELP.get(name, name.replace("_", " ")) + ".",
                    [({}, value)]) for name, value in counters]


class App:
    """Routes plus the policies of one server.

    token: the secret expected as ``Authorization: Bearer <token>`` on every route except
    those registered with ``public=True``; its caller is the principal "shared". None
    disables the check (principal "anyone"). principals: more secrets, each naming its
    caller ({secret: "edge:e1"}); a route registered with ``allow=("edge",)`` accepts only
    principals of that kind (the part before ":").
    """

    def __init__(self, name, token=None, max_body=DEFAULT_MAX_BODY, principals=None):
        for secret in [token] + list(principals or {}):
            if secret is not None and (not isinstance(secret, str) or len(secret) < 8):
                raise ValueError(f"tokens must be strings of >= 8 characters, got "
                                 f"{'a shorter one' if isinstance(secret, str) else type(secret).__name__}")
        self.principals = dict(principals or {})
        if token is not None:
            self.principals[token] = "shared"
        if not isinstance(max_body, int) or max_body < 1:
            raise ValueError(f"max_body must be an int >= 1 byte, got {max_body!r}")
        self.name = name
        self.token = token
        self.max_body = max_body
        self.metrics = Metrics()
        self._routes = {}           # (method, path) -> (fn, public, max_body)

    def route(self, method, path, fn, public=False, max_body=None, allow=None):
        """allow: principal kinds that may call it (None: any holder of a valid token)."""
        self._routes[(method, path)] = (fn, public, self.max_body if max_body is None else max_body,
                                        None if allow is None else tuple(allow))

    def lookup(self, method, path):
        """(fn, public, max_body, allow) for a request; HttpError 404 / 405 if there is none."""
        if (method, path) in self._routes:
            return self._routes[(method, path)]
        allowed = sorted(m for m, p in self._routes if p == path)
        if allowed:
            raise HttpError(405, f"{path} accepts {', '.join(allowed)}, got {method}")
        known = sorted({p for _, p in self._routes})
        raise HttpError(404, f"no such path {path!r}; this {self.name} server has {', '.join(known)}")

    def authorize(self, headers, allow=None):
        """The caller's principal ("anyone" when no token is set); 401 / 403 otherwise."""
        if not self.principals:
            return "anyone"
        given = headers.get("Authorization", "")
        if not given.startswith("Bearer "):
            raise HttpError(401, "missing token: expected header 'Authorization: Bearer <token>'")
        presented, principal = given[len("Bearer "):].encode(), None
        for secret, name in self.principals.items():       # every secret compared, in constant time
            if hmac.compare_digest(presented, secret.encode()):
                principal = name
        if principal is None:
            raise HttpError(401, "wrong token")
        if allow is not None and principal.split(":")[0] not in allow:
            raise HttpError(403, f"this token may not use this route (it is for: {', '.join(allow)})")
        return principal

    def metrics_response(self, request, snapshot, families=()):
        """GET /metrics: the Prometheus text format (this app's request metrics, then `families`)
        when the request's Accept header asks for text/plain, else the JSON `snapshot`."""
        if prometheus.wants_text(request.headers.get("Accept") or ""):
            text = prometheus.render(self.metrics.families() + list(families))
            return Response(200, text.encode(), prometheus.CONTENT_TYPE)
        return Response.json(snapshot)


class _Handler(BaseHTTPRequestHandler):
    server_version = "cloudedge"
    sys_version = ""
    default_request_version = "HTTP/1.0"   # so even a garbled request line gets a status line
    timeout = DEFAULT_TIMEOUT

    def setup(self):
        self.timeout = self.server.request_timeout
        self._raw = self.request
        self._phase_lock = threading.Lock()
        self._phase = "reading"          # -> "handling" once the body is in, or "expired"
        self._watchdog = threading.Timer(self.server.request_deadline, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        shape = self.server.shape
        if shape is not None:
            self.request = ShapedSocket(self.request, shape)
        super().setup()

    def finish(self):
        self._watchdog.cancel()
        try:
            super().finish()
        finally:
            self.server.release_slot(self._raw)

    def _expire(self):
        """The deadline passed before the request was read: answer 408 and close."""
        with self._phase_lock:
            if self._phase != "reading":
                return
            self._phase = "expired"
        self.server.app.metrics.add("deadline_408")
        self.server.release_slot(self._raw)
        _send_raw(self._raw, 408, f"request not received within {self.server.request_deadline:g} s")
        try:
            self._raw.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            log.debug("shutdown after a deadline: %s", exc)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (OSError, ValueError) as exc:
            if self._phase != "expired":      # after 408 the socket is shut on purpose
                raise
            log.debug("request ended after its deadline: %s", exc)
            self.close_connection = True

    def parse_request(self):
        self._first_byte = time.perf_counter()   # the request line has just been read
        return super().parse_request()

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.address_string(), fmt % args)

    def send_error(self, code, message=None, explain=None):
        # http.server's own errors (bad request line, unknown method, ...) as JSON too
        self.close_connection = True
        if not self._start_handling():
            return
        self.server.release_slot(self._raw)
        self._send(Response.json({"error": message or HTTPStatus(code).phrase, "status": code}, code))

    def _start_handling(self):
        """Leave the reading phase; False if the deadline already answered 408."""
        self._watchdog.cancel()
        with self._phase_lock:
            if self._phase == "expired":
                return False
            self._phase = "handling"
            return True

    def _send(self, response):
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Connection", "close")
        for key, value in response.headers.items():
            self.send_header(key, str(value))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _dispatch(self):
        app, start = self.server.app, time.perf_counter()
        url = urllib.parse.urlsplit(self.path)
        route, body = f"{self.command} {url.path}", b""
        try:
            fn, public, max_body, allow = app.lookup(self.command, url.path)
            principal = "anyone" if public else app.authorize(self.headers, allow)
            body = self._read_body(max_body)
            if not self._start_handling():
                self.close_connection = True
                return
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            request = Request(self.command, url.path, query, self.headers, body,
                              self.client_address[0], time.perf_counter(), principal)
            response = fn(request)
            # recv: request line to last body byte; server: last body byte to answer ready
            response.headers.setdefault("X-Recv-Seconds", f"{request.received - self._first_byte:.6f}")
            response.headers.setdefault("X-Server-Seconds", f"{time.perf_counter() - request.received:.6f}")
        except HttpError as exc:
            if not self._start_handling():
                self.close_connection = True
                return
            response = Response.json({"error": exc.message, "status": exc.status}, exc.status)
            if exc.status in (404, 405):
                route = f"{self.command} <unknown>"  # bounded metric keys
        except Exception:  # a bug or an unexpected state: log it, tell the client only "500"
            if not self._start_handling():
                self.close_connection = True
                return
            log.exception("%s: %s %s failed", app.name, self.command, url.path)
            response = Response.json({"error": "internal server error (see the server log)",
                                      "status": 500}, 500)
        if response.status >= 400:
            self.close_connection = True
        # recorded before sending, so a client that has its answer also sees it counted
        app.metrics.record(route, response.status, time.perf_counter() - start, len(body),
                           0 if self.command == "HEAD" else len(response.body))
        # free the slot before the client can have its answer, so a client that got one never
        # finds its own finished request still holding a slot
        self.server.release_slot(self._raw)
        self._send(response)
        if response.status >= 400 and not body and self.headers.get("Content-Length", "0") != "0":
            self._drain()

    def _read_body(self, max_body):
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(411, "chunked bodies are not accepted: send Content-Length")
        values = self.headers.get_all("Content-Length") or []
        if len(values) > 1:
            raise HttpError(400, f"exactly one Content-Length header is allowed, got {len(values)}: {values!r}")
        text = values[0] if values else None
        if text is None:
            if self.command in ("POST", "PUT"):
                raise HttpError(411, "Content-Length header is required")
            return b""
        if not _INT.match(text) or text.startswith("-"):
            raise HttpError(400, f"Content-Length must be a plain decimal integer >= 0, got {text!r}")
        length = int(text)
        if length > max_body:
            raise HttpError(413, f"body of {length} bytes is larger than this route's limit of "
                                 f"{max_body} bytes")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise HttpError(408, f"the body stalled: expected {length} bytes, none came for "
                                 f"{self.timeout:g} s") from None
        except ConnectionError as exc:
            raise HttpError(400, f"the connection broke while reading the body: {exc}") from None
        if len(body) != length:
            raise HttpError(400, f"body ended after {len(body)} of {length} bytes")
        return body

    def _drain(self, limit=4 * 1024 * 1024, seconds=2.0):
        """After refusing a body unread: stop sending, then read and drop what the client is
        still sending (bounded), so it gets to read our answer instead of a reset."""
        self.wfile.flush()
        deadline = time.monotonic() + seconds
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.2)
            while limit > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(limit, 65536))
                if not chunk:
                    break
                limit -= len(chunk)
        except OSError as exc:   # timeouts and resets: the client is done either way
            log.debug("drain after an error response stopped: %s", exc)

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()


class Server(ThreadingHTTPServer):
    """A threaded HTTP server for an App: one thread per connection, at most
    ``max_connections`` at once and ``max_per_peer`` from one address (more get 503, except
    ``GET /health``), request threads joined on close.
    request_timeout: seconds a socket read or write may stall (a stalled body gets 408);
    request_deadline: seconds from accept to the end of the body, however the bytes trickle."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, app, host="127.0.0.1", port=0, shape=None, max_connections=64,
                 request_timeout=DEFAULT_TIMEOUT, request_deadline=DEFAULT_DEADLINE, max_per_peer=None):
        if request_deadline <= 0 or request_timeout <= 0:
            raise ValueError(f"need request_timeout > 0 and request_deadline > 0, got {request_timeout}, "
                             f"{request_deadline}")
        self.app = app
        self.shape = shape
        self.request_timeout = request_timeout
        self.request_deadline = request_deadline
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer or max(1, max_connections // 2)
        self._lock = threading.Lock()
        self._held = {}             # socket -> peer address, for connections holding a slot
        self._per_peer = {}         # peer address -> connections holding a slot
        self._spare = threading.BoundedSemaphore(HEALTH_SPARE)
        super().__init__((host, port), _Handler)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def _take_slot(self, request, peer):
        with self._lock:
            if len(self._held) >= self.max_connections or self._per_peer.get(peer, 0) >= self.max_per_peer:
                return False
            self._held[request] = peer
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
            return True

    def release_slot(self, request):
        """Free the slot of a connection (idempotent: the first call wins)."""
        with self._lock:
            peer = self._held.pop(request, None)
            if peer is not None:
                self._per_peer[peer] -= 1
                if not self._per_peer[peer]:
                    del self._per_peer[peer]

    def process_request(self, request, client_address):
        if self._take_slot(request, client_address[0]):
            super().process_request(request, client_address)
            return
        self.app.metrics.add("rejected_busy")
        if self._spare.acquire(blocking=False):     # maybe a health check: read its head briefly
            threading.Thread(target=self._answer_at_cap, args=(request,), daemon=True).start()
            return
        _send_raw(request, 503, "server busy: too many connections in flight")
        self.shutdown_request(request)

    def _answer_at_cap(self, request):
        """At the cap: answer GET /health from the server's health route, 503 to the rest."""
        try:
            request.settimeout(HEALTH_HEAD_SECONDS)
            head, deadline = b"", time.monotonic() + HEALTH_HEAD_SECONDS
            while b"\r\n" not in head and len(head) < 1024 and time.monotonic() < deadline:
                chunk = request.recv(1024 - len(head))
                if not chunk:
                    break
                head += chunk
            if head.split(b"\r\n", 1)[0].split(b" ")[:2] == [b"GET", b"/health"]:
                fn = self.app.lookup("GET", "/health")[0]
                response = fn(Request("GET", "/health", {}, {}, b"", "", time.perf_counter()))
                _send_raw(request, response.status, body=response.body)
            else:
                _send_raw(request, 503, "server busy: too many connections in flight")
        except (OSError, HttpError) as exc:
            log.debug("answer at the connection cap failed: %s", exc)
        finally:
            self._spare.release()
            self.shutdown_request(request)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.release_slot(request)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):   # the client went away: not our bug
            log.info("%s: connection from %s dropped: %s", self.app.name, client_address, exc)
            return
        log.exception("%s: connection from %s failed", self.app.name, client_address)


def _send_raw(sock, status, message="", body=None):
    """A whole JSON response written straight to a socket (outside a handler)."""
    if body is None:
        body = json.dumps({"error": message, "status": status}).encode()
    head = (f"HTTP/1.0 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    try:
        sock.settimeout(1.0)
        sock.sendall(head + body)
    except OSError as exc:
        log.debug("could not send %d to a client: %s", status, exc)


class ServerThread:
    """Run a Server in a background thread; ``stop()`` is the graceful shutdown:
    stop accepting, let requests in flight finish, close the socket."""

    def __init__(self, server):
        self.server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{server.app.name}-http", daemon=True)
        self._stopped = False

    @property
    def url(self):
        return self.server.url

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        self.server.shutdown()
        self.server.server_close()   # joins request threads
        self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
