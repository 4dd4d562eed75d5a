"""Prometheus metrics in the text exposition format, without a client library.

Why our own: the service needs a handful of counters, histograms and gauges; the text
format (version 0.0.4) is simple and stable, and keeping it here avoids a dependency and
the global default registry of ``prometheus-client`` (one ``Metrics`` per app, so tests
can build many apps in one process).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def _fmt_labels(labels: Labels, extra: Labels = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Counter:
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help: str) -> None:
        self.name, self.help = name, help
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(_labels(labels), 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_fmt_labels(k)} {_num(v)}" for k, v in items]


class Histogram:
    """Observations counted into cumulative buckets, with sum and count, per label set."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float]) -> None:
        self.name, self.help = name, help
        self.buckets = tuple(sorted(buckets))
        self._data: dict[Labels, list[float]] = {}  # bucket counts..., sum, count
        self._lock = threading.Lock()

    def observe(self, value: float, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            row = self._data.setdefault(key, [0.0] * (len(self.buckets) + 2))
            for i in range(bisect_left(self.buckets, value), len(self.buckets)):
                row[i] += 1
            row[-2] += value
            row[-1] += 1

    def count(self, **labels: str) -> float:
        row = self._data.get(_labels(labels))
        return row[-1] if row else 0.0

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._data.items())
        out = []
        for key, row in items:
            for bound, n in zip(self.buckets, row, strict=False):
                out.append(
                    f"{self.name}_bucket{_fmt_labels(key, (('le', _num(bound)),))} {_num(n)}"
                )
            out.append(f"{self.name}_bucket{_fmt_labels(key, (('le', '+Inf'),))} {_num(row[-1])}")
            out.append(f"{self.name}_sum{_fmt_labels(key)} {_num(row[-2])}")
            out.append(f"{self.name}_count{_fmt_labels(key)} {_num(row[-1])}")
        return out


class Gauge:
    """A value read when metrics are scraped (a callback), optionally per label set."""

    kind = "gauge"

    def __init__(self, name: str, help: str, read: Callable[[], dict[Labels, float] | float]):
        self.name, self.help, self._read = name, help, read

    def samples(self) -> list[str]:
        value = self._read()
        if not isinstance(value, dict):
            return [f"{self.name} {_num(float(value))}"]
        return [f"{self.name}{_fmt_labels(k)} {_num(float(v))}" for k, v in sorted(value.items())]


class Metrics:
    """The service's metrics: request counts and latencies, batching, queue depth, jobs.

    Example:
        >>> m = Metrics()
        >>> m.requests.inc(method="GET", route="/healthz", status="200")
        >>> "duchenne_http_requests_total" in m.render()
        True
    """

    def __init__(self) -> None:
        self.requests = Counter(
            "duchenne_http_requests_total", "HTTP requests by method, route and status code."
        )
        self.latency = Histogram(
            "duchenne_http_request_duration_seconds",
            "Time from request start to response end, by route.",
            LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "duchenne_batch_size", "Images per shared analysis call.", BATCH_BUCKETS
        )
        self.images = Counter("duchenne_images_analyzed_total", "Images analysed.")
        self.faces = Counter("duchenne_faces_detected_total", "Faces found in analysed images.")
        self.rejected = Counter(
            "duchenne_rejected_total",
            "Requests refused by a limit before analysis, by reason and route.",
        )
        self.in_flight = 0  # HTTP requests being handled (updated by the middleware)
        self._gauges: list[Gauge] = [
            Gauge("duchenne_http_requests_in_flight", "HTTP requests being handled.", self._flight)
        ]

    def _flight(self) -> float:
        return float(self.in_flight)

    def gauge(self, name: str, help: str, read: Callable[[], dict[Labels, float] | float]) -> None:
        """Register (or replace, by name) a gauge read at scrape time, e.g. the queue depth."""
        self._gauges = [g for g in self._gauges if g.name != name]
        self._gauges.append(Gauge(name, help, read))

    def render(self) -> str:
        """All metrics in Prometheus text format 0.0.4."""
        lines: list[str] = []
        families = [
            self.requests,
            self.latency,
            self.batch_size,
            self.images,
            self.faces,
            self.rejected,
            *self._gauges,
        ]
        for family in families:
            lines.append(f"# HELP {family.name} {family.help}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            lines.extend(family.samples())
        return "\n".join(lines) + "\n"


def state_labels(counts: dict[str, int], key: str = "state") -> dict[Labels, float]:
    """Turn ``{"running": 1}`` into gauge samples labelled ``state="running"``."""
    return {((key, name),): float(n) for name, n in counts.items()}
