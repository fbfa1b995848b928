"""The one routing decision (`Chooser.choose`): a free node, `Wait`, or None; the conversation's
node first; a waiting strategy (cost-aware) may prefer to wait for a full node."""

from __future__ import annotations

import random

import pytest

from router.config import NodeConfig
from router.fleet.registry import NodeState
from router.routing.affinity import AffinityRing
from router.routing.choose import ALL_FULL, Ask, Chooser, Wait
from router.routing.cost_aware import CostAware
from router.routing.scoring import CostPolicy, SpeedStats
from router.routing.strategies import LeastLoaded, RoundRobin

M = "llama3:latest"


def node(name: str, in_flight: int = 0, capacity: int = 2, remote: int = 0) -> NodeState:
    state = NodeState(config=NodeConfig(name, f"http://{name}:11434", max_concurrency=capacity))
    state.in_flight, state.remote_in_flight = in_flight, remote
    return state


def name(decision: NodeState | Wait | None) -> str | None:
    return decision.name if isinstance(decision, NodeState) else None


@pytest.mark.parametrize(
    ("loads", "exclude", "expected"),
    [
        ([], (), None),
        ([("a", 0, 0)], ("a",), None),
        ([("a", 2, 0), ("b", 1, 1)], (), ALL_FULL),
        ([("a", 2, 0), ("b", 0, 0)], ("b",), ALL_FULL),
        ([("a", 2, 0), ("b", 1, 0)], (), "b"),
        ([("a", 0, 2), ("b", 1, 0)], (), "b"),
    ],
    ids=[
        "no-candidates",
        "all-excluded",
        "all-full",
        "the-free-one-excluded",
        "the-free-one",
        "full-through-other-replicas",
    ],
)
def test_a_free_node_else_wait_else_none(
    loads: list[tuple[str, int, int]], exclude: tuple[str, ...], expected: object
) -> None:
    candidates = [node(n, in_flight, remote=remote) for n, in_flight, remote in loads]
    got = Chooser(LeastLoaded(), random.Random(0)).choose(candidates, Ask(M, exclude))
    if isinstance(expected, str):
        assert name(got) == expected
    else:
        assert got is expected


def test_strategies_that_do_not_wait_see_free_nodes_only() -> None:
    # Round-robin's turn would come to the full node every other time; it never does.
    candidates = [node("full", 2), node("a"), node("b")]
    chooser = Chooser(RoundRobin(), random.Random(0))
    assert [name(chooser.choose(candidates, Ask(M))) for _ in range(4)] == ["a", "b", "a", "b"]


def test_not_strict_takes_the_least_loaded_full_node_rather_than_wait() -> None:
    candidates = [node("a", 3), node("b", 2)]
    chooser = Chooser(LeastLoaded(), random.Random(0))
    assert chooser.choose(candidates, Ask(M)) is ALL_FULL
    assert name(chooser.choose(candidates, Ask(M), strict=False)) == "b"
    assert chooser.choose(candidates, Ask(M, ("a", "b")), strict=False) is None


def test_a_conversation_goes_back_to_its_node_while_it_has_room() -> None:
    candidates = [node(n, capacity=8) for n in "abcd"]
    chooser = Chooser(LeastLoaded(), random.Random(0), AffinityRing())
    ask = Ask(M, session="session:chat")
    first = chooser.choose(candidates, ask)
    assert isinstance(first, NodeState)
    for other in candidates:
        other.in_flight = 2
    first.in_flight = 3  # busier than the others (within the bound, 4): least-loaded would leave
    assert all(chooser.choose(candidates, ask) is first for _ in range(20))
    first.in_flight = 8  # full: the turn goes elsewhere, and the conversation follows it
    moved = chooser.choose(candidates, ask)
    assert isinstance(moved, NodeState) and moved is not first
    first.in_flight = 2
    assert all(chooser.choose(candidates, ask) is moved for _ in range(20))


def test_cost_aware_waits_for_a_full_fast_node_and_says_which() -> None:
    stats = SpeedStats()
    stats.observe("fast", M, ttft_s=1.0, tokens=100, decode_s=1.0)
    stats.observe("slow", M, ttft_s=0.1, tokens=100, decode_s=4.0)
    chooser = Chooser(CostAware(stats, policy=CostPolicy(queue_weight=1)), random.Random(0))
    candidates = [node("fast", 1, 1), node("slow", 0, 1)]
    wait = chooser.choose(candidates, Ask(M))
    assert isinstance(wait, Wait) and wait.node is candidates[0]
    assert name(chooser.choose(candidates, Ask(M, max_tokens=5))) == "slow"


class Line:
    def __init__(self, ahead: int) -> None:
        self._ahead = ahead

    def ahead(self) -> int:
        return self._ahead

    def others_waiting(self) -> bool:
        return self._ahead > 0

    def waiting_for(self, node: str) -> int:
        return 0


def test_cost_aware_far_back_in_line_takes_the_slow_free_node() -> None:
    # fast (S = 2 s) is full; slow is free (S = 4.1 s). At the head of the line fast would
    # finish it in 2 + 2 s; with 4 requests ahead waiting for it too, in 10 + 2 s.
    stats = SpeedStats()
    stats.observe("fast", M, ttft_s=1.0, tokens=100, decode_s=1.0)
    stats.observe("slow", M, ttft_s=0.1, tokens=100, decode_s=4.0)
    chooser = Chooser(CostAware(stats, policy=CostPolicy(queue_weight=1)), random.Random(0))
    candidates = [node("fast", 1, 1), node("slow", 0, 1)]
    assert isinstance(chooser.choose(candidates, Ask(M), Line(0)), Wait)
    assert name(chooser.choose(candidates, Ask(M), Line(4))) == "slow"
