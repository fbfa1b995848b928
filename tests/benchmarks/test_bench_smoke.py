"""Smoke test of benchmarks/: every scenario runs for about a second, on real processes and
loopback sockets. It checks that each runs and reports, not how fast. wrk and nginx come from
`make system-deps` (without them a test fails or skips saying what to run, tests/tools.py);
LiteLLM is an optional peer of `make bench` only, so its test skips where it is not installed."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest

import router
from benchmarks import checks, instructions, replicas_slow, report
from benchmarks import targets as tg
from benchmarks.fleet_scale import run_s5
from benchmarks.procs import Cores, Proc, running
from benchmarks.replicas import redis_server
from benchmarks.scenarios import LOAD_SCENARIOS, Run, run_load, run_sweep
from benchmarks.soak import run_mem, run_s4
from tests import tools

# The one optional peer: LiteLLM is what `make bench` compares against when it is there; the
# router needs nothing of it, so a machine without it loses only this comparison.
needs_litellm = pytest.mark.skipif(
    "litellm" not in tg.available(),
    reason="LiteLLM, an optional benchmark peer, is not installed (make bench-peers)",
)


def _run(tmp_path: Path, *targets: str, **kw: Any) -> Run:
    return Run(tmp_path, Cores.plan(), 1, 1.0, targets, lambda _: None, **kw)


def _renders(scenario: dict[str, Any]) -> None:
    assert "error" not in scenario, scenario.get("error")
    results = {"scenarios": [scenario]}
    rows = checks.all_checks(results)
    assert rows[-1][3], f"failures: {rows[-1][1]}"  # the zero-errors row
    assert report.scenario_md(scenario)[0].startswith("### ")


def _served(scenario: dict[str, Any], *names: str) -> None:
    got = {m["target"]: m for m in scenario["measures"]}
    assert set(got) == set(names)
    for name, m in got.items():
        assert m["failed"] == 0, (name, m["extra"])
        assert m["tps"] > 0, name  # S3's 2 s streams may not end inside a 1 s window


# nginx rides along in S2 (a separate start would cost seconds).
_S2 = ("direct", "floor", "router", "nginx")


@pytest.mark.parametrize(
    ("key", "names"),
    [("S1-c1", ("direct", "router")), ("S2", _S2), ("S3", ("router",))],
    ids=["S1-c1", "S2", "S3"],
)
def test_load_scenario(tmp_path: Path, key: str, names: tuple[str, ...]) -> None:
    if "nginx" in names:
        tools.require("nginx")
    scenario = run_load(_run(tmp_path, *names), LOAD_SCENARIOS[key])
    # S1 c=1 adds the node's streamed answer, direct: what the router asks of the node.
    _served(scenario, *names, *(("direct-stream",) if key == "S1-c1" else ()))
    _renders(scenario)
    # Where each request's CPU went: the client and the node always, a proxy's too (S3's 2 s
    # streams end after a 1 s window: no request to divide by).
    if key == "S3":
        return
    for m in scenario["measures"]:
        cpu = m["extra"]["cpu_us_per_request"]
        expected = {"client", "node"} | ({"proxy"} if "direct" not in m["target"] else set())
        assert set(cpu) == expected, (m["target"], cpu)
        assert cpu["client"] > 0 and cpu["node"] > 0, (m["target"], cpu)
    assert "CPU per request in the window" in "\n".join(report.scenario_md(scenario))


def test_s6_many_streams(tmp_path: Path) -> None:
    """S6 at a tiny size (8 streams x 20 tokens): direct, floor and router, and the router's
    Responses and Messages streams, each measured or reported as not served yet."""
    tiny = replace(LOAD_SCENARIOS["S6"], concurrency=8, tokens=20)
    scenario = run_load(_run(tmp_path, "direct", "floor", "router"), tiny)
    measured = {m["target"] for m in scenario["measures"]}
    assert {"direct", "floor", "router"} <= measured
    assert set(tg.API_TARGETS.values()) <= measured | set(scenario["not_served"])
    _renders(scenario)
    text = "\n".join(report.scenario_md(scenario))
    assert "| target | tok/s | vs direct | vs floor |" in text
    assert "S6 chat: CPU per token / floor's" in text


def test_s1_c64_with_wrk(tmp_path: Path) -> None:
    tools.require("wrk")
    scenario = run_load(_run(tmp_path, "direct", "router"), LOAD_SCENARIOS["S1-c64"])
    assert scenario["tool"] == "wrk"
    _served(scenario, "direct", "router")
    _renders(scenario)


@needs_litellm
def test_litellm_peer(tmp_path: Path) -> None:
    scenario = run_load(_run(tmp_path, "direct", "litellm"), LOAD_SCENARIOS["S1-c1"])
    _served(scenario, "direct", "direct-stream", "litellm")


async def test_replicas_slow_node_table() -> None:
    """`python -m benchmarks.replicas`'s second table, 2 replicas only, 0.3 s per row."""
    tools.require("redis-server")
    async with redis_server() as url:
        rows = await asyncio.wait_for(replicas_slow.run_all(url, (2,), 0.3, 1), 60)
    assert [(r.strategy, r.load) for r in rows] == [
        ("cost_aware", "light"), ("round_robin", "light"),
        ("cost_aware", "full"), ("round_robin", "full"),
    ]  # fmt: skip
    assert all(r.requests > 0 and r.slow_share is not None for r in rows)
    text = replicas_slow.table(rows)
    assert "| replicas | strategy | load |" in text and "Failed requests in all rows" in text


