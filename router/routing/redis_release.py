"""Leases on their way back to Redis (coordination): one round trip per batch of releases.

A released lease's id is queued and a background task gives back everything queued since its
last round trip. Until Redis answers, the lease is in `transit`: Redis may count it or not, so
it is neither this replica's (`in_flight`) nor another's. While Redis is away, ids wait in
`pending` and are all removed when it returns.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from router.routing.redis_link import RedisDown, RedisLink

if TYPE_CHECKING:
    from router.routing.redis_leases import RedisLeases

MAX_PENDING = 10_000  # lease ids given back while Redis was away, to remove on its return
Released = tuple[str, str, str]  # (node, lease id, API key)


class GiveBack:
    def __init__(
        self, redis: RedisLeases, link: RedisLink, *, ttl_s: float, on_free: Callable[[], None]
    ) -> None:
        self._redis, self._link, self._ttl_s, self._on_free = redis, link, ttl_s, on_free
        self.transit: Counter[str] = Counter()  # per node, releases Redis may still count
        self._batch: list[Released] = []
        self._queued = asyncio.Event()
        self._pending: deque[tuple[Released, float]] = deque(maxlen=MAX_PENDING)

    def forget(self, node: str, lease_id: str, key: str) -> None:
        """Remove from Redis whatever it holds of a lease: soon, or on its return."""
        if self._link.up:
            self._batch.append((node, lease_id, key))
            self.transit[node] += 1
            self._queued.set()
        else:
            self._pending.append(((node, lease_id, key), time.monotonic()))
            self._on_free()  # local counts: the slot is free now

    async def on_return(self) -> None:
        """Redis is back: first remove what was given back meanwhile (raises RedisDown). All
        of it, however old: an acquire whose answer timed out against a hung Redis runs when
        Redis wakes up, and its lease then lives a whole ttl from that moment."""
        if self._pending:
            await self._redis.release([r for r, _ in self._pending])
            self._pending.clear()

    def requeue(self) -> None:
        """Redis is up again: ids given back during the round trip that brought it back
        (after `on_return` took the rest) go out with the next batch."""
        while self._pending:
            released, _ = self._pending.popleft()
            self._batch.append(released)
            self.transit[released[0]] += 1
        if self._batch:
            self._queued.set()

    def leftovers(self) -> list[Released]:
        """Everything not yet given back (at close)."""
        return [*self._batch, *(released for released, _ in self._pending)]

    async def run(self) -> None:
        """Give back released leases: one round trip for all released since the last one."""
        failed = False
        while True:
            await self._queued.wait()
            self._queued.clear()
            batch, self._batch = self._batch, []
            try:
                if self._link.up:
                    await self._redis.release(batch)
                else:
                    self._pending.extend((released, time.monotonic()) for released in batch)
                failed = False
            except RedisDown as exc:
                if failed:
                    self._link.failed_again("release", exc)
                else:
                    await self._link.suspect("release", exc)
                failed = True
                for released in batch:  # again soon, or when Redis returns
                    self.forget(*released)
            except asyncio.CancelledError:
                self._batch += batch  # close() gives them back
                raise
            finally:
                self.transit.subtract(node for node, _, _ in batch)
            self._on_free()
