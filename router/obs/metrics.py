"""Prometheus metric families on an injected registry (a fresh one per app, so tests never collide).

Request metrics are observed once per request from its context, on counters and histograms
without prometheus-client's per-update lock (`tally`: the loop's thread is the only one that
updates or reads them). Node gauges are read from the fleet at scrape time by a collector, so
the request path never touches them. Every label is
bounded: models the fleet knows (else "unknown"), node names and key names from the fleet file.
docs/metrics.md lists every family and the OpenTelemetry / vLLM name each one matches.
(Just over 300 lines: every metric family lives here, in one module, as issue 12 asked.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from router.context import RequestContext
from router.fleet.registry import Fleet
from router.modelnames import public_id
from router.obs.rates import RateWindow
from router.obs.tally import Counter, Histogram

# LLM calls run from tens of milliseconds (a cached short reply) to minutes (long generations).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
                    300.0, 600.0)  # fmt: skip
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
HEALTH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QueueOutcome = Literal["admitted", "timeout", "cancelled"]


class FleetCollector(Collector):
    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "jarvis_node_up", "1 if the node passed its last health check", labels=["node"]
        )
        in_flight = GaugeMetricFamily(
            "jarvis_node_in_flight",
            "Requests running on the node: this replica's, plus other replicas' as coordination "
            "last saw them",
            labels=["node"],
        )
        local_in_flight = GaugeMetricFamily(
            "jarvis_node_local_in_flight",
            "Requests this replica has running on the node",
            labels=["node"],
        )
        capacity = GaugeMetricFamily(
            "jarvis_node_capacity",
            "The node's max_concurrency from the fleet file",
            labels=["node"],
        )
        models = GaugeMetricFamily(
            "jarvis_node_models", "Models the node reported in /api/tags", labels=["node"]
        )
        healthy_nodes = GaugeMetricFamily(
            "jarvis_model_healthy_nodes",
            "Healthy nodes serving the model (0: requests for it fail)",
            labels=["model"],
        )
        in_rotation = GaugeMetricFamily(
            "jarvis_node_in_rotation",
            "1 if the node takes new requests: healthy, not drained, not ejected by its breaker",
            labels=["node"],
        )
        ejections = CounterMetricFamily(
            "jarvis_node_ejections",
            "Times the node's circuit breaker took it out of rotation",
            labels=["node"],
        )
        draining = GaugeMetricFamily(
            "jarvis_node_draining",
            "1 while an operator has drained the node (its in-flight requests finish)",
            labels=["node"],
        )
        per_model: dict[str, int] = {}
        for node in self._fleet.nodes.values():
            draining.add_metric([node.name], 1.0 if node.draining else 0.0)
            up.add_metric([node.name], 1.0 if node.healthy else 0.0)
            in_rotation.add_metric([node.name], 1.0 if node.in_rotation else 0.0)
            ejections.add_metric([node.name], node.breaker.ejections if node.breaker else 0)
            in_flight.add_metric([node.name], node.load)
            local_in_flight.add_metric([node.name], node.in_flight)
            capacity.add_metric([node.name], node.capacity)
            models.add_metric([node.name], len(node.models))
            # A node that goes down keeps its last model list, so its models stay here at 0.
            for model in node.models:
                per_model[model] = per_model.get(model, 0) + node.healthy
        for model, count in sorted(per_model.items()):
            healthy_nodes.add_metric([public_id(model)], count)
        yield from (up, in_flight, capacity, models, healthy_nodes, in_rotation, ejections)
        yield from (draining, local_in_flight)


class Metrics:
    def __init__(self, registry: CollectorRegistry, fleet: Fleet) -> None:
        self.registry = registry
        # Labelled children, remembered: the labels are bounded (fleet names, routes, statuses,
        # key names), and prometheus-client's own lookup takes a lock and re-validates each
        # time (about 5 % of the router's CPU per request under load).
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._routes: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self.requests = Counter(
            "jarvis_requests",
            "API requests answered",
            ["endpoint", "api", "model", "status_code"],
            registry=registry,
        )
        self.duration = Histogram(
            "jarvis_request_duration_seconds",
            "Time from request to the last byte of the answer",
            ["endpoint", "api", "model"],
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
        self.served = Counter(
            "jarvis_served_model_requests",
            "Requests by the public model asked and the node model that served them (a "
            "catalog entry's target, issue #15)",
            ["model", "served_model"],
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
        self.queue_depth = Gauge(
            "jarvis_queue_depth",
            "Requests waiting for a free slot (every suitable node at max_concurrency)",
            registry=registry,
        )
        self.queue_wait = Histogram(
            "jarvis_queue_wait_seconds",
            "Time requests waited in the admission queue, by how the wait ended",
            ["outcome"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=registry,
        )
        # Families only some configurations have: made by `enable_coordination` and
        # `enable_reloads`, so a router without Redis or a fleet file does not export them.
        self._coordination_up: Gauge | None = None
        self._coordination_errors: Counter | None = None
        self._reloads: Counter | None = None
        registry.register(FleetCollector(fleet))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        # Completion tokens per node over the last minute, for the status page.
        self._token_rates = {name: RateWindow() for name in fleet.nodes}

    def observe(self, ctx: RequestContext, end: float) -> None:
        # A model the fleet does not know is "unknown": clients cannot mint label values.
        model = ctx.model_label or ("unknown" if ctx.model is not None else "")
        requests, duration = self._per_route(ctx.endpoint, ctx.api, model, ctx.status)
        requests.inc()
        duration.observe(end - ctx.start)
        node = ctx.node
        if node is None:
            return
        child = self._child
        if ctx.served_model is not None and ctx.status == 200:
            # Bounded: node models some node listed (a request for another never gets here).
            child(self.served, model, ctx.served_model).inc()
        if ctx.ttft_s is not None:
            child(self.ttft, model, node).observe(ctx.ttft_s)
        if ctx.tpot_s is not None:
            child(self.tpot, model, node).observe(ctx.tpot_s)
        if ctx.prompt_tokens or ctx.completion_tokens:
            key = ctx.key.name if ctx.key is not None else ""
            child(self.prompt_tokens, model, node, key).inc(ctx.prompt_tokens)
            child(self.completion_tokens, model, node, key).inc(ctx.completion_tokens)
            window = self._token_rates.get(node)
            if window is None:  # a node added by a reload gets its window on its first answer
                window = self._token_rates[node] = RateWindow()
            window.add(end, ctx.completion_tokens)

    def _per_route(self, endpoint: str, api: str, model: str, status: int) -> tuple[Any, Any]:
        """The request counter and duration children for these labels, looked up once."""
        key = (endpoint, api, model, status)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = (
                self.requests.labels(endpoint, api, model, str(status)),
                self.duration.labels(endpoint, api, model),
            )
        return found

    def count_upstream(self, node: str, outcome: str) -> None:
        """One attempt on `node` ended with `outcome` (jarvis_upstream_requests_total)."""
        self._child(self.upstream, node, outcome).inc()

    def count_failover(self, model: str) -> None:
        self._child(self.failovers, model).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    # -- the slot store and the fleet file ------------------------------------------------------
    def watch_queue(self, waiting: Callable[[], int]) -> None:
        """jarvis_queue_depth reads `waiting()` (the slot store's waiters) at scrape time."""
        self.queue_depth.set_function(waiting)

    def observe_queue_wait(self, seconds: float, outcome: QueueOutcome) -> None:
        self._child(self.queue_wait, outcome).observe(seconds)

    def enable_coordination(self) -> None:
        """jarvis_coordination_up (0 until Redis answers) and _errors_total, with Redis only."""
        self._coordination_up = Gauge(
            "jarvis_coordination_up",
            "1 while node slots are shared through Redis, 0 while routing on local counts",
            registry=self.registry,
        )
        self._coordination_errors = Counter(
            "jarvis_coordination_errors",
            "Redis calls that failed; while Redis is away the router routes on local counts",
            ["operation"],
            registry=self.registry,
        )

    def coordination_up(self, up: bool) -> None:
        if self._coordination_up is not None:
            self._coordination_up.set(1 if up else 0)

    def count_coordination_error(self, operation: str) -> None:
        if self._coordination_errors is not None:
            self._child(self._coordination_errors, operation).inc()

    def enable_reloads(self) -> None:
        """jarvis_config_reloads_total, with a fleet file only; both results start at 0."""
        self._reloads = Counter(
            "jarvis_config_reloads",
            "Fleet file reloads, by result (error: refused, the running config stays)",
            ["result"],
            registry=self.registry,
        )
        for result in ("ok", "error"):
            self._reloads.labels(result)

    def count_reload(self, result: Literal["ok", "error"]) -> None:
        if self._reloads is not None:
            self._reloads.labels(result).inc()

    # -- reads for the admin API and the status page (not the request path) -----------------
    def tokens_per_second(self, node: str, now: float) -> float:
        """Completion tokens per second the node produced over the last minute."""
        window = self._token_rates.get(node)
        return window.rate(now) if window is not None else 0.0

    def upstream_outcomes(self) -> dict[str, dict[str, int]]:
        """node → outcome → attempts so far (the jarvis_upstream_requests_total samples)."""
        out: dict[str, dict[str, int]] = {}
        for family in self.upstream.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    node, outcome = sample.labels["node"], sample.labels["outcome"]
                    out.setdefault(node, {})[outcome] = int(sample.value)
        return out
