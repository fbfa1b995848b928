"""The Redis side of coordination: three Lua scripts and the calls that run them.

The only module that imports `redis` (an optional extra, imported when coordination is on).
Per node, one sorted set `{prefix}:slots:{node}`: members are lease ids, scores their expiry
in Redis's own clock (milliseconds), so replicas' clocks never have to agree and a replica
that dies leaves leases that simply expire. Every call has a short timeout and any failure
becomes `RedisDown`: a router must never wait on its coordinator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from router.routing.redis_link import RedisDown

# Redis answers in well under a millisecond, but this clock is the event loop's: on a busy host
# a stalled loop or a burst of new connections took 0.25 s (and at times 1 s), which dropped
# the fleet-wide cap (nodes overrun) while Redis was fine. 2 s, as a node's health check.
CALL_TIMEOUT_S = 2.0
# Enough for bursts of acquires; past it a caller waits (up to CALL_TIMEOUT_S) for one.
MAX_CONNECTIONS = 64

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS[1] node key; ARGV capacity, ttl_ms, lease id → {1, count} taken or {0, count} full.
ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  return {1, n + 1}
end
return {0, n}
"""
)
# KEYS every node key; ARGV ttl_ms, then per key how many ids follow, then the ids in key
# order. Sets those leases' expiry to now + ttl (adding any Redis lost), then returns the
# live count of every key.
SYNC = (
    _NOW_MS
    + """
local expiry = now + tonumber(ARGV[1])
local nkeys = #KEYS
local at = 2 + nkeys
local counts = {}
for i = 1, nkeys do
  for _ = 1, tonumber(ARGV[1 + i]) do
    redis.call('ZADD', KEYS[i], expiry, ARGV[at])
    at = at + 1
  end
  counts[i] = redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf')
end
return counts
"""
)


# KEYS node keys; ARGV per key how many ids follow, then the ids in key order.
RELEASE = """
local at = 1 + #KEYS
for i = 1, #KEYS do
  for _ = 1, tonumber(ARGV[i]) do
    redis.call('ZREM', KEYS[i], ARGV[at])
    at = at + 1
  end
end
return 0
"""


class RedisLeases:
    def __init__(self, url: str, *, prefix: str, ttl_s: float) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=CALL_TIMEOUT_S,
            socket_timeout=CALL_TIMEOUT_S,
            socket_connect_timeout=CALL_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # the caller decides what a failure means
        )
        self._redis = Redis.from_pool(pool)
        self._prefix = prefix
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._acquire = self._redis.register_script(ACQUIRE)
        self._sync = self._redis.register_script(SYNC)
        self._release = self._redis.register_script(RELEASE)

    def key(self, node: str) -> str:
        return f"{self._prefix}:slots:{node}"

    async def acquire(self, node: str, capacity: int, lease_id: str) -> tuple[bool, int]:
        """One round trip: (taken?, the node's fleet-wide count afterwards)."""
        args = (capacity, self._ttl_ms, lease_id)
        taken, count = await self._call(self._acquire(keys=(self.key(node),), args=args))
        return bool(taken), int(count)

    async def sync(
        self, nodes: Sequence[str], renew: Mapping[str, Sequence[str]]
    ) -> dict[str, int]:
        """One round trip: renew (or re-add) `renew`'s leases, then every node's live count."""
        ids = [lease for node in nodes for lease in renew.get(node, ())]
        args: list[int | str] = [self._ttl_ms, *(len(renew.get(node, ())) for node in nodes)]
        args += ids
        keys = [self.key(node) for node in nodes]
        counts = await self._call(self._sync(keys=keys, args=args))
        return {node: int(count) for node, count in zip(nodes, counts, strict=True)}

    async def release(self, leases: Iterable[tuple[str, str]]) -> None:
        """One round trip for any number of (node, lease id)."""
        by_node: dict[str, list[str]] = {}
        for node, lease_id in leases:
            by_node.setdefault(node, []).append(lease_id)
        if not by_node:
            return
        keys = [self.key(node) for node in by_node]
        args: list[int | str] = [len(ids) for ids in by_node.values()]
        args += [lease_id for ids in by_node.values() for lease_id in ids]
        await self._call(self._release(keys=keys, args=args))

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def reconnect(self) -> None:
        """Drop every pooled connection: after an outage each would fail once more."""
        await self._call(self._redis.connection_pool.disconnect())

    async def aclose(self) -> None:
        await self._redis.aclose()

    @staticmethod
    async def _call(call: Any) -> Any:
        """Await one redis-py call: bounded in time, failures as `RedisDown`, and a cancel
        always raised (redis-py may swallow one: it finishes the command, or fails it,
        instead; redis/redis-py#2551)."""
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            # The pool and socket timeouts bound each step; this bounds the whole call.
            async with asyncio.timeout(CALL_TIMEOUT_S * 2):
                result = await call
        except (RedisError, OSError, TimeoutError) as exc:
            if task is not None and task.cancelling() > cancels:
                raise asyncio.CancelledError from exc
            raise RedisDown(f"{type(exc).__name__}: {exc}") from exc
        if task is not None and task.cancelling() > cancels:
            raise asyncio.CancelledError
        return result
