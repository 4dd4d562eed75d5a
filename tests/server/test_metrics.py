"""The Prometheus text renderer."""

from __future__ import annotations

from duchenne.server.metrics import Histogram, Metrics, state_labels


def test_histogram_buckets_are_cumulative():
    h = Histogram("x_seconds", "help", (0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v, route="/a")
    lines = h.samples()
    assert 'x_seconds_bucket{route="/a",le="0.1"} 2' in lines
    assert 'x_seconds_bucket{route="/a",le="1"} 3' in lines
    assert 'x_seconds_bucket{route="/a",le="+Inf"} 4' in lines
    assert 'x_seconds_count{route="/a"} 4' in lines
    assert h.count(route="/a") == 4


def test_labels_are_escaped_and_gauges_read_live():
    m = Metrics()
    m.requests.inc(route='a"b\\c\nd')
    depth = [3]
    m.gauge("q", "queue", lambda: depth[0])
    m.gauge("jobs", "by state", lambda: state_labels({"running": 1}))
    text = m.render()
    assert 'route="a\\"b\\\\c\\nd"' in text
    assert "\nq 3\n" in text and 'jobs{state="running"} 1' in text
    depth[0] = 5
    m.gauge("q", "queue", lambda: depth[0])  # re-registering replaces, never duplicates
    assert m.render().count("# TYPE q gauge") == 1 and "\nq 5\n" in m.render()
