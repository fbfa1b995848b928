"""Requests waiting for a slot (coordination): one FIFO per model, woken as slots free up.

A waiter holds nothing but its place. Until a woken waiter has looked again, it still counts
as ahead of newcomers (`ahead`), and if it loses the race for the slot it goes back to the
front, so each model's waiters are served first come, first served (within one replica).
Timeouts and cancels take the waiter out of its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Callable


class Waiters:
    def __init__(self) -> None:
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        self._woken: Counter[str] = Counter()  # woken, not yet back from `wait`

    def waiting(self, model: str) -> int:
        queue = self._queues.get(model)
        return 0 if queue is None else len(queue)

    def ahead(self, model: str) -> bool:
        """Whether a newcomer for `model` has to queue behind others."""
        return bool(self.waiting(model) or self._woken[model])

    def any(self) -> bool:
        return any(self._queues.values())

    async def wait(self, model: str, *, front: bool, deadline: float) -> None:
        """Until woken; raises TimeoutError at `deadline` (loop time)."""
        queue = self._queues.get(model)
        if queue is None:
            queue = self._queues[model] = deque()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if front:
            queue.appendleft(waiter)
        else:
            queue.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        finally:
            if waiter.done() and not waiter.cancelled():
                self._woken[model] -= 1
            else:  # not woken: maybe still queued
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)

    def wake(self, free: Callable[[str], int | None]) -> None:
        """Wake, per model, as many waiters as `free(model)` says (None: all of them)."""
        for model, queue in self._queues.items():
            if not queue:
                continue
            n = free(model)
            if n is None:
                n = len(queue)
            while n > 0 and queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    self._woken[model] += 1
                    n -= 1
