"""`python -m benchmarks.ladder`: every stage of the router's path is served under wrk and
tabled next to the relay (that it runs and reports, not how fast)."""

from __future__ import annotations

import pytest

from benchmarks import ladder
from tests import tools


def test_every_stage_is_served_and_tabled(capsys: pytest.CaptureFixture[str]) -> None:
    tools.require("wrk")
    ladder.main(["--repeats", "1", "--duration", "1", "--warmup", "0"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0] == "| stage | req/s | vs relay | CPU µs/request | added by the stage |"
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]
    assert names == ["relay (floor)", *ladder.STAGES, "router"]
    for row in rows[1:]:  # every stage answered (a failed request raises) and used the CPU
        assert float(row.split(" | ")[3]) > 0, row
    assert "Budget for 0.70x the relay's req/s" in out
