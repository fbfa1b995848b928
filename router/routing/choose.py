"""Where the node is chosen: one `Chooser.choose` for every request, whatever the slot store.

A request asks (`Ask`) for a model, naming the nodes it already tried (`exclude`), its API key,
its conversation (`session`) and its length cap (`max_tokens`); its place in the store's line
(`Line`) says who waits before it. `choose` answers with a node that has a free slot, `Wait`
(every suitable node is full, or the strategy prefers to wait for a full one), or None (no
candidate is left). In order:

1. no candidate has a free slot: `ALL_FULL`, and no strategy looks (cheap, for deep queues);
2. the conversation's node (`AffinityRing`): where its last turn ran, else its place on the
   ring if that has room within the bounded load;
3. the configured strategy (`strategies`, `cost_aware`). One that `waits` (cost-aware) sees
   every candidate and weighs the conversation's node itself; the others see the free nodes
   only, and the conversation's node, when it has room, goes first.

The chooser reads loads (`NodeState.load`), never slot counts' origin: the local store and the
Redis store call it alike. Over `SAMPLE_ABOVE` candidates every part samples instead of
scanning (power of k choices), so a decision costs the same with 20 nodes or 2,000.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from router.fleet.registry import NodeState

if TYPE_CHECKING:
    from router.routing.affinity import AffinityRing

SAMPLE_ABOVE = 32  # candidates; above this, choices look at a random sample of them


@dataclass(frozen=True, slots=True)
class Ask:
    """What one request asks of the fleet (one attempt: `exclude` grows on failover)."""

    model: str
    exclude: Collection[str] = ()
    key: str = ""  # the API key's name
    session: str | None = None  # the conversation's affinity key
    max_tokens: int | None = None


class Line(Protocol):
    """The request's place in the slot store's line."""

    def ahead(self) -> int:
        """Requests that began waiting before this one (all that wait, if it has not yet)."""

    def others_waiting(self) -> bool:
        """Whether any other request waits."""

    def waiting_for(self, node: str) -> int:
        """Other requests waiting for `node` in particular."""


class _NoLine:
    """Nobody waits (a store that keeps no line)."""

    def ahead(self) -> int:
        return 0

    def others_waiting(self) -> bool:
        return False

    def waiting_for(self, node: str) -> int:
        return 0


NO_LINE: Line = _NoLine()


@dataclass(frozen=True, slots=True)
class Wait:
    """No node for now: wait for `node` (a full node worth waiting for), or for any."""

    node: NodeState | None = None


ALL_FULL = Wait()  # every candidate is full: no strategy looked (a waiter keeps its node)


class Strategy(Protocol):
    """Picks a node among `nodes` not in `ask.exclude`, or None when none is left. Pure but
    for its own cursor or statistics; it never changes a node."""

    @property
    def waits(self) -> bool:
        """True: it sees full nodes too (the request then waits for the one it picks) and
        weighs the conversation's `home` node itself. False: it sees free nodes only."""

    def pick(
        self,
        nodes: Sequence[NodeState],
        ask: Ask,
        rng: random.Random,
        *,
        line: Line = NO_LINE,
        home: NodeState | None = None,
    ) -> NodeState | None: ...


class Chooser:
    def __init__(
        self, strategy: Strategy, rng: random.Random, ring: AffinityRing | None = None
    ) -> None:
        self.strategy, self._rng, self._ring = strategy, rng, ring

    @property
    def ring(self) -> AffinityRing | None:
        """Conversations' nodes (None: affinity is off); a shared store may teach it more."""
        return self._ring

    def choose(
        self,
        candidates: Sequence[NodeState],
        ask: Ask,
        line: Line = NO_LINE,
        *,
        strict: bool = True,
    ) -> NodeState | Wait | None:
        """The node for `ask` among `candidates` (the model's nodes in rotation), `Wait`, or
        None when every candidate is excluded. `strict=False` (shared counts unknown): when
        all are full, the strategy's pick among them rather than `ALL_FULL`."""
        exclude = ask.exclude
        for node in candidates:
            if node.free > 0 and node.name not in exclude:
                break
        else:
            if strict:
                return ALL_FULL if any(n.name not in exclude for n in candidates) else None
            return self.strategy.pick(candidates, ask, self._rng)
        strategy, ring, session = self.strategy, self._ring, ask.session
        home = None if ring is None or session is None else self._home(ring, candidates, ask)
        chosen: NodeState | None
        if strategy.waits:
            chosen = strategy.pick(candidates, ask, self._rng, line=line, home=home)
            if chosen is None or chosen.free <= 0:
                return Wait(chosen)
        elif home is not None:
            chosen = home
        else:
            free = [n for n in candidates if n.free > 0 and n.name not in exclude]
            chosen = strategy.pick(free, ask, self._rng)
            if chosen is None:
                return ALL_FULL
        if ring is not None and session is not None:
            ring.remember(session, chosen.name)
        return chosen

    def _home(
        self, ring: AffinityRing, candidates: Sequence[NodeState], ask: Ask
    ) -> NodeState | None:
        """The conversation's node: where its last turn ran (its prompt cache), full or not
        for a strategy that weighs waiting for it; else its place on the ring."""
        session = ask.session
        assert session is not None
        home = ring.last(session, candidates, exclude=ask.exclude, rng=self._rng)
        if home is None or (not self.strategy.waits and home.free <= 0):
            home = ring.pick(session, candidates, exclude=ask.exclude, rng=self._rng)
        return home
