"""S5 fleet scale.

Micro-benchmark of the pure parts, in process, with 1,000 nodes x 50 models: one routing
decision over `Fleet.candidates` by `LeastLoaded` (least_loaded) and by `CostAware` (the
default strategy), `Fleet.mark_healthy` (steady: an equal model map, or the very same one as the
health checker hands over for an unchanged answer; cold, every node turning healthy; one node
flapping; each also with a `candidates` read after every change, which builds the tuple the
index hands out) and what a health check does with one node's `/api/tags` and `/api/ps` answers
after the HTTP call (parse a changed one, fingerprint an unchanged one).

Then a real run: 200 emulated nodes x 50 models in one process behind one router: the router's
CPU per health round at idle (rounds counted from its own /metrics) and S1-shaped load
(non-streamed 8-token replies, c=64, the 50 models in turn) against direct access spread over
the 200 nodes.
"""

from __future__ import annotations

import random
import re
import statistics
import time
import timeit
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from benchmarks import targets as tg
from benchmarks.loadgen import LoadSpec
from benchmarks.procs import Proc, Sampler, running
from benchmarks.scenarios import Run, measure_aiohttp
from benchmarks.stats import Measure
from router.config import NodeConfig
from router.emulator import EmulatorConfig, Faults, NodeStats
from router.emulator.state import NodeState as EmulatorNodeState
from router.fleet.registry import Fleet, NodeState
from router.routing.affinity import AffinityRing
from router.routing.choose import Ask, Chooser
from router.routing.cost_aware import CostAware
from router.routing.line import Place
from router.routing.local import QueuedSlots
from router.routing.scoring import SpeedStats
from router.routing.strategies import LeastLoaded
from router.upstream.client import parse_tags, ps_fingerprint, tags_fingerprint

HEALTH_INTERVAL_S = 5.0
_HEALTH_COUNT = re.compile(r"^jarvis_health_check_duration_seconds_count\{[^}]*\} (\S+)$", re.M)


def _per_call_us(fn: Callable[[], object], number: int) -> float:
    """Median of 5 repeats, per call, in µs."""
    runs = timeit.repeat(fn, number=number, repeat=5)
    return statistics.median(runs) / number * 1e6


def _fleet(nodes: int, models: dict[str, int]) -> tuple[Fleet, list[NodeConfig]]:
    configs = [NodeConfig(f"n{i}", f"http://127.0.0.1:{20000 + i}", 4) for i in range(nodes)]
    return Fleet(configs, clock=time.monotonic), configs


def _decisions(candidates: tuple[NodeState, ...], model: str, tried: str) -> dict[str, float]:
    """One routing decision, µs: `LeastLoaded` and the default `CostAware`, over an
    idle fleet (every node ties), a busy one (loads 0-3 of 4) and a busy one with a node tried."""
    rng = random.Random(1)
    stats = SpeedStats()
    for node in candidates:  # a few finished requests per node: every node has measured speeds
        for _ in range(3):
            tokens = rng.randrange(64, 256)
            rate = rng.uniform(20.0, 60.0)
            stats.observe(node.name, model, ttft_s=rng.uniform(0.1, 0.5), tokens=tokens,
                          decode_s=tokens / rate)  # fmt: skip
    cost_aware, least = CostAware(stats), LeastLoaded()
    out: dict[str, float] = {}
    for label, exclude in (("idle", ()), ("busy", ()), ("exclude", (tried,))):
        if label == "busy":
            for node in candidates:
                node.in_flight = rng.randrange(0, 4)

        ask = Ask(model, exclude)

        def least_loaded(ask: Ask = ask) -> object:
            return least.pick(candidates, ask, rng)

        def default(ask: Ask = ask) -> object:
            return cost_aware.pick(candidates, ask, rng)

        out[f"choose_{label}_us"] = _per_call_us(least_loaded, 2000)
        out[f"cost_aware_{label}_us"] = _per_call_us(default, 200)
    for node in candidates:
        node.in_flight = 0
    return out


