"""Process entry: emulated Ollama nodes, `--count` sites in one process (S5 hosts 200).

`jarvis-router emulate` exposes no `default_tokens`, and a reply is 8..40 tokens by default, so the
benchmarks start nodes here: every reply is exactly `--tokens` tokens long. The bound ports are
written, as a JSON list, to `--ready-file` once every site listens.

    python -m benchmarks.node --tokens 64 --tokens-per-second 0 --ready-file /tmp/ports.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from router.emulator import EmulatorConfig, NodeStats, create_emulator_app, make_runner


async def serve(config: EmulatorConfig, count: int, ready_file: Path) -> None:
    runners: list[web.AppRunner] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        ports = []
        for _ in range(count):
            app = create_emulator_app(config, stats=NodeStats(record_bodies=False))
            runner = make_runner(app)
            runners.append(runner)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
            await site.start()
            ports.append(int(runner.addresses[0][1]))
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ports))
        os.replace(tmp, ready_file)
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.node")
    p.add_argument("--models", default="llama3", help="comma-separated model names")
    p.add_argument("--tokens", type=int, default=8, help="tokens in every reply")
    p.add_argument("--tokens-per-second", type=float, default=0.0, help="0 = no delay")
    p.add_argument("--ttft-ms", type=float, default=0.0)
    p.add_argument("--max-parallel", type=int, default=1024)
    p.add_argument("--count", type=int, default=1, help="sites (nodes) in this process")
    p.add_argument("--ready-file", type=Path, required=True)
    args = p.parse_args()
    config = EmulatorConfig(
        models=tuple(m for m in args.models.split(",") if m),
        tokens_per_second=args.tokens_per_second,
        ttft_ms=args.ttft_ms,
        max_parallel=args.max_parallel,
        max_queue=args.max_parallel,
        default_tokens=args.tokens,
    )
    run_fast(serve(config, args.count, args.ready_file))


def run_fast(coro: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed, like the router's own CLI (`jarvis-router serve`)."""
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:
            asyncio.run(coro)
        else:
            uvloop.run(coro)


if __name__ == "__main__":
    main()
