"""`python -m benchmarks.strategies [--quick]`: routing strategies, one replayed workload (issue 7).

Each scenario builds a seeded request schedule once (arrival, model, conversation and turn,
max_tokens) and replays it through a fresh in-process router per strategy, in front of fresh
emulated nodes on loopback (the approach of `benchmarks.replicas`). Requests stream, so TTFT is
measured by the client; a multi-turn chat sends turn k+1 a think time after turn k's answer,
with that answer in its history (so a node's prefix cache can hit). Prints per strategy the mean
and p99 end-to-end latency and TTFT and the failed requests, then whether cost_aware beat
round_robin on p99 latency.

Affinity: every chat has a session key (a digest of its leading messages), and the affinity
ring picks before the strategy does, so with affinity on every strategy would route alike.
It is on only for cost_aware ("the full router") and off for the others.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from benchmarks.stats import pct
from router.api.app import create_app, make_runner
from router.api.auth import digest, new_key
from router.api.state import STATE
from router.config import ApiKeyConfig, FleetConfig, HealthConfig, NodeConfig, RoutingConfig
from router.emulator import EmulatedNode, EmulatorConfig

STRATEGIES = ("random", "round_robin", "least_loaded", "cost_aware")
CAPACITY = 4  # per node, router and emulator alike: the router's queue absorbs the rest
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Turn:
    max_tokens: int
    think_s: float  # pause after the previous turn's answer (0 for the first)


@dataclass(frozen=True, slots=True)
class Chat:
    """One conversation of the schedule; a single request is a chat of one turn."""

    cid: int
    start_s: float
    model: str
    turns: tuple[Turn, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    note: str
    nodes: tuple[EmulatorConfig, ...]
    make: Callable[[random.Random, float], list[Chat]]  # (rng, window_s) → schedule


@dataclass(slots=True)
class Outcome:
    strategy: str
    affinity: bool
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    failed: int = 0


def _node(
    tps: float, ttft_ms: float, models: tuple[str, ...] = ("llama3",), **kw: Any
) -> EmulatorConfig:
    # default_tokens is large so max_tokens alone sets a reply's length
    return EmulatorConfig(
        models=models,
        tokens_per_second=tps,
        ttft_ms=ttft_ms,
        max_parallel=CAPACITY,
        default_tokens=400,
        **kw,
    )


def _poisson(rng: random.Random, rate: float, start: float, end: float) -> list[float]:
    times: list[float] = []
    t = start
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return times
        times.append(t)


def _singles(
    rng: random.Random,
    times: Sequence[float],
    models: Sequence[str],
    lo: int,
    hi: int,
    first: int = 0,
) -> list[Chat]:
    return [
        Chat(first + i, t, rng.choice(models), (Turn(rng.randint(lo, hi), 0.0),))
        for i, t in enumerate(times)
    ]


def _chats(
    rng: random.Random, times: Sequence[float], models: Sequence[str], first: int = 0
) -> list[Chat]:
    out = []
    for i, t in enumerate(times):
        turns = tuple(
            Turn(rng.randint(10, 30), 0.0 if k == 0 else rng.uniform(0.2, 0.8))
            for k in range(rng.randint(3, 6))
        )
        out.append(Chat(first + i, t, rng.choice(models), turns))
    return out


# Service time on a fast node: 50 ms + ~20 tokens at 50/s ≈ 0.45 s, so 4 slots ≈ 9 req/s.
FAST, SLOW = _node(50, 50), _node(50 / 3, 150)
MODELS = ("llama3", "qwen2", "mistral", "phi3")


def _hetero(rng: random.Random, window: float) -> list[Chat]:
    # 3 fast nodes (~27 req/s) + 1 slow (~3 req/s): ~26 req/s is near the fleet's capacity
    return _singles(rng, _poisson(rng, 26, 0, window), ["llama3"], 10, 30)


def _cold(rng: random.Random, window: float) -> list[Chat]:
    return _singles(rng, _poisson(rng, 14, 0, window), MODELS, 10, 30)


def _bursts(rng: random.Random, window: float) -> list[Chat]:
    times: list[float] = []
    for start in (0.2 * window, 0.55 * window):  # idle, then bursts ~3x what the fleet can run
        times += _poisson(rng, 90, start, start + 0.15 * window)
    return _singles(rng, sorted(times), ["llama3"], 10, 30)


def _multi_turn(rng: random.Random, window: float) -> list[Chat]:
    return _chats(rng, _poisson(rng, 5, 0, window * 0.7), ["llama3"])


def _mix(rng: random.Random, window: float) -> list[Chat]:
    singles = _singles(rng, _poisson(rng, 9, 0, window), MODELS[:3], 10, 30)
    burst = _singles(rng, _poisson(rng, 60, 0.5 * window, 0.6 * window), MODELS[:3], 10, 30, 10_000)
    chats = _chats(rng, _poisson(rng, 2, 0, window * 0.7), MODELS[:3], 20_000)
    return sorted(singles + burst + chats, key=lambda c: c.start_s)


def _cold_node(
    models: tuple[str, ...], tps: float = 50, ttft_ms: float = 50, **kw: Any
) -> EmulatorConfig:
    return _node(tps, ttft_ms, models, preloaded=False, max_loaded_models=2, **kw)


SCENARIOS = (
    Scenario(
        "heterogeneous",
        "3 fast nodes + 1 node 3x slower; Poisson ~26 req/s, near capacity",
        (FAST, FAST, FAST, SLOW),
        _hetero,
    ),
    Scenario(
        "cold",
        "4 models, 4 nodes holding 2 each (LRU), 2 nodes start empty, loads 0.5-2 s; "
        "Poisson 14 req/s",
        (
            _node(50, 50, MODELS, max_loaded_models=2, load_ms=1000),
            _node(50, 50, MODELS, max_loaded_models=2, load_ms=800),
            _cold_node(MODELS, load_ms=500),
            _cold_node(MODELS, load_ms=2000),
        ),
        _cold,
    ),
    Scenario(
        "bursts",
        "3 fast nodes + 1 node 3x slower, idle, then two bursts at ~90 req/s (3x capacity)",
        (FAST, FAST, FAST, SLOW),
        _bursts,
    ),
    Scenario(
        "multi_turn",
        "chats of 3-6 turns, think 0.2-0.8 s, prefix cache on (hit: TTFT x0.2), "
        "4 nodes with 400 ms TTFT",
        tuple(_node(50, 400, prefix_cache=True) for _ in range(4)),
        _multi_turn,
    ),
    Scenario(
        "mix",
        "all of it: 1 slow + 1 cold node, 3 models, singles + a burst + multi-turn chats",
        (
            _node(50, 200, MODELS[:3], prefix_cache=True),
            _node(50, 200, MODELS[:3], prefix_cache=True),
            _node(50 / 3, 600, MODELS[:3], prefix_cache=True),
            _cold_node(MODELS[:3], ttft_ms=200, load_ms=1500, prefix_cache=True),
        ),
        _mix,
    ),
)


async def _send(
    session: aiohttp.ClientSession, url: str, chat: Chat, origin: float, out: Outcome
) -> None:
    """Replay one conversation: each turn streams; the answer joins the history."""
    await asyncio.sleep(max(0.0, origin + chat.start_s - time.monotonic()))
    messages: list[dict[str, str]] = [
        {"role": "system", "content": f"conversation {chat.cid}"},
    ]
    for k, turn in enumerate(chat.turns):
        if turn.think_s:
            await asyncio.sleep(turn.think_s)
        messages.append({"role": "user", "content": f"turn {k} of chat {chat.cid}"})
        body = {
            "model": f"ollama/{chat.model}",
            "messages": messages,
            "stream": True,
            "max_tokens": turn.max_tokens,
        }
        started = time.monotonic()
        reply = await _stream(session, url, body, started, out)
        if reply is None:
            out.failed += len(chat.turns) - k  # the rest of the chat cannot go on
            return
        out.latencies.append(time.monotonic() - started)
        messages.append({"role": "assistant", "content": reply})


async def _stream(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], started: float, out: Outcome
) -> str | None:
    parts: list[str] = []
    first: float | None = None
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S), session.post(url, json=body) as resp:
            if resp.status != 200:
                await resp.read()
                return None
            async for raw in resp.content:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    if first is not None:
                        out.ttfts.append(first - started)
                    return "".join(parts)
                chunk = orjson.loads(data)
                if "error" in chunk:
                    return None
                for choice in chunk.get("choices", ()):
                    text = choice.get("delta", {}).get("content")
                    if text:
                        if first is None:
                            first = time.monotonic()
                        parts.append(text)
    except (aiohttp.ClientError, TimeoutError):
        return None
    return None  # ended without [DONE]


async def _wait_ready(state: Any, names: Sequence[str], timeout_s: float = 5.0) -> None:
    """Until every node is healthy and its /api/ps has been read (cold models are known)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        nodes = [state.fleet.nodes.get(n) for n in names]
        if all(n is not None and n.healthy and n.loaded is not None for n in nodes):
            return
        await asyncio.sleep(0.02)
    raise RuntimeError("the router did not see every node healthy in time")


async def run_one(
    scenario: Scenario,
    schedule: Sequence[Chat],
    strategy: str,
    affinity: bool,
    seed: int,
    routing: RoutingConfig,
    scale: float = 1.0,
) -> Outcome:
    nodes = [
        EmulatedNode(_scaled_node(spec, scale), name=f"node-{i}")
        for i, spec in enumerate(scenario.nodes)
    ]
    out = Outcome(strategy, affinity)
    runner: web.AppRunner | None = None
    try:
        for node in nodes:
            node.stats.record_bodies = False
            await node.start()
        key = new_key()
        config = FleetConfig(
            nodes=tuple(NodeConfig(n.name, n.url, CAPACITY) for n in nodes),
            api_keys=(ApiKeyConfig("bench", digest(key)),),
            health=HealthConfig(interval_s=0.5, timeout_s=1.0, refresh_min_interval_s=0.0),
            routing=replace(routing, strategy=strategy, affinity=affinity),
        )
        app = create_app(config, rng=random.Random(seed))
        runner = make_runner(app, shutdown_grace_s=2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
        await _wait_ready(app[STATE], [n.name for n in nodes])
        headers = {"Authorization": f"Bearer {key}"}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            origin = time.monotonic()
            await asyncio.gather(*(_send(session, url, c, origin, out) for c in schedule))
    finally:
        if runner is not None:
            await runner.cleanup()
        for node in nodes:
            await node.stop()
    return out


def _scaled_node(spec: EmulatorConfig, scale: float) -> EmulatorConfig:
    return replace(
        spec,
        tokens_per_second=spec.tokens_per_second / scale,
        ttft_ms=spec.ttft_ms * scale,
        load_ms=spec.load_ms * scale,
    )


def _scaled(schedule: Sequence[Chat], scale: float) -> list[Chat]:
    """The same schedule on a faster clock (--quick), to match nodes sped up by 1/scale."""
    return [
        replace(
            c,
            start_s=c.start_s * scale,
            turns=tuple(replace(t, think_s=t.think_s * scale) for t in c.turns),
        )
        for c in schedule
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def table(scenario: Scenario, outcomes: Sequence[Outcome], requests: int) -> str:
    lines = [
        f"### {scenario.name}: {scenario.note}",
        "",
        "| strategy | affinity | requests | mean ms | p99 ms | mean TTFT ms | p99 TTFT ms "
        "| failed |",
        "|---|:---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.strategy} | {'on' if o.affinity else 'off'} | {requests} | "
            f"{_ms(_mean(o.latencies))} | {_ms(pct(o.latencies, 99))} | {_ms(_mean(o.ttfts))} | "
            f"{_ms(pct(o.ttfts, 99))} | {o.failed} |"
        )
    by = {o.strategy: o for o in outcomes}
    if "cost_aware" not in by or "round_robin" not in by:
        return "\n".join(lines)
    cost, rr = pct(by["cost_aware"].latencies, 99), pct(by["round_robin"].latencies, 99)
    won = cost is not None and rr is not None and cost < rr
    lines += [
        "",
        f"cost_aware p99 < round_robin p99: {'yes' if won else 'no'} "
        f"({_ms(cost)} ms vs {_ms(rr)} ms)",
    ]
    return "\n".join(lines)


async def main(
    *,
    quick: bool,
    seed: int,
    only: Sequence[str],
    routing: RoutingConfig,
    affinity_mode: str = "split",
    emit: Callable[[str], None] = print,
    strategies: Sequence[str] = STRATEGIES,
) -> list[tuple[Scenario, list[Outcome]]]:
    # --quick: 2 s of the workload on a clock (and nodes) 10x faster; checks it runs, not speed
    window, scale = (2.0, 0.1) if quick else (12.0, 1.0)
    results = []
    for scenario in SCENARIOS:
        if only and scenario.name not in only:
            continue
        # generated once, replayed per strategy
        schedule = _scaled(scenario.make(random.Random(seed), window), scale)
        requests = sum(len(c.turns) for c in schedule)
        outcomes = []
        for strategy in strategies:
            affinity = (
                strategy == "cost_aware" if affinity_mode == "split" else affinity_mode == "on"
            )
            outcomes.append(
                await run_one(scenario, schedule, strategy, affinity, seed, routing, scale)
            )
        emit(table(scenario, outcomes, requests) + "\n")
        results.append((scenario, outcomes))
    return results


def summary(runs: Sequence[tuple[int, list[tuple[Scenario, list[Outcome]]]]]) -> str:
    """cost_aware vs round_robin p99 per scenario over seeds: the verdict with its spread."""
    seeds = [seed for seed, _ in runs]
    lines = [
        "### p99 latency, cost_aware vs round_robin, per seed (ms)",
        "",
        "| scenario | " + " | ".join(f"seed {s}" for s in seeds) + " | median | cost_aware lower |",
        "|---|" + "---:|" * (len(seeds) + 1) + ":---:|",
    ]
    names = [sc.name for sc, _ in runs[0][1]]
    for name in names:
        cells, wins, costs, rrs = [], 0, [], []
        for _, results in runs:
            by = {o.strategy: o for sc, outs in results if sc.name == name for o in outs}
            cost, rr = pct(by["cost_aware"].latencies, 99), pct(by["round_robin"].latencies, 99)
            wins += cost is not None and rr is not None and cost < rr
            costs += [] if cost is None else [cost]
            rrs += [] if rr is None else [rr]
            cells.append(f"{_ms(cost)} vs {_ms(rr)}")
        median = (
            f"{_ms(statistics.median(costs))} vs {_ms(statistics.median(rrs))}"
            if costs and rrs
            else "-"
        )
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {median} | {wins}/{len(runs)} |")
    return "\n".join(lines)


async def main_seeds(seeds: Sequence[int], **kw: Any) -> None:
    runs = [(seed, await main(seed=seed, **kw)) for seed in seeds]
    if len(runs) > 1 and {"cost_aware", "round_robin"} <= set(kw.get("strategies", STRATEGIES)):
        kw.get("emit", print)(summary(runs))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.strategies",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 s of arrivals at 10x speed per scenario"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--seeds", type=int, default=1, help="run seeds --seed .. --seed+N-1; print a summary"
    )
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="comma-separated subset of " + ", ".join(STRATEGIES),
    )
    parser.add_argument("--scenario", action="append", default=[], help="run only this one")
    # The emulated nodes load a model in 0.5-2 s, so the fleet file says so, as an operator's
    # would (routing.cold_load_s; the shipped default, 10 s, is for real multi-GB models).
    parser.add_argument("--cold-load-s", type=float, default=2.0)
    parser.add_argument(
        "--affinity",
        choices=("split", "on", "off"),
        default="split",
        help="split (default): on for cost_aware only; on/off: for every strategy",
    )
    args = parser.parse_args()
    routing = RoutingConfig(cold_load_s=args.cold_load_s, request_timeout_s=REQUEST_TIMEOUT_S)
    started = time.monotonic()
    chosen = [name for name in args.strategies.split(",") if name]
    if unknown := set(chosen) - set(STRATEGIES):
        parser.error(f"unknown strategies: {', '.join(sorted(unknown))}")
    asyncio.run(
        main_seeds(
            range(args.seed, args.seed + args.seeds),
            strategies=chosen,
            quick=args.quick,
            only=args.scenario,
            affinity_mode=args.affinity,
            routing=routing,
            emit=lambda s: print(s, flush=True),
        )
    )
    print(f"({time.monotonic() - started:.0f} s; affinity: {args.affinity}, see --help)")
