"""`router.obs.tally`: a scrape of its counters and histograms reads exactly as one of
prometheus-client's own, for the same updates (only the `_created` times differ)."""

from __future__ import annotations

import re

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from router.obs import tally

BUCKETS = (0.05, 0.1, 0.25, 1.0, 10.0)
_CREATED = re.compile(rb"^(\w+_created\{[^}]*\}) \S+$", re.MULTILINE)


def _scrape(counter: type, histogram: type, values: list[float]) -> bytes:
    registry = CollectorRegistry()
    c = counter("jarvis_things", "Things counted", ["node", "kind"], registry=registry)
    h = histogram("jarvis_wait_seconds", "Waits", ["node"], buckets=BUCKETS, registry=registry)
    for i, value in enumerate(values):
        node = f"n{i % 2}"
        c.labels(node, "a").inc()
        c.labels(node, "b").inc(value)
        h.labels(node).observe(value)
    c.labels("n9", "never")  # a child made but never counted shows as 0
    return _CREATED.sub(rb"\1 T", generate_latest(registry))


@pytest.mark.parametrize(
    "values",
    [
        [],
        [0.0, 0.05, 0.050001, 0.1, 7.0, 10.0, 11.0, 1e9],  # on, just over and past the bounds
        [0.3] * 5,
    ],
)
def test_a_scrape_reads_as_prometheus_clients_own(values: list[float]) -> None:
    ours = _scrape(tally.Counter, tally.Histogram, values)
    theirs = _scrape(prometheus_client.Counter, prometheus_client.Histogram, values)
    assert ours == theirs
    assert b'jarvis_things_total{kind="never",node="n9"} 0.0' in ours


def test_counters_refuse_negative_amounts_and_wrong_labels() -> None:
    registry = CollectorRegistry()
    c = tally.Counter("jarvis_x", "x", ["a"], registry=registry)
    with pytest.raises(ValueError):
        c.labels("1").inc(-1)
    with pytest.raises(ValueError):
        c.labels("1", "2")


def test_a_family_name_is_registered_once() -> None:
    registry = CollectorRegistry()
    tally.Counter("jarvis_x", "x", ["a"], registry=registry)
    with pytest.raises(ValueError):
        prometheus_client.Counter("jarvis_x", "x", ["a"], registry=registry)
