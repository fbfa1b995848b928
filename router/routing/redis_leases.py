"""The Redis side of coordination: three Lua scripts and the calls that run them.

The only module that imports `redis` (an optional extra, imported when coordination is on).
Per node, one sorted set `{prefix}:slots:{node}`: members are lease ids, scores their expiry
in Redis's own clock (milliseconds), so replicas' clocks never have to agree and a replica
that dies leaves leases that simply expire. The same ids sit in `{prefix}:key:{api key}` (a
key's requests in flight, for fairness); `{prefix}:waiting` holds "replica\nmodel\nkey" for
every model and key some replica has requests waiting for; `{prefix}:conv:{digest}` is a
conversation's last node (affinity), written with the lease that ran its turn. Every call
has a short timeout and any failure becomes `RedisDown`: a router must never wait on its
coordinator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
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
# A waiting entry outlives its replica's last refresh by this much (refreshes come every
# 25 ms while it waits): a replica that dies stops holding others back within a second.
WAITING_TTL_MS = 1000
CONVERSATION_TTL_MS = 3_600_000  # a conversation's last node, as the affinity ring keeps it


@dataclass(frozen=True, slots=True)
class Synced:
    """What one refresh learnt: per node its fleet-wide count; who waits (replica, model,
    API key), and per API key its requests in flight fleet-wide."""

    counts: dict[str, int]
    waiting: list[tuple[str, str, str]]
    shares: dict[str, int]


_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS[1] node key, KEYS[2] the API key's in-flight set, KEYS[3] (optional) the
# conversation's last node; ARGV capacity, ttl_ms, lease id, node name, conversation ttl_ms
# → {1, count} taken or {0, count} full. A lease already there (a retried call whose answer
# was lost) counts as taken.
ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  return {1, n}
end
if n < tonumber(ARGV[1]) then
  local expiry = now + tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], expiry, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZADD', KEYS[2], expiry, ARGV[3])
  if KEYS[3] then
    redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
  end
  return {1, n + 1}
end
return {0, n}
"""
)
# KEYS every node key; ARGV ttl_ms, waiting ttl_ms, prefix, replica, then how many waiting
# entries ("model\nkey") follow and them, then how many keys of interest follow and them,
# then per node key how many leases follow and each lease as (id, API key). Renews those
# leases (adding any Redis lost) in their node's and their key's sets, replaces this
# replica's waiting entries, and returns {every node's live count, every waiting entry
# ("replica\nmodel\nkey"), then key, in-flight pairs for every key waiting or of interest}.
# Key sets are named from ARGV, not KEYS: coordination needs one Redis, not a cluster.
SYNC = (
    _NOW_MS
    + """
local ttl, wttl, prefix, me = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4] .. '\\n'
local waiting = prefix .. ':waiting'
redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)
for _, m in ipairs(redis.call('ZRANGE', waiting, 0, -1)) do
  if string.sub(m, 1, #me) == me then redis.call('ZREM', waiting, m) end
end
local at = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('ZADD', waiting, now + wttl, me .. ARGV[at])
  at = at + 1
end
local keys = {}
for _ = 1, tonumber(ARGV[at]) do
  keys[ARGV[at + 1]] = true
  at = at + 1
end
at = at + 1
local expiry = now + ttl
local counts = {}
for i = 1, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  for _ = 1, n do
    redis.call('ZADD', KEYS[i], expiry, ARGV[at])
    redis.call('ZADD', prefix .. ':key:' .. ARGV[at + 1], expiry, ARGV[at])
    at = at + 2
  end
  counts[i] = redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf')
end
local entries = redis.call('ZRANGE', waiting, 0, -1)
for _, m in ipairs(entries) do
  keys[string.match(m, '[^\\n]*\\n[^\\n]*\\n(.*)')] = true
end
local shares = {}
for key in pairs(keys) do
  shares[#shares + 1] = key
  shares[#shares + 1] = redis.call('ZCOUNT', prefix .. ':key:' .. key, '(' .. now, '+inf')
end
return {counts, entries, shares}
"""
)
# KEYS sorted sets (nodes' and API keys'); ARGV per key how many ids follow, then the ids.
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
        self._redis = connect(url)
        self._prefix = prefix
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._acquire = self._redis.register_script(ACQUIRE)
        self._sync = self._redis.register_script(SYNC)
        self._release = self._redis.register_script(RELEASE)

    def key(self, node: str) -> str:
        return f"{self._prefix}:slots:{node}"

    def _key_set(self, key: str) -> str:
        return f"{self._prefix}:key:{key}"

    def _conversation(self, session: str) -> str:
        # A digest: conversation keys may hold user ids, which Redis has no need to see. A
        # session header's bytes that are not UTF-8 come as surrogates: hashed, not an error.
        digest = blake2b(session.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        return f"{self._prefix}:conv:{digest}"

    async def acquire(
        self,
        node: str,
        capacity: int,
        lease_id: str,
        *,
        key: str = "",
        session: str | None = None,
    ) -> tuple[bool, int]:
        """One round trip: (taken?, the node's fleet-wide count afterwards). A lease taken
        counts for API key `key` and becomes `session`'s last node."""
        keys = [self.key(node), self._key_set(key)]
        if session is not None:
            keys.append(self._conversation(session))
        args = (capacity, self._ttl_ms, lease_id, node, CONVERSATION_TTL_MS)
        taken, count = await call(self._acquire(keys=keys, args=args))
        return bool(taken), int(count)

    async def last_node(self, session: str) -> str | None:
        """The node `session`'s last turn ran on, as any replica saw it."""
        name = await call(self._redis.get(self._conversation(session)))
        return None if name is None else bytes(name).decode()

    async def sync(
        self, nodes: Sequence[str], renew: Mapping[str, Sequence[str]]
    ) -> dict[str, int]:
        """One round trip: renew (or re-add) `renew`'s leases, then every node's live count."""
        held = {node: [(lease, "") for lease in ids] for node, ids in renew.items()}
        return (await self.exchange(nodes, held)).counts

    async def exchange(
        self,
        nodes: Sequence[str],
        renew: Mapping[str, Sequence[tuple[str, str]]],
        *,
        replica: str = "",
        waiting: Collection[tuple[str, str]] = (),
        keys: Collection[str] = (),
    ) -> Synced:
        """One round trip: renew `renew`'s (lease id, API key) per node, say which (model,
        key) wait at `replica`; every node's count, who waits where, and per-key shares."""
        args: list[int | str] = [self._ttl_ms, WAITING_TTL_MS, self._prefix, replica]
        args += [len(waiting), *(f"{model}\n{key}" for model, key in waiting)]
        args += [len(keys), *keys]
        for node in nodes:
            leases = renew.get(node, ())
            args.append(len(leases))
            args += [part for lease in leases for part in lease]
        script = self._sync(keys=[self.key(node) for node in nodes], args=args)
        counts, entries, shares = await call(script)
        return Synced(
            counts={node: int(count) for node, count in zip(nodes, counts, strict=True)},
            waiting=[tuple(bytes(e).decode().split("\n", 2)) for e in entries],  # type: ignore[misc]
            shares={
                bytes(k).decode(): int(v) for k, v in zip(shares[::2], shares[1::2], strict=True)
            },
        )

    async def release(self, leases: Iterable[tuple[str, str] | tuple[str, str, str]]) -> None:
        """One round trip for any number of (node, lease id[, API key])."""
        by_key: dict[str, list[str]] = {}
        for node, lease_id, *key in leases:
            by_key.setdefault(self.key(node), []).append(lease_id)
            if key:
                by_key.setdefault(self._key_set(key[0]), []).append(lease_id)
        if not by_key:
            return
        args: list[int | str] = [len(ids) for ids in by_key.values()]
        args += [lease_id for ids in by_key.values() for lease_id in ids]
        await call(self._release(keys=list(by_key), args=args))

    async def ping(self) -> None:
        await call(self._redis.ping())

    async def reconnect(self) -> None:
        """Drop every pooled connection: after an outage each would fail once more."""
        await call(self._redis.connection_pool.disconnect())

    async def aclose(self) -> None:
        await self._redis.aclose()


def connect(url: str) -> Redis:
    """A client whose every step is bounded by CALL_TIMEOUT_S and never retried by redis-py:
    the caller decides what a failure means. The slot store and the key limits share it."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=CALL_TIMEOUT_S,
        socket_timeout=CALL_TIMEOUT_S,
        socket_connect_timeout=CALL_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)


async def call(pending: Any) -> Any:
    """Await one redis-py call: bounded in time, failures as `RedisDown`, and a cancel
    always raised (redis-py may swallow one: it finishes the command, or fails it,
    instead; redis/redis-py#2551)."""
    task = asyncio.current_task()
    cancels = task.cancelling() if task is not None else 0
    try:
        # The pool and socket timeouts bound each step; this bounds the whole call.
        async with asyncio.timeout(CALL_TIMEOUT_S * 2):
            result = await pending
    except (RedisError, OSError, TimeoutError) as exc:
        if task is not None and task.cancelling() > cancels:
            raise asyncio.CancelledError from exc
        raise RedisDown(f"{type(exc).__name__}: {exc}") from exc
    if task is not None and task.cancelling() > cancels:
        raise asyncio.CancelledError
    return result
