"""`GET /openapi.json` is served without a key and tells the truth: real answers of the running
router (success and error, gathered and streamed, at both base URLs) validate against the
schemas it documents for that path, method, status and content type; each SSE event against
the stream's event schema and its JSON against `data`'s `contentSchema`; good request bodies
against the request schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from jsonschema import Draft202012Validator

from router.config import BreakerConfig, MetricsConfig
from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory

Spec = dict[str, Any]
LLAMA, THINKER, EMBED = "ollama/llama3", "ollama/qwen3", "ollama/nomic-embed-text"
USER = [{"role": "user", "content": "Tell me about the sky."}]
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": PARAMETERS,
    },
}
FLAT_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": PARAMETERS,
}
CLAUDE_TOOL = {"name": "get_weather", "input_schema": PARAMETERS}
CLAUDE = {"model": LLAMA, "max_tokens": 32, "messages": USER}


@dataclass
class Case:
    id: str
    method: str
    path: str  # below the base URL
    status: int
    body: Any = None
    key: str = "good"  # good, bad, none
    anthropic: bool = False  # the key as `x-api-key`
    root_only: bool = False
    events: list[str] = field(default_factory=list)  # filled in: the event types seen


def _chat(**kw: Any) -> dict[str, Any]:
    return {"model": LLAMA, "messages": USER, **kw}


CASES = [
    Case("models", "GET", "/models", 200),
    Case("models-no-key", "GET", "/models", 401, key="none"),
    Case("model", "GET", f"/models/{LLAMA}", 200),
    Case("model-unknown", "GET", "/models/ollama/nope", 404),
    Case("chat", "POST", "/chat/completions", 200, _chat(max_tokens=8)),
    Case("chat-stream", "POST", "/chat/completions", 200, _chat(stream=True)),
    Case(
        "chat-stream-usage",
        "POST",
        "/chat/completions",
        200,
        _chat(stream=True, stream_options={"include_usage": True}, tools=[TOOL]),
    ),
    Case("chat-tools", "POST", "/chat/completions", 200, _chat(tools=[TOOL])),
    Case("chat-n-logprobs", "POST", "/chat/completions", 200, _chat(n=2, logprobs=True)),
    Case("chat-thinking", "POST", "/chat/completions", 200, _chat(model=THINKER)),
    Case("chat-no-messages", "POST", "/chat/completions", 400, {"model": LLAMA}),
    Case("chat-unknown-model", "POST", "/chat/completions", 404, _chat(model="ollama/nope")),
    Case("chat-bad-key", "POST", "/chat/completions", 401, _chat(), key="bad"),
    Case("completions", "POST", "/completions", 200, {"model": LLAMA, "prompt": "Once"}),
    Case(
        "completions-stream",
        "POST",
        "/completions",
        200,
        {"model": LLAMA, "prompt": "Once", "stream": True},
    ),
    Case("completions-empty", "POST", "/completions", 400, {"model": LLAMA, "prompt": ""}),
    Case("embeddings", "POST", "/embeddings", 200, {"model": EMBED, "input": ["a", "b"]}),
    Case(
        "embeddings-base64",
        "POST",
        "/embeddings",
        200,
        {"model": EMBED, "input": "a", "encoding_format": "base64"},
    ),
    Case("embeddings-bad-input", "POST", "/embeddings", 400, {"model": EMBED, "input": 7}),
    Case("responses", "POST", "/responses", 200, {"model": LLAMA, "input": "Hi"}),
    Case(
        "responses-stream",
        "POST",
        "/responses",
        200,
        {"model": THINKER, "input": "Hi", "stream": True},
    ),
    Case(
        "responses-tools-stream",
        "POST",
        "/responses",
        200,
        {"model": LLAMA, "input": "Weather?", "tools": [FLAT_TOOL], "stream": True},
    ),
    Case(
        "responses-thinking-tools",
        "POST",
        "/responses",
        200,
        {"model": THINKER, "input": "Weather?", "tools": [FLAT_TOOL]},
    ),
    Case("responses-no-input", "POST", "/responses", 400, {"model": LLAMA}),
    Case("messages", "POST", "/messages", 200, CLAUDE, anthropic=True),
    Case(
        "messages-stream",
        "POST",
        "/messages",
        200,
        {**CLAUDE, "model": THINKER, "stream": True},
        anthropic=True,
    ),
    Case(
        "messages-tools-stream",
        "POST",
        "/messages",
        200,
        {**CLAUDE, "tools": [CLAUDE_TOOL], "stream": True},
        anthropic=True,
    ),
    Case(
        "messages-thinking-tools",
        "POST",
        "/messages",
        200,
        {**CLAUDE, "model": THINKER, "tools": [CLAUDE_TOOL]},
        anthropic=True,
    ),
    Case("messages-no-max", "POST", "/messages", 400, {"model": LLAMA, "messages": USER}),
    Case("messages-bad-key", "POST", "/messages", 401, CLAUDE, key="bad", anthropic=True),
    Case("messages-unknown", "POST", "/messages", 404, {**CLAUDE, "model": "ollama/nope"}),
    Case(
        "count-tokens",
        "POST",
        "/messages/count_tokens",
        200,
        {"model": LLAMA, "messages": USER},
        anthropic=True,
    ),
    Case("count-tokens-bad", "POST", "/messages/count_tokens", 400, {"model": LLAMA}),
    Case("healthz", "GET", "/healthz", 200, key="none", root_only=True),
    Case("readyz", "GET", "/readyz", 200, key="none", root_only=True),
    Case("metrics", "GET", "/metrics", 200, key="none", root_only=True),
    Case("openapi", "GET", "/openapi.json", 200, key="none", root_only=True),
]


def _operation(spec: Spec, method: str, path: str) -> dict[str, Any]:
    """The operation serving `path`: an API path item lists `/v1` among its servers."""
    for key, item in spec["paths"].items():
        bases = [s["url"].rstrip("/") for s in item.get("servers", [{"url": "/"}])]
        for base in bases:
            pattern = base + key.replace("{model}", "\x00")
            head, _, tail = pattern.partition("\x00")
            if (pattern == path) or (tail == "" and head != pattern and path.startswith(head)):
                return dict(item[method.lower()])
    raise AssertionError(f"{method} {path} is not in the document")


def _deref(spec: Spec, node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and not node["$ref"].startswith("#/components/schemas/"):
        *_, kind, name = node["$ref"].split("/")
        node = spec["components"][kind][name]
    return node


def validate(spec: Spec, schema: dict[str, Any], instance: Any) -> None:
    # The document's components beside the schema, so its `#/components/...` refs resolve.
    validator = Draft202012Validator({"components": spec["components"], **schema})
    errors = sorted(validator.iter_errors(instance), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def _events(raw: bytes) -> list[tuple[str | None, bytes]]:
    """(event name, data) per SSE event."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, b""
        for line in block.split("\n"):
            field_, _, value = line.partition(": ")
            if field_ == "event":
                name = value
            elif field_ == "data":
                data = value.encode()
        out.append((name, data))
    return out


