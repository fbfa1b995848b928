"""`python -m benchmarks.costs`: every piece of a request's cost is measured and printed."""

from __future__ import annotations

import logging

import pytest

from benchmarks import costs


def test_every_piece_is_timed_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    handlers = logging.root.handlers[:]
    try:
        costs.main(["--scale", "0.002"])
    finally:  # the access-log row configures logging; give pytest's back
        logging.root.handlers[:] = handlers
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0] == "| per request | what it buys | µs |"
    timed = rows[1:]
    assert len(timed) == 13
    assert {row.split(" | ")[0].removeprefix("| ") for row in timed} >= {
        "tenacity: one successful attempt",
        "access log: one JSON line",
    }
    for row in timed:
        assert float(row.rstrip(" |").rsplit("| ", 1)[1]) > 0, row
