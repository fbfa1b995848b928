"""Slots for one replica on its own: strict capacity, a fair queue, the configured strategy.

A request runs on a node only while the node has a free slot (`in_flight < max_concurrency`),
instead of piling onto the node's own blind queue. When every suitable node is full it waits in
the admission queue (fair across API keys) and is dispatched the moment a slot frees or a node
joins; a full queue or a long wait ends in `AdmissionRejected` (429 for the client).
Which free node: the conversation's affinity node if it has room within the bounded load,
else the routing strategy's pick (cost-aware by default).
"""

from __future__ import annotations

import random
from collections.abc import Collection

from router.admission import AdmissionQueue
from router.affinity import AffinityRing
from router.fleet import Fleet, Lease, NodeState
from router.strategies import Chooser, CostAware


def _load(node: NodeState) -> float:
    return node.in_flight + node.remote_in_flight


def _capacity(node: NodeState) -> int:
    return node.capacity


def _give_back(lease: Lease) -> None:
    lease.release()


class QueuedSlots:
    def __init__(
        self,
        fleet: Fleet,
        chooser: Chooser,
        rng: random.Random,
        queue: AdmissionQueue,
        ring: AffinityRing | None,
    ) -> None:
        self._fleet, self._chooser, self._rng = fleet, chooser, rng
        self.queue, self._ring = queue, ring
        fleet.on_capacity = queue.notify  # a node joined rotation: waiters may run now
        # Cost-aware choice may prefer to wait for a full fast node over a free slow one; the
        # other strategies take any free node.
        self._waits_for_best = isinstance(chooser, CostAware)
        if isinstance(chooser, CostAware):
            chooser.backlog = lambda: queue.depth

    async def take(
        self, model: str, exclude: Collection[str], *, key: str = "", session: str | None = None
    ) -> Lease | None:
        if not any(n.name not in exclude for n in self._fleet.candidates(model)):
            return None  # no node at all: waiting would not help
        return await self.queue.admit(
            key, lambda: self._try_take(model, exclude, session), give_back=_give_back
        )

    def _try_take(self, model: str, exclude: Collection[str], session: str | None) -> Lease | None:
        candidates = self._fleet.candidates(model)
        node: NodeState | None = None
        if session is not None and self._ring is not None:
            node = self._ring.pick(
                session, candidates, load=_load, capacity=_capacity, exclude=exclude
            )
        if node is None and self._waits_for_best:
            node = self._chooser(candidates, model=model, exclude=exclude, rng=self._rng)
            if node is None or _load(node) >= node.capacity:
                return None  # the best node is full: wait for it (or for the backlog to grow)
        elif node is None:
            free = [n for n in candidates if _load(n) < n.capacity and n.name not in exclude]
            if not free:
                return None
            node = self._chooser(free, model=model, exclude=(), rng=self._rng)
            if node is None:
                return None
        return Lease(node, on_release=self._released)

    def _released(self, lease: Lease) -> None:
        self.queue.notify()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
