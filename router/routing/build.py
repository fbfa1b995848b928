"""Building the routing policy from the fleet file: strategy, speeds, queue, affinity, slots.

Without coordination a replica routes on its own counts with strict capacity and the fair
admission queue (`local_slots`); with `coordination.redis_url` it shares slots through Redis
(`coordination`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram

from router.config import FleetConfig
from router.fleet.registry import Fleet
from router.routing.admission import AdmissionQueue
from router.routing.affinity import AffinityRing
from router.routing.local import QueuedSlots
from router.routing.redis_slots import RedisSlots, SlotStore
from router.routing.scoring import CostPolicy, SpeedStats
from router.routing.strategies import STRATEGIES, Chooser

QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def build_chooser(config: FleetConfig, fleet: Fleet, speeds: SpeedStats) -> Chooser:
    def loaded(node: str, model: str) -> bool | None:
        state = fleet.nodes.get(node)
        if state is None or state.loaded is None:
            return None  # /api/ps not seen yet: no penalty either way
        return model in state.loaded

    policy = CostPolicy(
        cold_load_s=config.routing.cold_load_s, queue_weight=config.routing.queue_weight
    )
    return STRATEGIES[config.routing.strategy](speeds, loaded, policy)


def build_slots(
    config: FleetConfig,
    fleet: Fleet,
    speeds: SpeedStats,
    rng: random.Random,
    registry: CollectorRegistry,
    clock: Callable[[], float],
) -> SlotStore:
    if config.coordination is not None:
        return RedisSlots(config.coordination, fleet, rng, registry)
    routing = config.routing
    queue = AdmissionQueue(
        max_depth=routing.max_queue,
        timeout_s=routing.queue_timeout_s,
        clock=clock,
    )
    depth = Gauge(
        "jarvis_queue_depth",
        "Requests waiting for a free slot (every suitable node at max_concurrency)",
        registry=registry,
    )
    depth.set_function(lambda: queue.depth)
    wait = Histogram(
        "jarvis_queue_wait_seconds",
        "Time requests waited in the admission queue, by how the wait ended",
        ["outcome"],
        buckets=QUEUE_WAIT_BUCKETS,
        registry=registry,
    )
    queue.on_wait = lambda seconds, outcome: wait.labels(outcome).observe(seconds)
    ring = AffinityRing(balance=routing.affinity_balance) if routing.affinity else None
    return QueuedSlots(fleet, build_chooser(config, fleet, speeds), rng, queue, ring)
