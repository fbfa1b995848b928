"""Child processes: each in its own session (so a kill takes its whole group), optionally pinned
with `taskset`, and sampled from /proc (CPU ticks and RSS of the process tree)."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STOP_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Cores:
    """Where things run: the proxy under test alone on one core, everything else on the rest."""

    proxy: int | None
    rest: tuple[int, ...]

    @classmethod
    def plan(cls) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, tuple(cpus))
        return cls(cpus[0], tuple(cpus[1:]))

    def prefix(self, proxy: bool) -> list[str]:
        if self.proxy is None:
            return []
        cpus = [self.proxy] if proxy else list(self.rest)
        return ["taskset", "-c", ",".join(map(str, cpus))]

    def pin_self(self) -> None:
        """The orchestrator mostly sleeps, but keep it off the proxy's core all the same."""
        if self.proxy is not None:
            os.sched_setaffinity(0, set(self.rest))

    def describe(self) -> str:
        if self.proxy is None:
            return "no pinning (fewer than 2 cores or no taskset)"
        rest = ",".join(map(str, self.rest))
        return f"proxy on core {self.proxy}; load generator and nodes on core(s) {rest}"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Proc:
    """One child (and its descendants): started in a new session, stopped by its group id."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        stdout: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._out: IO[bytes] | None = stdout.open("wb") if stdout is not None else None
        self.stdout_path = stdout
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out if self._out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._out is not None else subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=cwd,
            preexec_fn=raise_fd_limit,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM the group, wait, then SIGKILL what is left."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(STOP_GRACE_S)
        if self._out is not None:
            self._out.close()
            self._out = None

    def tail(self, lines: int = 20) -> str:
        if self.stdout_path is None or not self.stdout_path.exists():
            return ""
        return "\n".join(self.stdout_path.read_text(errors="replace").splitlines()[-lines:])


def wait_http(url: str, proc: Proc, timeout_s: float = 30.0) -> None:
    """Poll until `url` answers anything below 500, or stop the child and fail with its last
    output (a child that never got ready is nobody's to stop yet)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except (OSError, TimeoutError):
            pass
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout_s:g} s:\n{proc.tail()}")


# -- /proc sampling -------------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (via /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    todo.extend(
                        int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()
                    )
    return out


def _cpu_ticks(pid: int) -> int:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    return 0


def _rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return 0


def tree_cpu_s(pid: int) -> float:
    return sum(_cpu_ticks(p) for p in descendants(pid)) / TICKS


def tree_rss(pid: int) -> int:
    return sum(_rss_bytes(p) for p in descendants(pid))


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_pct: float
    rss_peak: int
    rss_end: int


class Sampler:
    """(monotonic time, CPU seconds, RSS) of one process tree every `interval_s`, in a thread;
    `usage(t0, t1)` gives CPU % and peak RSS over a window in the same clock."""

    def __init__(self, pid: int | None, interval_s: float = 0.1) -> None:
        self._pid, self._interval = pid, interval_s
        self._stop = threading.Event()
        self.samples: list[tuple[float, float, int]] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> tuple[float, float, int]:
        assert self._pid is not None
        return time.monotonic(), tree_cpu_s(self._pid), tree_rss(self._pid)

    def _loop(self) -> None:
        self.samples.append(self.sample())
        while not self._stop.wait(self._interval):
            self.samples.append(self.sample())
        self.samples.append(self.sample())

    def __enter__(self) -> Sampler:
        if self._pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._pid is not None:
            self._thread.join()

    def usage(self, t0: float | None = None, t1: float | None = None) -> Usage | None:
        """Over [t0, t1] (default: everything sampled); None for no process."""
        inside = [
            s for s in self.samples if (t0 is None or s[0] >= t0) and (t1 is None or s[0] <= t1)
        ]
        if len(inside) < 2:
            inside = self.samples[-2:]
        if len(inside) < 2:
            return None
        (ta, ca, _), (tb, cb, rss_end) = inside[0], inside[-1]
        cpu = 100.0 * (cb - ca) / (tb - ta) if tb > ta else 0.0
        return Usage(cpu, max(s[2] for s in inside), rss_end)


class Prober:
    """Event-loop lag seen from outside: GET `path` every `interval_s` on one kept-alive
    connection, from a thread of this (otherwise idle) process, and time each answer."""

    def __init__(self, host: str, port: int, path: str, interval_s: float = 0.05) -> None:
        self._addr, self._path, self._interval = (host, port), path, interval_s
        self._stop = threading.Event()
        self.latency_ms: list[float] = []
        self.at: list[float] = []  # time.monotonic() of each answer, to split by phase
        self.failed = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import http.client

        conn = http.client.HTTPConnection(*self._addr, timeout=10)
        try:
            while not self._stop.wait(self._interval):
                t0 = time.perf_counter()
                try:
                    conn.request("GET", self._path)
                    resp = conn.getresponse()
                    resp.read()
                    ok = resp.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                if ok:
                    self.latency_ms.append((time.perf_counter() - t0) * 1000)
                    self.at.append(time.monotonic())
                else:
                    self.failed += 1
        finally:
            conn.close()

    def between(self, t0: float, t1: float) -> list[float]:
        return [ms for ms, t in zip(self.latency_ms, self.at, strict=True) if t0 <= t <= t1]

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def running(procs: list[Proc]) -> Iterator[list[Proc]]:
    """Stop every child started into `procs`, last first, whatever happens."""
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            proc.stop()
