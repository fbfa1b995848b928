"""Markdown: one table per scenario (median of the repeats, ± half their range), the targets of
issue 5 checked against the same run, and the generated part of RESULTS.md."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.stats import Measure, Spread, by_target, paired, spread

BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"
ORDER = (
    "direct", "direct-stream", "nginx", "floor", "router-before", "router", "router-whole",
    "router-responses", "router-messages", "litellm",
)  # fmt: skip


def _num(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _cell(s: Spread | None, digits: int = 0) -> str:
    if s is None:
        return "-"
    pm = f" ±{s.pm_pct:.0f}%" if s.n > 1 and s.pm_pct >= 0.5 else ""
    return _num(s.median, digits) + pm


def _ratio(s: Spread | None) -> str:
    if s is None:
        return "-"
    return f"{s.median:.2f}x ({s.low:.2f}-{s.high:.2f})" if s.n > 1 else f"{s.median:.2f}x"


def _diff(s: Spread | None) -> str:
    if s is None:
        return "-"
    return f"{s.median:+.2f} ms ({s.low:+.2f}…{s.high:+.2f})" if s.n > 1 else f"{s.median:+.2f} ms"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _in_order(names: Iterable[str]) -> list[str]:
    """Target names in the tables' order (direct first, peers last; unknown ones at the end)."""
    return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


def measures_of(scenario: dict[str, Any]) -> list[Measure]:
    return [Measure(**m) for m in scenario.get("measures", [])]


def load_table(scenario: dict[str, Any]) -> list[str]:
    ms = measures_of(scenario)
    groups = by_target(ms)
    rows = []
    for name in _in_order(groups):
        g = groups[name]

        def col(attr: str, digits: int, g: list[Measure] = g) -> str:
            return _cell(spread([getattr(m, attr) for m in g]), digits)

        vs = "1.00x" if name == "direct" else _ratio(paired(ms, name, "direct", "rps", ratio=True))
        rows.append(
            [
                name,
                col("rps", 0),
                col("tps", 0),
                col("p50_ms", 2),
                col("p99_ms", 2),
                col("ttft_p50_ms", 2),
                col("ttft_p99_ms", 2),
                col("cpu_pct", 0),
                col("rss_mib", 1),
                str(sum(m.failed for m in g)),
                vs,
            ]
        )
    header = [
        "target",
        "req/s",
        "tok/s",
        "p50 ms",
        "p99 ms",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "proxy CPU %",
        "proxy RSS MiB",
        "failed",
        "req/s vs direct",
    ]
    lines = _table(header, rows)
    added = []
    for name in groups:
        if name == "direct":
            continue
        d50 = paired(ms, name, "direct", "p50_ms", ratio=False)
        t50 = paired(ms, name, "direct", "ttft_p50_ms", ratio=False)
        part = f"{name} p50 {_diff(d50)}"
        if t50 is not None:
            part += f", TTFT p50 {_diff(t50)}"
        added.append(part)
    lines += [
        "",
        "Added vs direct (per-repeat differences, median (min…max)): " + "; ".join(added) + ".",
    ]
    streamed = paired(ms, "router", "direct-stream", "p50_ms", ratio=False)
    if streamed is not None:
        lines.append(
            "Router added p50 over `direct-stream` (the node's streamed answer, which the router "
            f"reads for every request): {_diff(streamed)}."
        )
    lines += _cpu_split(groups)
    own = spread([m.extra.get("server_timing_router_p50_ms") for m in groups.get("router", [])])
    if own is not None:
        lines.append(
            "Router's own time per request from `Server-Timing: router;dur` (p50): "
            f"{own.median:.3f} ms."
        )
    return lines


def _cpu_split(groups: dict[str, list[Measure]]) -> list[str]:
    """CPU per request by process (median over repeats), where the run measured it."""
    parts = []
    for name in _in_order(groups):
        cells = []
        for who in ("client", "node", "proxy"):
            s = spread([m.extra.get("cpu_us_per_request", {}).get(who) for m in groups[name]])
            if s is not None:
                cells.append(f"{who} {s.median:.0f}")
        if cells:
            parts.append(f"{name}: " + ", ".join(cells))
    if not parts:
        return []
    return [
        "CPU per request in the window, µs (client = the load generator, which shares its core "
        "with the node): " + "; ".join(parts) + "."
    ]


