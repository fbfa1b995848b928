"""The fair admission queue: hold a request while every suitable node is full, never drop it.

Issue 7. The queue serves one slot store (`Admits`): when the store's `try_take(request)` (a
slot on a suitable node for that request, or None) finds nothing free, the request waits here
instead of piling onto a node's own blind queue. Whoever frees capacity (a released slot, a
node back to health) calls `notify()`, which hands slots to waiters:

* fair across API keys: keys take turns, least recently served first (a key that queues anew
  goes to the back), so one key's burst cannot starve another key;
* FIFO within a key among waiters that can run: a waiter whose `try_take` finds nothing (its
  model is busy) does not block one behind it whose model has a free node, in any key;
* bounded: `max_depth` waiters at most (`QueueFull`), each for `timeout_s` at most
  (`QueueTimeout`); both mean 429 with Retry-After to the caller.

A slot handed to a waiter whose client left at that moment goes back through the store's
`give_back`.
Single event loop, no locks: nothing awaits between finding a slot and handing it over. The
timeout runs on the loop's timer; the injected `clock` measures waits for `on_wait` (metrics).

    AdmissionRejected
    ├── QueueFull
    └── QueueTimeout
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, Literal, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
Outcome = Literal["admitted", "timeout", "cancelled"]


class Admits(Protocol[R_contra, T]):
    """The slot store a queue serves: requests of type R, slots of type T."""

    def try_take(self, request: R_contra) -> T | None:
        """A slot for `request` now, or None (it waits). Must not await."""

    def give_back(self, slot: T) -> None:
        """A slot handed over as its request's client left: free it again."""


class AdmissionRejected(Exception):
    """The request was not admitted; the client should retry later (429)."""


class QueueFull(AdmissionRejected):
    pass


class QueueTimeout(AdmissionRejected):
    pass


class _Waiter(Generic[R, T]):
    __slots__ = ("future", "key", "queued", "request", "since")

    def __init__(self, key: str, request: R, future: asyncio.Future[T], since: float) -> None:
        self.key, self.request, self.future, self.since = key, request, future, since
        self.queued = False


class AdmissionQueue(Generic[R, T]):
    def __init__(
        self,
        store: Admits[R, T],
        *,
        max_depth: int,
        timeout_s: float,
        clock: Callable[[], float],
        on_wait: Callable[[float, Outcome], None] | None = None,
    ) -> None:
        """`on_wait(seconds, outcome)` is told how each wait ended (metrics)."""
        if max_depth < 0:
            raise ValueError(f"max_depth must be >= 0, got {max_depth}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._store, self._max_depth, self._timeout_s = store, max_depth, timeout_s
        self._clock, self._on_wait = clock, on_wait
        # key → its waiters, FIFO; dict order is the turn order, least recently served first.
        self._queues: dict[str, deque[_Waiter[R, T]]] = {}
        self._depth = 0
        self._notifying = self._renotify = False

    @property
    def depth(self) -> int:
        return self._depth

    def waiting_by_key(self) -> dict[str, int]:
        return {key: len(queue) for key, queue in self._queues.items()}

    async def admit(self, key: str, request: R, *, first: bool = False) -> T:
        """A slot for `request` (from the store's `try_take`), now or once `notify()` finds
        one for it; `key` (the API key's name) is whose turn it waits in. `first`: the request
        was handed a slot that turned out taken (a shared store's view was stale); it waits
        for the next `notify()` at the head of the line, where it was."""
        if not first:
            if self._queues:
                # Serve the waiters first, in turn; then a slot this request finds free is
                # one none of them can use (another model), so taking it jumps nobody.
                self.notify()
            value = self._store.try_take(request)
            if value is not None:
                return value
            if self._depth >= self._max_depth:
                raise QueueFull(f"{self._depth} requests are already waiting for a free node")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        waiter: _Waiter[R, T] = _Waiter(key, request, future, self._clock())
        self._push(waiter, first=first)
        timer = loop.call_later(self._timeout_s, self._expire, waiter)
        try:
            value = await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        except QueueTimeout:
            self._observe(waiter, "timeout")
            raise
        finally:
            timer.cancel()
        self._observe(waiter, "admitted")
        return value

    def notify(self) -> None:
        """Capacity may have freed: hand it to waiters, in turn, until nobody can take more."""
        if self._notifying:  # a try_take freed capacity: go round again once this round ends
            self._renotify = True
            return
        self._notifying = True
        try:
            self._renotify = True
            while self._renotify:
                self._renotify = False
                tried: set[int] = set()  # found nothing this round; capacity only shrinks
                while self._serve_one(tried):
                    pass
        finally:
            self._notifying = False

    # -- internals -------------------------------------------------------------------------
    def _serve_one(self, tried: set[int]) -> bool:
        for queue in self._queues.values():
            for waiter in queue:
                if waiter.future.done() or id(waiter) in tried:
                    continue  # done: cancelled, its task not yet run to leave the queue
                try:
                    value = self._store.try_take(waiter.request)
                except Exception as exc:  # forwarded to its own request, not swallowed
                    self._remove(waiter)
                    waiter.future.set_exception(exc)
                    return True
                if value is None:
                    tried.add(id(waiter))
                    continue
                self._remove(waiter, to_back=True)
                waiter.future.set_result(value)
                return True
        return False

    def _push(self, waiter: _Waiter[R, T], *, first: bool = False) -> None:
        queue = self._queues.get(waiter.key)
        if queue is None:
            queue = self._queues[waiter.key] = deque()
        if first:  # its key's turn again, and its place at the head
            queue.appendleft(waiter)
            self._queues = {waiter.key: queue} | self._queues
        else:
            queue.append(waiter)
        waiter.queued = True
        self._depth += 1

    def _remove(self, waiter: _Waiter[R, T], *, to_back: bool = False) -> None:
        """Take `waiter` out; `to_back` (it was served) ends its key's turn."""
        if not waiter.queued:
            return
        waiter.queued = False
        self._depth -= 1
        queue = self._queues[waiter.key]
        queue.remove(waiter)
        if to_back or not queue:
            del self._queues[waiter.key]
            if queue:
                self._queues[waiter.key] = queue

    def _expire(self, waiter: _Waiter[R, T]) -> None:
        if waiter.future.done():
            return
        self._remove(waiter)
        waiter.future.set_exception(QueueTimeout(f"no node was free within {self._timeout_s:g} s"))

    def _abandon(self, waiter: _Waiter[R, T]) -> None:
        """The client left while waiting."""
        self._remove(waiter)
        self._observe(waiter, "cancelled")
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            self._store.give_back(future.result())  # handed over just as the client left
            self.notify()  # that slot is free again

    def _observe(self, waiter: _Waiter[R, T], outcome: Outcome) -> None:
        if self._on_wait is not None:
            self._on_wait(self._clock() - waiter.since, outcome)
