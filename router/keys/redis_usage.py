"""Usage totals kept in Redis (coordination), so `/admin/usage` shows the whole fleet's and
they survive restarts: `FleetUsage` is the `UsageBook` (metrics, this replica's totals) that
also adds every request to Redis, in batches: every FLUSH_S, before each report, and at close.

Per API key a hash `{prefix}:usage:key:{name}` with fields "model\\nrequests",
"model\\nprompt_tokens" and "model\\ncompletion_tokens" (HINCRBY); `{prefix}:usage:keys`
names the keys, and `{prefix}:usage:since` when the first replica started counting. A batch
is applied once: it carries this replica's sequence number and Redis keeps the last one
applied per writer, so a batch sent again after a lost answer is not counted twice. While
Redis is away the batch waits (a report is this replica's totals, `fleet_wide: false`); it
is lost only if the replica stops before Redis returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry

from router.keys.redis_client import KeyRedis
from router.obs.usage import Totals, UsageBook, rows
from router.routing.redis_link import RedisDown

log = logging.getLogger(__name__)
FLUSH_S = 1.0
APPLIED_TTL_MS = 7 * 86_400_000  # a writer's last batch number, kept past any outage
FIELDS = ("requests", "prompt_tokens", "completion_tokens")
# KEYS the key set, since, this writer's last applied batch; ARGV batch number, since,
# hash prefix, how long to keep the batch number (ms), then (key, field, amount) triples.
ADD = """
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if last >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[4])
redis.call('SETNX', KEYS[2], ARGV[2])
for i = 5, #ARGV, 3 do
  redis.call('SADD', KEYS[1], ARGV[i])
  redis.call('HINCRBY', ARGV[3] .. ARGV[i], ARGV[i + 1], ARGV[i + 2])
end
return 1
"""
# KEYS the key set, since; ARGV hash prefix → {since, then per key its name and HGETALL}.
READ = """
local out = {redis.call('GET', KEYS[2]) or ''}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = key
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. key)
end
return out
"""
Batch = tuple[int, list[tuple[tuple[str, str, str], int]]]


class FleetUsage(UsageBook):
    def __init__(self, registry: CollectorRegistry, link: KeyRedis) -> None:
        super().__init__(registry)
        self.link = link
        self._writer = secrets.token_hex(6)
        self._seq = 0
        self._pending: Counter[tuple[str, str, str]] = Counter()  # (key, model, field) → n
        self._batch: Batch | None = None  # numbered, sent until Redis has it
        self._lock = asyncio.Lock()
        self._add = link.redis.register_script(ADD)
        self._read = link.redis.register_script(READ)

    def record(self, key: str, model: str, api: str, prompt: int, completion: int) -> None:
        super().record(key, model, api, prompt, completion)
        for name, amount in zip(FIELDS, (1, prompt, completion), strict=True):
            if amount:
                self._pending[(key, model, name)] += amount

    async def flush(self) -> None:
        """Add everything recorded so far to Redis (raises RedisDown)."""
        async with self._lock:
            for _ in range(2):  # the batch waiting since an outage, then what came since
                if self._batch is None:
                    if not self._pending:
                        return
                    self._seq += 1
                    self._batch = (self._seq, list(self._pending.items()))
                    self._pending.clear()
                seq, items = self._batch
                await self._send(seq, items)
                self._batch = None

    async def _send(self, seq: int, items: list[tuple[tuple[str, str, str], int]]) -> None:
        keys = [self._key("keys"), self._key("since"), self._key("applied", self._writer)]
        args: list[str | int | float] = [seq, self.since, self._key("key", ""), APPLIED_TTL_MS]
        for (key, model, name), amount in items:
            args += [key, f"{model}\n{name}", amount]
        await self.link.call("usage_add", lambda: self._add(keys=keys, args=args))

    def _key(self, *parts: str) -> str:
        return self.link.key("usage", *parts)

    async def report(self) -> tuple[float, list[dict[str, object]], bool]:
        """The fleet's totals from Redis (this replica's flushed first); this replica's
        alone while Redis is away."""
        try:
            await self.flush()
            reply = await self.link.call(
                "usage_read",
                lambda: self._read(
                    keys=[self._key("keys"), self._key("since")], args=[self._key("key", "")]
                ),
            )
        except RedisDown:
            return await super().report()
        since = float(reply[0]) if reply[0] else self.since
        return since, rows(_totals(reply[1:])), True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            if self.link.up:
                with contextlib.suppress(RedisDown):
                    await self.flush()

    async def close(self) -> None:
        """The last batch, at shutdown (requests have finished)."""
        try:
            await self.flush()
        except RedisDown:
            if self._batch is not None or self._pending:
                log.warning("coordination: Redis away at shutdown; recent usage not kept there")


def _totals(flat: list[Any]) -> dict[tuple[str, str], Totals]:
    totals: dict[tuple[str, str], Totals] = {}
    for name, fields in zip(flat[::2], flat[1::2], strict=True):
        key = bytes(name).decode()
        for field, value in zip(fields[::2], fields[1::2], strict=True):
            model, _, kind = bytes(field).decode().rpartition("\n")
            counts = totals.setdefault((key, model), Totals())
            setattr(counts, kind, getattr(counts, kind) + int(value))
    return totals
