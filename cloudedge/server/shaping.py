"""Link emulation in the transport: a socket wrapper that paces bytes and adds latency.

A ``Shape`` is one end's view of a link: ``send_rate`` / ``recv_rate`` in bytes/s and a
one-way latency in seconds for each direction. ``ShapedSocket`` applies it to a real
TCP socket:

- sending: before the first byte of a message (the first send after a receive, or the
  first send of the connection) it waits ``send_delay``; then every chunk occupies the
  link for len/send_rate seconds, so ``sendall`` returns when the last byte has left.
- receiving: the first chunk of a message is held until ``recv_delay`` after it came
  off the socket; every chunk is then released no faster than ``recv_rate``.

HTTP is request then response on a connection, so "message" = one direction's turn and
each turn pays its one-way latency once. With a shaped client (the access link) and a
shaped server (a WAN in front of the cloud) in series, the bytes cross both pacers and
both latencies: transfer = sum of latencies + bytes / slowest rate, as cloudedge.timing.network
models it. TCP's own handshake is not delayed (cloudedge.timing.network does not model it either).
"""
import io
import math
import threading
import time
from dataclasses import dataclass

GRAIN = 0.005                        # pacing granularity, seconds of link time per chunk
MIN_CHUNK, MAX_CHUNK = 1024, 64 * 1024
SLACK = 2 * GRAIN                    # lateness of a wake-up still counted as pacing, not idling


def chunk_size(rate):
    """Bytes the link carries in GRAIN seconds, within [MIN_CHUNK, MAX_CHUNK]: timestamps
    taken on either side are then off by at most one chunk (~5 ms) of link time."""
    return MAX_CHUNK if math.isinf(rate) else int(min(max(rate * GRAIN, MIN_CHUNK), MAX_CHUNK))


@dataclass(frozen=True)
class Shape:
    """One end of a shaped link. Rates in bytes/s (math.inf = unpaced), delays in seconds."""
    send_rate: float = math.inf
    recv_rate: float = math.inf
    send_delay: float = 0.0
    recv_delay: float = 0.0
    name: str = "custom"

    def __post_init__(self):
        for field in ("send_rate", "recv_rate"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"shape {self.name!r}: {field} must be a rate > 0 bytes/s "
                                 f"(or inf), got {value!r}")
        for field in ("send_delay", "recv_delay"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"shape {self.name!r}: {field} must be finite seconds >= 0, "
                                 f"got {value!r}")

    @classmethod
    def client_side(cls, path):
        """The device end of a cloudedge.timing.network Path (or Link): sends up, receives down."""
        links = getattr(path, "links", (path,))
        one_way = sum(link.one_way for link in links)
        return cls(send_rate=min(link.up for link in links), recv_rate=min(link.down for link in links),
                   send_delay=one_way, recv_delay=one_way, name="+".join(link.name for link in links))

    @classmethod
    def server_side(cls, link):
        """The server end of a cloudedge.timing.network Link: receives up, sends down."""
        return cls(send_rate=link.down, recv_rate=link.up, send_delay=link.one_way,
                   recv_delay=link.one_way, name=link.name)

    def describe(self):
        """JSON-able summary: KiB/s and milliseconds."""
        def kib(rate):
            return None if math.isinf(rate) else rate / 1024
        return {"name": self.name, "send_kib_s": kib(self.send_rate), "recv_kib_s": kib(self.recv_rate),
                "send_delay_ms": self.send_delay * 1e3, "recv_delay_ms": self.recv_delay * 1e3}


def _schedule(free, now):
    """When the next chunk may start: when the pacer is free, even if our own wake-up came a
    little late (so sleep overshoots do not add up), but never banking idle time."""
    return free if now < free + SLACK else now


def _sleep_until(deadline):
    remaining = deadline - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)


class ShapedSocket:
    """A connected socket whose sends and receives are paced and delayed by a Shape.

    Offers what http.client and socketserver use: sendall, send, recv, recv_into,
    makefile("rb"), settimeout, setsockopt, close, shutdown; anything else is
    passed to the wrapped socket.
    """

    def __init__(self, sock, shape):
        if not isinstance(shape, Shape):
            raise TypeError(f"ShapedSocket needs a Shape, got {type(shape).__name__}")
        self._sock = sock
        self.shape = shape
        self._lock = threading.Lock()
        self._turn = None           # "send" or "recv": the direction of the current message
        self._recv_free = 0.0       # times at which the receive / send pacers are free again
        self._send_free = 0.0
        self._send_chunk = chunk_size(shape.send_rate)
        self._recv_chunk = chunk_size(shape.recv_rate)
        self._io_refs = 0           # open makefile() readers
        self._closing = False

    def __getattr__(self, name):
        return getattr(self._sock, name)

    # --- sending ---------------------------------------------------------------------
    def sendall(self, data):
        view = memoryview(data).cast("B")
        with self._lock:
            if self._turn != "send":
                self._turn = "send"
                time.sleep(self.shape.send_delay)
            step, rate = self._send_chunk, self.shape.send_rate
            for start in range(0, len(view), step):
                chunk = view[start:start + step]
                begin = _schedule(self._send_free, time.perf_counter())
                self._sock.sendall(chunk)
                self._send_free = begin + (0.0 if math.isinf(rate) else len(chunk) / rate)
                _sleep_until(self._send_free)

    def send(self, data):
        view = memoryview(data).cast("B")[:self._send_chunk]
        self.sendall(view)
        return len(view)

    # --- receiving ---------------------------------------------------------------------
    def recv_into(self, buffer, nbytes=0):
        view = memoryview(buffer).cast("B")
        limit = min(nbytes or len(view), len(view), self._recv_chunk)
        n = self._sock.recv_into(view[:limit])
        if n:
            self._pace_received(n)
        return n

    def recv(self, bufsize, flags=0):
        if flags:
            raise ValueError(f"ShapedSocket.recv supports flags=0 only, got {flags}")
        data = self._sock.recv(min(bufsize, self._recv_chunk))
        if data:
            self._pace_received(len(data))
        return data

    def _pace_received(self, n):
        now = time.perf_counter()
        with self._lock:
            if self._turn != "recv":
                self._turn = "recv"
                self._recv_free = now + self.shape.recv_delay
            start = _schedule(self._recv_free, now)
            rate = self.shape.recv_rate
            self._recv_free = start + (0.0 if math.isinf(rate) else n / rate)
            release = self._recv_free
        _sleep_until(release)

    def makefile(self, mode="rb", buffering=-1, **_):
        if mode not in ("rb", "r"):
            raise ValueError(f"ShapedSocket.makefile supports mode 'rb' only, got {mode!r}")
        # a small buffer: a line read (HTTP head) is released after one small chunk, not 8 KiB
        size = self._recv_chunk if buffering in (-1, None, 0) else buffering
        with self._lock:
            self._io_refs += 1
        return io.BufferedReader(_ShapedRaw(self), size)

    def close(self):
        # like socket.socket: the descriptor stays open while a makefile() reader is open
        with self._lock:
            self._closing = True
            last = self._io_refs == 0
        if last:
            self._sock.close()

    def _release_reader(self):
        with self._lock:
            self._io_refs -= 1
            last = self._closing and self._io_refs == 0
        if last:
            self._sock.close()


class _ShapedRaw(io.RawIOBase):
    """Raw byte stream over a ShapedSocket, for io.BufferedReader."""

    def __init__(self, shaped):
        super().__init__()
        self._shaped = shaped

    def readable(self):
        return True

    def readinto(self, buffer):
        return self._shaped.recv_into(buffer)

    def close(self):
        if not self.closed:
            self._shaped._release_reader()
        super().close()
