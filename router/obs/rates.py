"""A sliding-window rate (events per second over the last minute) for the status page.

Pure and O(1) per `add`: counts go into fixed time buckets that are zeroed as the clock moves
past them, so the request path never allocates and a quiet node decays to 0 without a timer.
"""

from __future__ import annotations

WINDOW_S = 60.0
BUCKETS = 12


class RateWindow:
    __slots__ = ("_bucket_s", "_counts", "_last", "_since")

    def __init__(self, window_s: float = WINDOW_S, buckets: int = BUCKETS) -> None:
        self._bucket_s = window_s / buckets
        self._counts = [0] * buckets
        self._since: float | None = None  # time of the first event
        self._last = 0  # the bucket number the ring was last advanced to

    def add(self, now: float, amount: int) -> None:
        if self._since is None:
            self._since, self._last = now, int(now // self._bucket_s)
        index = self._advance(now)
        if index > self._last - len(self._counts):  # a stamp older than the window is dropped
            self._counts[index % len(self._counts)] += amount

    def rate(self, now: float) -> float:
        """Events per second over the window, or since the first event when that is later."""
        if self._since is None:
            return 0.0
        index = self._advance(now)
        window_start = (index - len(self._counts) + 1) * self._bucket_s
        span = now - max(self._since, window_start)
        return sum(self._counts) / span if span > 0 else 0.0

    def _advance(self, now: float) -> int:
        index = int(now // self._bucket_s)
        if index > self._last:
            for step in range(1, min(index - self._last, len(self._counts)) + 1):
                self._counts[(self._last + step) % len(self._counts)] = 0
            self._last = index
        return index