def test_s4_idle_streams(tmp_path: Path) -> None:
    scenario = run_s4(_run(tmp_path, "router", s4_streams=50))
    (row,) = scenario["rows"]
    assert row["completed"] == 50 and row["failed"] == 0
    assert row["lag_p99_ms"] is not None
    _renders(scenario)


def test_s5_fleet_scale(tmp_path: Path) -> None:
    scenario = run_s5(_run(tmp_path), count=10, models=5, micro_nodes=50)
    assert scenario["micro"]["candidates"] == 50
    assert scenario["fleet"]["rounds"] > 0
    _served(scenario, "direct", "router")
    _renders(scenario)


def test_memory_soak(tmp_path: Path) -> None:
    scenario = run_mem(_run(tmp_path, "router"))
    assert [p["requests"] for p in scenario["points"]] == [1000, 2000]
    _renders(scenario)


def test_sweep_and_plot(tmp_path: Path) -> None:
    scenario = run_sweep(_run(tmp_path, "router"), levels=(4,))
    assert len(scenario["points"]) == 2
    _renders(scenario)
    if _has_matplotlib():
        from benchmarks.plot import plot

        assert plot(scenario, tmp_path / "p.png") is not None


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_router_before_runs_the_other_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`router-before` starts the router package of `$BENCH_BEFORE_TREE`, not this one: a copy
    whose `Server` header differs answers with the copy's header, beside `router` in one run."""
    tree = tmp_path / "before"
    shutil.copytree(Path(router.__file__).parent, tree / "router")
    stamp = tree / "router" / "api" / "stamp.py"
    stamp.write_text(stamp.read_text().replace('"jarvis-router"', '"jarvis-router-before"'))
    monkeypatch.setenv(tg.BEFORE_TREE, str(tree))
    assert tg.ROUTER_BEFORE in tg.available((tg.ROUTER_BEFORE,))
    cores, procs = Cores.plan(), list[Proc]()
    with running(procs):
        node, urls = tg.start_nodes(tmp_path, cores, tg.NodeSpec(8))
        procs.append(node)
        for before, server in ((True, "jarvis-router-before"), (False, "jarvis-router")):
            t = tg.start_router(tmp_path, cores, urls, before=before)
            assert t.proc is not None
            procs.append(t.proc)
            ask = Request(t.url, t.body(8, False).encode(), t.headers, method="POST")
            with urlopen(ask, timeout=30) as answer:
                assert answer.status == 200
                assert answer.headers["Server"] == server
                assert json.loads(answer.read())["usage"]["completion_tokens"] == 8


def test_instructions_per_request(tmp_path: Path) -> None:
    """`python -m benchmarks.instructions` at a tiny size: the router under callgrind counts a
    plausible number of instructions per request for both shapes, a 64-token stream more than
    an 8-token answer (its tokens are work too), and the table shows both."""
    tools.require("valgrind")
    counts = instructions.count(tmp_path, Cores.plan(), "router", None, requests=5, warmup=2)
    per_request = {c.shape: c.per_request for c in counts}
    short, streamed = (per_request[shape] for shape, _, _ in instructions.SHAPES)
    assert 100_000 < short < streamed < 50_000_000, per_request
    text = instructions.table(counts)
    assert text.startswith("| shape | router |") and "(S2) |" in text
