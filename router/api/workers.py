"""`jarvis-router serve --workers N`: N router processes on one port, for one big machine.

Each worker is a whole router (its own event loop, health checks and Redis link) started as
`jarvis-router serve ... --worker`, which binds the port with SO_REUSEPORT, so the kernel
spreads connections over the workers. They share node slots, waiting keys and conversations'
nodes through the fleet file's `coordination` Redis, as replicas on separate machines do; so
without `coordination` more than one worker is refused (each would count slots alone, and
together they would run N times `max_concurrency` requests on a node).

The parent only supervises: it forwards SIGTERM, SIGINT and SIGHUP (reload) to every worker,
and when one worker exits it stops the others and exits too, with the first non-zero status
(a supervisor above it, systemd or Kubernetes, restarts the whole set).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from router.config import FleetConfig

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def refusal(config: FleetConfig, workers: int, port: int) -> str | None:
    """Why `workers` processes cannot serve this fleet file on `port`, or None."""
    if workers < 1:
        return f"--workers must be at least 1, got {workers}"
    if workers == 1:
        return None
    if config.coordination is None:
        return (
            f"--workers {workers} needs coordination.redis_url in the fleet file: without "
            "Redis each worker counts node slots alone, and together they would overrun "
            "every node's max_concurrency"
        )
    if port == 0:
        return f"--workers {workers} needs a fixed port (each worker would pick its own)"
    return None


def supervise(worker_args: Sequence[str], workers: int) -> int:
    """Run `workers` copies of `python -m router <worker_args>`; return once all have exited."""
    live: dict[int, subprocess.Popen[bytes]] = {}  # not yet reaped: their pids are theirs
    stopping = False

    def signal_all(signum: int) -> None:
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = stopping or signum != signal.SIGHUP
        signal_all(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    status = 0
    try:
        for _ in range(workers):
            proc = subprocess.Popen([sys.executable, "-m", "router", *worker_args])
            live[proc.pid] = proc
        while live:
            # Reaped here only (never Popen.poll): a pid in `live` is still its worker's.
            pid, code = os.wait()  # retried after a forwarded signal (PEP 475)
            if pid not in live:
                continue
            proc = live.pop(pid)
            proc.returncode = os.waitstatus_to_exitcode(code)
            status = status or _exit_status(proc.returncode)
            if not stopping:  # one gone by itself: stop the set (once: a second TERM kills)
                stopping = True
                signal_all(signal.SIGTERM)
    finally:
        for pid in live:  # only if the parent itself failed: leave no worker behind
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _exit_status(code: int) -> int:
    """A worker's exit code as the parent's: killed by a signal N → 128 + N, as shells do."""
    return 128 - code if code < 0 else code
