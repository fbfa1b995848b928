"""The status page's tokens-per-second window: pure, table-driven."""

from __future__ import annotations

import pytest

from router.obs.rates import RateWindow


@pytest.mark.parametrize(
    ("events", "now", "rate"),
    [
        ([], 10.0, 0.0),
        ([(100.0, 50)], 102.0, 25.0),  # younger than the window: since the first event
        ([(float(t), 10) for t in range(100, 160)], 160.0, 10.0),  # a full minute at 10/s
        ([(float(t), 10) for t in range(100, 160)], 300.0, 0.0),  # quiet since: decays to 0
        ([(100.0, 60), (1000.0, 30)], 1010.0, 30 / 55),  # the old burst left the window
        ([(100.0, 60), (30.0, 600)], 101.0, 60.0),  # a stamp older than the window is dropped
    ],
    ids=["nothing", "young", "steady", "quiet", "old-burst", "stale-stamp"],
)
def test_rate_over_the_last_minute(
    events: list[tuple[float, int]], now: float, rate: float
) -> None:
    window = RateWindow()
    for at, amount in events:
        window.add(at, amount)
    assert window.rate(now) == pytest.approx(rate)
