"""Building the routing policy from the fleet file: strategy, affinity, chooser, slot store.

Without coordination a replica routes on its own counts with strict capacity and the fair
admission queue (`local`); with `coordination.redis_url` it shares slots, waiting keys and
conversations' nodes through Redis (`redis_slots`). Both ask the same `choose.Chooser`, built
from `routing.strategy` and `routing.affinity`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from router.catalog.warm import is_warm
from router.config import FleetConfig
from router.fleet.registry import Fleet
from router.obs.metrics import Metrics
from router.routing.affinity import AffinityRing
from router.routing.choose import Chooser
from router.routing.local import QueuedSlots
from router.routing.redis_slots import RedisSlots
from router.routing.scoring import CostPolicy, SpeedStats
from router.routing.slots import SlotStore
from router.routing.strategies import strategy


def _any_ctx(model: str) -> int | None:
    return None


def build_chooser(
    config: FleetConfig,
    fleet: Fleet,
    speeds: SpeedStats,
    rng: random.Random,
    num_ctx: Callable[[str], int | None] = _any_ctx,
) -> Chooser:
    """The configured strategy, with the affinity ring when `routing.affinity` is on.
    `num_ctx(model)`: the context the catalog runs a node model at (None: any)."""

    def loaded(node: str, model: str) -> bool | None:
        state = fleet.nodes.get(node)
        if state is None or state.loaded is None:
            return None  # /api/ps not seen yet: no penalty either way
        # Loaded at another context is cold: the request would reload it (issue #15).
        return is_warm(state.contexts, model, num_ctx(model), parallel=state.config.max_concurrency)

    routing = config.routing
    policy = CostPolicy(cold_load_s=routing.cold_load_s, queue_weight=routing.queue_weight)
    ring = AffinityRing(balance=routing.affinity_balance) if routing.affinity else None
    return Chooser(strategy(routing.strategy, speeds, loaded=loaded, policy=policy), rng, ring)


def build_slots(
    config: FleetConfig,
    fleet: Fleet,
    speeds: SpeedStats,
    rng: random.Random,
    metrics: Metrics,
    clock: Callable[[], float],
    num_ctx: Callable[[str], int | None] = _any_ctx,
    *,
    replica: str = "",
) -> SlotStore:
    """The slot store: local, or shared through Redis as replica `replica` (its id there)."""
    store: SlotStore
    routing = config.routing
    chooser = build_chooser(config, fleet, speeds, rng, num_ctx)
    if config.coordination is not None:
        store = RedisSlots(
            config.coordination,
            fleet,
            chooser,
            metrics,
            replica=replica,
            max_queue=routing.max_queue,
            clock=clock,
            on_wait=metrics.observe_queue_wait,
        )
    else:
        store = QueuedSlots(
            fleet,
            chooser,
            max_queue=routing.max_queue,
            queue_timeout_s=routing.queue_timeout_s,
            clock=clock,
            on_wait=metrics.observe_queue_wait,
        )
    metrics.watch_queue(lambda: store.waiting)
    return store
