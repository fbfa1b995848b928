"""Slots for one replica on its own: strict capacity on its own counts, the fair queue.

A request runs on a node only while the node has a free slot, instead of piling onto the node's
own blind queue. It asks for node models in order of preference (a catalog entry's targets,
issue #15): the first with a free node not yet tried gets the choice, and it waits only when
every one's nodes are full, for whichever frees first. `choose.Chooser` decides which node;
when it answers `Wait` (every suitable node is full, or cost-aware choice prefers a full one)
the request waits in the admission queue (fair across API keys) and is tried again the moment
a slot frees or a node joins; a full queue or a long wait ends in `AdmissionRejected` (429 for
the client). The store keeps the line the chooser reads (`line.WaitLine`): tickets in arrival
order, and how many wait for each node.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from router.fleet.registry import Fleet, Lease
from router.routing.admission import AdmissionQueue, Outcome
from router.routing.choose import Ask, Chooser
from router.routing.line import Place, WaitLine, choose_target, servable


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
        self.queue: AdmissionQueue[Place, Lease] = AdmissionQueue(
            self, max_depth=max_queue, timeout_s=queue_timeout_s, clock=clock, on_wait=on_wait
        )
        self._line = WaitLine()
        # A node joined rotation (or got its slots back): waiters may run now.
        self._unwatch = fleet.watch_capacity(self.queue.notify)

    @property
    def waiting(self) -> int:
        return self.queue.depth

    def waiting_by_model(self) -> dict[str, int]:
        return dict(self._line.by_model)

    async def take(
        self,
        models: Sequence[str],
        exclude: Collection[str],
        *,
        key: str = "",
        session: str | None = None,
        max_tokens: int | None = None,
    ) -> Lease | None:
        targets = servable(self._fleet.candidates, models, exclude)
        if targets is None:
            return None
        asks = tuple(Ask(model, exclude, key, session, max_tokens) for model in targets)
        place = Place(self._line, asks)
        try:
            return await self.queue.admit(key, place)
        finally:
            self._line.leave(place)

    # -- the admission queue's store (`admission.Admits`) -------------------------------------
    def try_take(self, place: Place) -> Lease | None:
        """A lease on the chosen node (of the first target with a free one, `line.choose_target`),
        or None: the request waits (in line from now on)."""
        found = choose_target(self._chooser, self._fleet.candidates, place)
        if isinstance(found, tuple):
            node, model = found
            return Lease(node, self, model=model)
        # None: every candidate left meanwhile; it waits for one to come back.
        self._line.wait(place, found)
        return None

    def give_back(self, slot: Lease) -> None:
        slot.release()

    def released(self, lease: Lease) -> None:
        """A lease this store made was given back (`Lease.owner`): a waiter may take it."""
        self.queue.notify()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._unwatch()