def s4_table(scenario: dict[str, Any]) -> list[str]:
    rows = []
    for name in ("router-before", "router", "floor"):
        rs = [r for r in scenario["rows"] if r["target"] == name]
        if not rs:
            continue

        def col(key: str, digits: int, rs: list[dict[str, Any]] = rs) -> str:
            return _cell(spread([r[key] for r in rs]), digits)

        rows.append(
            [
                name,
                f"{sum(r['completed'] for r in rs):,}/{sum(r['streams'] for r in rs):,}",
                col("idle_rss_mib", 1),
                col("peak_rss_mib", 1),
                col("kib_per_stream", 1),
                col("after_rss_mib", 1),
                col("lag_idle_p50_ms", 2),
                col("ramp_lag_p99_ms", 1),
                col("ramp_lag_max_ms", 1),
                col("lag_p50_ms", 2),
                col("lag_p99_ms", 2),
                col("lag_max_ms", 1),
                col("cpu_pct", 0),
                col("node_cpu_pct", 0),
                str(sum(r["failed"] for r in rs)),
            ]
        )
    header = [
        "target",
        "streams done",
        "idle RSS MiB",
        "peak RSS MiB",
        "KiB/stream",
        "RSS after MiB",
        "lag idle p50 ms",
        "ramp lag p99 ms",
        "ramp lag max ms",
        "hold lag p50 ms",
        "hold lag p99 ms",
        "hold lag max ms",
        "proxy CPU %",
        "node CPU % (hold)",
        "failed",
    ]
    note = (
        "Lag: `/healthz` answer time, probed every 50 ms from outside; ramp = while the "
        "streams are being opened, hold = all open and idle between tokens. RSS after = once "
        "every stream has ended (CPython keeps the arenas)."
    )
    return [*_table(header, rows), "", note]


def _s5_micro_rows(m: dict[str, Any]) -> list[list[str]]:
    """The micro-benchmark's rows; those added later show only in results that have them."""
    rows: list[tuple[str, str, str]] = [
        ("`choose` (all idle: every node ties)", "choose_idle_us", "{:.1f} µs"),
        ("`choose` (random loads 0-3)", "choose_busy_us", "{:.1f} µs"),
        ("`choose` (random loads, exclude 1 tried)", "choose_exclude_us", "{:.1f} µs"),
        ("`CostAware`, the default (all idle)", "cost_aware_idle_us", "{:.1f} µs"),
        ("`CostAware` (random loads 0-3)", "cost_aware_busy_us", "{:.1f} µs"),
        ("`CostAware` (random loads, exclude 1 tried)", "cost_aware_exclude_us", "{:.1f} µs"),
        (
            "whole decision as shipped (`QueuedSlots`: cost-aware + affinity), no conversation",
            "slots_single_us",
            "{:.1f} µs",
        ),
        (
            "whole decision as shipped, a later turn of a known conversation",
            "slots_conversation_us",
            "{:.1f} µs",
        ),
        (
            "health round, steady (`mark_healthy` x nodes, equal model maps)",
            "steady_round_ms",
            "{:.2f} ms",
        ),
        (
            "health round, unchanged answers (`mark_healthy` x nodes, the same map)",
            "same_round_ms",
            "{:.2f} ms",
        ),
        ("one node flaps (`mark_unhealthy` + `mark_healthy`)", "flap_ms", "{:.3f} ms"),
        ("one node flaps, then its models' candidates are read", "flap_read_ms", "{:.3f} ms"),
        ("first round (every node turns healthy)", "cold_round_ms", "{:.0f} ms"),
        (
            "first round, candidates read after every node joins",
            "cold_round_read_ms",
            "{:.0f} ms",
        ),
        (
            f"`/api/tags` parse x nodes ({m['tags_body_bytes']:,} B each)",
            "tags_parse_round_ms",
            "{:.1f} ms",
        ),
        ("`/api/tags` unchanged: fingerprint x nodes", "tags_same_round_ms", "{:.1f} ms"),
        (
            f"`/api/ps` unchanged: fingerprint x nodes ({m.get('ps_body_bytes', 0):,} B each)",
            "ps_same_round_ms",
            "{:.1f} ms",
        ),
        (
            "pure part of a round at a 5 s interval (every answer parsed)",
            "pure_round_pct_core",
            "{:.2f} % of a core",
        ),
        (
            "pure part of a round at a 5 s interval (answers unchanged)",
            "pure_same_round_pct_core",
            "{:.2f} % of a core",
        ),
    ]
    return [[label, fmt.format(m[key])] for label, key, fmt in rows if key in m]


