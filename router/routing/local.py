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
from bisect import bisect_left
from collections import Counter
from collections.abc import Collection, Sequence

from router.fleet.registry import Fleet, Lease, NodeState
from router.routing.admission import AdmissionQueue
from router.routing.affinity import AffinityRing
from router.routing.strategies import Chooser, CostAware


def _load(node: NodeState) -> float:
    return node.in_flight + node.remote_in_flight


def _capacity(node: NodeState) -> int:
    return node.capacity


def _give_back(lease: Lease) -> None:
    lease.release()


HOME_WAIT_SHARE = 0.5  # of a warm cache's saving a conversation waits for, with no line


class _Waiting:
    """A request's place in line (a ticket, once it had to wait) and the node it waits for,
    if cost-aware choice picked a full one."""

    __slots__ = ("node", "ticket")

    def __init__(self) -> None:
        self.node: str | None = None
        self.ticket: int | None = None


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
        self._waiting_for: Counter[str] = Counter()  # node → queued requests waiting for it
        self._tickets: list[int] = []  # of the requests waiting, ascending: the line's order
        self._next_ticket = 0
        fleet.on_capacity = queue.notify  # a node joined rotation: waiters may run now
        # Cost-aware choice may prefer to wait for a full fast node over a free slow one; the
        # other strategies take any free node.
        self._cost = chooser if isinstance(chooser, CostAware) else None

    async def take(
        self,
        model: str,
        exclude: Collection[str],
        *,
        key: str = "",
        session: str | None = None,
        max_tokens: int | None = None,
    ) -> Lease | None:
        candidates = self._fleet.candidates(model)
        if len(candidates) <= len(exclude) and all(n.name in exclude for n in candidates):
            return None  # no node at all: waiting would not help
        waiting = _Waiting()
        try:
            return await self.queue.admit(
                key,
                lambda: self._try_take(model, exclude, session, max_tokens, waiting),
                give_back=_give_back,
            )
        finally:
            self._wait_for(waiting, None)
            if waiting.ticket is not None:
                at = bisect_left(self._tickets, waiting.ticket)
                del self._tickets[at]

    def _ahead(self, waiting: _Waiting) -> int:
        """Requests that began waiting before this one (all of them, if it has not yet)."""
        if waiting.ticket is None:
            return len(self._tickets)
        return bisect_left(self._tickets, waiting.ticket)

    def _in_line(self, waiting: _Waiting) -> None:
        if waiting.ticket is None:
            waiting.ticket = self._next_ticket
            self._next_ticket += 1
            self._tickets.append(waiting.ticket)

    def _wait_for(self, waiting: _Waiting, node: str | None) -> None:
        """Count the request as waiting for `node` (None: for no node in particular)."""
        if waiting.node == node:
            return
        if waiting.node is not None:
            self._waiting_for[waiting.node] -= 1
            if not self._waiting_for[waiting.node]:
                del self._waiting_for[waiting.node]
        if node is not None:
            self._waiting_for[node] += 1
        waiting.node = node

    def _try_take(
        self,
        model: str,
        exclude: Collection[str],
        session: str | None,
        max_tokens: int | None,
        waiting: _Waiting,
    ) -> Lease | None:
        candidates = self._fleet.candidates(model)
        for candidate in candidates:
            if _load(candidate) < candidate.capacity and candidate.name not in exclude:
                break
        else:  # every node is full: no strategy could place it (cheap, for deep queues)
            self._in_line(waiting)
            return None
        ring = self._ring
        # The conversation's node: where its last turn ran (its prompt cache), else its place
        # on the ring if that has room within the bounded load.
        home: NodeState | None = None
        if ring is not None and session is not None:
            home = ring.last(session, candidates, load=_load, exclude=exclude, rng=self._rng)
            if home is None or (self._cost is None and _load(home) >= home.capacity):
                home = ring.pick(
                    session,
                    candidates,
                    load=_load,
                    capacity=_capacity,
                    exclude=exclude,
                    rng=self._rng,
                )
        if self._cost is not None:
            node = self._cost_aware_pick(
                self._cost, candidates, model, exclude, home, max_tokens, waiting
            )
            if node is None or _load(node) >= node.capacity:
                # the best node is full: wait for it (or for the backlog to grow)
                self._wait_for(waiting, None if node is None else node.name)
                self._in_line(waiting)
                return None
        elif home is not None:
            node = home
        else:  # some node is free (checked above, nothing awaited since)
            free = [n for n in candidates if _load(n) < n.capacity and n.name not in exclude]
            picked = self._chooser(free, model=model, exclude=(), rng=self._rng)
            if picked is None:
                return None
            node = picked
        if ring is not None and session is not None:
            ring.remember(session, node.name)
        return Lease(node, on_release=self._released)

    def _cost_aware_pick(
        self,
        chooser: CostAware,
        candidates: Sequence[NodeState],
        model: str,
        exclude: Collection[str],
        home: NodeState | None,
        max_tokens: int | None,
        waiting: _Waiting,
    ) -> NodeState | None:
        """The cheapest node; the conversation's own node instead while it costs no more than
        the cheapest by at most its prompt time, which is what a warm prompt cache saves. So a
        chat stays on its node among equals, waits for it when its turn comes soon, and leaves
        it when it is slow, busy or the model cold there."""
        live = chooser.shortlist(candidates, exclude, self._rng)
        if home is not None and home not in live:
            live.append(home)
        if not live:
            return None
        # A full node's wait counts the requests ahead of this one in line, not the whole
        # line: the head of a long line waits for a fast node, one far back takes a slow one.
        costs = chooser.costs(live, model, max_tokens, ahead=self._ahead(waiting))
        best = chooser.best(live, costs, self._rng)
        if home is None or home is best:
            return best
        if _load(home) >= home.capacity:
            # Waiting for its own node delays this request alone (it holds no slot meanwhile),
            # so its wait counts once, not `queue_weight` times; and only the requests already
            # waiting for that node go first, not the whole queue.
            ahead = {home.name: self._waiting_for[home.name] - (waiting.node == home.name)}
            home_cost = chooser.costs(
                [home], model, max_tokens, queue_weight=1.0, waiting_for=ahead
            )[0]
            # A wait is a guess, and a miss costs one prompt once (the chat then follows the
            # turn): with nobody else in line, wait for at most half what a hit saves. With a
            # line, a hit also frees the node sooner for the others: wait up to all of it.
            share = 1.0 if len(self._tickets) > (waiting.ticket is not None) else HOME_WAIT_SHARE
            saving = share * chooser.prompt_s(home, model)
        else:
            home_cost = costs[live.index(home)]
            saving = chooser.prompt_s(home, model)
        if home_cost <= costs[live.index(best)] + saving:
            return home
        return best

    def _released(self, lease: Lease) -> None:
        self.queue.notify()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
