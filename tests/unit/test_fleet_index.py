"""The fleet's model index, kept up to date one node at a time, always says what a rebuild
over every node would: which nodes in rotation serve a model (in fleet order), and which
models any node lists."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from router.config import NodeConfig
from router.fleet.breaker import BreakerPolicy
from router.fleet.registry import Fleet, NodeState

MODELS = [f"m{j}:latest" for j in range(6)]


def rebuilt(fleet: Fleet) -> tuple[dict[str, tuple[NodeState, ...]], set[str]]:
    """The index the slow way: a scan over every node."""
    by_model: dict[str, list[NodeState]] = {}
    known: set[str] = set()
    for node in fleet.nodes.values():
        known.update(node.models)
        if node.healthy and not node.draining and node.ejected_until is None:
            for model in node.models:
                by_model.setdefault(model, []).append(node)
    return {m: tuple(ns) for m, ns in by_model.items()}, known


def assert_consistent(fleet: Fleet) -> None:
    by_model, known = rebuilt(fleet)
    for model in [*MODELS, "never:latest"]:
        got = fleet.candidates(model)
        want = by_model.get(model, ())
        assert [n.name for n in got] == [n.name for n in want], model
        assert all(a is b for a, b in zip(got, want, strict=True)), model
        assert fleet.knows(model) == (model in known), model
    assert fleet.served_models() == {m: max(n.models[m] for n in ns) for m, ns in by_model.items()}


def configs(names: list[str], port: int = 1) -> list[NodeConfig]:
    return [NodeConfig(n, f"http://{n}:{port}", 4) for n in names]


def random_models(rng: random.Random) -> dict[str, int]:
    return {m: rng.randrange(100) for m in rng.sample(MODELS, rng.randrange(len(MODELS) + 1))}


async def test_index_matches_a_rebuild_through_any_sequence_of_changes() -> None:
    rng = random.Random(20250601)
    policy = BreakerPolicy(failure_threshold=1, base_backoff_s=0.001, max_backoff_s=0.002)
    names = [f"n{i}" for i in range(12)]
    fleet = Fleet(configs(names), clock=time.monotonic, breaker=policy, rng=random.Random(1))
    assert_consistent(fleet)
    for step in range(3000):
        name = rng.choice(list(fleet.nodes))
        op = rng.randrange(9)
        if op <= 2:
            fleet.mark_healthy(name, random_models(rng), 0.001)
        elif op == 3:
            node = fleet.nodes[name]  # the same answer again: the mapping it already keeps
            fleet.mark_healthy(name, node.models if node.healthy else random_models(rng), 0.001)
        elif op == 4:
            fleet.mark_unhealthy(name, "down")
        elif op == 5:
            fleet.set_draining(name, rng.random() < 0.5)
        elif op == 6:
            fleet.forget_model(name, rng.choice(MODELS))
        elif op == 7:
            fleet.record_failure(fleet.nodes[name])  # ejects; readmitted a moment later
        else:  # a reload: some nodes leave, some join, some move to a new URL (a new node)
            keep = [n for n in names if rng.random() < 0.8] or names[:1]
            moved = set(rng.sample(keep, min(2, len(keep))))
            names = [*keep, f"x{step}"]
            wanted = [NodeConfig(n, f"http://{n}:{2 if n in moved else 1}", 4) for n in names]
            fleet.update_nodes(wanted)
        assert_consistent(fleet)
        if step % 50 == 0:
            await asyncio.sleep(0.003)  # let back-offs end: readmissions change the index too
            assert_consistent(fleet)


async def test_a_removed_node_failing_a_last_request_changes_nothing() -> None:
    policy = BreakerPolicy(failure_threshold=1, base_backoff_s=0.001, max_backoff_s=0.001)
    fleet = Fleet(configs(["a", "b"]), clock=time.monotonic, breaker=policy)
    fleet.mark_healthy("a", {"m0:latest": 1}, 0.0)
    fleet.mark_healthy("b", {"m0:latest": 2}, 0.0)
    gone = fleet.nodes["a"]
    fleet.update_nodes(configs(["b"]))
    fleet.record_failure(gone)
    await asyncio.sleep(0.01)
    assert fleet.candidates("m0:latest") == (fleet.nodes["b"],)
    assert_consistent(fleet)


@pytest.mark.parametrize("order", ["in-order", "reversed", "shuffled"])
def test_candidates_keep_fleet_order_whatever_order_nodes_join(order: str) -> None:
    names = [f"n{i}" for i in range(40)]
    fleet = Fleet(configs(names), clock=time.monotonic)
    joining = list(names)
    if order == "reversed":
        joining.reverse()
    elif order == "shuffled":
        random.Random(4).shuffle(joining)
    for name in joining:
        fleet.mark_healthy(name, {"m0:latest": 1}, 0.0)
    assert [n.name for n in fleet.candidates("m0:latest")] == names
    fleet.mark_unhealthy("n17", "down")
    fleet.mark_healthy("n17", {"m0:latest": 1}, 0.0)  # back in its place, not at the end
    assert [n.name for n in fleet.candidates("m0:latest")] == names


def test_capacity_hook_runs_when_rotation_changes() -> None:
    fleet = Fleet(configs(["a"]), clock=time.monotonic)
    calls: list[int] = []
    unwatch = fleet.watch_capacity(lambda: calls.append(1))
    models = {"m0:latest": 1}
    fleet.mark_healthy("a", models, 0.0)
    assert len(calls) == 1  # joined: waiting requests may run now
    fleet.mark_healthy("a", models, 0.0)
    fleet.mark_healthy("a", {"m0:latest": 1}, 0.0)
    assert len(calls) == 1  # same answer: nothing to wake
    fleet.set_draining("a", True)
    fleet.set_draining("a", False)
    assert len(calls) == 3
    unwatch()  # a slot store that closed hears no more
    fleet.set_draining("a", True)
    assert len(calls) == 3


def test_the_same_answer_still_updates_the_check_time() -> None:
    now = [100.0]
    fleet = Fleet(configs(["a"]), clock=lambda: now[0])
    models = {"m0:latest": 1}
    fleet.mark_healthy("a", models, 0.5)
    now[0] = 105.0
    fleet.mark_healthy("a", models, 0.25)
    node = fleet.nodes["a"]
    assert (node.last_check, node.check_latency_s) == (105.0, 0.25)
    fleet.forget_model("a", "m0:latest")  # a request found it gone; the next answer restores it
    assert fleet.candidates("m0:latest") == ()
    fleet.mark_healthy("a", models, 0.25)
    assert fleet.candidates("m0:latest") == (node,)
