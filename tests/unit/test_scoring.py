"""Scoring: EWMA maths, speed bookkeeping, fallbacks, and the completion-time model's shape."""

from __future__ import annotations

import math

import pytest

from router.config import NodeConfig
from router.fleet.registry import NodeState
from router.routing.cost_aware import CostAware
from router.routing.scoring import (
    DEFAULT_TOKENS,
    CostPolicy,
    Ewma,
    SpeedStats,
    completion_s,
    fleet_speed,
)

M = "llama3:latest"


def node(name: str, in_flight: int = 0, capacity: int = 4, remote: int = 0) -> NodeState:
    state = NodeState(config=NodeConfig(name, f"http://{name}:11434", max_concurrency=capacity))
    state.in_flight, state.remote_in_flight = in_flight, remote
    return state


def cost(
    target: NodeState,
    stats: SpeedStats,
    policy: CostPolicy,
    *,
    loaded: bool | None = None,
    others: tuple[NodeState, ...] = (),
) -> float:
    """What the shipped strategy expects one more request on `target` to take, scored among
    `others` (whose known speeds are the fleet's fallback)."""
    scorer = CostAware(stats, loaded=lambda _node, _model: loaded, policy=policy)
    return scorer.costs([target, *others], M)[0]


def stats_with(*speeds: tuple[str, float, float], tokens: int = 100) -> SpeedStats:
    """Stats that saw one request per (node, ttft_s, tokens_per_s) of `tokens` tokens."""
    stats = SpeedStats()
    for name, ttft, rate in speeds:
        stats.observe(name, M, ttft_s=ttft, tokens=tokens, decode_s=tokens / rate)
    return stats


# -- Ewma ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "samples", "expected"),
    [
        (0.2, [], None),
        (0.2, [10.0], 10.0),
        (0.2, [10.0, 20.0], 12.0),
        (0.2, [10.0, 20.0, 20.0], 13.6),
        (0.5, [0.0, 8.0, 8.0], 6.0),
        (1.0, [3.0, 7.0, 5.0], 5.0),
        (0.2, [4.0] * 50, 4.0),
    ],
    ids=["empty", "first-sample-is-value", "one-step", "two-steps", "alpha-half", "alpha-one",
         "constant"],
)  # fmt: skip
def test_ewma(alpha: float, samples: list[float], expected: float | None) -> None:
    ewma = Ewma(alpha)
    for sample in samples:
        ewma.update(sample)
    assert ewma.value == (None if expected is None else pytest.approx(expected))


def test_ewma_converges_geometrically() -> None:
    ewma = Ewma(0.2, value=0.0)
    for _ in range(10):
        ewma.update(1.0)
    assert ewma.value == pytest.approx(1 - 0.8**10)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, math.nan], ids=["zero", "neg", "over-1", "nan"])
