"""The least-loaded strategy: least loaded by load/capacity, random among equals, None when
none is left; over SAMPLE_ABOVE candidates, the power of two choices."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Sequence

import pytest

from router.config import NodeConfig
from router.fleet.registry import NodeState
from router.routing.choose import SAMPLE_ABOVE, Ask
from router.routing.strategies import LeastLoaded


def choose(
    nodes: Sequence[NodeState], *, exclude: Collection[str] = (), rng: random.Random
) -> NodeState | None:
    return LeastLoaded().pick(nodes, Ask("m", exclude), rng)


def pick(nodes: list[NodeState], rng: random.Random, exclude: set[str] | None = None) -> str:
    chosen = choose(nodes, exclude=exclude or set(), rng=rng)
    assert chosen is not None
    return chosen.name


def node(name: str, in_flight: int = 0, capacity: int = 4) -> NodeState:
    state = NodeState(config=NodeConfig(name, f"http://{name}:11434", max_concurrency=capacity))
    state.in_flight = in_flight
    return state


# (nodes as (name, in_flight, capacity), exclude, expected)
TABLE = [
    ([("a", 0, 4)], (), "a"),
    ([("a", 2, 4), ("b", 1, 4)], (), "b"),
    # by ratio, not by count: 3 of 8 (0.375) is less loaded than 1 of 2 (0.5)
    ([("small", 1, 2), ("big", 3, 8)], (), "big"),
    ([("big", 6, 8), ("small", 1, 2)], (), "small"),
    ([("a", 0, 4), ("b", 1, 4)], ("a",), "b"),
    ([("a", 0, 4), ("b", 3, 4), ("c", 2, 4)], ("a",), "c"),
    # a node that just recovered has no load and wins over busy ones
    ([("busy-1", 3, 4), ("recovered", 0, 4), ("busy-2", 1, 4)], (), "recovered"),
    # at or over capacity is still a candidate when it is all there is
    ([("full", 4, 4)], (), "full"),
    ([("over", 6, 4), ("full", 4, 4)], (), "full"),
    ([("over", 5, 4), ("free", 3, 4)], ("x",), "free"),
]


@pytest.mark.parametrize(
    ("nodes", "exclude", "expected"),
    TABLE,
    ids=[
        "single",
        "fewer-in-flight",
        "ratio-not-count",
        "ratio-not-count-reversed",
        "exclude-least-loaded",
        "exclude-then-next-least",
        "recovered-node-wins",
        "full-but-alone",
        "over-capacity-loses",
        "exclude-unknown-name",
    ],
)
def test_choose_least_loaded(
    nodes: list[tuple[str, int, int]], exclude: tuple[str, ...], expected: str
) -> None:
    chosen = choose([node(*n) for n in nodes], exclude=exclude, rng=random.Random(0))
    assert chosen is not None
    assert chosen.name == expected


@pytest.mark.parametrize(
    ("nodes", "exclude"),
    [([], ()), ([("a", 0, 4)], ("a",)), ([("a", 0, 4), ("b", 0, 4)], {"a", "b"})],
    ids=["no-candidates", "only-one-excluded", "all-excluded"],
)
def test_none_when_nothing_is_left(
    nodes: list[tuple[str, int, int]], exclude: tuple[str, ...] | set[str]
) -> None:
    assert choose([node(*n) for n in nodes], exclude=exclude, rng=random.Random(0)) is None


@pytest.mark.parametrize(
    ("loads", "tied"),
    [
        ([("a", 0, 4), ("b", 0, 4), ("c", 0, 4)], {"a", "b", "c"}),
        ([("a", 1, 2), ("b", 2, 4), ("c", 4, 8), ("busy", 3, 4)], {"a", "b", "c"}),
        (
            [("busy", 2, 4), ("a", 0, 4), ("b", 0, 1), ("c", 0, 2), ("d", 0, 8)],
            {"a", "b", "c", "d"},
        ),
    ],
    ids=["all-idle", "equal-ratios-different-sizes", "busy-first"],
)
def test_ties_are_spread_across_every_tied_node(
    loads: list[tuple[str, int, int]], tied: set[str]
) -> None:
    nodes = [node(*n) for n in loads]
    rng = random.Random(20240607)
    draws = 4000
    counts = Counter(pick(nodes, rng) for _ in range(draws))
    assert set(counts) == tied
    share = draws / len(tied)
    for name in tied:
        assert 0.85 * share < counts[name] < 1.15 * share, counts


def test_ties_spread_after_excluding() -> None:
    nodes = [node("a"), node("b"), node("c")]
    rng = random.Random(3)
    counts = Counter(pick(nodes, rng, exclude={"b"}) for _ in range(2000))
    assert set(counts) == {"a", "c"}
    assert 850 < counts["a"] < 1150


def test_same_seed_same_choices() -> None:
    nodes = [node("a"), node("b"), node("c"), node("d")]
    rng_1, rng_2 = random.Random(5), random.Random(5)
    seq_1 = [pick(nodes, rng_1) for _ in range(50)]
    seq_2 = [pick(nodes, rng_2) for _ in range(50)]
    # replayable, and not stuck on one node
    assert seq_1 == seq_2
    assert len(set(seq_1)) == 4


def test_changes_nothing() -> None:
    nodes = [node("a", 2), node("b", 1)]
    chosen = choose(tuple(nodes), exclude=["zzz"], rng=random.Random(0))
    assert chosen is nodes[1]
    assert [n.in_flight for n in nodes] == [2, 1]


def test_load_changes_move_traffic() -> None:
    a, b = node("a"), node("b")
    rng = random.Random(1)
    picks = []
    for _ in range(8):  # each pick takes a slot, as a lease would
        chosen = choose([a, b], rng=rng)
        assert chosen is not None
        chosen.in_flight += 1
        picks.append(chosen.name)
    assert (a.in_flight, b.in_flight) == (4, 4)
    assert Counter(picks) == {"a": 4, "b": 4}


# -- large candidate sets: power of two choices ----------------------------------------------
def fleet_of(count: int, capacity: int = 4) -> list[NodeState]:
    return [node(f"n{i}", capacity=capacity) for i in range(count)]


def test_small_sets_stay_exact() -> None:
    """Up to SAMPLE_ABOVE candidates every one is looked at: the single idle node always wins."""
    for idle in range(SAMPLE_ABOVE):
        nodes = [node(f"n{i}", in_flight=3) for i in range(SAMPLE_ABOVE)]
        nodes[idle].in_flight = 0
        rng = random.Random(idle)
        assert {pick(nodes, rng) for _ in range(50)} == {f"n{idle}"}


def test_large_sets_never_pick_an_excluded_node() -> None:
    nodes = fleet_of(SAMPLE_ABOVE * 4)
    rng = random.Random(7)
    for size in (1, 5, len(nodes) // 2, len(nodes) - 1):
        exclude = {n.name for n in rng.sample(nodes, size)}
        picks = {pick(nodes, rng, exclude) for _ in range(500)}
        assert not picks & exclude
    # only one node left: found even when every draw misses it
    keep = nodes[11].name
    assert {pick(nodes, rng, {n.name for n in nodes} - {keep}) for _ in range(20)} == {keep}


@pytest.mark.parametrize("count", [SAMPLE_ABOVE + 1, 1000], ids=["just-over", "thousand"])
def test_large_sets_return_none_when_all_are_excluded(count: int) -> None:
    nodes = fleet_of(count)
    assert choose(nodes, exclude={n.name for n in nodes}, rng=random.Random(0)) is None


def test_large_sets_spread_idle_traffic_evenly() -> None:
    nodes = fleet_of(100)
    rng = random.Random(20240607)
    counts = Counter(pick(nodes, rng) for _ in range(40_000))
    assert set(counts) == {n.name for n in nodes}
    for name in counts:
        assert 300 < counts[name] < 500, counts  # 400 each


def test_large_sets_balance_held_requests() -> None:
    """Requests that hold their slot: two choices keep the busiest node within two of the mean
    (4), where one random choice (drawn from the same rng) overloads some node far more."""
    nodes = fleet_of(200, capacity=8)
    rng = random.Random(3)
    blind: Counter[int] = Counter()
    for _ in range(800):
        chosen = choose(nodes, rng=rng)
        assert chosen is not None
        chosen.in_flight += 1
        blind[rng.randrange(len(nodes))] += 1
    assert max(n.in_flight for n in nodes) <= 6
    assert max(blind.values()) >= 9
    assert sum(n.in_flight for n in nodes) == 800


def test_large_sets_never_pick_a_full_node_while_one_has_room() -> None:
    nodes = fleet_of(300)
    for n in nodes:
        n.in_flight = 4
    nodes[123].in_flight = 3
    rng = random.Random(5)
    assert {pick(nodes, rng) for _ in range(100)} == {"n123"}
    nodes[123].in_flight = 9  # everyone full: the least over capacity
    nodes[7].in_flight = 4
    assert choose(nodes, rng=rng) in [n for n in nodes if n.in_flight == 4]


def test_large_sets_counts_other_replicas_load() -> None:
    nodes = fleet_of(50)
    for n in nodes:
        n.remote_in_flight = 4  # full through the other replicas
    nodes[42].remote_in_flight = 1
    assert pick(nodes, random.Random(9)) == "n42"


def test_large_sets_same_seed_same_choices() -> None:
    nodes = fleet_of(64)
    rng_1, rng_2 = random.Random(11), random.Random(11)
    seq_1 = [pick(nodes, rng_1) for _ in range(50)]
    assert seq_1 == [pick(nodes, rng_2) for _ in range(50)]
    assert len(set(seq_1)) > 30  # replayable, and not stuck on a few nodes
