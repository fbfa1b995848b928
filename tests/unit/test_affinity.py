"""Conversation affinity: session keys, and consistent hashing with bounded loads."""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from router.config import NodeConfig
from router.fleet.registry import NodeState
from router.routing.affinity import AffinityRing, session_key

SYSTEM = {"role": "system", "content": "You are terse."}
FIRST = {"role": "user", "content": "What is a GPU?"}
REPLY = {"role": "assistant", "content": "A graphics processor."}
SECOND = {"role": "user", "content": "And a TPU?"}


def key(**kw: Any) -> str | None:
    return session_key(
        session_id=kw.get("session_id"),
        user=kw.get("user"),
        messages=kw.get("messages"),
        prompt=kw.get("prompt"),
    )


# -- session_key -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"session_id": "s1", "user": "u1", "messages": [FIRST], "prompt": "p"}, "session:s1"),
        ({"session_id": None, "user": "u1", "messages": [FIRST]}, "user:u1"),
        ({"session_id": "  ", "user": "u1"}, "user:u1"),
        ({"session_id": "", "user": "", "messages": [FIRST]}, "messages:"),
        ({"messages": [FIRST], "prompt": "p"}, "messages:"),
        ({"messages": [], "prompt": "Once upon a time"}, "prompt:"),
        ({"messages": [REPLY], "prompt": "p"}, "prompt:"),
        ({"messages": [REPLY]}, None),
        ({"messages": [{"role": "user", "content": ""}]}, None),
        ({"messages": [{"role": "user", "content": None}]}, None),
        ({"prompt": ""}, None),
        ({}, None),
    ],
    ids=[
        "session-id-first",
        "then-user",
        "blank-session-id-ignored",
        "then-messages",
        "messages-before-prompt",
        "then-prompt",
        "no-user-text-then-prompt",
        "assistant-only",
        "empty-user-text",
        "null-content",
        "empty-prompt",
        "nothing",
    ],
)
def test_key_precedence(kwargs: dict[str, Any], kind: str | None) -> None:
    got = key(**kwargs)
    if kind is None:
        assert got is None
    else:
        assert got is not None
        assert got.startswith(kind)


@pytest.mark.parametrize(
    ("turn_1", "turn_n"),
    [
        ([SYSTEM, FIRST], [SYSTEM, FIRST, REPLY, SECOND]),
        ([FIRST], [FIRST, REPLY, SECOND, REPLY, SECOND]),
        # a system message added later in the chat is not part of the leading messages
        ([SYSTEM, FIRST], [SYSTEM, FIRST, REPLY, {"role": "system", "content": "Be nice."}]),
        # text parts are joined: the same words as a string or as parts are the same text
        (
            [FIRST],
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is "},
                        {"type": "image_url", "image_url": {"url": "data:..."}},
                        {"type": "text", "text": "a GPU?"},
                    ],
                },
                REPLY,
            ],
        ),
    ],
    ids=["with-system", "without-system", "late-system-ignored", "content-parts"],
)
def test_later_turns_share_the_first_turns_key(
    turn_1: list[dict[str, Any]], turn_n: list[dict[str, Any]]
) -> None:
    assert key(messages=turn_1) == key(messages=turn_n)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ([SYSTEM, FIRST], [FIRST]),
        ([SYSTEM, FIRST], [{"role": "system", "content": "You are verbose."}, FIRST]),
        ([FIRST], [{"role": "user", "content": "What is a CPU?"}]),
        # no ambiguity from where one text ends and the next begins
        (
            [{"role": "system", "content": "ab"}, {"role": "user", "content": "c"}],
            [{"role": "system", "content": "a"}, {"role": "user", "content": "bc"}],
        ),
    ],
    ids=["system-added", "system-changed", "first-question-changed", "boundaries"],
)
def test_different_conversations_get_different_keys(
    one: list[dict[str, Any]], other: list[dict[str, Any]]
) -> None:
    assert key(messages=one) != key(messages=other)


def test_keys_are_digests_not_text() -> None:
    for got in (key(messages=[SYSTEM, FIRST]), key(prompt="What is a GPU? " * 40)):
        assert got is not None
        assert re.fullmatch(r"(messages|prompt):[0-9a-f]{32}", got)


def test_prompt_key_uses_the_first_256_characters() -> None:
    head = "x" * 256
    assert key(prompt=head + "one ending") == key(prompt=head + "another")
    assert key(prompt="y" + head[1:]) != key(prompt=head)


