"""Health checking: one background task that polls every node's `/api/tags`.

It marks nodes healthy or not and refreshes their model lists; it makes no routing
decisions. `refresh()` runs one extra round on demand (a request for a model nobody is known
to have), at most once per `refresh_min_interval_s`, shared by everyone who asks meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from router.config import HealthConfig
from router.fleet import Fleet, NodeState
from router.metrics import Metrics
from router.upstream import Upstream, UpstreamError

log = logging.getLogger(__name__)
MAX_PARALLEL_PROBES = 64


class HealthChecker:
    def __init__(
        self,
        fleet: Fleet,
        upstream: Upstream,
        config: HealthConfig,
        metrics: Metrics,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._fleet, self._upstream, self._config = fleet, upstream, config
        self._metrics, self._clock = metrics, clock
        self._probes = asyncio.Semaphore(MAX_PARALLEL_PROBES)
        self._round: asyncio.Task[None] | None = None
        self._last_round = float("-inf")

    def reconfigure(self, config: HealthConfig) -> None:
        """A reloaded fleet file: the next probe and the next wait use the new values."""
        self._config = config

    async def check(self, node: NodeState) -> None:
        async with self._probes:
            start = self._clock()
            try:
                models = await self._upstream.tags(node, self._config.timeout_s)
            except UpstreamError as exc:
                if self._fleet.nodes.get(node.name) is not node:
                    return  # removed (or replaced under its name) by a reload meanwhile
                if node.healthy or not node.checked:
                    log.warning("node %s failed its health check: %s", node.name, exc.message)
                self._fleet.mark_unhealthy(node.name, exc.message)
            else:
                if self._fleet.nodes.get(node.name) is not node:
                    return
                if not node.healthy:
                    log.info("node %s is healthy with %d models", node.name, len(models))
                self._fleet.mark_healthy(node.name, models, self._clock() - start)
                await self._check_loaded(node)
            finally:
                self._metrics.health_duration.labels(node.name).observe(self._clock() - start)

    async def _check_loaded(self, node: NodeState) -> None:
        """Which models are hot in the node's memory (`/api/ps`): a cold one costs a load."""
        try:
            loaded = await self._upstream.loaded(node, self._config.timeout_s)
        except UpstreamError as exc:  # older or partial servers: routing just loses the hint
            log.debug("node %s: /api/ps failed: %s", node.name, exc.message)
            return
        self._fleet.set_loaded(node.name, loaded)

    async def check_all(self) -> None:
        self._last_round = self._clock()
        await asyncio.gather(*(self.check(n) for n in list(self._fleet.nodes.values())))

    async def refresh(self) -> None:
        """One more round now, unless one ran within `refresh_min_interval_s`."""
        if self._round is not None and not self._round.done():
            await asyncio.shield(self._round)
            return
        if self._clock() - self._last_round < self._config.refresh_min_interval_s:
            return
        self._round = asyncio.create_task(self.check_all())
        await asyncio.shield(self._round)

    async def run(self) -> None:
        """Poll forever (cancelled at shutdown)."""
        while True:
            await asyncio.sleep(self._config.interval_s)
            try:
                await self.check_all()
            except Exception:  # the poller must outlive any bug in one round
                log.exception("health round failed")
