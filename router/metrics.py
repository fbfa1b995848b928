"""Prometheus metric families on an injected registry (a fresh one per app, so tests never collide).

Request metrics are observed once per request from its context. Node gauges are read from the
fleet at scrape time by a collector, so the request path never touches them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from router.context import RequestContext
from router.fleet import Fleet

# LLM calls run from tens of milliseconds (a cached short reply) to minutes (long generations).
DURATION_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
HEALTH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FleetCollector(Collector):
    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "jarvis_node_up", "1 if the node passed its last health check", labels=["node"]
        )
        in_flight = GaugeMetricFamily(
            "jarvis_node_in_flight", "Requests this router has running on the node", labels=["node"]
        )
        capacity = GaugeMetricFamily(
            "jarvis_node_capacity",
            "The node's max_concurrency from the fleet file",
            labels=["node"],
        )
        models = GaugeMetricFamily(
            "jarvis_node_models", "Models the node reported in /api/tags", labels=["node"]
        )
        for node in self._fleet.nodes.values():
            up.add_metric([node.name], 1.0 if node.healthy else 0.0)
            in_flight.add_metric([node.name], node.in_flight)
            capacity.add_metric([node.name], node.capacity)
            models.add_metric([node.name], len(node.models))
        yield from (up, in_flight, capacity, models)


class Metrics:
    def __init__(self, registry: CollectorRegistry, fleet: Fleet) -> None:
        self.registry = registry
        self.requests = Counter(
            "jarvis_requests",
            "API requests answered",
            ["endpoint", "model", "status_code"],
            registry=registry,
        )
        self.duration = Histogram(
            "jarvis_request_duration_seconds",
            "Time from request to the last byte of the answer",
            ["endpoint", "model"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "jarvis_time_to_first_token_seconds",
            "Time from request to the first generated token (streams)",
            ["model", "node"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tpot = Histogram(
            "jarvis_time_per_output_token_seconds",
            "Mean time between output tokens after the first (streams)",
            ["model", "node"],
            buckets=TPOT_BUCKETS,
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "jarvis_prompt_tokens",
            "Prompt tokens, as Ollama counted",
            ["model", "node", "api_key"],
            registry=registry,
        )
        self.completion_tokens = Counter(
            "jarvis_completion_tokens",
            "Completion tokens, as Ollama counted",
            ["model", "node", "api_key"],
            registry=registry,
        )
        self.upstream = Counter(
            "jarvis_upstream_requests",
            "Requests sent to nodes, by how they ended",
            ["node", "outcome"],
            registry=registry,
        )
        self.failovers = Counter(
            "jarvis_failovers", "Requests retried on another node", ["model"], registry=registry
        )
        self.health_duration = Histogram(
            "jarvis_health_check_duration_seconds",
            "Time a node took to answer its health check",
            ["node"],
            buckets=HEALTH_BUCKETS,
            registry=registry,
        )
        registry.register(FleetCollector(fleet))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    def observe(self, ctx: RequestContext, end: float) -> None:
        model = ctx.model_label
        self.requests.labels(ctx.endpoint, model, str(ctx.status)).inc()
        self.duration.labels(ctx.endpoint, model).observe(end - ctx.start)
        node = ctx.node
        if node is None:
            return
        if ctx.ttft_s is not None:
            self.ttft.labels(model, node).observe(ctx.ttft_s)
        if ctx.tpot_s is not None:
            self.tpot.labels(model, node).observe(ctx.tpot_s)
        if ctx.prompt_tokens or ctx.completion_tokens:
            key = ctx.key.name if ctx.key is not None else ""
            self.prompt_tokens.labels(model, node, key).inc(ctx.prompt_tokens)
            self.completion_tokens.labels(model, node, key).inc(ctx.completion_tokens)
