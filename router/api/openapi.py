"""`GET /openapi.json`: the public API as an OpenAPI 3.1 document, built once at import.

Served without a key, like `/healthz`: OpenAI and Anthropic publish their specs, and this one
says nothing about the fleet (no node, model or key). Schemas live in `openapi_schemas` and
`openapi_events`; this module lays out the paths. The API paths are served at two base URLs,
`/v1` (OpenAI's SDKs, and Anthropic's, whose paths hold the `/v1`) and the root, written as
each path item's `servers`; `/healthz`, `/readyz`, `/metrics` and this document are at the root.

Streams: a `text/event-stream` schema describes one event, `{event?, data}`, as OpenAPI 3.2's
`itemSchema` does (and schemathesis validates); `data` is a JSON string whose `contentSchema`
is the API's event schema. Kept true by tests/integration/test_openapi.py, which validates real
answers (each event's JSON too) against this document.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from router import __version__
from router.api.openapi_events import MESSAGES, RESPONSES
from router.api.openapi_schemas import CHAT, EMBEDDINGS, ERRORS, MODELS, STR, Schema, ref

_API_SERVERS = [
    {"url": "/v1", "description": "the base URL OpenAI's SDKs take"},
    {"url": "/", "description": "the same API at the root"},
]
_OPENAI_ERRORS = (400, 401, 403, 404, 408, 413, 429, 503)
_ANTHROPIC_ERRORS = (400, 401, 403, 404, 408, 413, 429, 503)
# Either credential works on every path; Anthropic's SDKs send `x-api-key`.
_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyHeader": []}]


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(anthropic: bool = False) -> dict[str, Any]:
    name = "AnthropicError" if anthropic else "Error"
    codes = _ANTHROPIC_ERRORS if anthropic else _OPENAI_ERRORS
    out: dict[str, Any] = {str(c): {"$ref": f"#/components/responses/{name}"} for c in codes}
    out["default"] = {"$ref": f"#/components/responses/{name}"}
    return out


def _streamed(schema: str, event: str, description: str, *, done: bool = False) -> Schema:
    """A 200 that is JSON, or with `"stream": true` server-sent events (`done`: the stream
    ends with the non-JSON `data: [DONE]`, as OpenAI's chat and completions streams do)."""
    data: Schema = {"contentMediaType": "application/json", "contentSchema": ref(event)}
    if done:
        data = {"anyOf": [{"const": "[DONE]"}, data]}
    return {
        "description": description,
        "content": {
            "application/json": {"schema": ref(schema)},
            # One server-sent event (as OpenAPI 3.2's `itemSchema` and schemathesis read it):
            # its `data` is JSON of the event schema.
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "event": STR,
                        "data": {"type": "string", **data},
                    },
                }
            },
        },
    }


def _post(op_id: str, summary: str, request: str, ok: Schema, *, anthropic: bool = False) -> Schema:
    return {
        "post": {
            "operationId": op_id,
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref(request)}},
            },
            "responses": {"200": ok, **_errors(anthropic)},
        },
        "servers": _API_SERVERS,
    }


def _paths() -> dict[str, Any]:
    model_param = {
        "name": "model",
        "in": "path",
        "required": True,
        "description": "a model id as /models lists it, e.g. `ollama/llama3`",
        "schema": {"type": "string", "minLength": 1},
    }
    open_: dict[str, Any] = {"security": []}
    return {
        "/models": {
            "get": {
                "operationId": "listModels",
                "summary": "The models the key may use, that some healthy node serves",
                "responses": {"200": _json(ref("ModelList"), "the models"), **_errors()},
            },
            "servers": _API_SERVERS,
        },
        "/models/{model}": {
            "get": {
                "operationId": "retrieveModel",
                "parameters": [model_param],
                "responses": {"200": _json(ref("Model"), "the model"), **_errors()},
            },
            "servers": _API_SERVERS,
        },
        "/chat/completions": _post(
            "createChatCompletion",
            "OpenAI chat completions",
            "CreateChatCompletionRequest",
            _streamed("ChatCompletion", "ChatStreamEvent", "the completion", done=True),
        ),
        "/completions": _post(
            "createCompletion",
            "OpenAI (legacy) text completions",
            "CreateCompletionRequest",
            _streamed("Completion", "CompletionStreamEvent", "the completion", done=True),
        ),
        "/embeddings": _post(
            "createEmbedding",
            "OpenAI embeddings",
            "CreateEmbeddingRequest",
            _json(ref("EmbeddingList"), "the vectors, in input order"),
        ),
        "/responses": _post(
            "createResponse",
            "OpenAI Responses API (stateless: no `previous_response_id`, no `store`)",
            "CreateResponseRequest",
            _streamed("Response", "ResponseStreamEvent", "the response"),
        ),
        "/messages": _post(
            "createMessage",
            "Anthropic Messages API; errors in Anthropic's envelope",
            "CreateMessageRequest",
            _streamed("Message", "MessageStreamEvent", "the message"),
            anthropic=True,
        ),
        "/messages/count_tokens": _post(
            "countMessageTokens",
            "Anthropic token counting (the node's own count of the rendered prompt)",
            "CountTokensRequest",
            _json(ref("TokenCount"), "the count"),
            anthropic=True,
        ),
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the router process answers",
                **open_,
                "responses": {"200": _json(ref("Health"), "alive")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: at least one node is healthy",
                **open_,
                "responses": {
                    "200": _json(ref("Ready"), "ready"),
                    "503": _json(ref("Ready"), "no healthy node"),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (a key only with `metrics.require_key`; absent "
                "here when `metrics.port` serves them apart)",
                "security": [{}, *_SECURITY],
                "responses": {
                    "200": {
                        "description": "the Prometheus text format",
                        "content": {"text/plain": {"schema": STR}},
                    },
                    **_errors(),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                **open_,
                "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
            }
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a new dict on each call; the route serves `DOCUMENT`)."""
    schemas = {**ERRORS, **MODELS, **CHAT, **EMBEDDINGS, **RESPONSES, **MESSAGES}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Jarvis Router",
            "version": __version__,
            "description": "An OpenAI-compatible (and Anthropic Messages) API in front of a "
            "fleet of Ollama nodes. Model ids are `ollama/<name>` or catalog names.",
        },
        "servers": [{"url": "/"}],
        "security": _SECURITY,
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "jrv_…"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": schemas,
            "responses": {
                "Error": _json(ref("ErrorResponse"), "an error, in OpenAI's envelope"),
                "AnthropicError": _json(
                    ref("AnthropicErrorResponse"), "an error, in Anthropic's envelope"
                ),
            },
        },
    }


DOCUMENT = orjson.dumps(document())  # built once: no per-request work


async def openapi_json(request: web.Request) -> web.StreamResponse:
    return web.Response(body=DOCUMENT, content_type="application/json")
