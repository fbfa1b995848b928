"""Warm at the right context, and the warm-pool plan: floors kept on healthy installed nodes,
lost nodes replaced, no protected model evicted, demand loads only into free slots, bounded."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import pytest

from router.catalog import (
    Entry,
    NodeView,
    WarmAction,
    WarmPolicy,
    is_warm,
    parse_ps_contexts,
    plan_warm,
)
from router.wire.options import Overrides

PS = orjson.dumps(
    {
        "models": [
            {"name": "Mistral:latest", "model": "mistral:latest", "context_length": 2048},
            {"name": "llama3:70b", "model": "llama3:70b"},  # an older Ollama: no context
            {"name": "qwen3", "context_length": True},
            {"model": "nameless"},
            "junk",
        ]
    }
)


def test_parse_ps_contexts() -> None:
    assert parse_ps_contexts(PS) == {
        "mistral:latest": 2048,
        "llama3:70b": None,
        "qwen3:latest": None,
    }
    assert parse_ps_contexts(b'{"models":[]}') == {}
    assert parse_ps_contexts(b"{}") == {}


@pytest.mark.parametrize("body", [b"not json", b"[1]"], ids=["not-json", "not-an-object"])
def test_parse_ps_contexts_refuses_garbage(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_ps_contexts(body)


WARM: list[tuple[str, Mapping[str, int | None], int | None, int, int | None, bool]] = [
    # name, loaded, catalog num_ctx, parallel, trained context, warm?
    ("not-loaded", {}, 8192, 1, None, False),
    ("right-context", {"m": 8192}, 8192, 1, None, True),
    ("other-context-is-cold", {"m": 4096}, 8192, 1, None, False),
    ("no-catalog-context-any-is-warm", {"m": 4096}, None, 1, None, True),
    ("node-reports-no-context", {"m": None}, 8192, 1, None, True),
    ("context-times-parallel", {"m": 32768}, 8192, 4, None, True),
    ("twice-without-parallel-is-cold", {"m": 16384}, 8192, 1, None, False),
    ("capped-at-the-trained-context", {"m": 8192}, 32768, 1, 8192, True),
    ("trained-above-num-ctx-changes-nothing", {"m": 4096}, 8192, 1, 131072, False),
]


@pytest.mark.parametrize(
    ("loaded", "num_ctx", "parallel", "trained", "warm"),
    [w[1:] for w in WARM],
    ids=[w[0] for w in WARM],
)
def test_is_warm(
    loaded: Mapping[str, int | None],
    num_ctx: int | None,
    parallel: int,
    trained: int | None,
    warm: bool,
) -> None:
    assert is_warm(loaded, "m", num_ctx, parallel=parallel, trained_ctx=trained) is warm


MISTRAL = Entry(
    "mistral:latest", "ollama/mistral", ("mistral:latest",), Overrides(num_ctx=2048), min_loaded=2
)
LLAMA3 = Entry(
    "llama3:latest",
    "ollama/llama3",
    ("llama3:70b", "llama3:8b"),
    Overrides(num_ctx=8192),
    min_loaded=1,
)
PHI = Entry("phi3:latest", "ollama/phi3", ("phi3:latest",))  # no floor: demand only


def node(
    name: str,
    installed: tuple[str, ...] = ("mistral:latest",),
    loaded: Mapping[str, int | None] | None = None,
    *,
    healthy: bool = True,
    loading: frozenset[str] = frozenset(),
    max_loaded: int = 3,
) -> NodeView:
    return NodeView(name, healthy, frozenset(installed), loaded or {}, loading, max_loaded)


def load(node_: str, model: str, entry: Entry, reason: str = "floor") -> WarmAction:
    return WarmAction(node_, model, entry.name, reason)


FLOOR: list[tuple[str, list[Entry], list[NodeView], list[WarmAction]]] = [
    (
        "cold-fleet-loads-on-two-nodes",
        [MISTRAL],
        [node("a"), node("b"), node("c")],
        [load("a", "mistral:latest", MISTRAL), load("b", "mistral:latest", MISTRAL)],
    ),
    (
        "floor-met-nothing-to-do",
        [MISTRAL],
        [
            node("a", loaded={"mistral:latest": 2048}),
            node("b", loaded={"mistral:latest": 2048}),
            node("c"),
        ],
        [],
    ),
    (
        "lost-node-replaced-by-another",
        [MISTRAL],
        [
            node("a", loaded={"mistral:latest": 2048}, healthy=False),
            node("b", loaded={"mistral:latest": 2048}),
            node("c"),
        ],
        [load("c", "mistral:latest", MISTRAL)],
    ),
    (
        "restarted-node-loaded-again",
        [MISTRAL],
        [node("a"), node("b", loaded={"mistral:latest": 2048})],
        [load("a", "mistral:latest", MISTRAL)],
    ),
    (
        "a-load-under-way-counts",
        [MISTRAL],
        [
            node("a", loading=frozenset({"mistral:latest"})),
            node("b", loaded={"mistral:latest": 2048}),
            node("c"),
        ],
        [],
    ),
    (
        "only-where-installed",
        [MISTRAL],
        [node("a", installed=("phi3:latest",)), node("b")],
        [load("b", "mistral:latest", MISTRAL)],
    ),
    (
        "wrong-context-reloaded-in-place-first",
        [MISTRAL],
        [
            node("a"),
            node("b", loaded={"mistral:latest": 4096, "x:1": None, "y:1": None}),
            node("c", loaded={"mistral:latest": 2048}),
        ],
        [load("b", "mistral:latest", MISTRAL)],
    ),
    (
        "fewer-loaded-models-preferred",
        [LLAMA3],
        [
            node("a", ("llama3:70b",), {"x:1": None, "y:1": None}),
            node("b", ("llama3:70b",), {"x:1": None}),
        ],
        [load("b", "llama3:70b", LLAMA3)],
    ),
    (
        "preferred-target-first",
        [LLAMA3],
        [node("a", ("llama3:8b",)), node("b", ("llama3:70b", "llama3:8b"), {"x:1": None})],
        [load("b", "llama3:70b", LLAMA3)],
    ),
    (
        "any-target-meets-the-floor",
        [LLAMA3],
        [node("a", ("llama3:8b",), {"llama3:8b": 8192}), node("b", ("llama3:70b",))],
        [],
    ),
    (
        "free-slot-before-eviction-even-for-a-less-preferred-target",
        [LLAMA3],
        [node("a", ("llama3:70b",), {"x:1": None}, max_loaded=1), node("b", ("llama3:8b",))],
        [load("b", "llama3:8b", LLAMA3)],
    ),
    (
        "full-node-used-when-nothing-there-is-protected",
        [LLAMA3],
        [node("a", ("llama3:70b",), {"x:1": None}, max_loaded=1)],
        [load("a", "llama3:70b", LLAMA3)],
    ),
    (
        "never-evicts-a-model-at-its-floor",
        [MISTRAL, LLAMA3],
        [
            node("a", ("mistral:latest", "llama3:70b"), {"mistral:latest": 2048}, max_loaded=1),
            node("b", ("mistral:latest",), {"mistral:latest": 2048}),
        ],
        [],
    ),
    (
        "a-model-above-its-floor-may-be-evicted",
        [MISTRAL, LLAMA3],
        [
            node("a", ("mistral:latest", "llama3:70b"), {"mistral:latest": 2048}, max_loaded=1),
            node("b", ("mistral:latest",), {"mistral:latest": 2048}),
            node("c", ("mistral:latest",), {"mistral:latest": 2048}),
        ],
        [load("a", "llama3:70b", LLAMA3)],
    ),
    (
        "bounded-per-round-furthest-below-its-floor-first",
        [LLAMA3, MISTRAL],
        [node(n, ("mistral:latest", "llama3:70b")) for n in "abcd"],
        [load("a", "mistral:latest", MISTRAL), load("b", "mistral:latest", MISTRAL)],
    ),
    (
        "one-load-per-node-per-round",
        [MISTRAL, LLAMA3],
        [
            node("a", ("mistral:latest", "llama3:70b")),
            node("b", ("mistral:latest",), {"mistral:latest": 2048}),
        ],
        [load("a", "mistral:latest", MISTRAL)],
    ),
    ("no-healthy-node-nothing", [MISTRAL], [node("a", healthy=False)], []),
]


@pytest.mark.parametrize(
    ("entries", "nodes", "expected"), [f[1:] for f in FLOOR], ids=[f[0] for f in FLOOR]
)
def test_plan_warm_floor(
    entries: list[Entry], nodes: list[NodeView], expected: list[WarmAction]
) -> None:
    plan = plan_warm(entries, nodes)
    assert list(plan.actions) == expected
    assert plan.grown == {}


POLICY = WarmPolicy(max_loads_per_round=2, queue_threshold=4, cooldown_s=60.0)
PHI_NODES = [
    node("a", ("phi3:latest",), {"phi3:latest": None}),
    node("b", ("phi3:latest",), {"x:1": None, "y:1": None}),
    node("c", ("phi3:latest",), {"x:1": None}),
    node("d", ("mistral:latest",)),
]
DEMAND: list[tuple[str, list[NodeView], int, dict[str, float], float, list[WarmAction]]] = [
    # name, nodes, queue depth, last demand loads, now, actions
    (
        "queue-over-threshold-one-more-node",
        PHI_NODES,
        4,
        {},
        100.0,
        [load("c", "phi3:latest", PHI, "demand")],
    ),
    ("queue-below-threshold-nothing", PHI_NODES, 3, {}, 100.0, []),
    ("within-cooldown-nothing", PHI_NODES, 50, {"phi3:latest": 50.0}, 100.0, []),
    (
        "after-cooldown-again",
        PHI_NODES,
        50,
        {"phi3:latest": 40.0},
        100.0,
        [load("c", "phi3:latest", PHI, "demand")],
    ),
    (
        "never-evicts",
        [
            node("a", ("phi3:latest",), {"phi3:latest": None}),
            node("b", ("phi3:latest",), {"x:1": None}, max_loaded=1),
        ],
        50,
        {},
        100.0,
        [],
    ),
    (
        "not-while-a-load-is-under-way",
        [
            node("a", ("phi3:latest",), loading=frozenset({"phi3:latest"})),
            node("b", ("phi3:latest",)),
        ],
        50,
        {},
        100.0,
        [],
    ),
]


@pytest.mark.parametrize(
    ("nodes", "queued", "last", "now", "expected"),
    [d[1:] for d in DEMAND],
    ids=[d[0] for d in DEMAND],
)
def test_plan_warm_demand(
    nodes: list[NodeView],
    queued: int,
    last: dict[str, float],
    now: float,
    expected: list[WarmAction],
) -> None:
    plan = plan_warm(
        [PHI], nodes, demand={"phi3:latest": queued}, last_grown=last, now=now, policy=POLICY
    )
    assert list(plan.actions) == expected
    assert plan.grown.get("phi3:latest") == (now if expected else last.get("phi3:latest"))


def test_demand_waits_for_the_floor_loads_of_the_round() -> None:
    nodes = [node(n, ("mistral:latest",)) for n in "abc"]
    plan = plan_warm([MISTRAL], nodes, demand={"mistral:latest": 100}, now=1.0, policy=POLICY)
    assert [a.reason for a in plan.actions] == ["floor", "floor"]
    assert plan.grown == {}


def test_demand_respects_the_round_budget() -> None:
    nodes = [node(n, ("mistral:latest", "phi3:latest")) for n in "abcd"]
    plan = plan_warm([MISTRAL, PHI], nodes, demand={"phi3:latest": 100}, now=1.0, policy=POLICY)
    assert [a.entry for a in plan.actions] == ["mistral:latest", "mistral:latest"]
    plan = plan_warm(
        [MISTRAL, PHI],
        nodes,
        demand={"phi3:latest": 100},
        now=1.0,
        policy=WarmPolicy(max_loads_per_round=3),
    )
    assert plan.actions[-1] == load("c", "phi3:latest", PHI, "demand")
