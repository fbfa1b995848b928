"""Per-key limits and usage shared by the replicas through Redis (coordination): the link,
the limiter and the usage book built together, with their background work (probe while
Redis is away, renewals, usage batches) started and stopped with the app.

Imports `redis` (an optional extra): imported only when coordination is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from router.config import CoordinationConfig
from router.keys.redis_client import KeyRedis
from router.keys.redis_limiter import RedisLimiter
from router.keys.redis_usage import FleetUsage
from router.obs.metrics import Metrics

log = logging.getLogger(__name__)


class SharedKeys:
    def __init__(self, config: CoordinationConfig, metrics: Metrics) -> None:
        self.link = KeyRedis(config.redis_url, prefix=config.key_prefix, metrics=metrics)
        self.limiter = RedisLimiter(self.link, ttl_s=config.lease_ttl_s)
        self.usage = FleetUsage(metrics.registry, self.link)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not await self.link.probe():
            log.warning("coordination: key limits on local counts until Redis answers")
        self._tasks = [
            asyncio.create_task(self.link.run(), name="jarvis-keys-probe"),
            asyncio.create_task(self.limiter.run(), name="jarvis-keys-renew"),
            asyncio.create_task(self.usage.run(), name="jarvis-keys-usage"),
        ]

    async def close(self) -> None:
        """After the last request: its usage and releases go to Redis, then the client."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.usage.close()
        await self.limiter.close()
        await self.link.aclose()
