"""Where the router's time goes: py-spy samples the router process while S1 (wrk, c=64) or S2
(aiohttp, 64-token streams, c=64) runs against it, then folds the stacks into self and total
shares per function and per area (aiohttp server, aiohttp client, router modules, logging, …)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import targets as tg
from benchmarks.procs import Proc, running
from benchmarks.scenarios import (
    LOAD_SCENARIOS,
    Run,
    measure_aiohttp,
    measure_wrk,
    spec_for,
    start_targets,
)

_LINE = re.compile(r":\d+\)$")
AREAS = (
    ("router/", "router"),
    ("aiohttp/web_", "aiohttp server"),
    ("aiohttp/_http_parser", "aiohttp http parser"),
    ("aiohttp/http_", "aiohttp http"),
    ("aiohttp/client", "aiohttp client"),
    ("aiohttp/connector", "aiohttp client"),
    ("aiohttp/streams", "aiohttp streams"),
    ("aiohttp/", "aiohttp other"),
    ("prometheus_client/", "prometheus_client"),
    ("logging/", "logging"),
    ("tenacity/", "tenacity"),
    ("multidict", "multidict"),
    ("yarl/", "yarl"),
    ("asyncio/", "asyncio"),
    ("uvloop", "uvloop"),
)


def pyspy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def area(frame: str) -> str:
    for needle, name in AREAS:
        if needle in frame:
            return name
    return "other"


def fold(raw: Path) -> dict[str, Any]:
    """py-spy's raw (collapsed) output → self/total shares per function and self per area."""
    self_c: Counter[str] = Counter()
    total_c: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        # One entry per function, not per line: "write (aiohttp/web_response.py:565)" → "…py)".
        frames = [
            _LINE.sub(")", f) for f in stack.split(";") if not f.startswith(("process ", "thread "))
        ]
        if not frames:
            continue
        samples += n
        self_c[frames[-1]] += n
        areas[area(frames[-1])] += n
        for f in set(frames):
            total_c[f] += n
    share = (lambda c: 100.0 * c / samples) if samples else (lambda c: 0.0)
    return {
        "samples": samples,
        "self": [(f, share(c)) for f, c in self_c.most_common(25)],
        # Inclusive shares for the router's own functions (the wrappers above them say nothing).
        "total": [(f, share(c)) for f, c in total_c.most_common() if "(router/" in f][:25],
        "areas": [(a, share(c)) for a, c in areas.most_common()],
    }


def profile(run: Run, key: str, duration_s: float) -> dict[str, Any]:
    spy = pyspy()
    if spy is None:
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    sc = LOAD_SCENARIOS[key]
    raw = run.out / f"pyspy-{key}.txt"
    procs: list[Proc] = []
    with running(procs):
        node = tg.NodeSpec(sc.tokens, sc.tokens_per_second, max_parallel=1024)
        proc, urls = tg.start_nodes(run.out, run.cores, node)
        procs.append(proc)
        (router,) = start_targets(replace(run, targets=("router",)), procs, urls[0], None)
        assert router.proc is not None
        argv = [spy, "record", "--pid", str(router.proc.pid), "--rate", "250", "--nonblocking",
                "--duration", f"{duration_s:g}", "--format", "raw",
                "--output", str(raw)]  # fmt: skip
        # py-spy itself runs on the load core, so it does not steal the router's.
        spy_run = threading.Thread(
            target=subprocess.run,
            args=([*run.cores.prefix(proxy=False), *argv],),
            kwargs={"capture_output": True, "timeout": duration_s + 60},
        )
        spy_run.start()
        if sc.tool == "wrk":
            m = measure_wrk(run, sc, router, duration_s + 1, warm=False)
        else:
            m = measure_aiohttp(run, spec_for(sc, router, duration_s + 1), router)
        spy_run.join()
    result = fold(raw)
    result.update(key=key, rps=m.rps, cpu_pct=m.cpu_pct, failed=m.failed)
    return result


def profile_md(p: dict[str, Any], top: int = 15) -> list[str]:
    lines = [
        f"### Router profile under {p['key']} (py-spy, {p['samples']:,} samples, "
        f"{p['rps']:,.0f} req/s under the profiler, router CPU {p['cpu_pct'] or 0:.0f} %)",
        "",
        "Self time by area: " + ", ".join(f"{a} {s:.1f} %" for a, s in p["areas"]),
        "",
        "| self % | function |",
        "|---|---|",
        *(f"| {s:.1f} | `{f}` |" for f, s in p["self"][:top]),
        "",
        "| total % | router function (inclusive) |",
        "|---|---|",
        *(f"| {s:.1f} | `{f}` |" for f, s in p["total"][:top]),
        "",
    ]
    return lines
