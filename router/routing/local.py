"""Slots for one replica on its own: strict capacity on its own counts, the fair queue.

A request runs on a node only while the node has a free slot, instead of piling onto the node's
own blind queue. It asks for node models in order of preference (a catalog entry's targets,
issue #15): the first with a free node not yet tried gets the choice, and it waits only when
every one's nodes are full, for whichever frees first. `choose.Chooser` decides which node;
when it answers `Wait` (every suitable node is full, or cost-aware choice prefers a full one)
the request waits in the admission queue (fair across API keys) and is tried again the moment
a slot frees or a node joins; a full queue or a long wait ends in `AdmissionRejected` (429 for
the client). The store keeps the line the chooser reads (`Line`): tickets in arrival order,
and how many wait for each node.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Collection, Sequence

from router.fleet.registry import Fleet, Lease, NodeState
from router.routing.admission import AdmissionQueue, Outcome
from router.routing.choose import ALL_FULL, Ask, Chooser, Wait


class _Request:
    """One request's asks (one per target model, most preferred first) and its place in line
    (`choose.Line`): a ticket, once it had to wait, and the node it waits for, if cost-aware
    choice picked a full one."""

    __slots__ = ("asks", "node", "store", "ticket")

    def __init__(self, store: QueuedSlots, asks: tuple[Ask, ...]) -> None:
        self.store, self.asks = store, asks
        self.node: str | None = None
        self.ticket: int | None = None

    def ahead(self) -> int:
        tickets = self.store._tickets
        return len(tickets) if self.ticket is None else bisect_left(tickets, self.ticket)

    def others_waiting(self) -> bool:
        return len(self.store._tickets) > (self.ticket is not None)

    def waiting_for(self, node: str) -> int:
        return self.store._waiting_for[node] - (self.node == node)


class QueuedSlots:
    def __init__(
        self,
        fleet: Fleet,
        chooser: Chooser,
        *,
        max_queue: int,
        queue_timeout_s: float,
        clock: Callable[[], float],
        on_wait: Callable[[float, Outcome], None] | None = None,
    ) -> None:
        self._fleet, self._chooser = fleet, chooser
        self.queue: AdmissionQueue[_Request, Lease] = AdmissionQueue(
            self, max_depth=max_queue, timeout_s=queue_timeout_s, clock=clock, on_wait=on_wait
        )
        self._waiting_for: Counter[str] = Counter()  # node → queued requests waiting for it
        self._waiting_models: Counter[str] = Counter()  # first target → requests in line
        self._tickets: list[int] = []  # of the requests waiting, ascending: the line's order
        self._next_ticket = 0
        # A node joined rotation (or got its slots back): waiters may run now.
        self._unwatch = fleet.watch_capacity(self.queue.notify)

    @property
    def waiting(self) -> int:
        return self.queue.depth

    def waiting_by_model(self) -> dict[str, int]:
        return dict(self._waiting_models)

    async def take(
        self,
        models: Sequence[str],
        exclude: Collection[str],
        *,
        key: str = "",
        session: str | None = None,
        max_tokens: int | None = None,
    ) -> Lease | None:
        if isinstance(models, str):  # one model: a str is a Sequence[str] of its letters
            models = (models,)
        if not any(
            n.name not in exclude for model in models for n in self._fleet.candidates(model)
        ):
            return None  # no node at all: waiting would not help
        asks = tuple(Ask(model, exclude, key, session, max_tokens) for model in models)
        request = _Request(self, asks)
        try:
            return await self.queue.admit(key, request)
        finally:
            self._wait_for(request, None)
            if request.ticket is not None:
                del self._tickets[bisect_left(self._tickets, request.ticket)]
                self._waiting_models[models[0]] -= 1
                if not self._waiting_models[models[0]]:
                    del self._waiting_models[models[0]]

    # -- the admission queue's store (`admission.Admits`) -------------------------------------
    def try_take(self, request: _Request) -> Lease | None:
        """A lease on the chosen node, or None: the request waits (in line from now on).

        The first target with a free node not yet tried gets the choice among its nodes
        (issue #15: spill to the next target only when all of one's are full or down); when
        every target is full the request waits, and any slot that frees wakes it."""
        chosen: NodeState | Wait | None = None
        asks = request.asks
        for i, ask in enumerate(asks):
            candidates = self._fleet.candidates(ask.model)
            if i < len(asks) - 1 and not any(
                n.free > 0 and n.name not in ask.exclude for n in candidates
            ):  # full or down: the next target (the last one's full nodes: the chooser's)
                if chosen is None and any(n.name not in ask.exclude for n in candidates):
                    chosen = ALL_FULL
                continue
            found = self._chooser.choose(candidates, ask, request)
            if isinstance(found, NodeState):
                return Lease(found, self, model=ask.model)
            chosen = found if found is not None else chosen
            break
        # None: every candidate left meanwhile; it waits for one to come back.
        if isinstance(chosen, Wait) and chosen is not ALL_FULL:
            self._wait_for(request, None if chosen.node is None else chosen.node.name)
        if request.ticket is None:
            request.ticket = self._next_ticket
            self._next_ticket += 1
            self._tickets.append(request.ticket)
            self._waiting_models[request.asks[0].model] += 1
        return None

    def give_back(self, slot: Lease) -> None:
        slot.release()

    def released(self, lease: Lease) -> None:
        """A lease this store made was given back (`Lease.owner`): a waiter may take it."""
        self.queue.notify()

    def _wait_for(self, request: _Request, node: str | None) -> None:
        """Count the request as waiting for `node` (None: for no node in particular)."""
        if request.node == node:
            return
        if request.node is not None:
            self._waiting_for[request.node] -= 1
            if not self._waiting_for[request.node]:
                del self._waiting_for[request.node]
        if node is not None:
            self._waiting_for[node] += 1
        request.node = node

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._unwatch()