def _slot_decisions(fleet: Fleet, model: str) -> dict[str, float]:
    """The whole decision a request makes with the shipped defaults, µs: `QueuedSlots` with
    the cost-aware strategy and the affinity ring, taking a slot and giving it back, for a
    request without a conversation key and for a later turn of a known conversation."""
    rng = random.Random(2)
    stats = SpeedStats()
    for node in fleet.candidates(model):
        stats.observe(node.name, model, ttft_s=0.2, tokens=128, decode_s=128 / 40)
    chooser = Chooser(CostAware(stats), rng, AffinityRing())
    slots = QueuedSlots(fleet, chooser, max_queue=1024, queue_timeout_s=30.0, clock=time.monotonic)
    for node in fleet.candidates(model):
        node.in_flight = rng.randrange(0, 4)
    out: dict[str, float] = {}
    for label, session in (("single", None), ("conversation", "session:bench")):

        def decide(session: str | None = session) -> None:
            lease = slots.try_take(Place(slots._line, (Ask(model, session=session),)))
            assert lease is not None
            lease.release()

        out[f"slots_{label}_us"] = _per_call_us(decide, 500)
    for node in fleet.candidates(model):
        node.in_flight = 0
    return out


def _index_changes(nodes: int, names: dict[str, int]) -> dict[str, float]:
    """The first round (every node turns healthy) and one node flapping, ms; `read`: with a
    `candidates` read of each of the node's models after every change, as a request might."""
    out: dict[str, float] = {}
    for read in (False, True):
        fleet, configs = _fleet(nodes, names)
        t0 = time.perf_counter()
        for c in configs:
            fleet.mark_healthy(c.name, dict(names), 0.001)
            if read:
                for model in names:
                    fleet.candidates(model)
        out["cold_round_read_ms" if read else "cold_round_ms"] = (time.perf_counter() - t0) * 1e3
        first = configs[0].name

        def flap(fleet: Fleet = fleet, read: bool = read, first: str = first) -> None:
            fleet.mark_unhealthy(first, "down")
            if read:
                for model in names:
                    fleet.candidates(model)
            fleet.mark_healthy(first, dict(names), 0.001)
            if read:
                for model in names:
                    fleet.candidates(model)

        out["flap_read_ms" if read else "flap_ms"] = _per_call_us(flap, 20) / 1000
    return out


def micro(nodes: int = 1000, models: int = 50) -> dict[str, Any]:
    names = {f"model-{j}:latest": 1_750_000_000 for j in range(models)}
    fleet, configs = _fleet(nodes, names)
    for c in configs:
        fleet.mark_healthy(c.name, dict(names), 0.001)

    def steady_round() -> None:  # answers parsed anew: equal maps, compared key by key
        for c in configs:
            fleet.mark_healthy(c.name, dict(names), 0.001)

    same = {c.name: dict(names) for c in configs}
    for c in configs:
        fleet.mark_healthy(c.name, same[c.name], 0.001)

    def same_round() -> None:  # unchanged answers: the health checker hands the same map again
        for c in configs:
            fleet.mark_healthy(c.name, same[c.name], 0.001)

    candidates = fleet.candidates("model-0:latest")
    decisions = _decisions(candidates, "model-0:latest", configs[0].name)
    decisions |= _slot_decisions(fleet, "model-0:latest")

    emu = EmulatorNodeState(EmulatorConfig(models=tuple(names)), Faults(), NodeStats())
    body, ps_body = emu.tags_body, emu.ps_body()
    node = fleet.nodes[configs[0].name]
    steady_ms = _per_call_us(steady_round, 3) / 1000
    same_ms = _per_call_us(same_round, 3) / 1000
    parse_ms = _per_call_us(lambda: parse_tags(body, node), 200) * nodes / 1000
    # bytes(...) copies: a fresh answer, whose hash Python has not cached yet
    seen_ms = _per_call_us(lambda: tags_fingerprint(bytes(bytearray(body))), 200) * nodes / 1000
    ps_ms = _per_call_us(lambda: ps_fingerprint(ps_body), 200) * nodes / 1000
    return {
        "nodes": nodes,
        "models": models,
        "candidates": len(candidates),
        **decisions,
        **_index_changes(nodes, names),
        "steady_round_ms": steady_ms,
        "same_round_ms": same_ms,
        "tags_parse_round_ms": parse_ms,
        "tags_body_bytes": len(body),
        "tags_same_round_ms": seen_ms,
        "ps_same_round_ms": ps_ms,
        "ps_body_bytes": len(ps_body),
        "pure_round_pct_core": 100 * (steady_ms + parse_ms) / 1000 / HEALTH_INTERVAL_S,
        "pure_same_round_pct_core": 100 * (same_ms + seen_ms + ps_ms) / 1000 / HEALTH_INTERVAL_S,
    }


