"""The Prometheus text exposition format (version 0.0.4), written out by hand.

Both servers answer ``GET /metrics`` in this format when the request's Accept header asks
for text/plain (a Prometheus scrape does); JSON stays the default. A metric family is a
name, a type, a help line and its samples:

    # HELP cloudedge_requests_total Requests answered, by method, path and status.
    # TYPE cloudedge_requests_total counter
    cloudedge_requests_total{method="POST",path="/infer",status="200"} 32
    # TYPE cloudedge_label_seconds histogram
    cloudedge_label_seconds_bucket{le="0.005"} 3        (observations <= 0.005 s)
    ...
    cloudedge_label_seconds_bucket{le="+Inf"} 7         (all of them)
    cloudedge_label_seconds_sum 0.0912
    cloudedge_label_seconds_count 7

Names follow Prometheus conventions: the prefix cloudedge_, base units (seconds, bytes),
counters ending in _total. Label values escape backslash, double quote and newline.
"""
import bisect
import math
import numbers
import re
import threading
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
KINDS = ("counter", "gauge", "histogram")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


class Histogram:
    """Counts of observations per bucket (upper bounds, increasing; +Inf implied), their sum
    and their count. Thread-safe."""

    def __init__(self, buckets=SECONDS_BUCKETS):
        self.buckets = tuple(float(b) for b in buckets)
        if list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError(f"bucket bounds must increase strictly, got {buckets}")
        self._lock = threading.Lock()
        self._counts = [0] * (len(self.buckets) + 1)    # per bucket, the last one for > every bound
        self._sum = 0.0

    def observe(self, value):
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1   # the first bound >= value
            self._sum += value

    def snapshot(self):
        """(cumulative counts per bound + the +Inf one, sum): one consistent reading."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        running, cumulative = 0, []
        for c in counts:
            running += c
            cumulative.append(running)
        return cumulative, total


@dataclass
class Family:
    """One metric: samples are [(labels dict, number)], or [(labels dict, Histogram)] for a histogram."""
    name: str
    kind: str
    help: str
    samples: list


def render(families):
    """The families as one exposition text (ends with a newline)."""
    lines = []
    for f in families:
        if not _NAME.match(f.name) or f.kind not in KINDS:
            raise ValueError(f"expected a metric name like cloudedge_x_total and a kind in {KINDS}, "
                             f"got {f.name!r} ({f.kind!r})")
        lines += [f"# HELP {f.name} {_escape(f.help, quote=False)}", f"# TYPE {f.name} {f.kind}"]
        for labels, value in f.samples:
            if f.kind != "histogram":
                lines.append(f"{f.name}{_labels(labels)} {_number(value)}")
                continue
            cumulative, total = value.snapshot()
            for bound, count in zip(value.buckets + (math.inf,), cumulative):
                lines.append(f"{f.name}_bucket{_labels({**labels, 'le': _number(bound)})} {count}")
            lines.append(f"{f.name}_sum{_labels(labels)} {_number(total)}")
            lines.append(f"{f.name}_count{_labels(labels)} {cumulative[-1]}")
    return "\n".join(lines) + "\n"


def wants_text(accept):
    """True if an Accept header value asks for text/plain at least as much as for JSON."""
    quality = {}
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media.lower()] = max(q, quality.get(media.lower(), 0.0))
    text = quality.get("text/plain", 0.0)
    return text > 0 and text >= quality.get("application/json", 0.0)


def _labels(labels):
    for key in labels:
        if not _LABEL.match(key):
            raise ValueError(f"expected a label name like route_name, got {key!r}")
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _escape(text, quote=True):
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _number(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"expected a number for a metric sample, got {value!r}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
