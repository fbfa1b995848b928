"""Strategies: one signature; least-loaded, random, round-robin and cost-aware.

The cost-aware properties issue 7 asks for are shown on a small discrete-event simulation
(`simulate`): Poisson arrivals, each node serving `capacity` requests at a time FIFO, a service
time from its speed, and `SpeedStats` fed as requests finish, as the router will feed it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from heapq import heappop, heappush

import pytest

from router.config import STRATEGIES, NodeConfig
from router.fleet.registry import NodeState
from router.routing.choose import Ask, Strategy
from router.routing.cost_aware import CostAware
from router.routing.scoring import CostPolicy, SpeedStats
from router.routing.strategies import LeastLoaded, RandomChoice, RoundRobin
from router.routing.strategies import strategy as make_strategy

M = "llama3:latest"


def node(name: str, in_flight: int = 0, capacity: int = 4) -> NodeState:
    state = NodeState(config=NodeConfig(name, f"http://{name}:11434", max_concurrency=capacity))
    state.in_flight = in_flight
    return state


def pick(chooser: Strategy, nodes: Sequence[NodeState], rng: random.Random, **kw) -> str | None:
    chosen = chooser.pick(nodes, Ask(kw.get("model", M), kw.get("exclude", ())), rng)
    return None if chosen is None else chosen.name


def seen(*speeds: tuple[str, float], ttft_s: float = 0.5, tokens: int = 128) -> SpeedStats:
    """Stats that saw one request of `tokens` tokens per (node, tokens/s)."""
    stats = SpeedStats()
    for name, rate in speeds:
        stats.observe(name, M, ttft_s=ttft_s, tokens=tokens, decode_s=tokens / rate)
    return stats


def choosers() -> list[Strategy]:
    return [make_strategy(name, SpeedStats(), loaded=lambda n, m: None) for name in STRATEGIES]


IDS = list(STRATEGIES)


# -- every strategy ------------------------------------------------------------------------


def test_every_configurable_name_builds_its_strategy() -> None:
    built = dict(zip(IDS, choosers(), strict=True))
    assert {name: type(s) for name, s in built.items()} == {
        "least_loaded": LeastLoaded,
        "random": RandomChoice,
        "round_robin": RoundRobin,
        "cost_aware": CostAware,
    }
    assert [name for name, s in built.items() if s.waits] == ["cost_aware"]
    with pytest.raises(ValueError, match="unknown routing strategy"):
        make_strategy("fastest", SpeedStats(), loaded=lambda n, m: None)


@pytest.mark.parametrize("chooser", choosers(), ids=IDS)
@pytest.mark.parametrize(
    ("names", "exclude"),
    [([], ()), (["a"], ("a",)), (["a", "b"], {"a", "b"})],
    ids=["no-candidates", "only-one-excluded", "all-excluded"],
)
def test_none_when_nothing_is_left(chooser: Strategy, names: list[str], exclude) -> None:
    assert pick(chooser, [node(n) for n in names], random.Random(0), exclude=exclude) is None


@pytest.mark.parametrize("chooser", choosers(), ids=IDS)
def test_excluded_nodes_are_never_chosen(chooser: Strategy) -> None:
    nodes = [node("a"), node("b", 3), node("c"), node("d", 1)]
    rng = random.Random(7)
    got = {pick(chooser, nodes, rng, exclude={"a", "c"}) for _ in range(200)}
    assert got <= {"b", "d"} and got


@pytest.mark.parametrize("chooser", choosers(), ids=IDS)
def test_changes_no_node(chooser: Strategy) -> None:
    nodes = [node("a", 2), node("b", 1)]
    pick(chooser, nodes, random.Random(0))
    assert [n.in_flight for n in nodes] == [2, 1]


# -- least loaded, random, round robin ------------------------------------------------------


def test_random_is_seeded_and_spreads() -> None:
    nodes = [node("a", 4), node("b"), node("c")]
    rng_1, rng_2 = random.Random(5), random.Random(5)
    seq_1 = [pick(RandomChoice(), nodes, rng_1) for _ in range(300)]
    seq_2 = [pick(RandomChoice(), nodes, rng_2) for _ in range(300)]
    assert seq_1 == seq_2
    counts = Counter(seq_1)
    assert counts.keys() == {"a", "b", "c"}
    assert all(80 < count < 120 for count in counts.values())  # load is ignored


@pytest.mark.parametrize(
    ("names", "exclude", "expected"),
    [
        (["a", "b", "c"], (), ["a", "b", "c", "a", "b", "c", "a"]),
        (["a", "b", "c"], ("b",), ["a", "c", "a", "c"]),
        (["a"], (), ["a", "a", "a"]),
    ],
    ids=["cycles", "skips-excluded", "single"],
)
def test_round_robin_cycles(names: list[str], exclude: tuple[str, ...], expected: list[str]):
    rr, nodes = RoundRobin(), [node(n) for n in names]
    nodes[0].in_flight = 99  # load is ignored
    got = [pick(rr, nodes, random.Random(0), exclude=exclude) for _ in expected]
    assert got == expected


def test_round_robin_keeps_a_cursor_per_model_and_survives_a_shrinking_list() -> None:
    rr, nodes = RoundRobin(), [node("a"), node("b"), node("c")]
    rng = random.Random(0)
    assert [pick(rr, nodes, rng, model="x") for _ in range(2)] == ["a", "b"]
    assert [pick(rr, nodes, rng, model="y") for _ in range(1)] == ["a"]
    assert pick(rr, nodes, rng, model="x") == "c"
    assert [pick(rr, nodes[:2], rng, model="y") for _ in range(3)] == ["b", "a", "b"]


# -- cost aware -----------------------------------------------------------------------------


def test_a_3x_slower_node_gets_nothing_while_fast_nodes_have_free_slots() -> None:
    stats = seen(("fast-1", 30.0), ("fast-2", 30.0), ("slow", 10.0))
    nodes = [node("slow"), node("fast-1"), node("fast-2")]
    chooser, rng = CostAware(stats), random.Random(1)
    picks = []
    for _ in range(8):  # each pick takes a slot, as a lease would
        chosen = chooser.pick(nodes, Ask(M), rng)
        assert chosen is not None
        chosen.in_flight += 1
        picks.append(chosen.name)
    assert Counter(picks) == {"fast-1": 4, "fast-2": 4}
    # Full fast nodes still beat the idle slow one: queueing 1.2 s < 8.5 s slower service.
    assert pick(chooser, nodes, rng) in {"fast-1", "fast-2"}


@pytest.mark.parametrize(
    ("hot_load", "expected"),
    [(0, {"hot"}), (2, {"hot"}), (10, {"hot"}), (11, {"cold"}), (12, {"cold"})],
    ids=["idle", "full", "queue-9s", "queue-10s-tie-goes-to-the-idle-node", "queue-11s"],
)
def test_a_hot_model_wins_unless_its_queue_costs_more_than_a_load(hot_load, expected) -> None:
    # S = 1 + 100/100 = 2 s, capacity 2: the hot node's wait is (load - 1) s; cold_load_s = 10.
    # At 10 s both cost 12 s; a tie goes to the less loaded node.
    stats = seen(("hot", 100.0), ("cold", 100.0), ttft_s=1.0, tokens=100)
    loaded = {("hot", M): True, ("cold", M): False}
    chooser = CostAware(stats, loaded=lambda n, m: loaded[n, m], policy=CostPolicy(cold_load_s=10))
    nodes = [node("cold", 0, 2), node("hot", hot_load, 2)]
    rng = random.Random(2)
    assert {pick(chooser, nodes, rng) for _ in range(100)} == expected


def test_a_short_request_takes_the_free_slow_node_a_long_one_waits_for_the_fast_one() -> None:
    # fast: 1 s of prompt, 100 tok/s, full; slow: 0.1 s of prompt, 25 tok/s, idle. Replies of
    # this model run 100 tokens: fast (wait 2 s + 2 s) beats slow (4.1 s); capped at 5 tokens
    # by max_tokens, slow (0.3 s) beats waiting for fast (2.1 s).
    stats = SpeedStats()
    stats.observe("fast", M, ttft_s=1.0, tokens=100, decode_s=1.0)
    stats.observe("slow", M, ttft_s=0.1, tokens=100, decode_s=4.0)
    chooser, rng = CostAware(stats, policy=CostPolicy(queue_weight=1)), random.Random(0)
    nodes = [node("fast", 1, 1), node("slow", 0, 1)]
    assert pick(chooser, nodes, rng) == "fast"
    assert chooser.pick(nodes, Ask(M, max_tokens=500), rng) is nodes[0]
    assert chooser.pick(nodes, Ask(M, max_tokens=5), rng) is nodes[1]


def test_a_cold_model_costs_the_nodes_own_measured_load_time() -> None:
    stats = seen(("quick-disk", 30.0), ("slow-disk", 30.0))
    chooser = CostAware(stats, loaded=lambda n, m: False, policy=CostPolicy(cold_load_s=10))
    nodes = [node("slow-disk"), node("quick-disk")]
    rng = random.Random(4)
    assert {pick(chooser, nodes, rng) for _ in range(50)} == {"slow-disk", "quick-disk"}
    stats.observe_load("slow-disk", 20.0)
    stats.observe_load("quick-disk", 2.0)
    assert {pick(chooser, nodes, rng) for _ in range(50)} == {"quick-disk"}
    # Measured slower than the configured guess still counts: 20 s > the 10 s default.
    nodes[1].in_flight = 4  # quick-disk full: its wait (queue_weight 1) is 5.3 s, load 2 s
    assert pick(chooser, nodes, rng) == "quick-disk"


def test_a_large_fleet_is_sampled_and_still_never_picks_an_excluded_node() -> None:
    names = [f"n{i}" for i in range(1000)]
    stats = seen(*((n, 30.0) for n in names))
    chooser, rng = CostAware(stats), random.Random(5)
    nodes = [node(n, in_flight=i % 4) for i, n in enumerate(names)]
    exclude = set(names[::5])
    picks = [pick(chooser, nodes, rng, exclude=exclude) for _ in range(2000)]
    assert not exclude & set(picks)
    loads = Counter(int(p[1:]) % 4 for p in picks if p is not None)
    # Each pick is the best of a sample of 8: mostly idle nodes, never only the busiest.
    assert loads[0] > 0.6 * len(picks) and loads[3] < 0.05 * len(picks), loads
    assert len(set(picks)) > 150  # spread over the 200 idle nodes, not stuck on a few
    assert pick(chooser, nodes, rng, exclude=set(names)) is None


def test_unknown_load_state_is_not_penalised() -> None:
    stats = seen(("a", 30.0), ("b", 30.0))
    chooser = CostAware(stats, loaded=lambda n, m: None if n == "a" else False)
    assert pick(chooser, [node("b"), node("a")], random.Random(0)) == "a"


def test_near_ties_go_to_the_least_loaded_then_at_random() -> None:
    stats = seen(("a", 30.0), ("b", 30.2), ("c", 30.0), ("d", 30.0))  # within 1 %
    chooser, rng = CostAware(stats), random.Random(3)
    nodes = [node("a", 2), node("b", 1), node("c", 1), node("d", 3)]
    assert Counter(pick(chooser, nodes, rng) for _ in range(1000)).keys() == {"b", "c"}
    idle = [node("a"), node("b"), node("c"), node("d")]
    counts = Counter(pick(chooser, idle, rng) for _ in range(4000))
    assert all(850 < counts[n] < 1150 for n in "abcd"), counts


def test_an_unmeasured_node_is_scored_like_the_fleet_median() -> None:
    stats = seen(("slow", 10.0), ("mid", 20.0), ("fast", 40.0))
    chooser, rng = CostAware(stats), random.Random(0)
    nodes = [node("slow"), node("new"), node("mid", 4), node("fast", 8)]
    # new is taken for 20 tok/s (S = 6.9 s): idle, it beats slow (13.3 s), full mid (8.6 s) and
    # fast with 4 queued (S = 3.7 s, 8.3 s); full itself (8.6 s), it loses to fast.
    assert pick(chooser, nodes, rng) == "new"
    nodes[1].in_flight = 4
    assert pick(chooser, nodes, rng) == "fast"


def test_cost_aware_is_seeded_deterministic() -> None:
    stats = seen(("a", 30.0), ("b", 30.0), ("c", 30.0))
    nodes = [node("a"), node("b"), node("c")]
    runs = [
        [pick(CostAware(stats), nodes, r) for _ in range(50)] for r in map(random.Random, [9, 9])
    ]
    assert runs[0] == runs[1] and len(set(runs[0])) == 3


# -- simulation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SimNode:
    name: str
    tokens_per_s: float
    capacity: int = 4
    ttft_s: float = 0.5


@dataclass(frozen=True)
class SimResult:
    tokens: Mapping[str, int]  # work done per node
    mean_completion_s: float
    throughput_tok_s: float  # all tokens / (last finish - first arrival)
    passed_over: int  # picks made while a faster node had a free slot


def simulate(
    fleet: Sequence[SimNode],
    chooser: Strategy,
    *,
    rate_per_s: float,
    requests: int,
    seed: int,
    stats: SpeedStats | None = None,
) -> SimResult:
    """Poisson arrivals of 64 to 192 token requests; each node serves `capacity` at a time, FIFO.
    Arrivals come from `seed` alone, so every chooser sees the same workload."""
    arrive = random.Random(seed)
    work: list[tuple[float, int]] = []
    now = 0.0
    for _ in range(requests):
        now += arrive.expovariate(rate_per_s)
        work.append((now, arrive.randint(64, 192)))
    spec = {n.name: n for n in fleet}
    states = [node(n.name, 0, n.capacity) for n in fleet]
    by_name = {s.name: s for s in states}
    free_at = {n.name: [0.0] * n.capacity for n in fleet}  # per node: when each slot frees
    running: list[tuple[float, int, str, int]] = []  # (finish, seq, node, tokens)
    tokens_by: Counter[str] = Counter()
    total_s, last, passed, rng = 0.0, 0.0, 0, random.Random(seed + 1)
    for seq, (now, tokens) in enumerate(work):
        while running and running[0][0] <= now:
            _, _, name, done = heappop(running)
            by_name[name].in_flight -= 1
            if stats is not None:
                s = spec[name]
                stats.observe(name, M, ttft_s=s.ttft_s, tokens=done, decode_s=done / s.tokens_per_s)
        chosen = chooser.pick(states, Ask(M), rng)
        assert chosen is not None
        s = spec[chosen.name]
        passed += any(
            o.tokens_per_s > s.tokens_per_s and by_name[o.name].in_flight < o.capacity
            for o in fleet
        )
        start = max(now, heappop(free_at[s.name]))
        finish = start + s.ttft_s + tokens / s.tokens_per_s
        heappush(free_at[s.name], finish)
        heappush(running, (finish, seq, s.name, tokens))
        chosen.in_flight += 1
        tokens_by[s.name] += tokens
        total_s, last = total_s + finish - now, max(last, finish)
    throughput = sum(tokens_by.values()) / (last - work[0][0])
    return SimResult(dict(tokens_by), total_s / requests, throughput, passed)


# 3 fast nodes (S = 0.5 + 128/30 = 4.8 s, 4 slots: 0.84 req/s each, 2.52 together) and one 3x
# slower (S = 13.3 s: 0.30 req/s). Light: 1.2 req/s, half what the fast nodes can do. Heavy:
# 2.7 req/s, more than the fast nodes alone serve (so every node is needed), under all four's 2.82.
FLEET = [SimNode("fast-1", 30.0), SimNode("fast-2", 30.0), SimNode("fast-3", 30.0),
         SimNode("slow", 10.0)]  # fmt: skip
LOADS = {"light": 1.2, "heavy": 2.7}


def run(
    strategy: str, load: str, *, warm: bool = True, requests: int = 4000, queue_weight: float = 1.0
) -> SimResult:
    stats = seen(*((n.name, n.tokens_per_s) for n in FLEET)) if warm else SpeedStats()
    policy = CostPolicy(queue_weight=queue_weight)
    chooser = make_strategy(strategy, stats, loaded=lambda n, m: True, policy=policy)
    return simulate(FLEET, chooser, rate_per_s=LOADS[load], requests=requests, seed=42, stats=stats)


def slow_share(result: SimResult) -> float:
    """Slow node's work relative to the mean fast node's."""
    fast = [t for n, t in result.tokens.items() if n != "slow"]
    return result.tokens.get("slow", 0) / (sum(fast) / len(fast))


@pytest.mark.parametrize("warm", [True, False], ids=["warm-stats", "cold-start"])
def test_light_load_the_slow_node_idles_and_cost_aware_beats_round_robin(warm: bool) -> None:
    cost, rr = run("cost_aware", "light", warm=warm), run("round_robin", "light", warm=warm)
    print(f"\nlight {warm=}: cost {cost}\n  rr {rr}")
    if warm:
        assert cost.passed_over == 0 and "slow" not in cost.tokens
    else:  # it is scored like its peers until its first request finishes, then left alone
        assert cost.tokens.get("slow", 0) <= 4 * 192
    assert cost.mean_completion_s < 0.75 * rr.mean_completion_s
    assert cost.throughput_tok_s > rr.throughput_tok_s


@pytest.mark.parametrize("warm", [True, False], ids=["warm-stats", "cold-start"])
def test_heavy_load_the_slow_node_does_a_third_of_a_peers_work(warm: bool) -> None:
    cost, rr = run("cost_aware", "heavy", warm=warm), run("round_robin", "heavy", warm=warm)
    print(f"\nheavy {warm=}: share {slow_share(cost):.2f} cost {cost}\n  rr {rr}")
    assert 0.2 < slow_share(cost) < 0.5
    if warm:
        assert cost.passed_over == 0
    assert cost.mean_completion_s < 0.5 * rr.mean_completion_s
    assert cost.throughput_tok_s > rr.throughput_tok_s


@pytest.mark.parametrize("load", list(LOADS), ids=list(LOADS))
def test_simulation_report(load: str) -> None:
    """Every strategy on the same workload; prints a table (`pytest -s`), asserts only ranks."""
    results = {name: run(name, load) for name in STRATEGIES}
    results |= {f"cost_aware/q{k}": run("cost_aware", load, queue_weight=k) for k in (2, 3)}
    for name, r in results.items():
        print(
            f"\n{load:5} {name:14} mean {r.mean_completion_s:6.1f} s  "
            f"throughput {r.throughput_tok_s:5.0f} tok/s  slow/peer {slow_share(r):.2f}"
        )
    cost = results["cost_aware"].mean_completion_s
    assert cost < results["round_robin"].mean_completion_s
    assert cost < results["random"].mean_completion_s
    if load == "light":
        assert cost < results["least_loaded"].mean_completion_s


@pytest.mark.parametrize(("size", "scored"), [(16, 16), (1000, 8), (2000, 8)])
def test_cost_aware_scores_a_bounded_sample_of_a_large_fleet(size: int, scored: int) -> None:
    """A decision's cost does not grow with the fleet: over 32 candidates it scores 8 (each
    scored node is asked once whether it holds the model). Its time per call is measured by
    benchmarks/fleet_scale.py (S5)."""
    asked: list[str] = []

    def loaded(name: str, model: str) -> bool:
        asked.append(name)
        return True

    chooser = CostAware(SpeedStats(), loaded=loaded)
    nodes = [node(f"n{i}", i % 5) for i in range(size)]
    rng = random.Random(0)
    for _ in range(20):
        asked.clear()
        assert pick(chooser, nodes, rng) is not None
        assert len(asked) == len(set(asked)) == scored
