"""Per-key limits shared by every replica through Redis (coordination), so a key's rpm, tpm
and max_concurrency hold fleet-wide: the `Limiter` interface of `limiter`, one round trip per
acquire and one per request's end (settle only notes the real count; release sends both).

Exact sliding windows, as `LocalLimiter`, so a limit trips at exactly its count: per key,
`{prefix}:limits:{name}:requests` is a sorted set of admitted request ids scored by their
time (ms), `...:tokens` one of "id|e|estimate" and "id|s|actual" members (the amount is in the
member; `...:token_sum` their running sum, pruned with them), and `...:running` the requests
in progress scored by an expiry in Redis's clock (renewed every ttl/3, so a replica that dies
leaves nothing behind for long). Window times are Redis's clock too, so replicas' clocks never
have to agree; `clock` (seconds) replaces it in tests, so a minute passes without a sleep.

When Redis does not answer (`redis_client`), the key's limits are this replica's own
(`LocalLimiter`), which mirrors every admitted request, so it starts from what it ran: no
request fails because of Redis. A release Redis did not get is retried in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from router.config import ApiKeyConfig
from router.keys.limiter import WINDOW_S, Decision, LocalLimiter, Window
from router.keys.redis_client import KeyRedis
from router.routing.redis_link import RedisDown

MAX_ORPHANS = 10_000  # releases to retry while Redis is away
_NOW = """
local t = redis.call('TIME')
local real = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now = real
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) end
"""
# KEYS requests, tokens, token_sum, running; ARGV now ('' : Redis's), window_ms, ttl_ms, rpm,
# tpm, max_concurrency (-1: none), estimate, id → {reason ('' : admitted), wait_ms,
# requests in window, tokens in window, newest request's time, newest tokens' time, now}.
ACQUIRE = (
    _NOW
    + """
local window, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local rpm, tpm, most = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local est, id = tonumber(ARGV[7]), ARGV[8]
local horizon = now - window
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
local sum = tonumber(redis.call('GET', KEYS[3]) or '0')
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon)) do
  sum = sum - tonumber(string.match(m, '(%d+)$'))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon)
if redis.call('ZCARD', KEYS[2]) == 0 then sum = 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', real)
local requests = redis.call('ZCARD', KEYS[1])
local reason, wait = '', 0
if most >= 0 and redis.call('ZCARD', KEYS[4]) >= most then
  reason, wait = 'concurrency', 1000
elseif rpm >= 0 and requests >= rpm then
  local at = redis.call('ZRANGE', KEYS[1], requests - rpm, requests - rpm, 'WITHSCORES')
  reason, wait = 'rpm', tonumber(at[2]) + window - now
elseif tpm >= 0 and est > tpm then
  reason, wait = 'too_large', window
elseif tpm >= 0 and sum + est > tpm then
  reason, wait = 'tpm', window
  local left = sum
  local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    left = left - tonumber(string.match(entries[i], '(%d+)$'))
    if left <= tpm - est then
      wait = tonumber(entries[i + 1]) + window - now
      break
    end
  end
end
if reason == '' then
  if rpm >= 0 then
    redis.call('ZADD', KEYS[1], now, id)
    requests = requests + 1
  end
  if tpm >= 0 and est > 0 then
    redis.call('ZADD', KEYS[2], now, id .. '|e|' .. est)
    sum = sum + est
  end
  if most >= 0 then
    redis.call('ZADD', KEYS[4], real + ttl, id)
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
end
redis.call('SET', KEYS[3], sum, 'PX', window + 1000)
redis.call('PEXPIRE', KEYS[1], window + 1000)
redis.call('PEXPIRE', KEYS[2], window + 1000)
local newest_request = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2] or ''
local newest_tokens = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2] or ''
return {reason, wait, requests, sum, newest_request, newest_tokens, now}
"""
)
# KEYS tokens, token_sum, running; ARGV now, window_ms, the estimate's member ('' : none),
# the estimate, the real count (0: none), id. The estimate goes (unless it aged out), the
# real count is counted from now, and the request no longer runs.
RELEASE = (
    _NOW
    + """
local window = tonumber(ARGV[2])
local sum = tonumber(redis.call('GET', KEYS[2]) or '0')
local changed = false
if ARGV[3] ~= '' and redis.call('ZREM', KEYS[1], ARGV[3]) == 1 then
  sum, changed = sum - tonumber(ARGV[4]), true
end
local actual = tonumber(ARGV[5])
if actual > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[6] .. '|s|' .. actual)
  sum, changed = sum + actual, true
end
if changed then
  redis.call('SET', KEYS[2], math.max(sum, 0), 'PX', window + 1000)
  redis.call('PEXPIRE', KEYS[1], window + 1000)
