"""`router.upstream.retrying.Failover`: tenacity's decisions, with the lighter run state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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

    result = asyncio.run(policy.run(attempt))
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
    # Each run has a state of its own: the shared policy runs again from its first attempt.
    assert _run(policy, [Retryable(), None]) == 2


def test_a_cancelled_attempt_is_raised_not_retried() -> None:
    """A client that leaves cancels the attempt: no other node is tried for it."""
    with pytest.raises(asyncio.CancelledError):
        _run(_policy(3), [asyncio.CancelledError(), None])


def test_interleaved_runs_of_one_policy_each_keep_their_own_count() -> None:
    """Every request's failover shares one policy: runs that interleave on the loop (each
    awaits between its attempts) each stop at their own limit, and a success in one does not
    end or shorten another."""
    policy = _policy(3)
    attempts = {"a": 0, "b": 0, "c": 0}

    def failing(name: str, succeed_on: int | None) -> Callable[[], Awaitable[str]]:
        async def attempt() -> str:
            attempts[name] += 1
            await asyncio.sleep(0)  # let the other runs take their turns in between
            if attempts[name] == succeed_on:
                return name
            raise Retryable(f"{name} {attempts[name]}")

        return attempt

    async def main() -> list[object]:
        runs = [policy.run(failing("a", None)), policy.run(failing("b", 2)),
                policy.run(failing("c", None))]  # fmt: skip
        return await asyncio.gather(*runs, return_exceptions=True)

    a, b, c = asyncio.run(main())
    assert isinstance(a, Retryable) and str(a) == "a 3"
    assert b == "b"
    assert isinstance(c, Retryable) and str(c) == "c 3"
    assert attempts == {"a": 3, "b": 2, "c": 3}
