"""Circuit breaking per node: consecutive failures eject a node; a half-open probe lets it back.

Issue 7. CLOSED counts consecutive failures; at `failure_threshold` the node is OPEN (ejected)
for a back-off that doubles with each consecutive ejection, up to a cap, with jitter so that
nodes ejected together do not come back together. Once the back-off has elapsed the breaker
reads HALF_OPEN and lets exactly one caller through as the probe; its success closes the
breaker (and resets the back-off), its failure re-opens it with the next, longer back-off.

Results reported while OPEN come from requests admitted before the ejection (stragglers). They
are ignored, as in Envoy's outlier detection: the ejection runs its course and the probe decides.
Pure: time and randomness are injected.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

# 2**62 * any sane base is far past any cap; bounding the exponent keeps the float finite.
_MAX_DOUBLINGS = 62


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 3
    base_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    jitter: float = 0.2  # ± this fraction of the back-off

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {self.failure_threshold}")
        if self.base_backoff_s <= 0:
            raise ValueError(f"base_backoff_s must be > 0, got {self.base_backoff_s}")
        if self.max_backoff_s < self.base_backoff_s:
            raise ValueError(
                f"max_backoff_s must be >= base_backoff_s ({self.base_backoff_s}), "
                f"got {self.max_backoff_s}"
            )
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def backoff_s(self, ejection: int, rng: random.Random) -> float:
        """The back-off for the `ejection`-th consecutive ejection (1-based), jittered."""
        doublings = min(max(ejection, 1) - 1, _MAX_DOUBLINGS)
        plain = min(self.base_backoff_s * 2.0**doublings, self.max_backoff_s)
        return plain * rng.uniform(1 - self.jitter, 1 + self.jitter)


class CircuitBreaker:
    """One node's breaker. Mutated only through its methods; none awaits, so no locks."""

    __slots__ = (
        "_clock",
        "_consecutive_failures",
        "_ejections",
        "_level",
        "_opened_until",
        "_policy",
        "_probe_out",
        "_rng",
    )

    def __init__(
        self, policy: BreakerPolicy, *, clock: Callable[[], float], rng: random.Random
    ) -> None:
        self._policy, self._clock, self._rng = policy, clock, rng
        # None while CLOSED; set, it is OPEN until then and HALF_OPEN after.
        self._opened_until: float | None = None
        self._probe_out = False
        self._consecutive_failures = 0
        self._level = 0  # consecutive ejections since the last success
        self._ejections = 0

    # -- reads ---------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        if self._opened_until is None:
            return BreakerState.CLOSED
        if self._clock() < self._opened_until:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @property
    def opened_until(self) -> float | None:
        """When the current ejection ends (it may have passed: HALF_OPEN); None when CLOSED."""
        return self._opened_until

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def ejections(self) -> int:
        """Total times this breaker has opened."""
        return self._ejections

    @property
    def probing(self) -> bool:
        """A half-open probe is out and has not reported yet."""
        return self._probe_out

    # -- decisions and verdicts ----------------------------------------------------------
    def allow(self) -> bool:
        """May a request go to this node now? In HALF_OPEN only the first caller (the probe)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probe_out:
            return False
        self._probe_out = True
        return True

    def record_success(self) -> None:
        if self.state is BreakerState.OPEN:
            return  # a straggler: the probe decides
        self._opened_until, self._probe_out = None, False
        self._consecutive_failures = self._level = 0

    def record_failure(self) -> None:
        state = self.state
        if state is BreakerState.OPEN:
            return  # a straggler: it must not stretch the ejection
        self._consecutive_failures += 1
        threshold = self._policy.failure_threshold
        if state is BreakerState.HALF_OPEN or self._consecutive_failures >= threshold:
            self._eject()

    def release_probe(self) -> None:
        """The probe ended without a verdict (say, the client left): another caller may probe.

        Only the caller whose `allow()` made it the probe may call this: the breaker cannot
        tell callers apart, so anyone else would let a second probe through.
        """
        self._probe_out = False

    def _eject(self) -> None:
        self._level += 1
        self._ejections += 1
        self._probe_out = False
        self._opened_until = self._clock() + self._policy.backoff_s(self._level, self._rng)
