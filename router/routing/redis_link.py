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

from router.obs.metrics import Metrics

log = logging.getLogger(__name__)


class RedisDown(Exception):
    """Redis did not answer (refused, timed out, or errored)."""


class RedisLink:
    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        metrics: Metrics,
        *,
        on_down: Callable[[], None],
    ) -> None:
        self.up = False
        self._ping, self._on_down, self._metrics = ping, on_down, metrics
        self._checking: asyncio.Task[None] | None = None
        metrics.enable_coordination()

    async def suspect(self, operation: str, exc: RedisDown) -> None:
        """Count a failed call; go down unless Redis answers one more round trip."""
        self._metrics.count_coordination_error(operation)
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
        self._metrics.count_coordination_error(operation)
        self.down(operation, exc)

    def down(self, operation: str, exc: RedisDown) -> None:
        if not self.up:
            return
        self.up = False
        self._metrics.coordination_up(False)
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
        self._metrics.coordination_up(True)
        log.info("coordination: Redis answers; routing on fleet-wide counts")

    async def close(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking
