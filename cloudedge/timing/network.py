"""Response-time model: response = upload + execution + result download.

Units: bytes, bytes/s, seconds. Sizes in the paper's style use K = 1024 bytes and
M = 1024 K for image sizes and link rates alike (the paper does not say which K it
means; with the same K on both sides, KB over KB/s is unit-free).

A ``Link`` is one network segment (up = device -> server direction). A ``Path`` is
the links a request crosses; the edge path is the access link alone (the edge
server sits by the base station, one hop away), the cloud path is the access link
plus a wide-area link. Transfers are streamed, so on a path

    transfer(n bytes) = sum of one-way latencies + n / (slowest link's rate)

with one-way latency = rtt / 2 + hops * hop_latency. Connection set-up (TCP/TLS
handshakes) and TCP slow start are not modelled.
"""
import math
import numbers
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
RESULT_BYTES = 40  # the answer sent back: 10 float32 class probabilities


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Link:
    """One network segment: rates in bytes/s, rtt and hop_latency in seconds."""
    name: str
    up: float
    down: float
    rtt: float
    hops: int = 1
    hop_latency: float = 0.0

    def __post_init__(self):
        for field in ("up", "down"):
            value = getattr(self, field)
            if not (_real(value) and math.isfinite(value) and value > 0):
                raise ValueError(f"link {self.name!r}: {field} must be a finite rate > 0 bytes/s, "
                                 f"got {value!r}")
        for field in ("rtt", "hop_latency"):
            value = getattr(self, field)
            if not (_real(value) and math.isfinite(value) and value >= 0):
                raise ValueError(f"link {self.name!r}: {field} must be finite seconds >= 0, "
                                 f"got {value!r}")
        if not isinstance(self.hops, int) or isinstance(self.hops, bool) or self.hops < 1:
            raise ValueError(f"link {self.name!r}: hops must be an int >= 1, got {self.hops!r}")

    @property
    def one_way(self):
        """Seconds for the first byte to cross the link: rtt/2 + hops * hop_latency."""
        return self.rtt / 2 + self.hops * self.hop_latency


# Access links. Rates of LTE and WiFi are the paper's (Section 4.2.1); every rtt and
# the 5G preset are our assumptions (docs/flops_and_timing.md says why).
ACCESS = {
    "lte": Link("lte", up=1000 * KiB, down=1.36 * MiB, rtt=0.030),
    "wifi": Link("wifi", up=9 * MiB, down=9 * MiB, rtt=0.003),
    # ITU-R M.2410 (IMT-2020) targets: user-experienced 50 Mbit/s up, 100 Mbit/s down;
    # user-plane latency 4 ms each way (eMBB).
    "5g": Link("5g", up=50e6 / 8, down=100e6 / 8, rtt=0.008),
}

# Wide-area link from the access network to the cloud. The paper gives no figure;
# 450 KiB/s is what its one reported upload saving implies (implied_wan_bandwidth:
# 55.42% at 512K over LTE with these rtts), rounded; rtt 40 ms is our assumption.
WAN_RATE = 450 * KiB
WAN_RTT = 0.040


def access_link(name):
    """The access-link preset "lte", "wifi" or "5g"."""
    if name not in ACCESS:
        raise ValueError(f"access link must be one of {sorted(ACCESS)}, got {name!r}")
    return ACCESS[name]


def wan_link(rate=WAN_RATE, rtt=WAN_RTT, hops=1, hop_latency=0.0):
    """The wide-area segment to the cloud, the same rate both ways."""
    return Link("wan", up=rate, down=rate, rtt=rtt, hops=hops, hop_latency=hop_latency)


@dataclass(frozen=True)
class Path:
    """The links between the device and a server, in order."""
    links: tuple

    def __post_init__(self):
        if not self.links or not all(isinstance(link, Link) for link in self.links):
            raise ValueError(f"a Path needs one or more Link objects, got {self.links!r}")

    @property
    def name(self):
        return "+".join(link.name for link in self.links)

    @property
    def one_way(self):
        return sum(link.one_way for link in self.links)

    @property
    def up_rate(self):
        return min(link.up for link in self.links)

    @property
    def down_rate(self):
        return min(link.down for link in self.links)

    def upload_time(self, nbytes):
        """Seconds to send nbytes (>= 0) from the device to the server."""
        return self.one_way + _bytes(nbytes) / self.up_rate

    def download_time(self, nbytes):
        """Seconds to send nbytes (>= 0) from the server to the device."""
        return self.one_way + _bytes(nbytes) / self.down_rate


def edge_path(access):
    """Device -> edge server: the access link only."""
    return Path((access,))


def cloud_path(access, wan=None):
    """Device -> cloud: the access link, then the wide-area link (default ``wan_link()``)."""
    return Path((access, wan_link() if wan is None else wan))


@dataclass(frozen=True)
class Execution:
    """Server-side seconds for a request of s bytes: base + per_byte * s.

    base: model inference; per_byte: preparing the uploaded image (measured, fitted).
    """
    base: float
    per_byte: float = 0.0

    def __call__(self, nbytes):
        return self.base + self.per_byte * _bytes(nbytes)

    def scaled(self, speedup):
        """The same work on a machine `speedup` times faster."""
        if not speedup > 0:
            raise ValueError(f"speedup must be > 0, got {speedup!r}")
        return Execution(self.base / speedup, self.per_byte / speedup)


@dataclass(frozen=True)
class Response:
    """One request's response time, split into its terms (seconds)."""
    upload: float
    execution: float
    download: float

    @property
    def total(self):
        return self.upload + self.execution + self.download


def response_time(path, nbytes, execution, result_bytes=RESULT_BYTES):
    """Upload nbytes over path, run execution (an Execution or seconds), download the result."""
    seconds = execution(nbytes) if isinstance(execution, Execution) else float(execution)
    if not seconds >= 0:
        raise ValueError(f"execution time must be >= 0 seconds, got {seconds!r}")
    return Response(path.upload_time(nbytes), seconds, path.download_time(result_bytes))


def reduction(baseline, improved):
    """Fractional saving of improved over baseline: 1 - improved / baseline."""
    if not baseline > 0:
        raise ValueError(f"baseline must be > 0, got {baseline!r}")
    return 1.0 - improved / baseline


@dataclass(frozen=True)
class Crossing:
    """Where the cloud answers faster than the edge, as a function of image size.

    cloud_wins: "never", "always", "below" (sizes < size) or "above" (sizes > size).
    """
    cloud_wins: str
    size: float = math.nan


def break_even_size(edge, cloud, edge_exec, cloud_exec, result_bytes=RESULT_BYTES):
    """Image size at which cloud and edge answer equally fast.

    edge, cloud: Paths; edge_exec, cloud_exec: Executions. Both response times are
    linear in the size s, so gap(s) = cloud - edge = a + b*s has one root at most.
    """
    def gap(s):
        return (response_time(cloud, s, cloud_exec, result_bytes).total
                - response_time(edge, s, edge_exec, result_bytes).total)

    a = gap(0.0)
    b = (1 / cloud.up_rate + cloud_exec.per_byte) - (1 / edge.up_rate + edge_exec.per_byte)
    if b == 0 or (a < 0) == (b < 0):
        return Crossing("always" if a < 0 else "never")
    return Crossing("below" if a < 0 else "above", -a / b)


def break_even_wan_rate(nbytes, access, edge_exec, cloud_exec, wan_rtt=WAN_RTT,
                        result_bytes=RESULT_BYTES, lo=1e3, hi=1e12):
    """The slowest wide-area rate (bytes/s) at which the cloud answers at least as fast
    as the edge for an image of nbytes, or None if no rate in [lo, hi] does.

    The cloud's response time falls as the rate grows (found by bisection in log rate).
    """
    edge_total = response_time(edge_path(access), nbytes, edge_exec, result_bytes).total

    def cloud_faster(rate):
        path = cloud_path(access, wan_link(rate, wan_rtt))
        return response_time(path, nbytes, cloud_exec, result_bytes).total <= edge_total

    if not cloud_faster(hi):
        return None
    if cloud_faster(lo):
        return lo
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if cloud_faster(mid) else (mid, hi)
        if hi / lo < 1 + 1e-9:
            break
    return hi


def implied_wan_bandwidth(access, saving, nbytes, wan_rtt=WAN_RTT):
    """The wide-area rate (bytes/s) at which uploading nbytes to the edge instead of the
    cloud saves the fraction `saving` of the cloud upload time.

    Solves edge = (1 - saving) * cloud for cloud = latencies + nbytes / min(access, wan);
    raises ValueError if no rate gives that saving.
    """
    if not 0 < saving < 1:
        raise ValueError(f"saving must be a fraction in (0, 1), got {saving!r}")
    edge = edge_path(access).upload_time(nbytes)
    transfer = edge / (1 - saving) - access.one_way - wan_link(rtt=wan_rtt).one_way
    rate = _bytes(nbytes) / transfer if transfer > 0 else math.inf
    if not rate < access.up:
        raise ValueError(f"a {saving:.2%} upload saving for {nbytes} bytes over {access.name} "
                         f"needs the access link to be the bottleneck already; no WAN rate gives it")
    return rate


def _bytes(nbytes):
    if not _real(nbytes) or not nbytes >= 0:
        raise ValueError(f"a size must be a number of bytes >= 0, got {nbytes!r}")
    return float(nbytes)


def parse_custom_link(text):
    """'UP,DOWN,RTT' (KiB/s, KiB/s, ms) -> a custom Link; ValueError naming the expected form."""
    try:
        up, down, rtt = (float(v) for v in (text or "").split(","))
    except ValueError:
        raise ValueError(f"--link custom needs --custom-link UP,DOWN,RTT (KiB/s, KiB/s, ms), "
                         f"got {text!r}") from None
    return Link("custom", up * KiB, down * KiB, rtt / 1000)