# -- the ring --------------------------------------------------------------------------------
@dataclass
class Node:
    name: str
    load: int = 0
    capacity: int = 1_000


def nodes(*names: str) -> list[Node]:
    return [Node(name) for name in names]


def pick(ring: AffinityRing, k: str, candidates: list[Node], **kw: Any) -> Node | None:
    return ring.pick(k, candidates, **kw)


def assignments(ring: AffinityRing, keys: list[str], candidates: list[Node]) -> dict[str, str]:
    out = {}
    for k in keys:
        chosen = pick(ring, k, candidates)
        assert chosen is not None
        out[k] = chosen.name
    return out


KEYS = [f"conversation-{i}" for i in range(1000)]


def test_same_key_same_node_while_loads_are_low() -> None:
    ring, fleet = AffinityRing(), nodes("a", "b", "c", "d")
    first = pick(ring, "k", fleet)
    assert all(pick(ring, "k", fleet) is first for _ in range(50))
    # a new ring (another replica, a restart) agrees
    assert pick(AffinityRing(), "k", nodes("d", "c", "b", "a")) == first


def test_keys_spread_over_the_nodes() -> None:
    counts = Counter(assignments(AffinityRing(), KEYS, nodes(*"abcde")).values())
    assert set(counts) == set("abcde")
    assert all(100 < n < 320 for n in counts.values()), counts


@pytest.mark.parametrize(
    ("before", "after"),
    [("abcde", "abcdef"), ("abcdef", "abcde"), ("abcde", "abde")],
    ids=["add-sixth", "remove-sixth", "remove-middle"],
)
def test_membership_change_moves_few_keys(before: str, after: str) -> None:
    ring = AffinityRing()
    old = assignments(ring, KEYS, nodes(*before))
    new = assignments(ring, KEYS, nodes(*after))
    moved = [k for k in KEYS if old[k] != new[k]]
    assert len(moved) <= 0.30 * len(KEYS)
    # only keys of a removed node leave, and only onto an added node
    changed = set(before) ^ set(after)
    assert all(old[k] in changed or new[k] in changed for k in moved)


@pytest.mark.parametrize(
    ("distinct_keys", "balance", "seed"),
    [(1, 1.25, 0), (5, 1.25, 1), (200, 1.25, 2), (200, 1.0, 3), (50, 2.0, 4)],
    ids=["one-hot-key", "few-keys", "many-keys", "perfect-balance", "loose-balance"],
)
def test_bounded_load_is_never_exceeded(distinct_keys: int, balance: float, seed: int) -> None:
    rng = random.Random(seed)
    ring, fleet = AffinityRing(balance=balance), nodes(*"abcde")
    weights = [1 / (i + 1) for i in range(distinct_keys)]  # Zipf-like: a few hot conversations
    keys = [f"k{i}" for i in range(distinct_keys)]
    for _ in range(2000):
        total = sum(n.load for n in fleet)
        bound = math.ceil(balance * (total + 1) / len(fleet))
        chosen = pick(ring, rng.choices(keys, weights)[0], fleet)
        assert chosen is not None
        chosen.load += 1
        assert chosen.load <= bound
        if rng.random() < 0.4:  # some requests finish
            busy = [n for n in fleet if n.load]
            rng.choice(busy).load -= 1


def test_hot_key_spills_only_when_its_node_is_over_the_bound() -> None:
    ring, fleet = AffinityRing(balance=1.25), nodes(*"abcde")
    home = pick(ring, "hot", fleet)
    assert home is not None
    for n in fleet:  # the bound, ceil(1.25 * (total + 1) / 5), is 6 at both steps below
        n.load = 4
    home.load = 5
    assert pick(ring, "hot", fleet) is home
    home.load = 6
    spilled = pick(ring, "hot", fleet)
    assert spilled is not None
    assert spilled is not home


