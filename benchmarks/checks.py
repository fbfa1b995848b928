"""The targets of issue 5, checked against one run's results (medians of per-repeat values)."""

from __future__ import annotations

from typing import Any

from benchmarks.stats import Spread, by_target, paired, spread

Row = tuple[str, str, str, bool | None]  # criterion, measured, target, met (None: not measured)


def _s(s: Spread | None, fmt: str, unit: str = "") -> str:
    if s is None:
        return "not measured"
    if s.n > 1:
        return f"{s.median:{fmt}}{unit} ({s.low:{fmt}}-{s.high:{fmt}})"
    return f"{s.median:{fmt}}{unit}"


def _check(name: str, s: Spread | None, fmt: str, unit: str, target: str, ok: Any) -> Row:
    if s is None or ok is None:  # not measured, or shown for information only
        return name, _s(s, fmt, unit), target, None
    return name, _s(s, fmt, unit), target, bool(ok(s.median))


def load_checks(key: str, sc: dict[str, Any]) -> list[Row]:
    from benchmarks.report import measures_of

    ms = measures_of(sc)
    router = by_target(ms).get("router", [])
    if key == "S1-c1":
        d = paired(ms, "router", "direct", "p50_ms", ratio=False)
        return [_check("S1 c=1: added p50", d, ".2f", " ms", "≤ 0.6 ms", lambda v: v <= 0.6)]
    if key == "S1-c64":
        return [
            _check(
                "S1 c=64: router / floor req/s",
                paired(ms, "router", "floor", "rps", ratio=True),
                ".2f",
                "x",
                "≥ 0.8x",
                lambda v: v >= 0.8,
            ),
            _check(
                "S1 c=64: router / direct req/s",
                paired(ms, "router", "direct", "rps", ratio=True),
                ".2f",
                "x",
                "≈ 0.35x (for scale)",
                None,
            ),
            _check(
                "S1 c=64: router / LiteLLM req/s",
                paired(ms, "router", "litellm", "rps", ratio=True),
                ".0f",
                "x",
                "≥ 50x",
                lambda v: v >= 50,
            ),
        ]
    tps = paired(ms, "router", "direct", "tps", ratio=True)
    ttft = paired(ms, "router", "direct", "ttft_p50_ms", ratio=False)
    if key == "S2":
        return [
            _check("S2: router / direct tok/s", tps, ".2f", "x", "≥ 0.9x", lambda v: v >= 0.9),
            _check("S2: added TTFT p50", ttft, ".2f", " ms", "≤ 2 ms", lambda v: v <= 2),
        ]
    if key == "S3":
        p99 = spread([m.ttft_p99_ms for m in router])
        rss = spread([m.rss_mib for m in router])
        return [
            _check("S3: router / direct tok/s", tps, ".2f", "x", "≥ 0.95x", lambda v: v >= 0.95),
            _check("S3: added TTFT p50", ttft, ".2f", " ms", "≤ 2 ms", lambda v: v <= 2),
            _check("S3: router TTFT p99", p99, ".1f", " ms", "≤ 100 ms", lambda v: v <= 100),
            _check(
                "S3: router RSS (peak)",
                rss and Spread(rss.high, rss.low, rss.high, rss.n),
                ".1f",
                " MiB",
                "≤ 100 MiB",
                lambda v: v <= 100,
            ),
        ]
    return []


def s4_checks(sc: dict[str, Any]) -> list[Row]:
    rows = [r for r in sc["rows"] if r["target"] == "router"]
    kib = spread([r["kib_per_stream"] for r in rows])
    lag = spread([r["lag_p99_ms"] for r in rows])
    failed = sum(r["failed"] for r in rows)
    return [
        _check("S4: router RSS per open stream", kib, ".1f", " KiB", "≤ 40 KiB", lambda v: v <= 40),
        _check(
            "S4: event-loop lag p99, streams open (/healthz)",
            lag,
            ".1f",
            " ms",
            "≤ 20 ms",
            lambda v: v <= 20,
        ),
        _check(
            "S4: event-loop lag p99 while opening 1,000 streams/s",
            spread([r["ramp_lag_p99_ms"] for r in rows]),
            ".1f",
            " ms",
            "(for information)",
            None,
        ),
        ("S4: failed streams", str(failed), "0", failed == 0),
    ]


def s5_checks(sc: dict[str, Any]) -> list[Row]:
    m = sc["micro"]
    worst = max(m["choose_idle_us"], m["choose_busy_us"])
    rows: list[Row] = [
        (
            f"S5: one `choose` (least_loaded) over {m['candidates']:,} nodes",
            f"{m['choose_busy_us']:.1f} µs (busy) / {m['choose_idle_us']:.1f} µs (all tie)",
            "≤ 20 µs",
            worst <= 20,
        ),
    ]
    if "slots_single_us" in m:  # the default, as shipped; older results lack it
        worst = max(m["slots_single_us"], m["slots_conversation_us"])
        rows.append(
            (
                f"S5: the whole shipped decision (cost-aware + affinity) over "
                f"{m['candidates']:,} nodes",
                f"{m['slots_single_us']:.1f} µs (single request) / "
                f"{m['slots_conversation_us']:.1f} µs (later turn)",
                "≤ 20 µs",
                worst <= 20,
            )
        )
    f = sc.get("fleet")
    if f and f.get("pct_core_at_5s") is not None:
        scaled = f["pct_core_at_5s"] * 1000 / f["nodes"]
        rows.append(
            (
                "S5: health round over 1,000 nodes at 5 s",
                f"{scaled:.1f} % of a core (measured {f['pct_core_at_5s']:.2f} % at "
                f"{f['nodes']} nodes, x{1000 / f['nodes']:.0f})",
                "≤ 5 %",
                scaled <= 5,
            )
        )
    return rows


def mem_checks(sc: dict[str, Any]) -> list[Row]:
    pts = sc["points"]
    if len(pts) < 2:
        return []
    first, last = pts[0], pts[-1]
    growth = last["rss_mib"] / first["rss_mib"] - 1
    return [
        (
            f"Memory flat: RSS after {last['requests']:,} vs after {first['requests']:,}",
            f"{first['rss_mib']:.1f} → {last['rss_mib']:.1f} MiB ({growth:+.1%})",
            "within 10 %",
            abs(growth) <= 0.10,
        )
    ]


def failures(results: dict[str, Any]) -> Row:
    per: list[str] = []
    for sc in results["scenarios"]:
        n = sum(m["failed"] for m in sc.get("measures", []))
        n += sum(r["failed"] for r in sc.get("rows", [])) + sum(
            p["failed"] for p in sc.get("points", [])
        )
        if n:
            per.append(f"{sc['key']}: {n}")
    return "Zero errors in every scenario (all targets)", "; ".join(per) or "0", "0", not per


def all_checks(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for sc in results["scenarios"]:
        key = sc["key"]
        if "error" in sc:
            rows.append((f"{key} ran", sc["error"][:200], "no error", False))
        elif key == "S4":
            rows += s4_checks(sc)
        elif key == "S5":
            rows += s5_checks(sc)
        elif key == "mem":
            rows += mem_checks(sc)
        else:
            rows += load_checks(key, sc)
    rows.append(failures(results))
    return rows


def checks_md(results: dict[str, Any]) -> list[str]:
    mark = {True: "met", False: "**not met**", None: "-"}
    out = ["| criterion | measured, median (min-max) | target | |", "|---|---|---|---|"]
    out += [f"| {c} | {m} | {t} | {mark[ok]} |" for c, m, t, ok in all_checks(results)]
    return out
