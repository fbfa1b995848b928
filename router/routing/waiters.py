"""Requests waiting for a slot (coordination): per model, first come first served.

A waiter holds nothing but its place: a ticket taken when it first waits. Woken waiters (as
many as there are free slots) have their turn: newcomers queue behind them until they call
`done`. One that loses the race for the slot waits again with its old ticket, so it keeps its
place. Timeouts and cancels leave the queue. All within one replica: across replicas, the slots
in Redis decide.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from collections.abc import Callable


class Waiters:
    def __init__(self) -> None:
        self._queues: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}  # heaps by ticket
        self._queued: Counter[str] = Counter()
        self._turns: Counter[str] = Counter()  # woken, not yet `done`
        self._tickets = itertools.count()

    def ticket(self) -> int:
        return next(self._tickets)

    @property
    def waiting(self) -> int:
        """Requests waiting now, for any model."""
        return sum(self._queued.values())

    def by_line(self, key: Callable[[str], str]) -> dict[str, int]:
        """Requests waiting now, summed per `key(line)`."""
        out: dict[str, int] = {}
        for line, n in self._queued.items():
            if n > 0:
                out[key(line)] = out.get(key(line), 0) + n
        return out

    def ahead(self, model: str) -> bool:
        """Whether a newcomer for `model` has to queue behind others."""
        return bool(self._queued[model] or self._turns[model])

    async def wait(self, model: str, ticket: int, *, deadline: float) -> None:
        """Until woken, then it is the caller's turn until it calls `done(model)`; raises
        TimeoutError at `deadline` (loop time)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queues.setdefault(model, []), (ticket, waiter))
        self._queued[model] += 1
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # woken, but leaving all the same
                self._turns[model] -= 1
            else:  # left in the heap, skipped when it comes up
                waiter.cancel()
                self._queued[model] -= 1
            raise

    def done(self, model: str) -> None:
        self._turns[model] -= 1

    def wake(self, free: Callable[[str], int | None]) -> None:
        """Give turns, per model, for the free slots `free(model)` reports (None: to all),
        less the turns still out."""
        for model, queue in self._queues.items():
            if not self._queued[model]:
                queue.clear()
                continue
            n = free(model)
            n = self._queued[model] if n is None else n - self._turns[model]
            while n > 0 and queue:
                _, waiter = heapq.heappop(queue)
                if not waiter.done():
                    waiter.set_result(None)
                    self._queued[model] -= 1
                    self._turns[model] += 1
                    n -= 1