def _health_checks(base: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(v) for v in _HEALTH_COUNT.findall(text))


def _health_cost(run: Run, urls: list[str], procs: list[Proc], models: int) -> dict[str, Any]:
    """Router CPU per health round at idle. Rounds run every second, so a 10 s hold sees ~10;
    the cost is then scaled to the shipped 5 s interval."""
    t0 = time.monotonic()
    router = tg.start_router(run.out, run.cores, urls, capacity=4, health_interval_s=1.0)
    assert router.proc is not None
    procs.append(router.proc)
    startup_s = time.monotonic() - t0
    idle_s = 1.2 if (run.duration_s or 5) < 3 else 10.0
    before = _health_checks(router.base)
    with Sampler(router.proc.pid) as sampler:
        time.sleep(idle_s)
    rounds = (_health_checks(router.base) - before) / len(urls)
    usage = sampler.usage()
    router.proc.stop()
    procs.remove(router.proc)
    cpu_s = (usage.cpu_pct if usage else 0.0) / 100 * idle_s
    per_round_ms = 1000 * cpu_s / rounds if rounds else None
    return {
        "nodes": len(urls),
        "models": models,
        "router_startup_s": startup_s,
        "rounds": rounds,
        "cpu_ms_per_round": per_round_ms,
        "pct_core_at_5s": per_round_ms / 10 / HEALTH_INTERVAL_S if per_round_ms else None,
        "idle_rss_mib": (usage.rss_end if usage else 0) / 2**20,
    }


def run_s5(run: Run, count: int = 200, models: int = 50, micro_nodes: int = 1000) -> dict[str, Any]:
    out: dict[str, Any] = {"key": "S5", "title": "S5 fleet scale", "micro": micro(micro_nodes)}
    run.log(f"  S5 micro: {out['micro']}")
    model_names = tuple(f"model-{j}" for j in range(models))
    node = tg.NodeSpec(8, count=count, models=model_names, max_parallel=256)
    procs: list[Proc] = []
    measures: list[Measure] = []
    with running(procs):
        proc, urls = tg.start_nodes(run.out, run.cores, node)
        procs.append(proc)
        out["fleet"] = _health_cost(run, urls, procs, models)
        run.log(f"  S5 fleet: {out['fleet']}")
        # Load: the router has all the nodes (health every 5 s, as shipped); direct access
        # spreads over them in turn; both ask for the 50 models in turn.
        router = tg.start_router(run.out, run.cores, urls, capacity=4)
        assert router.proc is not None
        procs.append(router.proc)
        node_urls = [u + tg.NATIVE_PATH for u in urls]
        for rep in range(run.repeats):
            for t in (tg.direct(urls[0]), router):
                spec = LoadSpec(
                    node_urls if t.name == "direct" else [t.url],
                    t.protocol,
                    [t.body(8, False, model=m) for m in model_names],
                    t.headers,
                    False,
                    64,
                    duration_s=run.duration_s or 5.0,
                    expect_tokens=8,
                    warmup_s=0.5,
                )
                m = measure_aiohttp(run, spec, t)
                measures.append(m)
                run.log(
                    f"  S5 #{rep + 1} {t.name:7} {m.rps:8.1f} req/s "
                    f"p50 {m.p50_ms or 0:.2f} ms failed {m.failed}"
                )
    out["measures"] = [asdict(m) for m in measures]
    return out
