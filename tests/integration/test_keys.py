"""Per-key policy as a client sees it, through the real router and the OpenAI SDK: the model
allowlist, rpm / tpm / concurrency limits (429 with Retry-After and OpenAI's x-ratelimit-*
headers), expiry, admin-only endpoints, and usage totals that equal the nodes' own counts."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.emulator import EmulatorConfig
from router.keys.limiter import LocalLimiter
from tests.conftest import Clock, Router, RouterFactory, policy_key

pytestmark = pytest.mark.timeout(20)
MODEL = "ollama/llama3"
HELLO = [{"role": "user", "content": "hi"}]
TWO_NODES = {
    "node-a": EmulatorConfig(models=("llama3", "mistral"), default_tokens=5),
    "node-b": EmulatorConfig(models=("llama3", "phi3"), default_tokens=5),
}


def fake_clock(router: Router) -> Clock:
    clock = Clock()
    router.state.limiter = LocalLimiter(clock)
    return clock


async def test_a_key_limited_to_one_model_cannot_see_or_use_another(
    make_router: RouterFactory,
) -> None:
    key, entry = policy_key("llama-only", models=("ollama/llama3",))
    glob_key, glob_entry = policy_key("threes", models=("ollama/*3",))
    router = await make_router(TWO_NODES, extra_keys=[entry, glob_entry])
    limited = router.client(key=key)
    assert [m.id for m in (await limited.models.list()).data] == [MODEL]
    assert sorted(m.id for m in (await router.client(key=glob_key).models.list()).data) == [
        "ollama/llama3",
        "ollama/phi3",
    ]
    answer = await limited.chat.completions.create(model=MODEL, messages=HELLO)
    assert answer.choices[0].message.content
    for model in ("ollama/mistral", "mistral:latest"):
        with pytest.raises(openai.NotFoundError) as info:
            await limited.chat.completions.create(model=model, messages=HELLO)
        assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await limited.completions.create(model="ollama/phi3", prompt="hi")
    with pytest.raises(openai.NotFoundError) as info:
        await limited.models.retrieve("ollama/mistral")
    assert info.value.code == "model_not_found"
    # The same model for a key without an allowlist: served.
    assert (await router.client().models.retrieve("ollama/mistral")).id == "ollama/mistral"
    assert router.nodes["node-a"].stats.requests["/api/chat"] <= 1  # only the llama3 chat ran


async def test_rpm_trips_at_its_count_and_resets(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    key, entry = policy_key("two-a-minute", rpm=2)
    router = await make_router(TWO_NODES, extra_keys=[entry])
    clock = fake_clock(router)
    client = router.client(key=key)
    # Paths that run no model do not count: listing models, a path the router does not serve.
    await client.models.list()
    async with http.post(router.url + "/v1/nothing", headers=router.headers(key)) as resp:
        assert resp.status == 404
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert raw.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert "x-ratelimit-limit-tokens" not in raw.headers  # no tpm for this key
    clock.now += 30
    stream = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, stream=True
    )
    assert stream.headers["x-ratelimit-remaining-requests"] == "0"  # streams carry them too
    async for _ in stream.parse():
        pass
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model=MODEL, messages=HELLO)
    assert info.value.code == "rate_limit_exceeded"
    headers = info.value.response.headers
    assert headers["retry-after"] == "30"  # the first request leaves the window in 30 s
    assert headers["x-ratelimit-remaining-requests"] == "0"
    # Back to its initial state when the newest request has left the window too.
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    # Another key is not limited by this one's use.
    await router.client().chat.completions.create(model=MODEL, messages=HELLO)
    clock.now += 30  # the first request left the window: one more fits
    await client.chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=MODEL, messages=HELLO)
    clock.now += 60
    await client.completions.create(model=MODEL, prompt="hi")  # every API counts the same


async def test_tpm_counts_the_nodes_tokens_and_resets(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    body = orjson.dumps({"model": MODEL, "messages": HELLO})
    estimate = math.ceil(len(body) / 4)  # bytes / 4, before the node has counted
    used = (1 + 4) + 5  # the emulator: a word + 4 per message, then default_tokens
    limit = 2 * used + estimate - 1  # two fit; a third would need `estimate` more
    key, entry = policy_key("few-tokens", tpm=limit)
    router = await make_router(TWO_NODES, extra_keys=[entry])
    clock = fake_clock(router)
    url, headers = router.url + "/v1/chat/completions", router.headers(key)

    async def chat() -> tuple[int, Any, Any]:
        async with http.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.json(), resp.headers

    status, answer, first = await chat()
    assert status == 200 and answer["usage"]["total_tokens"] == used
    assert first["x-ratelimit-limit-tokens"] == str(limit)
    assert first["x-ratelimit-remaining-tokens"] == str(limit - estimate)
    status, _, second = await chat()  # the first's estimate was settled to its real count
    assert status == 200
    assert second["x-ratelimit-remaining-tokens"] == str(limit - used - estimate)
    status, error, refused = await chat()
    assert status == 429 and error["error"]["code"] == "rate_limit_exceeded"
    assert refused["x-ratelimit-remaining-tokens"] == str(limit - 2 * used)
    assert refused["retry-after"] == "60"
    clock.now += 60
    assert (await chat())[0] == 200


async def test_max_concurrency_refuses_one_more_request_in_progress(
    make_router: RouterFactory,
) -> None:
    key, entry = policy_key("one-at-a-time", max_concurrency=1)
    paced = EmulatorConfig(models=("llama3",), tokens_per_second=20, default_tokens=20)
    router = await make_router({"node-a": paced}, extra_keys=[entry])
    client = router.client(key=key)
    stream = await client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    chunks = stream.__aiter__()
    await chunks.__anext__()  # in progress: its first chunk has arrived
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model=MODEL, messages=HELLO)
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"] == "1"
    await router.client().chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)
    async for _ in chunks:
        pass
    await stream.close()
    await client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)


async def test_an_expired_key_gets_401(make_router: RouterFactory) -> None:
    now = datetime.now(UTC)
    old, old_entry = policy_key("old", expires_at=now - timedelta(seconds=1))
    new, new_entry = policy_key("new", expires_at=now + timedelta(days=1))
    router = await make_router(TWO_NODES, extra_keys=[old_entry, new_entry])
    with pytest.raises(openai.AuthenticationError) as info:
        await router.client(key=old).chat.completions.create(model=MODEL, messages=HELLO)
    assert info.value.code == "invalid_api_key"
    assert "expired" in info.value.message
    with pytest.raises(openai.AuthenticationError):
        await router.client(key=old).models.list()
    await router.client(key=new).chat.completions.create(model=MODEL, messages=HELLO)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/admin/usage"), ("GET", "/admin/nodes"), ("POST", "/admin/nodes/node-a/drain")],
    ids=["usage", "nodes", "drain"],
)
async def test_admin_endpoints_refuse_non_admin_keys(
    make_router: RouterFactory, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    admin, admin_entry = policy_key("ops", admin=True)
    router = await make_router(TWO_NODES, extra_keys=[admin_entry])
    async with http.request(method, router.url + path, headers=router.headers()) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "permission_denied"
    async with http.request(method, router.url + path, headers=router.headers(admin)) as resp:
        assert resp.status == 200
    assert not router.state.fleet.nodes["node-a"].draining or path.endswith("drain")


async def _sdk_usage(client: openai.AsyncOpenAI) -> dict[str, list[int]]:
    """Chats and completions, streamed and not; per model, what the SDK's usage said."""
    seen: dict[str, list[int]] = {}

    def add(model: str, prompt: int, completion: int) -> None:
        totals = seen.setdefault(model, [0, 0, 0])
        totals[0] += 1
        totals[1] += prompt
        totals[2] += completion

    for text in ("hello there", "a longer question about the fleet"):
        chat = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}]
        )
        assert chat.usage is not None
        add(MODEL, chat.usage.prompt_tokens, chat.usage.completion_tokens)
    stream = await client.chat.completions.create(
        model="ollama/mistral", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    async for chunk in stream:
        if chunk.usage is not None:
            add("ollama/mistral", chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
    completion = await client.completions.create(model="ollama/phi3", prompt="one two three")
    assert completion.usage is not None
    add("ollama/phi3", completion.usage.prompt_tokens, completion.usage.completion_tokens)
    return seen


async def test_usage_totals_equal_what_the_nodes_reported(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    admin, admin_entry = policy_key("ops", admin=True)
    team_b, b_entry = policy_key("team-b", rpm=100, tpm=100_000)  # through the limiter too
    router = await make_router(TWO_NODES, extra_keys=[admin_entry, b_entry])
    a_seen, b_seen = await asyncio.gather(
        _sdk_usage(router.client()), _sdk_usage(router.client(key=team_b))
    )
    with pytest.raises(openai.NotFoundError):  # no model ran: not counted
        await router.client().chat.completions.create(model="ollama/absent", messages=HELLO)
    async with http.get(router.url + "/admin/usage", headers=router.headers(admin)) as resp:
        assert resp.status == 200
        usage = await resp.json()
    assert usage["since"].endswith("Z")
    rows = {row["key"]: row for row in usage["data"]}
    assert sorted(rows) == ["team-b", "test"]
    for name, seen in (("test", a_seen), ("team-b", b_seen)):
        models = rows[name]["models"]
        assert sorted(models) == sorted(seen)
        for model, (requests, prompt, completion) in seen.items():
            assert models[model] == {
                "requests": requests,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        assert rows[name]["requests"] == sum(s[0] for s in seen.values())
        assert rows[name]["total_tokens"] == sum(s[1] + s[2] for s in seen.values())
    # The same counts in the metrics, by key name.
    async with http.get(router.url + "/metrics") as resp:
        text = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = (("key", "team-b"), ("kind", "completion"), ("model", "ollama/phi3"))
    assert samples[("jarvis_key_tokens_total", labels)] == b_seen["ollama/phi3"][2]
    labels = (("api", "/chat/completions"), ("key", "test"), ("model", MODEL))
    assert samples[("jarvis_key_requests_total", labels)] == 2
