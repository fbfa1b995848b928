"""The local limiter on an injected clock: limits trip at exactly their count, the window
slides, estimates settle to real counts, and the headers read as OpenAI's."""

from __future__ import annotations

from typing import Any

import pytest

from router.config import ApiKeyConfig
from router.keys.limiter import Decision, LocalLimiter, go_duration, rate_headers
from router.keys.policy import may_use, visible
from tests.conftest import Clock

pytestmark = pytest.mark.timeout(5)


def key(**policy: Any) -> ApiKeyConfig:
    return ApiKeyConfig("team", "a" * 64, **policy)


async def done(limiter: LocalLimiter, decision: Decision, tokens: int = 0) -> None:
    await limiter.settle(decision, tokens)
    await limiter.release(decision)


async def test_rpm_trips_at_its_count_and_slides() -> None:
    clock = Clock()
    limiter, team = LocalLimiter(clock), key(rpm=3)
    for at in (0.0, 10.0, 20.0):
        clock.now = 1000 + at
        decision = await limiter.acquire(team, 0)
        assert decision.allowed
        await done(limiter, decision)
    clock.now = 1030.0
    refused = await limiter.acquire(team, 0)
    assert (refused.allowed, refused.reason, refused.retry_after_s) == (False, "rpm", 30)
    assert refused.requests is not None and refused.requests.remaining == 0
    clock.now = 1060.0  # the first request has left the window: one more fits, not two
    assert (await limiter.acquire(team, 0)).allowed
    assert not (await limiter.acquire(team, 0)).allowed


async def test_tpm_counts_estimates_then_real_counts() -> None:
    clock = Clock()
    limiter, team = LocalLimiter(clock), key(tpm=100)
    first = await limiter.acquire(team, 40)
    assert first.tokens is not None and first.tokens.remaining == 60
    second = await limiter.acquire(team, 40)  # 80 reserved while both run
    assert second.allowed
    assert not (await limiter.acquire(team, 40)).allowed
    await done(limiter, first, 10)  # the node counted 10: 30 tokens come back
    await done(limiter, second, 10)
    third = await limiter.acquire(team, 40)
    assert third.allowed and third.tokens is not None and third.tokens.remaining == 40
    await done(limiter, third, 70)
    refused = await limiter.acquire(team, 20)  # 90 used
    assert (refused.allowed, refused.reason) == (False, "tpm")
    clock.now += 60  # everything aged out
    assert (await limiter.acquire(team, 20)).allowed


async def test_a_request_larger_than_the_tpm_is_refused_as_too_large() -> None:
    limiter = LocalLimiter(Clock())
    refused = await limiter.acquire(key(tpm=100), 101)
    assert (refused.allowed, refused.reason) == (False, "too_large")


async def test_concurrency_counts_requests_in_progress() -> None:
    limiter, team = LocalLimiter(Clock()), key(max_concurrency=2)
    a, b = await limiter.acquire(team, 0), await limiter.acquire(team, 0)
    refused = await limiter.acquire(team, 0)
    assert (a.allowed, b.allowed, refused.allowed, refused.reason) == (
        True,
        True,
        False,
        "concurrency",
    )
    await limiter.release(a)
    await limiter.release(a)  # released once, however often it is called
    assert (await limiter.acquire(team, 0)).allowed
    assert not (await limiter.acquire(team, 0)).allowed


async def test_a_forgotten_key_starts_afresh_and_old_tickets_stay_harmless() -> None:
    limiter, team = LocalLimiter(Clock()), key(rpm=1, max_concurrency=1)
    held = await limiter.acquire(team, 0)
    limiter.retain(set())  # the key was revoked (and, here, added back)
    fresh = await limiter.acquire(team, 0)
    assert fresh.allowed
    await done(limiter, held)  # the request of the old window ends: no effect on the new one
    assert not (await limiter.acquire(team, 0)).allowed


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.012, "12ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.9999, "1m0s"),
        (360, "6m0s"),
        (90.25, "1m30.25s"),
        (3600, "1h0m0s"),
    ],
    ids=["zero", "ms", "one-s", "fraction", "rounds-up", "six-min", "min-fraction", "hour"],
)
def test_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


async def test_headers_say_limit_remaining_and_reset() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    decision = await limiter.acquire(key(rpm=10, tpm=1000), 16)
    assert rate_headers(decision) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "984",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    only_rpm = await limiter.acquire(key(rpm=10), 0)
    assert "x-ratelimit-limit-tokens" not in rate_headers(only_rpm)


@pytest.mark.parametrize(
    ("models", "model", "allowed"),
    [
        ((), "anything", True),
        (("ollama/llama3",), "llama3:latest", True),
        (("ollama/llama3",), "ollama/llama3:70b", False),
        (("ollama/llama3*",), "llama3.2:1b", True),
        (("ollama/llama3*",), "mistral", False),
        (("ollama/llama3:*",), "ollama/llama3", True),
    ],
    ids=["no-list", "exact", "other-tag", "glob", "glob-miss", "glob-on-tag"],
)
def test_allowlist(models: tuple[str, ...], model: str, allowed: bool) -> None:
    assert may_use(key(models=models), model) is allowed


def test_visible_keeps_order() -> None:
    team = key(models=("ollama/mistral", "ollama/phi3"))
    assert visible(team, ["phi3:latest", "llama3:latest", "mistral:latest"]) == [
        "phi3:latest",
        "mistral:latest",
    ]
