"""The targets of issue 16: the router's cost against the bare relay (the floor), same run.

Per token (S6, for chat and, once the router serves them, the Responses and Messages streams):
tok/s >= 0.95x the floor's, proxy CPU per relayed token <= 1.25x the floor's, TTFT p99 <= the
floor's + 5 ms. Per request: at c=1 the router adds at most 0.25 ms more to p50 than the floor
does (S1-c1, both against direct), and at c=64 (wrk) serves >= 0.70x the floor's req/s (S1-c64).
Printed met / not met; nothing here asserts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.checks import Row
from benchmarks.stats import Measure, Spread, by_target, paired, spread
from benchmarks.streams import ROUTER_TARGETS, cpu_per_token, relay_cpu_ratio
from benchmarks.targets import ROUTER_WHOLE

API = {"router": "chat", "router-responses": "Responses", "router-messages": "Messages"}


def _s(s: Spread, fmt: str, unit: str) -> str:
    if s.n > 1:
        return f"{s.median:{fmt}}{unit} ({s.low:{fmt}}…{s.high:{fmt}})"
    return f"{s.median:{fmt}}{unit}"


def _row(
    name: str, s: Spread | None, fmt: str, unit: str, target: str, ok: Callable[[float], bool]
) -> Row:
    if s is None:
        return name, "not measured (needs the router and the floor in the run)", target, None
    return name, _s(s, fmt, unit), target, ok(s.median)


def s1_rows(key: str, sc: dict[str, Any]) -> list[Row]:
    from benchmarks.report import measures_of

    ms = measures_of(sc)
    if key == "S1-c1":
        over = paired(ms, "router", "floor", "p50_ms", ratio=False)  # = router added - floor added
        row = _row(
            "S1 c=1: router's added p50 minus the floor's (both over direct)",
            over, "+.2f", " ms", "≤ +0.25 ms", lambda v: v <= 0.25,
        )  # fmt: skip
        added = [paired(ms, n, "direct", "p50_ms", ratio=False) for n in ("router", "floor")]
        if over is not None and added[0] is not None and added[1] is not None:
            detail = f"; router +{added[0].median:.2f} ms, floor +{added[1].median:.2f} ms"
            row = (row[0], row[1] + detail, row[2], row[3])
        rows = [row]
        whole = paired(ms, ROUTER_WHOLE, "floor", "p50_ms", ratio=False)
        if whole is not None:
            rows.append(_row(
                "S1 c=1, `routing.gather: whole`: the same", whole, "+.2f", " ms", "≤ +0.25 ms",
                lambda v: v <= 0.25,
            ))  # fmt: skip
        return rows
    if key == "S1-c64":
        rows = []
        for name, label in (("router", ""), (ROUTER_WHOLE, ", `routing.gather: whole`")):
            ratio = paired(ms, name, "floor", "rps", ratio=True)
            if ratio is not None or name == "router":
                rows.append(_row(f"S1 c=64{label}: router / floor req/s", ratio, ".2f", "x",
                                 "≥ 0.70x", _ge(0.70)))  # fmt: skip
        return rows
    return []


def _ge(bound: float) -> Callable[[float], bool]:
    return lambda v: v >= bound


def _le(bound: float) -> Callable[[float], bool]:
    return lambda v: v <= bound


def s6_rows(sc: dict[str, Any]) -> list[Row]:
    from benchmarks.report import measures_of

    ms = measures_of(sc)
    groups = by_target(ms)
    not_served: dict[str, str] = sc.get("not_served", {})
    rows: list[Row] = []
    for name in ROUTER_TARGETS:
        label = f"S6 {API[name]}"
        if name in not_served:
            rows.append((f"{label}: tok/s, CPU per token, TTFT p99 vs floor", not_served[name],
                         "as chat", None))  # fmt: skip
            continue
        if name not in groups:
            continue
        cpu = relay_cpu_ratio(ms, name)
        cpu_row = _row(f"{label}: CPU per token / floor's", cpu, ".2f", "x", "≤ 1.25x", _le(1.25))
        us = [_median_us(groups.get(n, [])) for n in (name, "floor")]
        if cpu is not None and us[0] is not None and us[1] is not None:
            cpu_row = (cpu_row[0], f"{cpu_row[1]}; {us[0]:.1f} vs {us[1]:.1f} µs", *cpu_row[2:])
        rows += [
            _row(f"{label}: tok/s / floor's", paired(ms, name, "floor", "tps", ratio=True),
                 ".2f", "x", "≥ 0.95x", _ge(0.95)),
            cpu_row,
            _row(f"{label}: TTFT p99 minus the floor's",
                 paired(ms, name, "floor", "ttft_p99_ms", ratio=False),
                 "+.1f", " ms", "≤ +5 ms", _le(5.0)),
        ]  # fmt: skip
    return rows


def _median_us(group: list[Measure]) -> float | None:
    s = spread([cpu_per_token(m) for m in group])
    return None if s is None else s.median


def relay_checks(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for sc in results["scenarios"]:
        if "error" in sc:
            continue
        if sc["key"] == "S6":
            rows += s6_rows(sc)
        else:
            rows += s1_rows(sc["key"], sc)
    return rows


def rows_md(rows: list[Row]) -> list[str]:
    mark = {True: "met", False: "**not met**", None: "-"}
    out = ["| criterion | measured, median (min…max) | target | |", "|---|---|---|---|"]
    return out + [f"| {c} | {m} | {t} | {mark[ok]} |" for c, m, t, ok in rows]
