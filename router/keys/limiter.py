"""Per-key limits: requests per minute, tokens per minute (sliding windows) and requests at once.

The `Limiter` seam is three calls per request, all async so an implementation may keep its
counters elsewhere (Redis, for limits that hold across replicas):
- `acquire(key, est_tokens)` before the request: admits it (counting it and reserving its
  estimated tokens) or refuses it, and says where the key stands either way (`Decision`);
- `settle(decision, actual_tokens)` after it: the estimate is replaced by the real count;
- `release(decision)`: the request no longer runs (concurrency).
`LocalLimiter` keeps each key's window in this process: a log of admitted requests and of token
counts, pruned as they age out, so a limit trips at exactly its count.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from router.config import ApiKeyConfig

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Window:
    """One limit as a client is told it (the `x-ratelimit-*-requests` / `-tokens` headers)."""

    limit: int
    remaining: int
    reset_s: float  # until the limit is back to its initial state (nothing left in the window)


@dataclass(slots=True)
class Decision:
    key: str
    allowed: bool
    requests: Window | None = None
    tokens: Window | None = None
    reason: str = ""  # when refused: rpm, tpm, too_large or concurrency
    retry_after_s: int = 0  # when refused: whole seconds until it could be admitted
    ticket: object = None  # the implementation's handle for settle and release


class Limiter(Protocol):
    async def acquire(self, key: ApiKeyConfig, est_tokens: int) -> Decision: ...

    async def settle(self, decision: Decision, actual_tokens: int) -> None: ...

    async def release(self, decision: Decision) -> None: ...

    def retain(self, names: Collection[str]) -> None:
        """Forget the keys not in `names` (a reload removed them)."""


class _KeyWindow:
    __slots__ = ("in_flight", "requests", "token_sum", "tokens")

    def __init__(self) -> None:
        self.requests: deque[float] = deque()  # admission times
        self.tokens: deque[list[float]] = deque()  # [time, tokens]; an estimate until settled
        self.token_sum = 0.0
        self.in_flight = 0

    def prune(self, now: float, window_s: float) -> None:
        horizon = now - window_s
        while self.requests and self.requests[0] <= horizon:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= horizon:
            entry = self.tokens.popleft()
            self.token_sum -= entry[1]
            entry[1] = 0.0  # a settle that comes later must not take it off again


@dataclass(slots=True)
class _Ticket:
    window: _KeyWindow
    reserved: list[float] | None  # the estimate's entry in the token log
    counts_tokens: bool  # the key has a tpm limit


class LocalLimiter:
    """Limits kept in this process; `clock` is monotonic seconds (injected in tests)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, window_s: float = WINDOW_S
    ) -> None:
        self.clock, self.window_s = clock, window_s
        self._keys: dict[str, _KeyWindow] = {}

    async def acquire(self, key: ApiKeyConfig, est_tokens: int) -> Decision:
        now = self.clock()
        win = self._keys.get(key.name)
        if win is None:
            win = self._keys[key.name] = _KeyWindow()
        win.prune(now, self.window_s)
        reason, wait = self._refusal(key, win, est_tokens, now)
        if reason:
            return self._decision(key, win, now, reason=reason, wait=wait)
        reserved = None
        if key.rpm is not None:
            win.requests.append(now)
        if key.tpm is not None and est_tokens > 0:
            reserved = [now, float(est_tokens)]
            win.tokens.append(reserved)
            win.token_sum += est_tokens
        win.in_flight += 1
        decision = self._decision(key, win, now)
        decision.ticket = _Ticket(win, reserved, key.tpm is not None)
        return decision

    def _refusal(
        self, key: ApiKeyConfig, win: _KeyWindow, est: int, now: float
    ) -> tuple[str, float]:
        """Why `key` may not start a request now, and how long until it may ('' : it may)."""
        if key.max_concurrency is not None and win.in_flight >= key.max_concurrency:
            return "concurrency", 1.0
        if key.rpm is not None and len(win.requests) >= key.rpm:
            return "rpm", win.requests[len(win.requests) - key.rpm] + self.window_s - now
        if key.tpm is not None:
            if est > key.tpm:
                return "too_large", self.window_s
            if win.token_sum + est > key.tpm:
                return "tpm", self._tokens_free_in(win, key.tpm - est, now)
        return "", 0.0

    def _tokens_free_in(self, win: _KeyWindow, room: float, now: float) -> float:
        """Seconds until the window holds at most `room` tokens."""
        left = win.token_sum
        for at, count in win.tokens:
            left -= count
            if left <= room:
                return at + self.window_s - now
        return self.window_s

    def _decision(
        self, key: ApiKeyConfig, win: _KeyWindow, now: float, *, reason: str = "", wait: float = 0
    ) -> Decision:
        requests = tokens = None
        if key.rpm is not None:
            newest = win.requests[-1] if win.requests else None
            requests = Window(
                key.rpm, max(0, key.rpm - len(win.requests)), self._reset(newest, now)
            )
        if key.tpm is not None:
            newest = next((at for at, n in reversed(win.tokens) if n > 0), None)
            left = max(0, key.tpm - math.ceil(win.token_sum))
            tokens = Window(key.tpm, left, self._reset(newest, now))
        retry = max(1, math.ceil(wait)) if reason else 0
        return Decision(key.name, not reason, requests, tokens, reason, retry)

    def _reset(self, newest: float | None, now: float) -> float:
        return 0.0 if newest is None else max(0.0, newest + self.window_s - now)

    async def settle(self, decision: Decision, actual_tokens: int) -> None:
        ticket = decision.ticket
        if not isinstance(ticket, _Ticket) or not ticket.counts_tokens:
            return
        win, reserved = ticket.window, ticket.reserved
        if reserved is not None:  # the estimate goes; the real count is counted from now
            win.token_sum -= reserved[1]
            reserved[1] = 0.0
            ticket.reserved = None
        if actual_tokens > 0:
            win.tokens.append([self.clock(), float(actual_tokens)])
            win.token_sum += actual_tokens

    async def release(self, decision: Decision) -> None:
        ticket = decision.ticket
        if isinstance(ticket, _Ticket):
            ticket.window.in_flight -= 1
            decision.ticket = None  # released once, whatever calls it

    def retain(self, names: Collection[str]) -> None:
        for name in [n for n in self._keys if n not in names]:
            del self._keys[name]


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in `x-ratelimit-reset-*` (Go's format): 12ms, 1s, 6m0s."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def rate_headers(decision: Decision) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers for what `decision` says."""
    headers: dict[str, str] = {}
    for kind, window in (("requests", decision.requests), ("tokens", decision.tokens)):
        if window is not None:
            headers[f"x-ratelimit-limit-{kind}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(window.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = go_duration(window.reset_s)
    return headers
