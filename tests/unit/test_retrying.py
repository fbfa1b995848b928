"""`router.upstream.retrying.Failover`: tenacity's decisions, with the lighter run state."""

from __future__ import annotations

import asyncio

import pytest
from tenacity import retry_if_exception, stop_after_attempt

from router.upstream.retrying import Failover, no_sleep


class Retryable(Exception):
    pass


def _policy(attempts: int) -> Failover:
    return Failover(
        stop=stop_after_attempt(attempts),
        reraise=True,
        retry=retry_if_exception(lambda e: isinstance(e, Retryable)),
        sleep=no_sleep,
    )


def _run(policy: Failover, outcomes: list[BaseException | None]) -> int:
    """Attempts until one in `outcomes` is None (success); returns how many ran."""
    ran = 0

    async def attempt() -> int:
        nonlocal ran
        outcome = outcomes[ran]
        ran += 1
        if outcome is not None:
            raise outcome
        return ran

    result = asyncio.run(policy.fresh().run(attempt))
    assert result == ran  # the successful attempt's own result
    return ran


def test_a_success_ends_the_run() -> None:
    assert _run(_policy(3), [None]) == 1
    assert _run(_policy(3), [Retryable(), None]) == 2


def test_retryable_failures_stop_at_the_limit_and_the_last_is_raised() -> None:
    last = Retryable("third")
    with pytest.raises(Retryable) as raised:
        _run(_policy(3), [Retryable("first"), Retryable("second"), last, None])
    assert raised.value is last


def test_a_failure_not_worth_retrying_is_raised_at_once() -> None:
    policy = _policy(3)
    with pytest.raises(KeyError):
        _run(policy, [KeyError("x"), None])
    # Each run has a state of its own: the policy runs again from its first attempt.
    assert _run(policy, [Retryable(), None]) == 2


def test_a_cancelled_attempt_is_raised_not_retried() -> None:
    """A client that leaves cancels the attempt: no other node is tried for it."""
    with pytest.raises(asyncio.CancelledError):
        _run(_policy(3), [asyncio.CancelledError(), None])
