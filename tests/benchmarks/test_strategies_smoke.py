"""Smoke test of `python -m benchmarks.strategies --quick` (issue 7): it completes, prints a
table per scenario with a verdict, and no request fails. Not on timings: those are the
benchmark's own business."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.strategies import SCENARIOS, STRATEGIES

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES_PREFIXES = tuple(f"| {name} |" for name in STRATEGIES)


def test_quick_run_prints_tables_without_failures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.strategies", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("| strategy | affinity | requests |") == len(SCENARIOS), out
    assert out.count("cost_aware p99 < round_robin p99: ") == len(SCENARIOS), out
    rows = [line for line in out.splitlines() if line.startswith(STRATEGIES_PREFIXES)]
    assert len(rows) == len(SCENARIOS) * len(STRATEGIES), out
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[2]) > 0, row  # requests
        assert cells[-1] == "0", row  # failed
