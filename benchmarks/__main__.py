"""`python -m benchmarks run|report|profile|fleet-scale` (see benchmarks/RESULTS.md)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import litellm, plot, report, targets, wrk
from benchmarks.fleet_scale import micro, run_s5
from benchmarks.procs import Cores, raise_fd_limit
from benchmarks.pyspy import profile, profile_md
from benchmarks.scenarios import LOAD_SCENARIOS, Run, run_load, run_sweep
from benchmarks.soak import run_mem, run_s4

HERE = Path(__file__).resolve().parent
ORDER = ("S1-c1", "S1-c64", "S2", "S3", "S4", "S5", "S6", "mem", "sweep")
ALIASES = {"S1": ("S1-c1", "S1-c64"), "streams": ("S6",), "all": ORDER}


def _log(message: str) -> None:
    print(time.strftime("%H:%M:%S ") + message, file=sys.stderr, flush=True)


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "absent"


def machine(cores: Cores) -> dict[str, Any]:
    import aiohttp

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())  # fmt: skip
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    release = dict(
        ln.split("=", 1) for ln in Path("/etc/os-release").read_text().splitlines() if "=" in ln
    )
    try:
        import uvloop

        uv = uvloop.__version__
    except ImportError:
        uv = "absent (asyncio)"
    lite = sorted((litellm.VENV / "lib").glob("python*/site-packages/litellm-*.dist-info"))
    tools = [
        _first_line(["wrk", "-v"]) if wrk.available() else "wrk absent",
        _first_line([targets.nginx_binary() or "nginx", "-v"]),
        f"LiteLLM {lite[-1].name.split('-')[1].removesuffix('.dist')}"
        if lite
        else "LiteLLM absent",
    ]
    git = ["git", "-C", str(HERE.parent)]
    head = _first_line([*git, "rev-parse", "--short", "HEAD"])
    dirty = _first_line([*git, "status", "--porcelain", "router"]) != "absent"
    return {
        "router_tree": f"commit {head}" + (" + uncommitted changes under router/" if dirty else ""),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_kib / 2**20,
        "os": f"{release.get('PRETTY_NAME', '').strip(chr(34))}, Linux {platform.release()}",
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": uv,
        "tools": ", ".join(tools),
        "placement": cores.describe(),
    }


def _scenarios(names: list[str]) -> list[str]:
    wanted: list[str] = []
    for name in names:
        for key in ALIASES.get(name, (name,)):
            if key not in ORDER:
                raise SystemExit(f"unknown scenario {key!r}; choose from S1 {' '.join(ORDER)} all")
            if key not in wanted:
                wanted.append(key)
    return sorted(wanted, key=ORDER.index)


def run_one(run: Run, key: str) -> dict[str, Any]:
    runners: dict[str, Callable[[Run], dict[str, Any]]] = {
        "S4": run_s4, "S5": run_s5, "mem": run_mem, "sweep": run_sweep,
    }  # fmt: skip
    try:
        if key in runners:
            return runners[key](run)
        return run_load(run, LOAD_SCENARIOS[key])
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # keep the other scenarios
        run.log(f"  {key} failed: {exc}")
        return {"key": key, "title": key, "error": str(exc)}


def cmd_run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    cores = Cores.plan()
    cores.pin_self()
    raise_fd_limit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out or HERE / "out" / stamp)
    out.mkdir(parents=True, exist_ok=True)
    wanted = tuple(args.targets.split(",")) if args.targets else targets.ALL_TARGETS
    have = targets.available(wanted)
    _log(f"run directory {out}; targets {', '.join(have)}; {cores.describe()}")
    apis = None if args.apis is None else tuple(a for a in args.apis.split(",") if a != "none")
    if apis and not set(apis) <= set(targets.API_TARGETS):
        raise SystemExit(f"--apis: choose from {','.join(targets.API_TARGETS)} or none")
    run = Run(out, cores, args.repeats, args.duration, have, _log, args.s4_streams, apis)
    results: dict[str, Any] = {
        "started": stamp,
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:]),
        "repeats": args.repeats,
        "machine": machine(cores),
        "scenarios": [],
    }
    for key in _scenarios(args.scenario):
        _log(f"scenario {key}")
        results["scenarios"].append(run_one(run, key))
        (out / "results.json").write_text(json.dumps(results, indent=1))
    if args.profile:
        results["profiles"] = [profile(run, key, 10.0) for key in ("S1-c64", "S2", "S6")]
    results["elapsed_s"] = time.monotonic() - started
    (out / "results.json").write_text(json.dumps(results, indent=1))
    finish(results, out, write=args.write_results)
    _log(f"done in {results['elapsed_s'] / 60:.1f} min; results in {out / 'results.json'}")
    return 0


def finish(results: dict[str, Any], out: Path, *, write: bool) -> None:
    sweep = next((s for s in results["scenarios"] if s["key"] == "sweep"), None)
    png_dir = HERE if write else out
    if sweep is not None and plot.plot(sweep, png_dir / "latency-vs-concurrency.png"):
        results["plot"] = "latency-vs-concurrency.png"
    text = report.render(results)
    for p in results.get("profiles", []):
        text += "\n" + "\n".join(profile_md(p))
    print(text)
    (out / "tables.md").write_text(text)
    if write:
        report.write_results_md(HERE / "RESULTS.md", text)


def cmd_report(args: argparse.Namespace) -> int:
    path = Path(args.results)
    finish(json.loads(path.read_text()), path.parent, write=args.write_results)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    cores = Cores.plan()
    cores.pin_self()
    out = HERE / "out" / ("profile-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    out.mkdir(parents=True, exist_ok=True)
    run = Run(out, cores, 1, None, ("router",), _log)
    for key in args.scenario:
        print("\n".join(profile_md(profile(run, key, args.duration), args.top)))
    return 0


def cmd_fleet_scale(args: argparse.Namespace) -> int:
    print(json.dumps(micro(args.nodes, args.models), indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run scenarios and print one table per scenario")
    p.add_argument(
        "--scenario",
        nargs="+",
        default=["all"],
        help="S1 S1-c1 S1-c64 S2 S3 S4 S5 S6 (alias streams) mem sweep all",
    )
    p.add_argument("--duration", type=float, help="seconds per measurement (default: per scenario)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--targets", help="comma-separated subset of " + ",".join(targets.ALL_TARGETS))
    p.add_argument("--s4-streams", type=int, default=5000)
    p.add_argument(
        "--apis",
        help="the router's APIs besides chat that S6 also streams through: a comma-separated "
        "subset of responses,messages, or none (default: both)",
    )
    p.add_argument("--out", help="run directory (default: benchmarks/out/<UTC time>)")
    p.add_argument(
        "--profile", action="store_true", help="also py-spy the router under S1-c64, S2 and S6"
    )
    p.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("report", help="re-render a results.json")
    p.add_argument("results")
    p.add_argument("--write-results", action="store_true")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("profile", help="py-spy the router under load")
    p.add_argument(
        "--scenario",
        nargs="+",
        default=["S1-c64", "S2"],
        choices=["S1-c64", "S1-c1", "S2", "S3", "S6"],
    )
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--top", type=int, default=15)
    p.set_defaults(func=cmd_profile)
    p = sub.add_parser("fleet-scale", help="S5's micro-benchmark only")
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--models", type=int, default=50)
    p.set_defaults(func=cmd_fleet_scale)
    args = parser.parse_args()
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
