"""S4 (thousands of slow streams held open) and the memory soak (RSS after 10k … 100k requests).

S4: RSS per open stream is (peak RSS with every stream open - idle RSS after a warm-up) / streams;
event-loop lag is the time the proxy takes to answer `/healthz`, probed every 50 ms from a thread
of the orchestrator (another process, on the load core). It is split in two phases: the ramp
(streams being opened, 1,000 a second) and the hold (every stream open and idle between tokens),
which is what the issue's target is about. The load core's own busy % is reported too: a probe
answer also waits for that core.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

from benchmarks import targets as tg
from benchmarks.loadgen import LoadSpec
from benchmarks.procs import Prober, Proc, Sampler, running
from benchmarks.scenarios import Run, loadgen, start_targets
from benchmarks.stats import pct


def _idle_rss(pid: int, settle_s: float = 1.0) -> int:
    with Sampler(pid) as sampler:
        time.sleep(settle_s)
    return int(statistics.median(s[2] for s in sampler.samples))


def _warm(run: Run, t: tg.Target, duration_s: float) -> None:
    """One-token streams (no pacing gap) so pools and caches exist before the idle reading."""
    spec = LoadSpec(
        [t.url], t.protocol, [t.body(1, True)], t.headers, True, 32, duration_s, expect_tokens=1
    )
    res = loadgen(run, spec)
    if res["failed"]:
        raise RuntimeError(f"{t.name} failed its warm-up: {res['errors']}")


def s4_once(
    run: Run, t: tg.Target, node: Proc, streams: int, tokens: int, ramp_s: float
) -> dict[str, Any]:
    assert t.proc is not None
    settle = 1.0 if streams >= 1000 else 0.3  # a smoke run holds a few dozen streams
    _warm(run, t, 3 * settle)
    idle = _idle_rss(t.proc.pid, settle)
    host, port = t.base.removeprefix("http://").split(":")
    with Prober(host, int(port), "/healthz") as idle_probe:
        time.sleep(settle)
    spec = LoadSpec(
        [t.url], t.protocol, [t.body(tokens, True)], t.headers, True, streams,
        duration_s=ramp_s + 0.5, expect_tokens=tokens, ramp_s=ramp_s,
        grace_s=tokens + 30.0, max_requests=streams,
    )  # fmt: skip
    start = time.monotonic()
    hold = (start + ramp_s + 1.0, start + ramp_s + tokens - 0.5)
    with (
        Sampler(t.proc.pid, interval_s=0.2) as sampler,
        Sampler(node.pid, interval_s=0.5) as node_sampler,
        Prober(host, int(port), "/healthz") as probe,
    ):
        res = loadgen(run, spec)
    usage, node_usage = sampler.usage(), node_sampler.usage(*hold)
    ramp_lag, hold_lag = probe.between(start, start + ramp_s + 1.0), probe.between(*hold)
    time.sleep(settle)
    after = _idle_rss(t.proc.pid, settle)
    peak = usage.rss_peak if usage else 0
    return {
        "target": t.name,
        "streams": streams,
        "completed": res["completed"],
        "failed": res["failed"] + probe.failed,
        "errors": res["errors"],
        "idle_rss_mib": idle / 2**20,
        "peak_rss_mib": peak / 2**20,
        "after_rss_mib": after / 2**20,
        "kib_per_stream": (peak - idle) / 1024 / streams,
        "cpu_pct": usage.cpu_pct if usage else None,
        "lag_idle_p50_ms": pct(idle_probe.latency_ms, 50),
        "ramp_lag_p99_ms": pct(ramp_lag, 99),
        "ramp_lag_max_ms": max(ramp_lag, default=None),
        "lag_p50_ms": pct(hold_lag, 50),
        "lag_p99_ms": pct(hold_lag, 99),
        "lag_max_ms": max(hold_lag, default=None),
        "probes": len(probe.latency_ms),
        "node_cpu_pct": node_usage.cpu_pct if node_usage else None,
    }


def run_s4(run: Run) -> dict[str, Any]:
    streams = run.s4_streams
    # 1,000 new streams a second; at 1 token/s a 20-token stream stays open ~19 s.
    ramp_s = max(0.5, min(5.0, streams / 1000))
    tokens = 20 if streams >= 1000 else 4
    names = tuple(n for n in ("router-before", "router", "floor") if n in run.targets)
    node = tg.NodeSpec(tokens, tokens_per_second=1.0, max_parallel=streams + 64)
    rows: list[dict[str, Any]] = []
    procs: list[Proc] = []
    with running(procs):
        proc, urls = tg.start_nodes(run.out, run.cores, node)
        procs.append(proc)
        for rep in range(run.repeats):
            for name in names:
                # A fresh proxy each time: CPython keeps the arenas of the last 5,000 streams, so
                # a second round in the same process would measure no growth at all.
                (t,) = start_targets(
                    replace(run, targets=(name,)), procs, urls[0], None, node.max_parallel
                )
                assert t.proc is not None
                row = s4_once(run, t, proc, streams, tokens, ramp_s)
                t.proc.stop()
                procs.remove(t.proc)
                rows.append(row)
                run.log(
                    f"  S4 #{rep + 1} {t.name:7} {row['completed']}/{streams} streams, "
                    f"{row['kib_per_stream']:.1f} KiB/stream, lag p99 hold "
                    f"{row['lag_p99_ms'] or 0:.1f} ms ramp {row['ramp_lag_p99_ms'] or 0:.1f} ms, "
                    f"node CPU {row['node_cpu_pct'] or 0:.0f} %, failed {row['failed']}"
                )
    title = f"S4 many idle streams: {streams:,} concurrent streams at 1 token/s, {tokens} tokens"
    return {"key": "S4", "title": title, "rows": rows}


# -- memory soak --------------------------------------------------------------------------------
def run_mem(run: Run, total: int = 100_000, step: int = 10_000) -> dict[str, Any]:
    """Router only: half the workers stream, half do not; RSS read after every `step` requests."""
    if run.duration_s is not None and run.duration_s < 3:  # smoke: a small soak
        total, step = 2_000, 1_000
    procs: list[Proc] = []
    points: list[dict[str, Any]] = []
    failed = 0
    with running(procs):
        proc, urls = tg.start_nodes(run.out, run.cores, tg.NodeSpec(8))
        procs.append(proc)
        (t,) = start_targets(replace(run, targets=("router",)), procs, urls[0], None)
        assert t.proc is not None
        spec = LoadSpec(
            [t.url], t.protocol, [t.body(8, False)], t.headers, False, 64,
            duration_s=600.0, expect_tokens=8, mixed=True, max_requests=step,
        )  # fmt: skip
        done = 0
        while done < total:
            res = loadgen(run, spec)
            done += res["completed"] + res["failed"]
            failed += res["failed"]
            rss = _idle_rss(t.proc.pid)
            points.append({"requests": done, "rss_mib": rss / 2**20, "failed": res["failed"]})
            run.log(f"  mem {done:7} requests: router RSS {rss / 2**20:.1f} MiB")
    return {
        "key": "mem",
        "title": f"Memory soak: router RSS over {total:,} requests",
        "points": points,
        "failed": failed,
    }
