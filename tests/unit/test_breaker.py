"""The circuit breaker: eject after consecutive failures, back off (doubling, jittered, capped),
let one half-open probe decide."""

from __future__ import annotations

import random

import pytest

from router.fleet.breaker import BreakerPolicy, BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
NO_JITTER = BreakerPolicy(failure_threshold=3, base_backoff_s=1.0, max_backoff_s=8.0, jitter=0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(policy: BreakerPolicy = NO_JITTER, seed: int = 0) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(policy, clock=clock, rng=random.Random(seed)), clock


def run(breaker: CircuitBreaker, clock: FakeClock, script: str) -> None:
    """`f` failure, `s` success, `a`/`d` allow() must be True/False, `r` release_probe,
    `+N` advance the clock N seconds."""
    for step in script.split():
        if step == "f":
            breaker.record_failure()
        elif step == "s":
            breaker.record_success()
        elif step == "a":
            assert breaker.allow(), f"denied at {step!r} of {script!r}"
        elif step == "d":
            assert not breaker.allow(), f"allowed at {step!r} of {script!r}"
        elif step == "r":
            breaker.release_probe()
        else:
            clock.now += float(step)


# (script, state after, consecutive failures, ejections, opened_until - start or None)
TRANSITIONS = [
    ("", CLOSED, 0, 0, None),
    ("f f", CLOSED, 2, 0, None),
    ("f f s f f", CLOSED, 2, 0, None),
    ("f f f", OPEN, 3, 1, 1.0),
    ("f f f d +0.5 d", OPEN, 3, 1, 1.0),
    ("f f f +1", HALF_OPEN, 3, 1, 1.0),
    ("f f f +1 a s", CLOSED, 0, 1, None),
    ("f f f +1 a f", OPEN, 4, 2, 1.0 + 2.0),
    ("f f f +1 a f +2 a f", OPEN, 5, 3, 1.0 + 2.0 + 4.0),
    # stragglers reported while OPEN neither close nor stretch the ejection
    ("f f f s", OPEN, 3, 1, 1.0),
    ("f f f f f", OPEN, 3, 1, 1.0),
    # after a success the next ejection starts from the base back-off again
    ("f f f +1 a f +2 a s f f f", OPEN, 3, 3, 3.0 + 1.0),
    ("f f f +1 a r", HALF_OPEN, 3, 1, 1.0),
]


@pytest.mark.parametrize(
    ("script", "state", "failures", "ejections", "until"),
    TRANSITIONS,
    ids=[
        "fresh",
        "below-threshold",
        "success-resets-count",
        "threshold-opens",
        "open-denies",
        "backoff-elapsed-half-open",
        "probe-success-closes",
        "probe-failure-doubles",
        "probe-failure-doubles-again",
        "straggler-success-ignored",
        "straggler-failure-ignored",
        "success-resets-backoff-level",
        "released-probe-stays-half-open",
    ],
)
def test_transitions(
    script: str, state: BreakerState, failures: int, ejections: int, until: float | None
) -> None:
    breaker, clock = make()
    start = clock.now
    run(breaker, clock, script)
    assert breaker.state is state
    assert breaker.consecutive_failures == failures
    assert breaker.ejections == ejections
    if until is None:
        assert breaker.opened_until is None
    else:
        assert breaker.opened_until == pytest.approx(start + until)


@pytest.mark.parametrize(
    "script",
    [
        "f f f +1 a d d",
        "f f f +1 a r a d",  # a released probe lets exactly one more through
        "f f f +1 a f d +1.9 d +0.1 a d",  # re-opened: the next probe only after 2 s
    ],
    ids=["one-probe", "release-lets-one-more", "next-probe-after-longer-backoff"],
)
def test_exactly_one_probe(script: str) -> None:
    breaker, clock = make()
    run(breaker, clock, script)
    assert breaker.probing


def test_closed_allows_everyone() -> None:
    breaker, clock = make()
    run(breaker, clock, "a a a f a a f a")
    assert not breaker.probing


def test_backoff_grows_to_the_cap() -> None:
    breaker, clock = make()
    lengths = []
    run(breaker, clock, "f f f")
    for _ in range(8):
        assert breaker.opened_until is not None
        lengths.append(breaker.opened_until - clock.now)
        clock.now = breaker.opened_until
        run(breaker, clock, "a f")
    assert lengths == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0]


@pytest.mark.parametrize(
    ("ejection", "plain"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0), (10_000, 60.0)],
    ids=["first", "second", "third", "sixth", "capped", "far-past-cap", "no-overflow"],
)
def test_backoff_jitter_bounds_over_many_seeds(ejection: int, plain: float) -> None:
    policy = BreakerPolicy()  # base 1 s, cap 60 s, ±20 %
    draws = [policy.backoff_s(ejection, random.Random(seed)) for seed in range(500)]
    assert all(0.8 * plain <= d <= 1.2 * plain for d in draws)
    assert all(d <= policy.max_backoff_s * (1 + policy.jitter) for d in draws)
    # jitter spreads: both halves of the band are used
    assert min(draws) < 0.85 * plain and max(draws) > 1.15 * plain


def test_jittered_breakers_do_not_reopen_in_lockstep() -> None:
    policy = BreakerPolicy(failure_threshold=1)
    ends = set()
    for seed in range(20):
        breaker, clock = make(policy, seed)
        run(breaker, clock, "f")
        ends.add(breaker.opened_until)
    assert len(ends) == 20


def test_same_seed_same_backoffs() -> None:
    policy = BreakerPolicy(failure_threshold=1)
    first, _ = make(policy, 7)
    second, _ = make(policy, 7)
    first.record_failure()
    second.record_failure()
    assert first.opened_until == second.opened_until


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"base_backoff_s": 0.0},
        {"base_backoff_s": 5.0, "max_backoff_s": 1.0},
        {"jitter": -0.1},
        {"jitter": 1.0},
    ],
    ids=["threshold-zero", "base-zero", "cap-below-base", "negative-jitter", "jitter-one"],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(**kwargs)
