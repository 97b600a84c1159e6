"""What the serve-cloud and serve-edge commands share: token, shaping and address options,
logging, the ready file, and ``serve``: a server process's life from start to graceful stop."""
import ipaddress
import json
import logging
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Callable

from tinycnn.atomic import atomic_write

from ..threads import engine_threads
from ..timing import network
from .http import Server, ServerThread
from .shaping import Shape

log = logging.getLogger("cloudedge.server")

TOKEN_ENV = "CLOUDEDGE_TOKEN"


def add_server_args(parser, default_port):
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; use 0.0.0.0 only on a trusted network)")
    parser.add_argument("--port", type=int, default=default_port,
                        help=f"TCP port (default {default_port}; 0 = any free port)")
    parser.add_argument("--token", default=None,
                        help=f"shared secret for 'Authorization: Bearer' (default: ${TOKEN_ENV})")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    parser.add_argument("--max-body-mb", type=float, default=16.0,
                        help="largest request body accepted, MiB (default 16; larger gets 413)")
    parser.add_argument("--max-connections", type=int, default=64,
                        help="connections served at once; more get 503, but GET /health is still answered "
                             "(default 64)")
    parser.add_argument("--max-per-peer", type=int, default=0,
                        help="connections one client address may hold (default 0 = half of --max-connections)")
    parser.add_argument("--request-deadline", type=float, default=60.0,
                        help="seconds a client has to send a whole request, head and body; later gets 408 "
                             "(default 60)")
    parser.add_argument("--ready-file", default=None,
                        help="write the server's URL to this file once it listens (for scripts)")
    parser.add_argument("--threads", type=int, default=1,
                        help="engine threads, each running single-threaded BLAS (default 1; 0 = leave "
                             "the engine and BLAS as they are); see cloudedge.threads")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--json", action="store_true",
                        help="print JSON lines (listening, stopped + final metrics) instead of text")


def resolve_token(args):
    """The token from --token or the environment; None with --no-auth; ValueError if neither."""
    token = args.token or os.environ.get(TOKEN_ENV)
    if args.no_auth:
        if args.token:
            raise ValueError("--no-auth and --token contradict each other; pass one")
        if not is_loopback(args.host):
            log.warning("WARNING: --no-auth on --host %s: anyone who can reach this port may use every "
                        "route of this server; bind 127.0.0.1 or set a token", args.host)
            print(f"WARNING: --no-auth on --host {args.host}: anyone who can reach this port may use "
                  f"every route; bind 127.0.0.1 or set a token", file=sys.stderr)
        return None
    if not token:
        raise ValueError(f"no token: pass --token, set ${TOKEN_ENV}, or run with --no-auth")
    if len(token) < 8:
        raise ValueError(f"the token must have >= 8 characters, got {len(token)}")
    return token


def is_loopback(host):
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def max_body(args):
    if not args.max_body_mb > 0:
        raise ValueError(f"--max-body-mb must be > 0, got {args.max_body_mb}")
    return int(args.max_body_mb * 1024 * 1024)


def parse_wan(text):
    """'none' -> None; 'paper' -> cloudedge.timing.network.wan_link(); 'RATE,RTT' (KiB/s, ms) -> a Link."""
    if text in (None, "none"):
        return None
    if text == "paper":
        return network.wan_link()
    try:
        rate, rtt = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--wan must be 'none', 'paper' or 'RATE_KIB_S,RTT_MS', got {text!r}") from None
    return network.wan_link(rate * network.KiB, rtt / 1000)


def parse_access(text, custom=None):
    """'none' -> None; 'lte' / 'wifi' / '5g' -> that Link; 'custom' needs 'UP,DOWN,RTT' (KiB/s, KiB/s, ms)."""
    if text in (None, "none"):
        return None
    if text == "custom":
        return network.parse_custom_link(custom)
    return network.access_link(text)


def upload_shape(rate_kib):
    """The edge's uplink to the cloud capped at rate_kib KiB/s (None = no cap)."""
    if rate_kib is None:
        return None
    if not rate_kib > 0 or math.isinf(rate_kib):
        raise ValueError(f"--upload-rate must be a finite rate > 0 KiB/s, got {rate_kib}")
    return Shape(send_rate=rate_kib * network.KiB, name=f"upload<={rate_kib:g}KiB/s")


def setup_logging(level):
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def announce(args, event, **fields):
    if args.json:
        print(json.dumps({"event": event, **fields}), flush=True)
    else:
        details = ", ".join(f"{k}={v}" for k, v in fields.items() if not isinstance(v, (dict, list)))
        print(f"{event}: {details}", flush=True)


def write_ready(path, url):
    if path:
        with atomic_write(path) as f:
            f.write(url.encode())


def wait_for_signal():
    """Block until SIGTERM or SIGINT; returns the signal's name."""
    got = {}
    done = threading.Event()

    def handler(signum, frame):
        got["name"] = signal.Signals(signum).name
        done.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not done.wait(0.5):
            pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return got["name"]


@dataclass
class Service:
    """What one role (cloud or edge) brings to ``serve``: its App, the shaping of every
    connection (None: none), the fields of its "listening" line, and hooks: ``start`` once
    the HTTP server listens, ``stop`` once it has stopped, ``stopped`` for the fields of the
    "stopped" line."""
    app: object
    listening: dict
    shape: Shape | None = None
    start: Callable[[], None] = lambda: None
    stop: Callable[[], None] = lambda: None
    stopped: Callable[[], dict] = dict


def serve(args, role, build):
    """Run one server until SIGTERM or SIGINT, then stop gracefully. Both commands call this.

    Sets the BLAS threads and logging from args, resolves the token, calls
    ``build(args, token) -> Service``, serves its App on --host/--port with the connection
    limits, writes --ready-file, prints the "listening" line; on a signal it stops accepting,
    lets requests in flight finish, calls ``service.stop`` and prints the "stopped" line with
    the final request metrics. Returns the exit code 0."""
    with engine_threads(args.threads):
        setup_logging(args.log_level)
        token = resolve_token(args)
        service = build(args, token)
        thread = ServerThread(Server(service.app, args.host, args.port, shape=service.shape,
                                     max_connections=args.max_connections, max_per_peer=args.max_per_peer,
                                     request_deadline=args.request_deadline)).start()
        service.start()
        write_ready(args.ready_file, thread.url)
        announce(args, "listening", role=role, url=thread.url, **service.listening, auth=token is not None)
        signame = wait_for_signal()
        thread.stop()                 # no new requests; those in flight finish
        service.stop()
        announce(args, "stopped", role=role, signal=signame, **service.stopped(),
                 metrics=service.app.metrics.snapshot())
    return 0
