"""Whether Redis is there (coordination): up or down, the metrics that say so, one log line
per change.

A failed call does not take the link down by itself: one more round trip checks (one check for
every call failing meanwhile). A refused connection fails the check at once; a single slow
answer, such as a stalled event loop produces, does not drop the fleet-wide cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)


class RedisDown(Exception):
    """Redis did not answer (refused, timed out, or errored)."""


class RedisLink:
    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        registry: CollectorRegistry,
        *,
        on_down: Callable[[], None],
    ) -> None:
        self.up = False
        self._ping, self._on_down = ping, on_down
        self._checking: asyncio.Task[None] | None = None
        self.gauge = Gauge(
            "jarvis_coordination_up",
            "1 while node slots are shared through Redis, 0 while routing on local counts",
            registry=registry,
        )
        self.errors = Counter(
            "jarvis_coordination_errors",
            "Redis calls that failed; while Redis is away the router routes on local counts",
            ["operation"],
            registry=registry,
        )

    async def suspect(self, operation: str, exc: RedisDown) -> None:
        """Count a failed call; go down unless Redis answers one more round trip."""
        self.errors.labels(operation).inc()
        if not self.up:
            return
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._check(operation, exc))
        await asyncio.shield(self._checking)

    async def _check(self, operation: str, exc: RedisDown) -> None:
        try:
            await self._ping()
        except RedisDown:
            self.down(operation, exc)

    def failed_again(self, operation: str, exc: RedisDown) -> None:
        """The same call failed again although Redis answered in between: believe it."""
        self.errors.labels(operation).inc()
        self.down(operation, exc)

    def down(self, operation: str, exc: RedisDown) -> None:
        if not self.up:
            return
        self.up = False
        self.gauge.set(0)
        log.warning(
            "coordination: Redis unreachable (%s: %s); routing on local counts until it returns",
            operation,
            exc,
        )
        self._on_down()

    def restored(self) -> None:
        if self.up:
            return
        self.up = True
        self.gauge.set(1)
        log.info("coordination: Redis answers; routing on fleet-wide counts")

    async def close(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking
