"""S1-S3 and S6 (one node, every target, repeats interleaved) and the concurrency sweep.

A scenario starts its node(s) and every available proxy once, checks each target answers the
right number of tokens, then runs `repeats` rounds of [direct, nginx, floor, router, litellm] so
drift hits every target alike and ratios are taken within a round. LiteLLM gets a node of its
own (same config), so work it leaves queued cannot slow the next target down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import targets as tg
from benchmarks import wrk
from benchmarks.loadgen import LoadSpec
from benchmarks.procs import Cores, Proc, Sampler, running
from benchmarks.stats import Measure, pct
from benchmarks.streams import api_targets


@dataclass(slots=True)
class Run:
    out: Path
    cores: Cores
    repeats: int
    duration_s: float | None  # None: each scenario's own default
    targets: tuple[str, ...]
    log: Callable[[str], None]
    s4_streams: int = 5000
    apis: tuple[str, ...] | None = None  # the router's other APIs to add; None: the scenario's


@dataclass(frozen=True, slots=True)
class LoadScenario:
    key: str
    title: str
    tokens: int
    stream: bool
    concurrency: int
    tokens_per_second: float = 0.0
    tool: str = "aiohttp"  # or "wrk"
    warmup_s: float = 0.5
    ramp_s: float = 0.0
    duration_s: float = 5.0
    grace_s: float = 15.0
    apis: tuple[str, ...] = ()  # the router also asked through these APIs (targets.API_TARGETS)
    skip: tuple[str, ...] = ()  # targets left out of this scenario


LOAD_SCENARIOS = {
    "S1-c1": LoadScenario("S1-c1", "S1 overhead: non-streamed 8-token replies, c=1", 8, False, 1),
    "S1-c64": LoadScenario(
        "S1-c64", "S1 overhead: non-streamed 8-token replies, c=64 (wrk)", 8, False, 64, tool="wrk"
    ),
    "S2": LoadScenario("S2", "S2 streaming relay: 64-token streams, no delay, c=64", 64, True, 64),
    "S3": LoadScenario(
        "S3",
        "S3 long streams: 200 tokens at 10 ms/token, c=256",
        200,
        True,
        256,
        tokens_per_second=100.0,
        warmup_s=2.0,
        ramp_s=2.0,
        duration_s=10.0,
        grace_s=30.0,
    ),
    # Why this size, and what it reports: benchmarks/streams.py.
    "S6": LoadScenario(
        "S6",
        "S6 many slow streams: 256 streams x 200 tokens at 10 ms/token, against the bare relay",
        200,
        True,
        256,
        tokens_per_second=100.0,
        warmup_s=2.0,
        ramp_s=2.0,
        duration_s=10.0,
        grace_s=30.0,
        apis=("responses", "messages"),
        skip=("litellm",),  # S3 has LiteLLM at this shape; at ~10 req/s a round takes minutes
    ),
}


STREAMED_DIRECT = "direct-stream"


def loadgen(run: Run, spec: LoadSpec) -> dict[str, Any]:
    argv = [*run.cores.prefix(proxy=False), sys.executable, "-m", "benchmarks.loadgen"]
    bound = spec.warmup_s + spec.ramp_s + spec.duration_s + spec.grace_s + 60
    with tempfile.NamedTemporaryFile(dir=run.out, suffix=".json") as result_file:
        out = subprocess.run(
            [*argv, json.dumps(asdict(spec)), result_file.name],
            capture_output=True,
            text=True,
            timeout=bound,
        )
        if out.returncode != 0:
            raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(Path(result_file.name).read_bytes())
    return result


def spec_for(sc: LoadScenario, t: tg.Target, duration_s: float) -> LoadSpec:
    stream = sc.stream if t.stream is None else t.stream
    return LoadSpec(
        urls=[t.url],
        protocol=t.protocol,
        bodies=[t.body(sc.tokens, stream)],
        headers=t.headers,
        stream=stream,
        concurrency=sc.concurrency,
        duration_s=duration_s,
        expect_tokens=sc.tokens,
        warmup_s=sc.warmup_s,
        ramp_s=sc.ramp_s,
        grace_s=sc.grace_s,
    )


def measure_aiohttp(run: Run, spec: LoadSpec, t: tg.Target, node: Proc | None = None) -> Measure:
    with (
        Sampler(t.proc.pid if t.proc else None) as sampler,
        Sampler(node.pid if node else None) as node_sampler,
    ):
        res = loadgen(run, spec)
    usage = sampler.usage(*res["window"])
    router_ms = pct(res["router_ms"], 50)
    extra: dict[str, Any] = {"errors": res["errors"], "server_timing_router_p50_ms": router_ms}
    # CPU seconds in the window, by process: the client and the node share a core, so what the
    # client spends on a target's answers is taken from the node (S2).
    cpu_s = {"client": res["cpu_s"]}
    for who, u in (("node", node_sampler.usage(*res["window"])), ("proxy", usage)):
        if u is not None:
            cpu_s[who] = u.cpu_pct / 100 * spec.duration_s
    if res["requests"]:
        extra["cpu_us_per_request"] = {k: 1e6 * v / res["requests"] for k, v in cpu_s.items()}
    if spec.stream and res["tokens"]:  # S6: the proxy's CPU per relayed token
        extra["cpu_us_per_token"] = {k: 1e6 * v / res["tokens"] for k, v in cpu_s.items()}
    return Measure(
        t.name,
        rps=res["requests"] / spec.duration_s,
        tps=res["tokens"] / spec.duration_s,
        p50_ms=pct(res["latency_ms"], 50),
        p99_ms=pct(res["latency_ms"], 99),
        ttft_p50_ms=pct(res["ttft_ms"], 50),
        ttft_p99_ms=pct(res["ttft_ms"], 99),
        cpu_pct=usage.cpu_pct if usage else None,
        rss_mib=usage.rss_peak / 2**20 if usage else None,
        failed=res["failed"],
        requests=res["requests"],
        extra=extra,
    )


def measure_wrk(run: Run, sc: LoadScenario, t: tg.Target, duration_s: float, warm: bool) -> Measure:
    lua = wrk.script(run.out / f"wrk-{t.name}.lua", t.body(sc.tokens, False), t.headers)
    if warm:
        wrk.run(run.cores, t.url, lua, connections=sc.concurrency, duration_s=1)
    with Sampler(t.proc.pid if t.proc else None) as sampler:
        start = time.monotonic()
        res = wrk.run(run.cores, t.url, lua, connections=sc.concurrency, duration_s=duration_s)
    usage = sampler.usage(start + 0.2, start + duration_s)
    return Measure(
        t.name,
        rps=res.rps,
        tps=res.rps * sc.tokens,  # wrk reads no body: tokens per reply checked in preflight
        p50_ms=res.p50_ms,
        p99_ms=res.p99_ms,
        cpu_pct=usage.cpu_pct if usage else None,
        rss_mib=usage.rss_peak / 2**20 if usage else None,
        failed=res.failed,
        requests=res.requests,
    )


def preflight(run: Run, sc: LoadScenario, t: tg.Target) -> None:
    """A few requests through the Python client: the target answers `tokens` tokens, no error."""
    spec = replace(spec_for(sc, t, 0.5), concurrency=1, warmup_s=0, ramp_s=0, max_requests=5)
    res = loadgen(run, spec)
    if res["failed"] or not res["completed"]:
        raise RuntimeError(f"{t.name} failed its preflight: {res['errors']}")


def start_targets(
    run: Run, procs: list[Proc], node_url: str, litellm_url: str | None, capacity: int = 1024
) -> list[tg.Target]:
    """Start the proxies of `run.targets`; `capacity` is the node's real parallelism, which the
    router's fleet file states as `max_concurrency` (the router queues above it)."""
    out: list[tg.Target] = []
    for name in run.targets:
        run.log(f"  starting {name}")
        if name == "direct":
            t = tg.direct(node_url)
        elif name == "floor":
            t = tg.start_floor(run.out, run.cores, node_url)
        elif name == "router":
            t = tg.start_router(run.out, run.cores, [node_url], capacity=capacity)
        elif name == tg.ROUTER_WHOLE:
            t = tg.start_router(run.out, run.cores, [node_url], capacity=capacity, gather="whole")
        elif name == tg.ROUTER_BEFORE:
            t = tg.start_router(run.out, run.cores, [node_url], capacity=capacity, before=True)
        elif name == "nginx":
            t = tg.start_nginx(run.out, run.cores, node_url)
        else:
            assert litellm_url is not None
            t = tg.start_litellm(run.out, run.cores, litellm_url)
        if t.proc is not None:
            procs.append(t.proc)
        out.append(t)
    return out


def run_load(run: Run, sc: LoadScenario) -> dict[str, Any]:
    duration = run.duration_s or sc.duration_s
    if duration < 2:  # a smoke run: keep warm-up and ramp as short as the window
        sc = replace(sc, warmup_s=min(sc.warmup_s, 0.5), ramp_s=min(sc.ramp_s, 0.5))
    if sc.tool == "wrk" and not wrk.available():
        run.log("  wrk is not installed: measuring with the aiohttp client instead")
        sc = replace(sc, tool="aiohttp", title=sc.title.replace("(wrk)", "(aiohttp; no wrk)"))
    node = tg.NodeSpec(sc.tokens, sc.tokens_per_second, max_parallel=max(1024, 2 * sc.concurrency))
    run = replace(run, targets=tuple(t for t in run.targets if t not in sc.skip))
    procs: list[Proc] = []
    measures: list[Measure] = []
    with running(procs):
        node_proc, urls = tg.start_nodes(run.out, run.cores, node)
        procs.append(node_proc)
        litellm_url, litellm_node = None, None
        if "litellm" in run.targets:
            litellm_node, lurls = tg.start_nodes(run.out, run.cores, node, name="node-litellm")
            procs.append(litellm_node)
            litellm_url = lurls[0]
        targets = start_targets(run, procs, urls[0], litellm_url, node.max_parallel)
        apis = sc.apis if run.apis is None else run.apis
        extra = api_targets(apis, targets, sc.tokens, lambda t: preflight(run, sc, t), run.log)
        # target → why it has no row (an API the router does not serve yet)
        not_served = {name: why for name, why in extra.items() if isinstance(why, str)}
        targets += [t for t in extra.values() if isinstance(t, tg.Target)]
        if sc.key == "S1-c1" and "direct" in run.targets:
            # The router streams from the node even for a non-streamed request (so first-token
            # and between-token timeouts apply); this row is that same node work, direct.
            targets.insert(1, tg.direct(urls[0], name=STREAMED_DIRECT, stream=True))
        if sc.tool == "wrk":  # wrk reads no body; the aiohttp client checks every answer itself
            for t in targets:
                preflight(run, sc, t)
        for rep in range(run.repeats):
            for t in targets:
                if sc.tool == "wrk":
                    m = measure_wrk(run, sc, t, duration, warm=rep == 0 and duration >= 2)
                else:
                    own_node = litellm_node if t.name == "litellm" else node_proc
                    m = measure_aiohttp(run, spec_for(sc, t, duration), t, own_node)
                measures.append(m)
                run.log(
                    f"  {sc.key} #{rep + 1} {t.name:16} {m.rps:9.1f} req/s {m.tps:10.0f} tok/s "
                    f"p50 {m.p50_ms or 0:8.2f} ms  ttft p50 {m.ttft_p50_ms or 0:7.2f} ms  "
                    f"failed {m.failed}" + _per_token(m)
                )
    return {
        "key": sc.key,
        "title": sc.title,
        "tool": sc.tool,
        "duration_s": duration,
        "concurrency": sc.concurrency,
        "tokens_per_second": sc.tokens_per_second,
        "measures": [asdict(m) for m in measures],
        "not_served": not_served,
    }


def _per_token(m: Measure) -> str:
    us = m.extra.get("cpu_us_per_token", {}).get("proxy")
    return "" if us is None else f"  proxy CPU {us:5.1f} µs/token"


# -- latency vs concurrency ------------------------------------------------------------------------
SWEEP_LEVELS = (1, 4, 16, 64, 256)
SWEEP_SHAPES = (("non-streamed, 8 tokens", 8, False), ("streamed, 64 tokens", 64, True))


def run_sweep(run: Run, levels: tuple[int, ...] = SWEEP_LEVELS) -> dict[str, Any]:
    """Direct, floor and router at each concurrency, both shapes; one repeat per point."""
    duration = min(run.duration_s or 3.0, 3.0)
    names = [n for n in ("direct", "floor", "router") if n in run.targets]
    points: list[dict[str, Any]] = []
    procs: list[Proc] = []
    with running(procs):
        proc, urls = tg.start_nodes(run.out, run.cores, tg.NodeSpec(64, max_parallel=1024))
        procs.append(proc)
        targets = start_targets(replace(run, targets=tuple(names)), procs, urls[0], None)
        for shape, tokens, stream in SWEEP_SHAPES:
            for level in levels:
                sc = LoadScenario("sweep", shape, tokens, stream, level)
                for t in targets:
                    m = measure_aiohttp(run, spec_for(sc, t, duration), t)
                    points.append({"shape": shape, "concurrency": level, **asdict(m)})
                    run.log(
                        f"  sweep {shape:24} c={level:<4} {t.name:7} p50 {m.p50_ms or 0:7.2f} ms"
                        f"  p99 {m.p99_ms or 0:7.2f} ms  failed {m.failed}"
                    )
    return {"key": "sweep", "title": "Latency vs concurrency", "points": points}