def test_ewma_rejects_bad_alpha(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        Ewma(alpha)
    with pytest.raises(ValueError, match="alpha"):
        SpeedStats(alpha=alpha)


# -- SpeedStats ----------------------------------------------------------------------------


def test_observe_feeds_every_average() -> None:
    stats = SpeedStats(alpha=0.5)
    stats.observe("a", M, ttft_s=1.0, tokens=100, decode_s=2.0)  # 50 tok/s
    stats.observe("a", M, ttft_s=3.0, tokens=300, decode_s=3.0)  # 100 tok/s
    stats.observe("a", "other", ttft_s=9.0, tokens=10, decode_s=1.0)  # 10 tok/s
    assert stats.estimate("a", M) == (2.0, 75.0)
    assert stats.expected_tokens(M) == 200.0
    assert stats.expected_tokens("other") == 10.0
    # a model never measured on the node: its speed over all models (42.5)
    ttft, rate = stats.estimate("a", "unseen")
    assert ttft is None and rate == pytest.approx((50 + 100) / 2 / 2 + 10 / 2)


@pytest.mark.parametrize(
    ("ttft_s", "tokens", "decode_s", "ttft", "rate", "expected_tokens"),
    [
        (None, 50, 1.0, None, 50.0, 50.0),
        (0.4, 50, None, 0.4, None, 50.0),
        (0.4, 0, 0.0, 0.4, None, 0.0),
        (0.4, 50, 0.0, 0.4, None, 50.0),
        (-1.0, 50, -1.0, None, None, 50.0),
        (math.nan, 50, math.inf, None, None, 50.0),
        (0.4, -5, 1.0, 0.4, None, DEFAULT_TOKENS),
    ],
    ids=["no-ttft", "no-decode-time", "empty-answer", "zero-decode-time", "negative-times",
         "not-finite", "negative-tokens"],
)  # fmt: skip
def test_observe_skips_missing_and_bad_samples(
    ttft_s: float | None,
    tokens: int,
    decode_s: float | None,
    ttft: float | None,
    rate: float | None,
    expected_tokens: float,
) -> None:
    stats = SpeedStats()
    stats.observe("a", M, ttft_s=ttft_s, tokens=tokens, decode_s=decode_s)
    assert stats.estimate("a", M) == (ttft, rate)
    assert stats.estimate("a", "unseen") == (None, rate)
    assert stats.expected_tokens(M) == expected_tokens


def test_a_capped_reply_only_raises_the_length_estimate() -> None:
    stats = SpeedStats(alpha=0.5)
    stats.observe("a", M, ttft_s=0.1, tokens=100, decode_s=1.0)
    stats.observe("a", M, ttft_s=0.1, tokens=10, decode_s=0.1, capped=True)  # says: >= 10
    assert stats.expected_tokens(M) == 100
    stats.observe("a", M, ttft_s=0.1, tokens=300, decode_s=3.0, capped=True)  # says: >= 300
    assert stats.expected_tokens(M) == 200
    stats.observe("a", M, ttft_s=0.1, tokens=20, decode_s=0.2)  # stopped by itself
    assert stats.expected_tokens(M) == 110


def test_load_times_per_node() -> None:
    stats = SpeedStats(alpha=0.5)
    assert stats.load_s("a") is None
    stats.observe_load("a", 4.0)
    stats.observe_load("a", 2.0)
    stats.observe_load("a", float("nan"))  # skipped
    assert stats.load_s("a") == 3.0
    stats.observe_load("c", 5.0)
    # a node never seen loading is taken for a typical one: the median over those that did
    assert stats.load_s("b") == 4.0
    assert SpeedStats().load_s("b") is None


def test_unknowns_are_none_and_tokens_default() -> None:
    stats = SpeedStats(default_tokens=64.0)
    assert stats.estimate("a", M) == (None, None)
    assert stats.expected_tokens(M) == 64.0
    assert SpeedStats().expected_tokens(M) == DEFAULT_TOKENS == 128.0


def test_estimate_falls_back_to_the_nodes_speed_over_models() -> None:
    stats = stats_with(("a", 0.5, 40.0))
    assert stats.estimate("a", "never-ran-here") == (None, 40.0)
    assert stats.estimate("b", M) == (None, None)


def test_tables_keep_the_most_recently_fed_entries() -> None:
    stats = SpeedStats(max_entries=2)
    for name in ("a", "b"):
        stats.observe(name, M, ttft_s=1.0, tokens=10, decode_s=1.0)
    stats.observe("a", M, ttft_s=1.0, tokens=10, decode_s=1.0)  # a is young again
    stats.observe("c", M, ttft_s=2.0, tokens=10, decode_s=1.0)  # b, the oldest, goes
    assert stats.estimate("b", M) == (None, None)
    assert stats.estimate("a", M)[0] == 1.0 and stats.estimate("c", M)[0] == 2.0
    with pytest.raises(ValueError, match="max_entries"):
        SpeedStats(max_entries=0)


# -- the model -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("load", "capacity", "service", "cold", "expected"),
    [
        (0, 4, 2.0, 0.0, 2.0),
        (3, 4, 2.0, 0.0, 2.0),  # last free slot
        (4, 4, 2.0, 0.0, 2.5),  # first in the queue: a slot frees every S / capacity
        (7, 4, 2.0, 0.0, 4.0),
        (1, 1, 2.0, 0.0, 4.0),
        (0, 4, 2.0, 10.0, 12.0),
        (4, 4, 2.0, 10.0, 12.5),
        (1, 0, 2.0, 0.0, 4.0),  # a bad capacity counts as 1, never divides by zero
    ],
    ids=["idle", "last-free-slot", "first-queued", "deep-queue", "single-slot-busy", "cold",
         "cold-and-queued", "zero-capacity"],
)  # fmt: skip
def test_completion_s(load: int, capacity: int, service: float, cold: float, expected: float):
    got = completion_s(load=load, capacity=capacity, service_s=service, cold_s=cold)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("load", "weight", "expected"),
    [(3, 3.0, 2.0), (4, 3.0, 3.5), (7, 2.0, 6.0), (7, 0.0, 2.0)],
    ids=["free-slot-unweighted", "first-queued", "deep-queue", "queue-ignored"],
)
def test_queue_weight_scales_only_the_wait(load: int, weight: float, expected: float) -> None:
    got = completion_s(load=load, capacity=4, service_s=2.0, cold_s=1.0, queue_weight=weight)
    assert got == pytest.approx(expected + 1.0)
    policy = CostPolicy(default_ttft_s=1.0, default_tokens_per_s=100.0, queue_weight=weight)
    stats = SpeedStats(default_tokens=100.0)
    assert cost(node("a", load), stats, policy) == pytest.approx(expected)


POLICY = CostPolicy(default_ttft_s=0.5, default_tokens_per_s=25.0, cold_load_s=10.0)


