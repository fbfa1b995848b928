"""The cost-aware strategy (the default): the node with the least expected completion time
(`routing.scoring`), and the conversation's own node while its warm prompt cache is worth it.

Among nodes within `tie` (relative) of the best, the least loaded by ratio wins, then one at
random: equal nodes share work and a recovered node gets traffic. The request's `max_tokens`
caps its expected length, so a short request may take a slow node that a long one should wait
for. A cold model costs the node's own measured load time (Ollama's `load_duration` when it
last loaded one), else `CostPolicy.cold_load_s`. Above `SAMPLE_ABOVE` candidates it scores
`SAMPLE_SIZE` of them drawn at random (power of k choices, as Envoy's least-request balancer):
a decision costs the same with 20 nodes or 2,000, and k = 8 of a large fleet almost always
holds one of its best nodes. It may pick a full node: the request then waits for it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence

from router.fleet.registry import NodeState
from router.routing.choose import NO_LINE, SAMPLE_ABOVE, Ask, Line
from router.routing.scoring import CostPolicy, SpeedStats, completion_s, fleet_speed

SAMPLE_SIZE = 8
HOME_WAIT_SHARE = 0.5  # of a warm cache's saving a conversation waits for, with no line
LoadedFn = Callable[[str, str], bool | None]  # (node, model) → loaded per /api/ps; None = unknown
DEFAULT_POLICY = CostPolicy()


def _unknown(node: str, model: str) -> bool | None:
    return None


class CostAware:
    __slots__ = ("loaded", "policy", "stats", "tie")
    waits = True

    def __init__(
        self,
        stats: SpeedStats,
        *,
        loaded: LoadedFn = _unknown,
        policy: CostPolicy = DEFAULT_POLICY,
        tie: float = 0.01,
    ) -> None:
        self.stats, self.loaded, self.policy, self.tie = stats, loaded, policy, tie

    def pick(
        self,
        nodes: Sequence[NodeState],
        ask: Ask,
        rng: random.Random,
        *,
        line: Line = NO_LINE,
        home: NodeState | None = None,
    ) -> NodeState | None:
        """The cheapest node; the conversation's own node (`home`) instead while it costs no
        more than the cheapest by at most its prompt time, which is what a warm prompt cache
        saves. So a chat stays on its node among equals, waits for it when its turn comes
        soon, and leaves it when it is slow, busy or the model cold there."""
        live = self.shortlist(nodes, ask.exclude, rng)
        if home is not None and home not in live:
            live.append(home)
        if not live:
            return None
        if len(live) == 1:  # the only one is the cheapest (and the home, if any): no costs
            return live[0]
        model, max_tokens = ask.model, ask.max_tokens
        # A full node's wait counts the requests ahead of this one in line, not the whole
        # line: the head of a long line waits for a fast node, one far back takes a slow one.
        costs = self.costs(live, model, max_tokens, ahead=line.ahead())
        best = _pick_near_best(live, costs, self.tie, rng)
        if home is None or home is best:
            return best
        if home.free <= 0:
            # Waiting for its own node delays this request alone (it holds no slot meanwhile),
            # so its wait counts once, not `queue_weight` times; and only the requests already
            # waiting for that node go first, not the whole queue.
            ahead = {home.name: line.waiting_for(home.name)}
            home_cost = self.costs([home], model, max_tokens, queue_weight=1.0, waiting_for=ahead)[
                0
            ]
            # A wait is a guess, and a miss costs one prompt once (the chat then follows the
            # turn): with nobody else in line, wait for at most half what a hit saves. With a
            # line, a hit also frees the node sooner for the others: wait up to all of it.
            share = 1.0 if line.others_waiting() else HOME_WAIT_SHARE
            saving = share * self.prompt_s(home, model)
        else:
            home_cost = costs[live.index(home)]
            saving = self.prompt_s(home, model)
        if home_cost <= costs[live.index(best)] + saving:
            return home
        return best

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
        loads: list[float] = [n.load for n in live]
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
        ratio = node.load / node.capacity
        if ratio < best_ratio:
            best, best_ratio, ties = node, ratio, 1
        elif ratio == best_ratio:
            ties += 1
            if rng.random() * ties < 1.0:  # reservoir sampling: uniform over equals
                best = node
    return best
