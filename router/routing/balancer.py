"""Choosing a node: pure, given the candidates, returns one.

Least loaded relative to capacity; ties are broken at random (reservoir sampling in the same
pass), so a node that just recovered with zero load gets traffic and equal nodes share it.
A node's load counts every replica's requests on it: this one's own plus, with coordination,
the others' as last seen (`remote_in_flight`, 0 without it).

Over more than `SAMPLE_ABOVE` candidates a full scan costs ~50 µs per request at 1,000 nodes
(issue #5, S5), so `choose` looks at `CHOICES` of them drawn at random and takes the least
loaded: the "power of two choices" (Mitzenmacher 2001; Envoy's LEAST_REQUEST `choice_count`,
default 2). Two draws instead of one cut the worst node's excess load from ~log n / log log n
to ~log log n; more draws only shave a constant off that while costing a draw each, and the
more we draw the more every router replica herds onto the same few idle nodes. If the sample
is all excluded or all full, the exact scan decides: a request never waits, nor lands on a
full node, while some candidate has room.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Sequence

from router.fleet.registry import NodeState

SAMPLE_ABOVE = 16  # up to this many candidates the exact scan is as cheap as sampling
CHOICES = 2
MAX_DRAWS = 4 * CHOICES  # draws that hit excluded or already drawn nodes count too


def choose(
    candidates: Iterable[NodeState], *, exclude: Collection[str] = (), rng: random.Random
) -> NodeState | None:
    """The least loaded candidate not in `exclude` (a sample of them over `SAMPLE_ABOVE`),
    one at random among equals; None when every candidate is excluded."""
    if isinstance(candidates, Sequence) and len(candidates) > SAMPLE_ABOVE:
        return _sampled(candidates, exclude, rng)
    return _scan(candidates, exclude, rng)


def _scan(
    candidates: Iterable[NodeState], exclude: Collection[str], rng: random.Random
) -> NodeState | None:
    best: NodeState | None = None
    best_load = float("inf")
    ties = 0
    for node in candidates:
        if node.name in exclude:
            continue
        load = (node.in_flight + node.remote_in_flight) / node.capacity
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
        load = (node.in_flight + node.remote_in_flight) / node.capacity
        if load < best_load:
            best, best_load = node, load
        compared += 1
        if compared == CHOICES:
            break
    if best is None or best_load >= 1.0:
        return _scan(candidates, exclude, rng)
    return best