@pytest.mark.parametrize(
    ("seen", "fleet", "loaded", "expected"),
    [
        ([("a", M, 1.0, 50.0)], False, None, 1.0 + 100 / 50),
        ([("a", "other", 9.0, 20.0)], False, None, 0.5 + 100 / 20),  # node's speed
        ([("a", "other", 9.0, 20.0)], True, None, 2.0 + 100 / 20),  # fleet ttft only
        ([], True, None, 2.0 + 100 / 40),  # the other candidates' median
        ([], False, None, 0.5 + 100 / 25),  # policy defaults
        ([("a", M, 1.0, 50.0)], False, True, 3.0),
        ([("a", M, 1.0, 50.0)], False, False, 13.0),
    ],
    ids=["measured", "node-speed-other-model", "fleet-ttft", "fleet-median", "defaults",
         "loaded", "cold"],
)  # fmt: skip
def test_expected_completion_fallbacks(
    seen: list[tuple[str, str, float, float]], fleet: bool, loaded: bool | None, expected: float
) -> None:
    stats = SpeedStats()
    stats.observe("z", M, ttft_s=None, tokens=100, decode_s=None)  # expected tokens: 100
    for name, model, ttft, rate in seen:
        stats.observe(name, model, ttft_s=ttft, tokens=100, decode_s=100 / rate)
    others: tuple[NodeState, ...] = ()
    if fleet:  # another candidate, measured at 2 s to first token and 40 tokens/s
        stats.observe("b", M, ttft_s=2.0, tokens=100, decode_s=100 / 40)
        others = (node("b"),)
    got = cost(node("a"), stats, POLICY, loaded=loaded, others=others)
    assert got == pytest.approx(expected)


def test_remote_in_flight_counts_as_load() -> None:
    stats = stats_with(("a", 1.0, 100.0))  # S = 2 s
    local = cost(node("a", 4, 4), stats, POLICY)
    mixed = cost(node("a", 1, 4, remote=3), stats, POLICY)
    assert local == mixed == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("estimates", "expected"),
    [
        ([], (None, None)),
        ([(None, None)], (None, None)),
        ([(1.0, 10.0), (None, 30.0), (3.0, None), (None, 20.0)], (2.0, 20.0)),
    ],
    ids=["nothing", "nothing-known", "medians-of-known"],
)
def test_fleet_speed(estimates, expected) -> None:
    assert fleet_speed(estimates) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_tokens_per_s": 0.0},
        {"default_ttft_s": -1.0},
        {"cold_load_s": -1.0},
        {"queue_weight": -1.0},
    ],
    ids=["zero-speed", "negative-ttft", "negative-cold", "negative-queue-weight"],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CostPolicy(**kwargs)


# -- the properties issue 7 asks for, on the formula ---------------------------------------


@pytest.mark.parametrize("fast_load", [0, 1, 2, 3, 4, 7, 10], ids=lambda n: f"fast-load-{n}")
def test_a_3x_slower_idle_node_loses_until_fast_nodes_queue_deeply(fast_load: int) -> None:
    # S_fast = 0.5 + 128/30 = 4.77 s, S_slow = 0.5 + 128/10 = 13.3 s; capacity 4. The idle slow
    # node wins only when the fast one's queue costs more than 13.3 - 4.77 = 8.5 s, i.e. more
    # than 7 queued (wait = (load - 3) * 4.77 / 4 > 8.5 ⇔ load >= 11).
    stats = stats_with(("fast", 0.5, 30.0), ("slow", 0.5, 10.0), tokens=128)
    fast = cost(node("fast", fast_load), stats, POLICY, loaded=True)
    slow = cost(node("slow", 0), stats, POLICY, loaded=True)
    assert fast < slow


def test_the_slow_node_wins_past_the_break_even_queue() -> None:
    stats = stats_with(("fast", 0.5, 30.0), ("slow", 0.5, 10.0), tokens=128)
    slow = cost(node("slow", 0), stats, POLICY, loaded=True)
    fast = [cost(node("fast", n), stats, POLICY, loaded=True) for n in (10, 11)]
    assert fast[0] < slow < fast[1]


@pytest.mark.parametrize(
    ("hot_load", "winner"),
    [(0, "hot"), (4, "hot"), (10, "hot"), (12, "cold"), (20, "cold")],
    ids=["hot-idle", "hot-full", "hot-queue-9s", "hot-queue-11s", "hot-queue-19s"],
)
def test_a_hot_model_beats_a_cold_load_by_cold_load_s_of_queueing(hot_load: int, winner: str):
    # S = 1 + 100/100 = 2 s, capacity 2: a slot frees every second, so the hot node's queue
    # wait is (load - 1) s; it wins until that wait passes cold_load_s = 10 s.
    stats = stats_with(("hot", 1.0, 100.0), ("cold", 1.0, 100.0))
    hot = cost(node("hot", hot_load, 2), stats, POLICY, loaded=True)
    cold = cost(node("cold", 0, 2), stats, POLICY, loaded=False)
    assert cold == pytest.approx(12.0)
    assert (hot < cold) == (winner == "hot")
