"""wrk for S1 at c=64: a Lua script sets the POST body and headers and prints one JSON summary.

wrk reads no body, for any target, so the comparison stays fair; a Python pre-flight request
checks each target answers 8 tokens before wrk runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.procs import Cores

_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    failed: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def available() -> bool:
    return shutil.which("wrk") is not None


def script(path: Path, body: str, headers: dict[str, str]) -> Path:
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    path.write_text(_LUA.format(body=body, headers=lines))
    return path


def run(
    cores: Cores, url: str, lua: Path, *, connections: int, duration_s: float, timeout_s: float = 10
) -> WrkResult:
    """One wrk thread (it shares the load core with the nodes); bounded by `duration_s`."""
    argv = [
        *cores.prefix(proxy=False), "wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s",
        f"--timeout={timeout_s:g}s", "-s", str(lua), url,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}{out.stderr}")
    data = json.loads(line.removeprefix("WRKJSON "))
    failed = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        data["requests"],
        data["duration_us"] / 1e6,
        failed,
        data["p50_us"] / 1000,
        data["p99_us"] / 1000,
    )
