"""Instructions per request: the router's own CPU work, counted, not timed (valgrind's callgrind).

A shared VM's timings drift by ±15 % between back-to-back runs, which hides a 5 % change in
the router's own work. The number of instructions the router's process executes per request
does not drift: this counts it, for the router and, with `BENCH_BEFORE_TREE=<dir>`, for another
checkout's router (`router-before`, as in `python -m benchmarks run`), in front of the same
emulated node. Each router runs under callgrind alone on the proxy core; the counters are zeroed
after a warm-up, one client sends a fixed number of requests one after another on one kept-alive
connection, and the counters are read again.

    python -m benchmarks.instructions                    # a markdown table, ~1 min a router
    BENCH_BEFORE_TREE=/tmp/old python -m benchmarks.instructions --requests 400
    python -m benchmarks.instructions --tree /tmp/a --tree /tmp/b    # those checkouts' routers

What it leaves out, by design: concurrency (requests at c=1, so no batching across requests),
cache misses and system calls' time in the kernel. It complements the timed scenarios; it does
not replace them.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks import targets as tg
from benchmarks.procs import Cores, Proc, running

# (label, tokens, stream): S1's shape and S2's.
SHAPES = (("non-streamed, 8 tokens (S1)", 8, False), ("streamed, 64 tokens (S2)", 64, True))
_TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Count:
    target: str
    shape: str
    requests: int
    instructions: int

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests


def valgrind() -> str | None:
    return shutil.which("valgrind")


@contextmanager
def _router(
    run_dir: Path, cores: Cores, node_url: str, name: str, tree: str | None
) -> Iterator[tuple[tg.Target, Path]]:
    """The router under callgrind (counting from the start, zeroed before the measured part),
    and the callgrind output file's stem."""
    out = run_dir / f"callgrind-{name}.out"
    wrap = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")
    procs: list[Proc] = []
    with running(procs):
        # Health checks every 10 min: none lands in the counted part. ~50x slower to start.
        target = tg.start_router(run_dir, cores, [node_url], health_interval_s=600.0, name=name,
                                 tree=tree, wrap=wrap, ready_timeout_s=300.0)  # fmt: skip
        assert target.proc is not None
        procs.append(target.proc)
        yield target, out


def _send(base: str, headers: dict[str, str], body: bytes, count: int) -> None:
    """`count` requests, one after another, on one kept-alive connection; each must succeed."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        for _ in range(count):
            conn.request("POST", tg.PATHS["openai"], body, headers)
            answer = conn.getresponse()
            data = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"status {answer.status}: {data[:200]!r}")
    finally:
        conn.close()


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _dumped(out: Path) -> int:
    """The instruction total of the newest dump of `out` (callgrind writes `<out>.<n>`)."""
    dumps = sorted(out.parent.glob(out.name + ".*"), key=lambda p: int(p.suffix[1:]))
    match = _TOTALS.search(dumps[-1].read_bytes())
    if match is None:
        raise RuntimeError(f"no instruction total in {dumps[-1]}")
    return int(match.group(1))


def count(
    run_dir: Path, cores: Cores, name: str, tree: str | None, requests: int, warmup: int
) -> list[Count]:
    counts: list[Count] = []
    node = tg.NodeSpec(64, max_parallel=64)  # 8-token answers are asked with max_tokens
    procs: list[Proc] = []
    with running(procs):
        node_proc, urls = tg.start_nodes(run_dir, cores, node)
        procs.append(node_proc)
        with _router(run_dir, cores, urls[0], name, tree) as (target, out):
            assert target.proc is not None
            pid = target.proc.pid
            for shape, tokens, stream in SHAPES:
                body = target.body(tokens, stream).encode()
                _send(target.base, target.headers, body, warmup)
                # Zero the counters, send the measured requests, then dump what they cost.
                _control(pid, "--zero")
                _send(target.base, target.headers, body, requests)
                _control(pid, "--dump")
                counts.append(Count(name, shape, requests, _dumped(out)))
    return counts


def table(counts: list[Count]) -> str:
    """One row per shape, one column per router; after the first, each count is also given as
    a ratio to the first router's."""
    names = list(dict.fromkeys(c.target for c in counts))
    lines = ["| shape | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for shape, _, _ in SHAPES:
        row = {c.target: c.per_request for c in counts if c.shape == shape}
        first = row[names[0]]
        cells = [f"{row[names[0]]:,.0f}"]
        cells += [f"{row[n]:,.0f} ({row[n] / first:.3f}x)" for n in names[1:]]
        lines.append(f"| {shape} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    p.add_argument("--requests", type=int, default=300, help="measured requests per shape")
    p.add_argument("--warmup", type=int, default=100, help="requests before the counters start")
    p.add_argument(
        "--tree", action="append", default=[], help="another checkout's router (repeatable)"
    )
    args = p.parse_args()
    if valgrind() is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    cores = Cores.plan()
    routers: list[tuple[str, str | None]] = [(Path(t).name, t) for t in args.tree]
    before = os.environ.get(tg.BEFORE_TREE)
    if before:
        routers.append((tg.ROUTER_BEFORE, before))
    if not args.tree:
        routers.append(("router", None))
    counts: list[Count] = []
    with tempfile.TemporaryDirectory(prefix="jarvis-instructions-") as tmp:
        for name, tree in routers:
            counts += count(Path(tmp), cores, name, tree, args.requests, args.warmup)
    print(f"### Instructions per request (callgrind; c=1, {args.requests} requests per shape)\n")
    print("Each router's instructions per request; after the first, its ratio to the first's.\n")
    print(table(counts))
    if before:
        print(f"\nrouter-before: the router of {before}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
