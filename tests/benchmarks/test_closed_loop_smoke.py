"""Smoke test of `python -m benchmarks.closed_loop --quick`: it completes and prints both
tables, every row served with no failure. Not on timings: those are the benchmark's business."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rows(out: str, first_cell: tuple[str, ...]) -> list[list[str]]:
    lines = [line for line in out.splitlines() if line.startswith(first_cell)]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_quick_run_prints_both_tables_without_failures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.closed_loop", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    load = _rows(done.stdout, ("| light", "| full"))
    assert [(r[0].split()[0], r[1]) for r in load] == [
        ("light", "cost_aware"),
        ("light", "round_robin"),
        ("full", "cost_aware"),
        ("full", "round_robin"),
    ], done.stdout
    affinity = _rows(done.stdout, ("| on |", "| off |"))
    assert [r[0] for r in affinity] == ["on", "off"], done.stdout
    for row in load + affinity:
        assert int(row[-1]) == 0, row  # failed
        assert sum(int(n) for n in row[-2].split(" / ")) > 0, row  # served by the nodes