@pytest.mark.parametrize(
    ("exclude", "capacity_full", "expect_home"),
    [((), (), True), (("HOME",), (), False), ((), ("HOME",), False), (("zzz",), (), True)],
    ids=["none", "home-excluded", "home-at-capacity", "unknown-excluded"],
)
def test_exclude_and_capacity_move_the_key(
    exclude: tuple[str, ...], capacity_full: tuple[str, ...], expect_home: bool
) -> None:
    ring, fleet = AffinityRing(), [Node(name, capacity=2) for name in "abcd"]
    home = pick(ring, "k", fleet)
    assert home is not None
    for n in fleet:
        if n.name == home.name and "HOME" in capacity_full:
            n.load = 2
    excluded = [home.name if e == "HOME" else e for e in exclude]
    chosen = pick(ring, "k", fleet, exclude=excluded)
    assert chosen is not None
    assert (chosen is home) == expect_home
    assert chosen.name not in excluded


@pytest.mark.parametrize(
    ("candidates", "exclude"),
    [
        ([], ()),
        ([Node("a"), Node("b")], ("a", "b")),
        ([Node("a", load=2, capacity=2), Node("b", load=3, capacity=2)], ()),
    ],
    ids=["no-candidates", "all-excluded", "all-at-capacity"],
)
def test_none_when_no_node_qualifies(candidates: list[Node], exclude: tuple[str, ...]) -> None:
    assert pick(AffinityRing(), "k", candidates, exclude=exclude) is None


def test_last_node_is_remembered_within_the_bound_and_forgotten_when_gone() -> None:
    ring, (a, b, c) = AffinityRing(remember=2), nodes("a", "b", "c")
    candidates = [a, b, c]

    def last(key: str, among: list[Node] = candidates, **kw: Any) -> Node | None:
        return ring.last(key, among, **kw)

    assert last("chat") is None
    ring.remember("chat", "b")  # the turn went to b: its cache is there now
    assert last("chat") is b
    # Busy is no reason to leave while loads are even (the caller weighs waiting for it):
    # 10 in flight, bound ceil(1.25 * 11 / 3) = 5, and b would hold 5.
    a.load, b.load, c.load = 3, 4, 3
    assert last("chat") is b
    # Far above the others it is: bound ceil(1.25 * 7 / 3) = 3. So many chats that share a
    # key (the same opening, no session id) never pile onto one node.
    a.load = c.load = 1
    assert last("chat") is None
    a.load = b.load = c.load = 0
    assert last("chat", exclude={"b"}) is None
    assert last("chat", [a, c]) is None  # b left the rotation
    ring.remember("x", "a")
    ring.remember("y", "b")  # bounded: "chat" was the least recently used
    assert last("chat") is None
    assert last("x") is a


def test_large_candidate_lists_sample_the_mean_load_and_keep_the_bound() -> None:
    ring, rng = AffinityRing(balance=1.25), random.Random(7)
    fleet = [Node(f"n{i}", load=2) for i in range(500)]
    for k in KEYS[:300]:
        chosen = pick(ring, k, fleet, rng=rng)
        assert chosen is not None
        chosen.load += 1
    # The mean stays under 3, so a sampled bound of ceil(1.25 * ~2.6) = 4 at most holds.
    assert max(n.load for n in fleet) <= 4
    fleet[0].load = 1_000  # far above any bound: its keys go elsewhere
    moved = [k for k in KEYS if pick(ring, k, nodes("n0", "n1")) == Node("n0")][:20]
    assert all(pick(ring, k, fleet, rng=rng) is not fleet[0] for k in moved)


def test_ring_cache_is_bounded_and_answers_stay_the_same() -> None:
    ring = AffinityRing(cache_size=3)
    sets = [nodes(*names) for names in ("ab", "abc", "abcd", "bcd", "cd")]
    first = [pick(ring, "k", s) for s in sets]
    assert ring.cached_rings == 3
    again = [pick(ring, "k", s) for s in sets]  # rebuilt after eviction: same answers
    assert [n.name for n in again if n] == [n.name for n in first if n]
    assert ring.cached_rings == 3


def test_fleet_nodes_fit() -> None:
    fleet = [
        NodeState(config=NodeConfig(name, f"http://{name}:11434", max_concurrency=2))
        for name in "abc"
    ]
    fleet[0].in_flight, fleet[0].remote_in_flight = 1, 1  # full: the other replicas count too
    assert AffinityRing().pick("k", fleet, exclude=("b",)) is fleet[2]


@pytest.mark.parametrize(
    "kwargs",
    [{"vnodes": 0}, {"balance": 0.9}, {"cache_size": 0}],
    ids=["no-vnodes", "balance-below-one", "no-cache"],
)
def test_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AffinityRing(**kwargs)
