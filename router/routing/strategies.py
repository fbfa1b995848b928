"""Node choosers behind one signature, so `routing.strategy` can switch between them and a
benchmark can compare them (issue 7).

A chooser takes the candidates for a model (healthy nodes that serve it), the names to skip
(nodes this request already tried) and an injected rng, and returns one node, or None when none
is left. None does I/O; `RoundRobin` keeps a cursor per model, `CostAware` reads `SpeedStats`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from router.fleet.registry import NodeState
from router.routing.balancer import choose
from router.routing.scoring import CostPolicy, SpeedStats, completion_s, fleet_speed

SAMPLE_ABOVE = 32  # candidates; more are sampled, not all scored
SAMPLE_SIZE = 8
LoadedFn = Callable[[str, str], bool | None]  # (node, model) → loaded per /api/ps; None = unknown
DEFAULT_POLICY = CostPolicy()


class Chooser(Protocol):
    def __call__(
        self,
        candidates: Sequence[NodeState],
        *,
        model: str,
        exclude: Collection[str],
        rng: random.Random,
        max_tokens: int | None = None,
    ) -> NodeState | None: ...


class StrategyFactory(Protocol):
    def __call__(
        self, stats: SpeedStats, loaded: LoadedFn, policy: CostPolicy = DEFAULT_POLICY
    ) -> Chooser: ...


def least_loaded(
    candidates: Sequence[NodeState],
    *,
    model: str,
    exclude: Collection[str],
    rng: random.Random,
    max_tokens: int | None = None,
) -> NodeState | None:
    """Today's balancer: least (in_flight + remote_in_flight) / capacity, random among equals."""
    return choose(candidates, exclude=exclude, rng=rng)


def random_choice(
    candidates: Sequence[NodeState],
    *,
    model: str,
    exclude: Collection[str],
    rng: random.Random,
    max_tokens: int | None = None,
) -> NodeState | None:
    live = [n for n in candidates if n.name not in exclude]
    return rng.choice(live) if live else None