def _content_schema(data: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of an event's `data` (beside `[DONE]` in chat and completions)."""
    if "contentSchema" in data:
        return dict(data["contentSchema"])
    return next(dict(b["contentSchema"]) for b in data["anyOf"] if "contentSchema" in b)


def check_answer(spec: Spec, case: Case, path: str, status: int, ctype: str, raw: bytes) -> None:
    operation = _operation(spec, case.method, path)
    responses = operation["responses"]
    response = _deref(spec, responses.get(str(status)) or responses["default"])
    media = response["content"][ctype]
    if ctype != "text/event-stream":
        body = raw.decode() if ctype == "text/plain" else orjson.loads(raw)
        validate(spec, media["schema"], body)
        return
    events = _events(raw)
    assert events, "an empty stream"
    for name, data in events:
        sse = {"data": data.decode()} if name is None else {"data": data.decode(), "event": name}
        validate(spec, media["schema"], sse)  # one event, as schemathesis reads it
        if data == b"[DONE]":
            assert name is None and case.method == "POST" and "completions" in path
            continue
        event = orjson.loads(data)
        validate(spec, _content_schema(media["schema"]["properties"]["data"]), event)
        if name is not None:  # a named event: the name is the data's type
            assert name == event["type"]
        case.events.append(event.get("type") or event.get("object") or "error")


async def run_case(
    spec: Spec, router: Router, http: aiohttp.ClientSession, case: Case, base: str
) -> None:
    path = ("" if case.root_only else base) + case.path
    if case.status == 200 and case.body is not None:
        request = _operation(spec, case.method, path)["requestBody"]
        validate(spec, request["content"]["application/json"]["schema"], case.body)
    key = {"good": router.key, "bad": "jrv_wrong", "none": None}[case.key]
    headers = {}
    if key is not None:
        headers = {"x-api-key": key} if case.anthropic else router.headers(key)
    async with http.request(
        case.method, router.url + path, json=case.body, headers=headers
    ) as resp:
        raw = await resp.read()
        assert resp.status == case.status, raw[:300]
        check_answer(spec, case, path, resp.status, resp.content_type, raw)


@pytest.fixture
async def fleet(make_router: RouterFactory) -> Router:
    return await make_router(
        {
            "node-a": EmulatorConfig(models=("llama3", "qwen3", "nomic-embed-text")),
            "node-b": EmulatorConfig(models=("llama3",)),
        }
    )


async def spec_of(router: Router, http: aiohttp.ClientSession) -> Spec:
    async with http.get(router.url + "/openapi.json") as resp:  # no key: a public document
        assert resp.status == 200 and resp.content_type == "application/json"
        spec: Spec = await resp.json()
    assert spec["openapi"].startswith("3.1")
    return spec


def test_every_schema_is_valid_json_schema() -> None:
    from router.api.openapi import document

    for schema in document()["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("base", ["/v1", ""], ids=["v1", "root"])
async def test_real_answers_match_the_document(
    fleet: Router, http: aiohttp.ClientSession, base: str
) -> None:
    spec = await spec_of(fleet, http)
    for case in CASES:
        if case.root_only and base == "":
            continue
        try:
            await run_case(spec, fleet, http, case, base)
        except AssertionError as exc:
            raise AssertionError(f"case {case.id} at {base or '/'}: {exc}") from exc
    # The streams showed what the schemas must cover: tool calls, thinking and usage.
    seen = {c.id: c.events for c in CASES}
    assert "response.reasoning_text.delta" in seen["responses-stream"]
    assert "response.function_call_arguments.done" in seen["responses-tools-stream"]
    assert "content_block_delta" in seen["messages-stream"]
    for case in CASES:
        case.events.clear()


async def test_failures_match_the_document(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """A stream that fails after it began (an error event in each API's stream schema), no
    healthy node (readyz 503) and /metrics behind a key (401)."""
    router = await make_router(
        {"node-a": EmulatorConfig(models=("llama3",))},
        metrics=MetricsConfig(require_key=True),
        breaker=BreakerConfig(failure_threshold=100),  # four failed streams keep it in
    )
    spec = await spec_of(router, http)
    router.nodes["node-a"].faults.die_after_tokens = 2
    streams = [
        Case("chat", "POST", "/chat/completions", 200, _chat(stream=True)),
        Case(
            "completions",
            "POST",
            "/completions",
            200,
            {"model": LLAMA, "prompt": "x", "stream": True},
        ),
        Case(
            "responses", "POST", "/responses", 200, {"model": LLAMA, "input": "x", "stream": True}
        ),
        Case("messages", "POST", "/messages", 200, {**CLAUDE, "stream": True}, anthropic=True),
    ]
    for case in streams:
        await run_case(spec, router, http, case, "/v1")
        assert "error" in case.events, (case.id, case.events)
    await run_case(
        spec, router, http, Case("metrics", "GET", "/metrics", 401, key="none", root_only=True), ""
    )
    await router.nodes["node-a"].kill()
    await router.state.health.check_all()
    await run_case(
        spec, router, http, Case("readyz", "GET", "/readyz", 503, key="none", root_only=True), ""
    )
