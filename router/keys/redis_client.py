"""The Redis link of per-key limits and usage (coordination): one client, every call bounded
and failures as `RedisDown` (the calls of `routing.redis_leases`), and whether Redis answers.

A failed call takes the link down at once, so no request waits on Redis twice: key limits
fall back to this replica's own counts and `/admin/usage` to its own totals (one log line per
change); while it is down a background probe pings every PROBE_S and brings it back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from router.obs.metrics import Metrics
from router.routing.redis_leases import call, connect
from router.routing.redis_link import RedisDown

log = logging.getLogger(__name__)
PROBE_S = 0.5  # how often a replica retries Redis while it is away


class KeyRedis:
    def __init__(self, url: str, *, prefix: str, metrics: Metrics) -> None:
        self.redis = connect(url)
        self.prefix = prefix
        self.up = False  # until the first ping answers
        self._metrics = metrics

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def call(self, operation: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """Run one call (made only if Redis is up); any failure takes the link down."""
        if not self.up:
            raise RedisDown("Redis is away")
        try:
            return await call(make())
        except RedisDown as exc:
            self._metrics.count_coordination_error(operation)
            self.down(operation, exc)
            raise

    def down(self, operation: str, exc: RedisDown) -> None:
        if self.up:
            self.up = False
            log.warning(
                "coordination: key limits on this replica's counts and usage totals kept here "
                "until Redis answers (%s: %s)",
                operation,
                exc,
            )

    async def probe(self) -> bool:
        """Whether Redis answers now (it is up afterwards if so)."""
        if self.up:
            return True
        try:
            # Every pooled connection would fail once more after an outage.
            await call(self.redis.connection_pool.disconnect())
            await call(self.redis.ping())
        except RedisDown:
            return False
        self.up = True
        log.info("coordination: Redis answers; key limits and usage are fleet-wide")
        return True

    async def run(self) -> None:
        """While Redis is away, probe it every PROBE_S."""
        while True:
            await asyncio.sleep(PROBE_S)
            if not self.up:
                await self.probe()

    async def aclose(self) -> None:
        await self.redis.aclose()