class RoundRobin:
    """Each model's candidates in turn, skipping excluded ones. The cursor is an index, so a
    change in the candidate list shifts the turn once and cycling goes on."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def __call__(
        self,
        candidates: Sequence[NodeState],
        *,
        model: str,
        exclude: Collection[str],
        rng: random.Random,
        max_tokens: int | None = None,
    ) -> NodeState | None:
        count = len(candidates)
        start = self._next.get(model, 0)
        for step in range(count):
            node = candidates[(start + step) % count]
            if node.name not in exclude:
                self._next[model] = (start + step + 1) % count
                return node
        return None


def _unknown(node: str, model: str) -> bool | None:
    return None


class CostAware:
    """The node with the least expected completion time (`routing.scoring`). Among nodes within
    `tie` (relative) of the best, the least loaded by ratio wins, then one at random: equal
    nodes share work and a recovered node gets traffic.

    The request's `max_tokens` caps its expected length, so a short request may take a slow
    node that a long one should wait for. A cold model costs the node's own measured load time
    (Ollama's `load_duration` when it last loaded one), else `CostPolicy.cold_load_s`.
    Above `SAMPLE_ABOVE` candidates it scores `SAMPLE_SIZE` of them drawn at random (power
    of k choices, as Envoy's least-request balancer): a decision costs the same with 20 nodes
    or 2,000, and k = 8 of a large fleet almost always holds one of its best nodes.
    """

    __slots__ = ("loaded", "policy", "stats", "tie")

    def __init__(
        self,
        stats: SpeedStats,
        *,
        loaded: LoadedFn = _unknown,
        policy: CostPolicy = DEFAULT_POLICY,
        tie: float = 0.01,
    ) -> None:
        self.stats, self.loaded, self.policy, self.tie = stats, loaded, policy, tie

    def __call__(
        self,
        candidates: Sequence[NodeState],
        *,
        model: str,
        exclude: Collection[str],
        rng: random.Random,
        max_tokens: int | None = None,
    ) -> NodeState | None:
        live = self.shortlist(candidates, exclude, rng)
        if not live:
            return None
        return self.best(live, self.costs(live, model, max_tokens), rng)

    def shortlist(
        self, candidates: Sequence[NodeState], exclude: Collection[str], rng: random.Random
    ) -> list[NodeState]:
        """The candidates worth scoring: all of a small set, a random sample of a large one."""
        if len(candidates) > SAMPLE_ABOVE:
            sample = [n for n in rng.sample(candidates, SAMPLE_SIZE) if n.name not in exclude]
            if sample:
                return sample
        return [n for n in candidates if n.name not in exclude] if exclude else list(candidates)

    def costs(
        self,
        live: Sequence[NodeState],
        model: str,
        max_tokens: int | None = None,
        *,
        queue_weight: float | None = None,
        waiting_for: Mapping[str, int] | None = None,
        ahead: int | None = None,
    ) -> list[float]:
        """Expected completion time (s) of one more request for `model` on each node; a full
        node's wait is scaled by `queue_weight` (default: the policy's) and grows by the
        requests known to be waiting for it (`waiting_for`), else by its share of the requests
        ahead of this one in the admission queue (`ahead`)."""
        policy, loaded, stats = self.policy, self.loaded, self.stats
        speeds = [stats.estimate(n.name, model) for n in live]
        ttft_fb, rate_fb = policy.default_ttft_s, policy.default_tokens_per_s
        if any(t is None or r is None for t, r in speeds):
            fleet_ttft, fleet_rate = fleet_speed(speeds)
            ttft_fb = ttft_fb if fleet_ttft is None else fleet_ttft
            rate_fb = rate_fb if fleet_rate is None else fleet_rate
        tokens = stats.expected_tokens(model)
        if max_tokens is not None and 0 < max_tokens < tokens:
            tokens = float(max_tokens)
        weight = policy.queue_weight if queue_weight is None else queue_weight
        loads: list[float] = [n.in_flight + n.remote_in_flight for n in live]
        if waiting_for is not None:
            loads = [load + waiting_for.get(n.name, 0) for n, load in zip(live, loads, strict=True)]
        waiting = ahead if waiting_for is None and ahead is not None else 0
        if waiting:  # shared among the full nodes by capacity: they are where it waits
            full = sum(
                n.capacity for n, load in zip(live, loads, strict=True) if load >= n.capacity
            )
            if full:
                loads = [
                    load + waiting * n.capacity / full if load >= n.capacity else load
                    for n, load in zip(live, loads, strict=True)
                ]
        return [
            completion_s(
                load=load,
                capacity=node.capacity,
                service_s=(ttft_fb if t is None else t) + tokens / (rate_fb if r is None else r),
                cold_s=self._cold_s(node.name) if loaded(node.name, model) is False else 0.0,
                queue_weight=weight,
            )
            for node, load, (t, r) in zip(live, loads, speeds, strict=True)
        ]

    def best(
        self, nodes: Sequence[NodeState], costs: Sequence[float], rng: random.Random
    ) -> NodeState:
        return _pick_near_best(nodes, costs, self.tie, rng)

    def prompt_s(self, node: NodeState, model: str) -> float:
        """The node's expected prompt time for `model`: what a warm prompt cache saves."""
        ttft, _ = self.stats.estimate(node.name, model)
        return self.policy.default_ttft_s if ttft is None else ttft

    def _cold_s(self, node: str) -> float:
        measured = self.stats.load_s(node)
        return self.policy.cold_load_s if measured is None else measured


def _pick_near_best(
    nodes: Sequence[NodeState], costs: Sequence[float], tie: float, rng: random.Random
) -> NodeState:
    limit = min(costs) * (1.0 + tie)
    best = nodes[0]
    best_ratio = float("inf")
    ties = 0
    for node, cost in zip(nodes, costs, strict=True):
        if cost > limit:
            continue
        ratio = (node.in_flight + node.remote_in_flight) / node.capacity
        if ratio < best_ratio:
            best, best_ratio, ties = node, ratio, 1
        elif ratio == best_ratio:
            ties += 1
            if rng.random() * ties < 1.0:  # reservoir sampling: uniform over equals
                best = node
    return best


def _least_loaded(
    stats: SpeedStats, loaded: LoadedFn, policy: CostPolicy = DEFAULT_POLICY
) -> Chooser:
    return least_loaded


def _random(stats: SpeedStats, loaded: LoadedFn, policy: CostPolicy = DEFAULT_POLICY) -> Chooser:
    return random_choice


def _round_robin(
    stats: SpeedStats, loaded: LoadedFn, policy: CostPolicy = DEFAULT_POLICY
) -> Chooser:
    return RoundRobin()


def _cost_aware(
    stats: SpeedStats, loaded: LoadedFn, policy: CostPolicy = DEFAULT_POLICY
) -> Chooser:
    return CostAware(stats, loaded=loaded, policy=policy)


STRATEGIES: Mapping[str, StrategyFactory] = MappingProxyType(
    {
        "least_loaded": _least_loaded,
        "random": _random,
        "round_robin": _round_robin,
        "cost_aware": _cost_aware,
    }
)