end
redis.call('ZREM', KEYS[3], ARGV[6])
return 0
"""
)
# KEYS running sets (one per id, repeated as needed); ARGV ttl_ms, then the ids. Renews
# requests still in progress; one already gone (released, or Redis lost it) stays gone.
RENEW = """
local t = redis.call('TIME')
local real = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', real + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return 0
"""


@dataclass(slots=True)
class _Ticket:
    key: str  # the API key's name
    id: str  # '' : admitted on local counts only (Redis was away)
    estimate: int  # tokens reserved in Redis (0: none)
    counts_tokens: bool  # the key has a tpm limit
    local: Decision | None  # the local mirror's admission, if it admitted
    actual: int = 0


class RedisLimiter:
    def __init__(
        self,
        link: KeyRedis,
        *,
        ttl_s: float,
        clock: Callable[[], float] | None = None,
        window_s: float = WINDOW_S,
    ) -> None:
        self.link, self.clock, self.window_s = link, clock, window_s
        self.local = LocalLimiter(window_s=window_s)
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._me = secrets.token_hex(6)
        self._ids = itertools.count()
        self._held: dict[str, str] = {}  # id → API key, in progress: renewed
        self._orphans: deque[list[str]] = deque(maxlen=MAX_ORPHANS)  # release args to retry
        redis = link.redis
        self._acquire = redis.register_script(ACQUIRE)
        self._release = redis.register_script(RELEASE)
        self._renew = redis.register_script(RENEW)

    def _keys(self, name: str, *parts: str) -> list[str]:
        return [self.link.key("limits", name, part) for part in parts]

    def _now(self) -> str:
        return "" if self.clock is None else str(round(self.clock() * 1000))

    async def acquire(self, key: ApiKeyConfig, est_tokens: int) -> Decision:
        if not self.link.up:
            return await self._locally(key, est_tokens)
        ticket_id = f"{self._me}:{next(self._ids)}"
        estimate = est_tokens if key.tpm is not None and est_tokens > 0 else 0
        keys = self._keys(key.name, "requests", "tokens", "token_sum", "running")
        args: list[str | int] = [self._now(), round(self.window_s * 1000), self._ttl_ms]
        args += [_limit(key.rpm), _limit(key.tpm), _limit(key.max_concurrency)]
        args += [est_tokens, ticket_id]
        try:
            reply = await self.link.call("key_acquire", lambda: self._acquire(keys=keys, args=args))
        except RedisDown:
            return await self._locally(key, est_tokens)
        except BaseException:  # cancelled: the script may have run all the same
            self._orphans.append(self._release_args(key.name, ticket_id, estimate, 0))
            raise
        decision = _decision(key, reply, self.window_s)
        if decision.allowed:
            mirror = await self.local.acquire(key, est_tokens)  # its verdict is not asked
            local = mirror if mirror.allowed else None
            decision.ticket = _Ticket(key.name, ticket_id, estimate, key.tpm is not None, local)
            if key.max_concurrency is not None:
                self._held[ticket_id] = key.name
        return decision

    async def _locally(self, key: ApiKeyConfig, est_tokens: int) -> Decision:
        decision = await self.local.acquire(key, est_tokens)
        if not decision.allowed:
            return decision
        ticket = _Ticket(key.name, "", 0, key.tpm is not None, decision)
        return replace(decision, ticket=ticket)

    async def settle(self, decision: Decision, actual_tokens: int) -> None:
        ticket = decision.ticket
        if not isinstance(ticket, _Ticket):
            return
        ticket.actual = actual_tokens if ticket.counts_tokens else 0
        if ticket.local is not None:
            await self.local.settle(ticket.local, actual_tokens)

    async def release(self, decision: Decision) -> None:
        ticket = decision.ticket
        if not isinstance(ticket, _Ticket):
            return
        decision.ticket = None  # released once, whatever calls it
        if ticket.local is not None:
            await self.local.release(ticket.local)
        if not ticket.id:
            return
        self._held.pop(ticket.id, None)
        args = self._release_args(ticket.key, ticket.id, ticket.estimate, ticket.actual)
        try:
            await self._send_release(args)
        except RedisDown:
            self._orphans.append(args)  # again when Redis answers
        except BaseException:
            self._orphans.append(args)
            raise

    def _release_args(self, name: str, ticket_id: str, estimate: int, actual: int) -> list[str]:
        member = f"{ticket_id}|e|{estimate}" if estimate else ""
        window = str(round(self.window_s * 1000))
        return [name, self._now(), window, member, str(estimate), str(actual), ticket_id]

    async def _send_release(self, args: list[str]) -> None:
        keys = self._keys(args[0], "tokens", "token_sum", "running")
        await self.link.call("key_release", lambda: self._release(keys=keys, args=args[1:]))

    def retain(self, names: Collection[str]) -> None:
        self.local.retain(names)  # Redis's windows of a removed key simply age out

    async def run(self) -> None:
        """Every ttl/3 (while Redis answers): renew requests in progress, and send the
        releases Redis did not get."""
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            if self.link.up:
                with contextlib.suppress(RedisDown):
                    await self._maintain()

    async def _maintain(self) -> None:
        held = list(self._held.items())
        if held:
            keys = [self._keys(name, "running")[0] for _, name in held]
            args: list[int | str] = [self._ttl_ms, *(ticket_id for ticket_id, _ in held)]
            await self.link.call("key_renew", lambda: self._renew(keys=keys, args=args))
        while self._orphans:
            await self._send_release(self._orphans[0])
            self._orphans.popleft()

    async def close(self) -> None:
        """Send what is still owed (best effort: what Redis does not get expires)."""
        if self.link.up:
            self._held.clear()
            with contextlib.suppress(RedisDown):
                await self._maintain()


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def _decision(key: ApiKeyConfig, reply: Any, window_s: float) -> Decision:
    reason_b, wait_ms, requests, tokens, newest_request, newest_tokens, now_ms = reply
    reason = bytes(reason_b).decode()

    def reset(newest: bytes) -> float:
        if not newest:
            return 0.0
        return max(0.0, (float(newest) - int(now_ms)) / 1000 + window_s)

    rpm = tpm = None
    if key.rpm is not None:
        rpm = Window(key.rpm, max(0, key.rpm - int(requests)), reset(newest_request))
    if key.tpm is not None:
        tpm = Window(key.tpm, max(0, key.tpm - int(tokens)), reset(newest_tokens))
    retry = max(1, math.ceil(int(wait_ms) / 1000)) if reason else 0
    return Decision(key.name, not reason, rpm, tpm, reason, retry)