def s5_tables(scenario: dict[str, Any]) -> list[str]:
    m = scenario["micro"]
    lines = [
        f"Micro-benchmark, {m['nodes']:,} nodes x {m['models']} models (every node serves "
        f"every model: {m['candidates']:,} candidates):",
        "",
    ]
    lines += _table(["operation", "cost"], _s5_micro_rows(m))
    f = scenario.get("fleet")
    if f:
        pct = f["pct_core_at_5s"]
        lines += [
            "",
            f"Real run: {f['nodes']} emulated nodes x {f['models']} models in one process, "
            f"one router: startup to ready {f['router_startup_s']:.1f} s; {f['rounds']:.1f} "
            f"health rounds measured; router CPU per round {_num(f['cpu_ms_per_round'], 1)} ms "
            f"= {_num(pct, 2)} % of a core at a 5 s interval (x {1000 / f['nodes']:.0f} for "
            f"1,000 nodes ≈ {_num(pct and pct * 1000 / f['nodes'], 1)} %); "
            f"idle RSS {f['idle_rss_mib']:.1f} MiB.",
            "",
        ]
        lines += load_table(scenario)
    return lines


def mem_table(scenario: dict[str, Any]) -> list[str]:
    rows = [
        [f"{p['requests']:,}", f"{p['rss_mib']:.1f}", str(p["failed"])] for p in scenario["points"]
    ]
    return _table(["requests served", "router RSS MiB", "failed"], rows)


def sweep_table(scenario: dict[str, Any]) -> list[str]:
    rows = []
    for p in scenario["points"]:
        rows.append(
            [
                p["shape"],
                str(p["concurrency"]),
                p["target"],
                _num(p["rps"]),
                _num(p["p50_ms"], 2),
                _num(p["p99_ms"], 2),
                _num(p["ttft_p50_ms"], 2),
                str(p["failed"]),
            ]
        )
    return _table(
        ["shape", "c", "target", "req/s", "p50 ms", "p99 ms", "TTFT p50 ms", "failed"], rows
    )


def _streams_table(scenario: dict[str, Any]) -> list[str]:
    from benchmarks.streams import streams_table  # it renders with this module's helpers

    return streams_table(scenario)


RENDER: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "S4": s4_table,
    "S6": _streams_table,
    "S5": s5_tables,
    "mem": mem_table,
    "sweep": sweep_table,
}


def scenario_md(scenario: dict[str, Any]) -> list[str]:
    if "error" in scenario:
        return [f"### {scenario['title']}", "", f"Failed: `{scenario['error'][:500]}`", ""]
    render = RENDER.get(scenario["key"], load_table)
    head = f"### {scenario['title']}"
    if "duration_s" in scenario:
        head += f" — {scenario['duration_s']:g} s window, {scenario.get('tool', 'aiohttp')}"
    return [head, "", *render(scenario), ""]


def render(results: dict[str, Any]) -> str:
    from benchmarks.checks import checks_md
    from benchmarks.checks_relay import relay_checks, rows_md

    m = results["machine"]
    lines = [
        f"Run {results['started']} · `{results['command']}` · "
        f"{results['elapsed_s'] / 60:.1f} min · {results['repeats']} repeat(s) per scenario",
        "",
        f"Machine: {m['cpu']} x {m['cores']} cores, {m['memory_gib']:.0f} GiB, {m['os']}; "
        f"Python {m['python']}, aiohttp {m['aiohttp']}, uvloop {m['uvloop']}; {m['tools']}.",
        f"Router tree: {m.get('router_tree', 'unknown')}. "
        f"Placement: {m['placement']}. Router as shipped (auth, metrics, JSON request log on; its "
        "stdout, the request log, goes to a file in the run directory).",
        "",
        "## Targets of issue 5",
        "",
        *checks_md(results),
        "",
    ]
    relay = relay_checks(results)
    if relay:
        lines += [
            "## Targets of issue 16: the router against the bare relay",
            "",
            *rows_md(relay),
            "",
        ]
    lines += [
        "## Tables",
        "",
    ]
    for scenario in results["scenarios"]:
        lines += scenario_md(scenario)
    if results.get("plot"):
        lines += [f"![latency vs concurrency]({results['plot']})", ""]
    return "\n".join(lines)


def write_results_md(path: Path, generated: str) -> None:
    """Replace the generated block of RESULTS.md, keeping the hand-written text around it."""
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{generated}\n{END}{tail}")
