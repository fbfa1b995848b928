"""The line a slot store keeps for the chooser (`choose.Line`): who waits, in what order, for
which node; and the one walk over a request's targets both stores make (`choose_target`).
Both stores keep a line: the local store for the whole router, the Redis store for its
replica (what other replicas queue stays theirs; their leases and waiting keys are shared).

A request takes a ticket the first time it has to wait and keeps it until it leaves, so a
request that loses a race for a slot keeps its place. Cost-aware choice may make it wait for
one full node in particular (the fast one): `waiting_for(node)` counts those.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Collection, Sequence

from router.fleet.registry import NodeState
from router.routing.choose import ALL_FULL, Ask, Chooser, Wait


class Place:
    """One request's asks (one per target model, most preferred first) and its place in
    line: a ticket once it had to wait, and the node it waits for, if cost-aware choice
    picked a full one. Implements `choose.Line`."""

    __slots__ = ("asks", "line", "node", "ticket")

    def __init__(self, line: WaitLine, asks: tuple[Ask, ...]) -> None:
        self.line, self.asks = line, asks
        self.node: str | None = None
        self.ticket: int | None = None

    def ahead(self) -> int:
        tickets = self.line.tickets
        return len(tickets) if self.ticket is None else bisect_left(tickets, self.ticket)

    def others_waiting(self) -> bool:
        return len(self.line.tickets) > (self.ticket is not None)

    def waiting_for(self, node: str) -> int:
        return self.line.for_node[node] - (self.node == node)


class WaitLine:
    def __init__(self) -> None:
        self.for_node: Counter[str] = Counter()  # node → requests waiting for it
        self.by_model: Counter[str] = Counter()  # first target → requests in line
        self.tickets: list[int] = []  # of the requests waiting, ascending: the line's order
        self._next = 0

    def wait(self, place: Place, chosen: Wait | None) -> None:
        """`place` waits, in line from now on: for the node `chosen` names, for any node
        (`Wait()`), or as before (`ALL_FULL`, or None: every candidate left meanwhile)."""
        if chosen is not None and chosen is not ALL_FULL:
            self.wait_for(place, None if chosen.node is None else chosen.node.name)
        if place.ticket is None:
            place.ticket = self._next
            self._next += 1
            self.tickets.append(place.ticket)
            self.by_model[place.asks[0].model] += 1

    def wait_for(self, place: Place, node: str | None) -> None:
        """Count `place` as waiting for `node` (None: for no node in particular)."""
        if place.node == node:
            return
        if place.node is not None:
            self.for_node[place.node] -= 1
            if not self.for_node[place.node]:
                del self.for_node[place.node]
        if node is not None:
            self.for_node[node] += 1
        place.node = node

    def leave(self, place: Place) -> None:
        self.wait_for(place, None)
        if place.ticket is not None:
            del self.tickets[bisect_left(self.tickets, place.ticket)]
            place.ticket = None
            model = place.asks[0].model
            self.by_model[model] -= 1
            if not self.by_model[model]:
                del self.by_model[model]


def choose_target(
    chooser: Chooser,
    candidates: Callable[[str], Sequence[NodeState]],
    place: Place,
    *,
    strict: bool = True,
) -> tuple[NodeState, str] | Wait | None:
    """(a node, the target model it serves), or what to wait for. The first target with a
    free node not yet tried gets the choice among its nodes (issue #15: spill to the next
    target only when all of one's are full or down); when every target is full the request
    waits, and any slot that frees wakes it. `strict=False`: `Chooser.choose`'s."""
    chosen: Wait | None = None
    asks = place.asks
    for i, ask in enumerate(asks):
        nodes = candidates(ask.model)
        if i < len(asks) - 1 and not any(
            n.free > 0 and n.name not in ask.exclude for n in nodes
        ):  # full or down: the next target (the last one's full nodes: the chooser's)
            if chosen is None and any(n.name not in ask.exclude for n in nodes):
                chosen = ALL_FULL
            continue
        found = chooser.choose(nodes, ask, place, strict=strict)
        if isinstance(found, NodeState):
            return found, ask.model
        return found if found is not None else chosen
    return chosen


def servable(
    candidates: Callable[[str], Sequence[NodeState]],
    models: Sequence[str],
    exclude: Collection[str],
) -> tuple[str, ...] | None:
    """A request's target models as a tuple (one model may come as a bare str, which is a
    Sequence[str] of its letters), or None when no node not yet tried serves any of them:
    waiting would not help. Both slot stores start `take` here."""
    if isinstance(models, str):
        models = (models,)
    # Loops, not `any()` over a generator, which an early stop closes with an exception.
    for model in models:
        for node in candidates(model):
            if node.name not in exclude:
                return tuple(models)
    return None
