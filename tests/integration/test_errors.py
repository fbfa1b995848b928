"""Every error a client can cause: the right status, the OpenAI envelope, the SDK exception."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from router.config import ServerConfig
from tests.conftest import Router, RouterFactory, wait_until

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def _assert_envelope(body: Any, *, param: str | None = None, code: str | None = None) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param
    if code is not None:
        assert body["error"]["code"] == code


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "ollama/llama3"}', "messages"),
        (b'{"model": "ollama/llama3", "messages": "hi"}', "messages"),
        (b'{"model": "ollama/llama3", "messages": []}', "messages"),
        (b'{"model": 7, "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (
            b'{"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}], '
            b'"temperature": "hot"}',
            "temperature",
        ),
        (
            b'{"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}], '
            b'"temperature": 3}',
            "temperature",
        ),
        (
            b'{"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}], '
            b'"max_tokens": 0}',
            "max_tokens",
        ),
        (
            b'{"model": "ollama/llama3", "messages": [{"role": "wizard", "content": "hi"}]}',
            "messages[0].role",
        ),
        (
            b'{"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}], '
            b'"stream": "yes"}',
            "stream",
        ),
    ],
    ids=[
        "bad-json",
        "not-object",
        "no-model",
        "no-messages",
        "messages-string",
        "messages-empty",
        "model-number",
        "temperature-type",
        "temperature-range",
        "max-tokens-zero",
        "bad-role",
        "stream-type",
    ],
)
async def test_bad_chat_bodies_are_400_naming_param(
    router: Router, http, body: bytes, param: str | None
) -> None:
    async with http.post(
        router.url + "/v1/chat/completions",
        data=body,
        headers={**router.headers(), "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"].startswith("application/json")
        _assert_envelope(await resp.json(), param=param)


async def test_bad_completion_prompt_is_400(router: Router, http) -> None:
    for body in (
        {"model": "ollama/llama3"},
        {"model": "ollama/llama3", "prompt": 5},
        {"model": "ollama/llama3", "prompt": ["a", "b"]},
    ):
        async with http.post(
            router.url + "/v1/completions", json=body, headers=router.headers()
        ) as resp:
            assert resp.status == 400
            _assert_envelope(await resp.json(), param="prompt")


async def test_sdk_bad_request_error_carries_param(router: Router) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await router.client().chat.completions.create(
            model="ollama/llama3", messages=MESSAGES, top_p=1.5
        )
    assert info.value.status_code == 400
    assert info.value.param == "top_p"
    assert info.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    "key", [None, "jrv_wrong", "Basic abc"], ids=["missing", "wrong", "not-bearer"]
)
async def test_missing_or_wrong_key_is_401_and_never_echoed(
    router: Router, http, key: str | None
) -> None:
    headers = {} if key is None else {"Authorization": key if " " in key else f"Bearer {key}"}
    async with http.get(router.url + "/v1/models", headers=headers) as resp:
        assert resp.status == 401
        text = await resp.text()
        body = await resp.json()
    _assert_envelope(body, code="invalid_api_key")
    assert body["error"]["type"] == "invalid_request_error"
    assert "jrv_wrong" not in text and router.key not in text


async def test_sdk_raises_authentication_error(router: Router) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        await router.client(key="jrv_nope").chat.completions.create(
            model="ollama/llama3", messages=MESSAGES
        )
    assert info.value.code == "invalid_api_key"


async def test_health_endpoints_need_no_key(router: Router, http) -> None:
    for path in ("/healthz", "/readyz"):
        async with http.get(router.url + path) as resp:
            assert resp.status == 200


async def test_unknown_model_is_404_model_not_found(router: Router) -> None:
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as info:
            await router.client().chat.completions.create(
                model="ollama/nope", messages=MESSAGES, stream=stream
            )
        assert info.value.code == "model_not_found"
        assert info.value.param == "model"


async def test_oversized_body_is_413(make_router: RouterFactory, http) -> None:
    router = await make_router(server=ServerConfig(max_body_bytes=4096))
    big = {"model": "ollama/llama3", "messages": [{"role": "user", "content": "x" * 10_000}]}
    async with http.post(
        router.url + "/v1/chat/completions", json=big, headers=router.headers()
    ) as resp:
        assert resp.status == 413
        _assert_envelope(await resp.json(), code="request_too_large")
    with pytest.raises(openai.APIStatusError) as info:
        await router.client().chat.completions.create(
            model="ollama/llama3", messages=big["messages"]
        )
    assert info.value.status_code == 413


async def test_no_healthy_node_is_503_with_retry_after(router: Router, http) -> None:
    await router.nodes["node-a"].kill()
    await wait_until(lambda: not router.state.fleet.nodes["node-a"].healthy)
    body = {"model": "ollama/mistral", "messages": MESSAGES}
    async with http.post(
        router.url + "/v1/chat/completions", json=body, headers=router.headers()
    ) as resp:
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) >= 1
        _assert_envelope(await resp.json(), code="no_healthy_node")
    with pytest.raises(openai.InternalServerError) as info:
        await router.client().chat.completions.create(model="ollama/mistral", messages=MESSAGES)
    assert info.value.status_code == 503
    await router.nodes["node-a"].restart()


async def test_unknown_path_and_method(router: Router, http) -> None:
    async with http.get(router.url + "/v1/nothing", headers=router.headers()) as resp:
        assert resp.status == 404
        body = await resp.json()
        _assert_envelope(body, code="unknown_url")
        assert body["error"]["message"] == "Unknown request URL: GET /v1/nothing."
    async with http.get(router.url + "/v1/chat/completions", headers=router.headers()) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
        _assert_envelope(await resp.json(), code="method_not_allowed")


async def test_unknown_reasoning_effort_is_400(router: Router) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await router.client().chat.completions.create(
            model="ollama/llama3", messages=MESSAGES, reasoning_effort="extreme"
        )
    assert info.value.param == "reasoning_effort"


async def test_node_4xx_goes_back_as_openai_error_without_failover(router: Router) -> None:
    # llama3 has no thinking capability: Ollama answers 400 `"…" does not support thinking`.
    with pytest.raises(openai.BadRequestError) as info:
        await router.client().chat.completions.create(
            model="ollama/llama3", messages=MESSAGES, reasoning_effort="high"
        )
    assert "does not support thinking" in info.value.message
    assert info.value.type == "invalid_request_error"
    tried = sum(len(n.stats.bodies) for n in router.nodes.values())
    assert tried == 1  # the request's own fault: not retried on the other node
    assert all(n.healthy for n in router.state.fleet.nodes.values())
