"""Choosing a node: pure, given the candidates, returns one.

Least loaded relative to capacity; ties are broken at random (reservoir sampling in the same
pass), so a node that just recovered with zero load gets traffic and equal nodes share it.
A node's load counts every replica's requests on it: this one's own plus, with coordination,
the others' as last seen (`remote_in_flight`, 0 without it).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable

from router.fleet import NodeState


def choose(
    candidates: Iterable[NodeState], *, exclude: Collection[str] = (), rng: random.Random
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
