"""Percentiles, one measurement record, and the aggregation of repeats (median and spread)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass(slots=True)
class Measure:
    """One target in one repeat of one scenario."""

    target: str
    rps: float
    tps: float
    p50_ms: float | None
    p99_ms: float | None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    cpu_pct: float | None = None  # the proxy's, over the window
    rss_mib: float | None = None  # the proxy's peak over the window
    failed: int = 0
    requests: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    @property
    def pm_pct(self) -> float:
        """Half the range as a percentage of the median."""
        return 50.0 * (self.high - self.low) / abs(self.median) if self.median else 0.0


def spread(values: Sequence[float | None]) -> Spread | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return Spread(statistics.median(present), min(present), max(present), len(present))


def by_target(measures: Sequence[Measure]) -> dict[str, list[Measure]]:
    out: dict[str, list[Measure]] = {}
    for m in measures:
        out.setdefault(m.target, []).append(m)
    return out


def paired(
    measures: Sequence[Measure], target: str, base: str, metric: str, *, ratio: bool
) -> Spread | None:
    """Per repeat, `target` against `base` (a ratio or a difference), then median and range.

    Measures are in run order, `repeats x targets`, so the i-th of each target is one repeat.
    """
    return paired_by(measures, target, base, lambda m: getattr(m, metric), ratio=ratio)


def paired_by(
    measures: Sequence[Measure],
    target: str,
    base: str,
    value: Callable[[Measure], float | None],
    *,
    ratio: bool,
) -> Spread | None:
    """`paired` over any value of a measure (S6: the proxy's CPU per token, in `extra`)."""
    groups = by_target(measures)
    values: list[float | None] = []
    for a, b in zip(groups.get(target, []), groups.get(base, []), strict=False):
        x, y = value(a), value(b)
        if x is None or y is None:
            continue
        values.append((x / y if y else None) if ratio else x - y)
    return spread(values)
