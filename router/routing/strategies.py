"""The routing strategies behind one signature (`choose.Strategy`), so `routing.strategy` can
switch between them and a benchmark can compare them (issue 7): cost-aware (`cost_aware`, the
default), least-loaded, round-robin and random. `strategy()` builds the configured one.

Least loaded is by load relative to capacity (`NodeState.load`, which counts every replica's
requests); ties are broken at random (reservoir sampling in the same pass), so a node that just
recovered with zero load gets traffic and equal nodes share it. Over more than `SAMPLE_ABOVE`
candidates a full scan costs ~50 µs per request at 1,000 nodes (issue #5, S5), so it looks at
`CHOICES` of them drawn at random and takes the least loaded: the "power of two choices"
(Mitzenmacher 2001; Envoy's LEAST_REQUEST `choice_count`, default 2). Two draws instead of one
cut the worst node's excess load from ~log n / log log n to ~log log n; more draws only shave a
constant off that while costing a draw each, and the more we draw the more every router replica
herds onto the same few idle nodes. If the sample is all excluded or all full, the exact scan
decides: a request never lands on a full node while some candidate has room.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Sequence

from router.config import STRATEGIES as NAMES
from router.fleet.registry import NodeState
from router.routing.choose import NO_LINE, SAMPLE_ABOVE, Ask, Line, Strategy
from router.routing.cost_aware import DEFAULT_POLICY, CostAware, LoadedFn
from router.routing.scoring import CostPolicy, SpeedStats

CHOICES = 2
MAX_DRAWS = 4 * CHOICES  # draws that hit excluded or already drawn nodes count too


def strategy(
    name: str, stats: SpeedStats, *, loaded: LoadedFn, policy: CostPolicy = DEFAULT_POLICY
) -> Strategy:
    """The strategy called `name` (one of `NAMES`); only cost-aware reads speeds and loads."""
    if name == "cost_aware":
        return CostAware(stats, loaded=loaded, policy=policy)
    if name == "least_loaded":
        return LeastLoaded()
    if name == "round_robin":
        return RoundRobin()
    if name == "random":
        return RandomChoice()
    raise ValueError(f"unknown routing strategy {name!r}; expected one of {', '.join(NAMES)}")


class LeastLoaded:
    """The least loaded candidate (a sample of them over `SAMPLE_ABOVE`), one at random among
    equals; over capacity still counts, when all are full."""

    __slots__ = ()
    waits = False

    def pick(
        self,
        nodes: Sequence[NodeState],
        ask: Ask,
        rng: random.Random,
        *,
        line: Line = NO_LINE,
        home: NodeState | None = None,
    ) -> NodeState | None:
        if len(nodes) > SAMPLE_ABOVE:
            return _sampled(nodes, ask.exclude, rng)
        return _scan(nodes, ask.exclude, rng)


def _scan(
    candidates: Iterable[NodeState], exclude: Collection[str], rng: random.Random
) -> NodeState | None:
    best: NodeState | None = None
    best_load = float("inf")
    ties = 0
    for node in candidates:
        if node.name in exclude:
            continue
        load = node.load / node.capacity
        if load < best_load:
            best, best_load, ties = node, load, 1
        elif load == best_load:
            ties += 1
            if rng.random() * ties < 1.0:
                best = node
    return best


def _sampled(
    candidates: Sequence[NodeState], exclude: Collection[str], rng: random.Random
) -> NodeState | None:
    count = len(candidates)
    drawn: list[NodeState] = []
    best: NodeState | None = None
    best_load = float("inf")
    compared = 0
    for _ in range(MAX_DRAWS):
        node = candidates[rng.randrange(count)]
        if node in drawn:
            continue
        drawn.append(node)
        if node.name in exclude:
            continue
        # Draw order is random, so keeping the first of equals is a uniform tie-break.
        load = node.load / node.capacity
        if load < best_load:
            best, best_load = node, load
        compared += 1
        if compared == CHOICES:
            break
    if best is None or best_load >= 1.0:
        return _scan(candidates, exclude, rng)
    return best


class RandomChoice:
    """Any candidate, uniformly; load is ignored."""

    __slots__ = ()
    waits = False

    def pick(
        self,
        nodes: Sequence[NodeState],
        ask: Ask,
        rng: random.Random,
        *,
        line: Line = NO_LINE,
        home: NodeState | None = None,
    ) -> NodeState | None:
        exclude = ask.exclude
        live = [n for n in nodes if n.name not in exclude] if exclude else nodes
        return rng.choice(live) if live else None


class RoundRobin:
    """Each model's candidates in turn, skipping excluded ones. The cursor is an index, so a
    change in the candidate list shifts the turn once and cycling goes on."""

    __slots__ = ("_next",)
    waits = False

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def pick(
        self,
        nodes: Sequence[NodeState],
        ask: Ask,
        rng: random.Random,
        *,
        line: Line = NO_LINE,
        home: NodeState | None = None,
    ) -> NodeState | None:
        count, model = len(nodes), ask.model
        start = self._next.get(model, 0)
        for step in range(count):
            node = nodes[(start + step) % count]
            if node.name not in ask.exclude:
                self._next[model] = (start + step + 1) % count
                return node
        return None
