"""Per-key limits and usage with several replicas and one Redis: a key's rpm, tpm and
max_concurrency hold fleet-wide, usage totals are the fleet's and survive restarts, and
without Redis every replica still serves on its own counts.

Requests alternate between two routers; the limiters share one test clock (seconds), so a
window passes without a minute's sleep. Routers are driven by the OpenAI SDK or raw HTTP, as
a client would; Redis's own keys are read only to know a release has landed.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from redis.asyncio import Redis

from router.emulator import EmulatorConfig
from router.keys.redis_limiter import RedisLimiter
from tests.conftest import Clock, Router, policy_key, wait_until_async
from tests.coordination.conftest import RedisServer, ReplicaFactory

pytestmark = pytest.mark.timeout(30)
MODEL = "ollama/llama3"
HELLO = [{"role": "user", "content": "hi"}]
FAST = EmulatorConfig(models=("llama3", "phi3"), default_tokens=5)


def shared_clock(routers: list[Router]) -> Clock:
    clock = Clock()
    for router in routers:
        limiter = router.state.limiter
        assert isinstance(limiter, RedisLimiter)  # coordination chose the shared limiter
        limiter.clock = clock
    return clock


async def test_rpm_holds_across_replicas_and_resets(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    key, entry = policy_key("three-a-minute", rpm=3)
    routers = await make_replicas(2, {"a": FAST}, redis_url=redis_server.url, api_keys=[entry])
    clock = shared_clock(routers)
    clients = [router.client(key=key) for router in routers]
    for i in range(3):  # A, B, A: each replica alone has seen fewer than three
        raw = await clients[i % 2].chat.completions.with_raw_response.create(
            model=MODEL, messages=HELLO
        )
        assert raw.headers["x-ratelimit-remaining-requests"] == str(2 - i)
        clock.now += 10
    for client in (clients[1], clients[0]):  # the fourth is refused, wherever it goes
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model=MODEL, messages=HELLO)
        assert info.value.code == "rate_limit_exceeded"
        headers = info.value.response.headers
        assert headers["retry-after"] == "30"  # the first request leaves the window then
        assert headers["x-ratelimit-limit-requests"] == "3"
        assert headers["x-ratelimit-remaining-requests"] == "0"
    await routers[1].client().chat.completions.create(model=MODEL, messages=HELLO)  # other key
    clock.now += 30  # the first request left the window: one more fits, on either replica
    await clients[1].completions.create(model=MODEL, prompt="hi")
    with pytest.raises(openai.RateLimitError):
        await clients[0].chat.completions.create(model=MODEL, messages=HELLO)
    clock.now += 60
    for client in (*clients, *clients[:1]):
        await client.chat.completions.create(model=MODEL, messages=HELLO)


async def test_tpm_holds_across_replicas_and_resets(
    redis_server: RedisServer, make_replicas: ReplicaFactory, http: aiohttp.ClientSession
) -> None:
    body = orjson.dumps({"model": MODEL, "messages": HELLO})
    estimate = math.ceil(len(body) / 4)  # bytes / 4, before the node has counted
    used = (1 + 4) + 5  # the emulator: a word + 4 per message, then default_tokens
    limit = 2 * used + estimate - 1  # two fit; a third would need `estimate` more
    key, entry = policy_key("few-tokens", tpm=limit)
    routers = await make_replicas(2, {"a": FAST}, redis_url=redis_server.url, api_keys=[entry])
    clock = shared_clock(routers)

    async def chat(router: Router) -> tuple[int, Any, Any]:
        url = router.url + "/v1/chat/completions"
        async with http.post(url, data=body, headers=router.headers(key)) as resp:
            return resp.status, await resp.json(), resp.headers

    status, answer, first = await chat(routers[0])
    assert status == 200 and answer["usage"]["total_tokens"] == used
    assert first["x-ratelimit-remaining-tokens"] == str(limit - estimate)
    status, _, second = await chat(routers[1])  # the first's real count, from the other replica
    assert status == 200
    assert second["x-ratelimit-remaining-tokens"] == str(limit - used - estimate)
    status, error, refused = await chat(routers[0])
    assert status == 429 and error["error"]["code"] == "rate_limit_exceeded"
    assert refused["x-ratelimit-remaining-tokens"] == str(limit - 2 * used)
    assert refused["retry-after"] == "60"
    clock.now += 60
    assert (await chat(routers[1]))[0] == 200


async def test_max_concurrency_holds_across_replicas(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    key, entry = policy_key("one-at-a-time", max_concurrency=1)
    paced = EmulatorConfig(models=("llama3",), tokens_per_second=20, default_tokens=20)
    routers = await make_replicas(2, {"a": paced}, redis_url=redis_server.url, api_keys=[entry])
    first, second = (router.client(key=key) for router in routers)
    stream = await first.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    chunks = stream.__aiter__()
    await chunks.__anext__()  # in progress on the first replica
    with pytest.raises(openai.RateLimitError) as info:
        await second.chat.completions.create(model=MODEL, messages=HELLO)
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"] == "1"
    async for _ in chunks:
        pass
    await stream.close()
    redis = Redis.from_url(redis_server.url)
    try:  # the first replica's release has reached Redis

        async def released() -> bool:
            return await redis.zcard("jarvis:limits:one-at-a-time:running") == 0

        await wait_until_async(released)
    finally:
        await redis.aclose()
    await second.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)


async def _use(router: Router, seen: Counter[tuple[str, str]]) -> None:
    """A chat and a completion through the SDK, adding what its `usage` said to `seen`."""
    client = router.client()
    chat = await client.chat.completions.create(model=MODEL, messages=HELLO)
    text = await client.completions.create(model="ollama/phi3", prompt="one two three")
    for model, usage in ((MODEL, chat.usage), ("ollama/phi3", text.usage)):
        assert usage is not None
        seen[(model, "requests")] += 1
        seen[(model, "prompt_tokens")] += usage.prompt_tokens
        seen[(model, "completion_tokens")] += usage.completion_tokens


async def _usage(http: aiohttp.ClientSession, router: Router) -> Any:
    async with http.get(router.url + "/admin/usage", headers=router.headers()) as resp:
        assert resp.status == 200
        return await resp.json()


def _totals(report: Any) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for row in report["data"]:
        assert row["key"] == "test"
        for model, counts in row["models"].items():
            for field in ("requests", "prompt_tokens", "completion_tokens"):
                found[(model, field)] += counts[field]
    return found


async def test_usage_is_the_fleets_and_survives_restarts(
    redis_server: RedisServer, make_replicas: ReplicaFactory, http: aiohttp.ClientSession
) -> None:
    specs = {"a": FAST, "b": FAST}
    routers = await make_replicas(2, specs, redis_url=redis_server.url)
    seen: Counter[tuple[str, str]] = Counter()
    for router in (*routers, routers[0]):
        await _use(router, seen)

    async def fleet_wide() -> bool:  # the other replica sends its batch within a second
        report = await _usage(http, routers[1])
        return bool(report["fleet_wide"]) and _totals(report) == seen

    await wait_until_async(fleet_wide)
    since = (await _usage(http, routers[0]))["since"]
    for router in routers:  # both stop; Redis keeps the totals
        await router.runner.cleanup()
    restarted = await make_replicas(2, specs, redis_url=redis_server.url)
    report = await _usage(http, restarted[0])
    assert report["fleet_wide"] is True
    assert _totals(report) == seen
    assert report["since"] == since
    await _use(restarted[1], seen)
    await wait_until_async(lambda: _usage_equals(http, restarted[0], seen))


async def _usage_equals(
    http: aiohttp.ClientSession, router: Router, seen: Counter[tuple[str, str]]
) -> bool:
    return _totals(await _usage(http, router)) == seen


async def test_without_redis_requests_are_served_on_local_limits(
    redis_server: RedisServer, make_replicas: ReplicaFactory, http: aiohttp.ClientSession
) -> None:
    key, entry = policy_key("three-a-minute", rpm=3)
    routers = await make_replicas(2, {"a": FAST}, redis_url=redis_server.url, api_keys=[entry])
    first, second = (router.client(key=key) for router in routers)
    await first.chat.completions.create(model=MODEL, messages=HELLO)  # counted fleet-wide
    await redis_server.kill()
    for _ in range(2):  # the first replica's own count goes on from the request it ran
        await first.chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        await first.chat.completions.create(model=MODEL, messages=HELLO)
    for _ in range(3):  # the second replica counts alone: three of its own
        await second.chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        await second.chat.completions.create(model=MODEL, messages=HELLO)
    report = await _usage(http, routers[1])  # this replica's totals, said to be so
    assert report["fleet_wide"] is False
    rows = {row["key"]: row for row in report["data"]}
    assert rows["three-a-minute"]["requests"] == 3
    # Redis returns (empty, after its crash): the key's count is the fleet's again.
    await redis_server.start()
    for router in routers:

        async def shared(router: Router = router) -> bool:
            return bool((await _usage(http, router))["fleet_wide"])

        await wait_until_async(shared)
    for client in (first, second, first):  # over both replicas' own counts, under Redis's
        await client.chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        await second.chat.completions.create(model=MODEL, messages=HELLO)
