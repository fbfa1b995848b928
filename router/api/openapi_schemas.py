"""The OpenAPI document's `components.schemas`: request bodies, answers, stream events, errors.

Data, written by hand from what the wire modules send (`router.wire.to_openai`, `responses*`,
`anthropic*`, `embeddings`, `api.models_view`): each answer's required fields and their types,
enough to validate a real answer (tests/integration/test_openapi.py does, for every endpoint).
Requests list the fields the router reads; others are accepted and ignored, as OpenAI's own
SDKs send fields this router does not use. JSON Schema 2020-12, as OpenAPI 3.1 takes it.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """An object with these required and optional properties (others allowed)."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def const(value: str) -> Schema:
    return {"type": "string", "const": value}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}
ANY_LIST: Schema = {"type": "array"}
STRINGS: Schema = {"type": "array", "items": STR}
NAT: Schema = {"type": "integer", "minimum": 0}
NONEMPTY: Schema = {"type": "string", "minLength": 1}
# `tool_choice`: a mode, or an object naming a function (or Responses' `allowed_tools`).
TOOL_CHOICE: Schema = {"anyOf": [{"enum": ["none", "auto", "required"]}, {"type": "object"}]}
MODEL_ID: Schema = {"type": "string", "minLength": 1, "examples": ["ollama/llama3"]}


def ranged(kind: str, lo: float, hi: float | None = None) -> Schema:
    out: Schema = {"type": kind, "minimum": lo}
    if hi is not None:
        out["maximum"] = hi
    return out


# -- errors -----------------------------------------------------------------------------------
ERRORS: dict[str, Schema] = {
    "ErrorResponse": obj(
        {
            "error": obj(
                {
                    "message": STR,
                    "type": STR,
                    "param": nullable(STR),
                    "code": nullable(STR),
                }
            )
        }
    ),
    "AnthropicErrorResponse": obj(
        {"type": const("error"), "error": obj({"type": STR, "message": STR})},
        {"request_id": STR},
    ),
}

# -- models, health ---------------------------------------------------------------------------
MODELS: dict[str, Schema] = {
    "Model": obj(
        {"id": STR, "object": const("model"), "created": INT, "owned_by": STR},
        {"context_length": INT, "capabilities": STRINGS, "targets": STRINGS},
    ),
    "ModelList": obj({"object": const("list"), "data": {"type": "array", "items": ref("Model")}}),
    "Health": obj({"status": const("ok")}),
    "Ready": obj({"status": STR, "healthy_nodes": NAT}),
}

# -- chat and completions ---------------------------------------------------------------------
_SAMPLING: dict[str, Schema] = {
    "temperature": ranged("number", 0, 2),
    "top_p": ranged("number", 0, 1),
    "max_tokens": ranged("integer", 1),
    "stop": {"anyOf": [STR, {"type": "array", "items": STR, "maxItems": 4}]},
    "seed": INT,
    "presence_penalty": ranged("number", -2, 2),
    "frequency_penalty": ranged("number", -2, 2),
    "n": ranged("integer", 1, 128),
    "stream": BOOL,
    "stream_options": {"type": "object", "properties": {"include_usage": BOOL}},
    "user": STR,
}
USAGE = obj({"prompt_tokens": NAT, "completion_tokens": NAT, "total_tokens": NAT})
_TOOL_CALL = obj(
    {"id": STR, "type": const("function"), "function": obj({"name": STR, "arguments": STR})},
    {"index": NAT},
)
_FINISH = enum("stop", "length", "tool_calls", "content_filter")
_HEAD = {"id": STR, "created": INT, "model": STR, "system_fingerprint": STR}

CHAT: dict[str, Schema] = {
    "ChatMessage": obj(
        {"role": enum("system", "developer", "user", "assistant", "tool", "function")},
        {"content": {"type": ["string", "array", "null"]}, "name": STR, "tool_calls": ANY_LIST},
    ),
    "CreateChatCompletionRequest": obj(
        {
            "model": MODEL_ID,
            "messages": {"type": "array", "minItems": 1, "items": ref("ChatMessage")},
        },
        {
            **_SAMPLING,
            "max_completion_tokens": ranged("integer", 1),
            "tools": {"type": "array", "items": OBJ},
            "tool_choice": TOOL_CHOICE,
            "parallel_tool_calls": BOOL,
            "response_format": obj({"type": enum("text", "json_object", "json_schema")}),
            "reasoning_effort": STR,
            "logprobs": BOOL,
            "top_logprobs": ranged("integer", 0, 20),
        },
    ),
    "ChatCompletion": obj(
        {
            **_HEAD,
            "object": const("chat.completion"),
            "choices": {
                "type": "array",
                "minItems": 1,
                "items": obj(
                    {
                        "index": NAT,
                        "message": obj(
                            {"role": const("assistant"), "content": nullable(STR)},
                            {
                                "refusal": nullable(STR),
                                "tool_calls": {"type": "array", "items": _TOOL_CALL},
                                "reasoning_content": STR,
                            },
                        ),
                        "logprobs": nullable(OBJ),
                        "finish_reason": _FINISH,
                    }
                ),
            },
            "usage": USAGE,
        }
    ),
    "ChatCompletionChunk": obj(
        {
            **_HEAD,
            "object": const("chat.completion.chunk"),
            "choices": {
                "type": "array",
                "items": obj(
                    {
                        "index": NAT,
                        "delta": {
                            "type": "object",
                            "properties": {
                                "role": const("assistant"),
                                "content": nullable(STR),
                                "reasoning_content": STR,
                                "tool_calls": {"type": "array", "items": _TOOL_CALL},
                            },
                        },
                        "finish_reason": nullable(_FINISH),
                    },
                    {"logprobs": nullable(OBJ)},
                ),
            },
        },
        {"usage": USAGE},
    ),
    "CreateCompletionRequest": obj(
        {
            "model": MODEL_ID,
            "prompt": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": NONEMPTY, "minItems": 1, "maxItems": 1},
                ]
            },
        },
        {**_SAMPLING, "suffix": STR, "best_of": ranged("integer", 1, 128), "logprobs": INT},
    ),
    "Completion": obj(
        {
            **_HEAD,
            "object": const("text_completion"),
            "choices": {
                "type": "array",
                "minItems": 1,
                "items": obj(
                    {"text": STR, "index": NAT, "logprobs": nullable(OBJ), "finish_reason": _FINISH}
                ),
            },
            "usage": USAGE,
        }
    ),
    "CompletionChunk": obj(
        {
            **_HEAD,
            "object": const("text_completion"),
            "choices": {
                "type": "array",
                "items": obj({"text": STR, "index": NAT, "finish_reason": nullable(_FINISH)}),
            },
        },
        {"usage": USAGE},
    ),
    # One `data:` event of a chat or completions stream: a chunk, or the error event of a
    # stream that failed after it began (`data: [DONE]` ends it and is not JSON).
    "ChatStreamEvent": {"anyOf": [ref("ChatCompletionChunk"), ref("ErrorResponse")]},
    "CompletionStreamEvent": {"anyOf": [ref("CompletionChunk"), ref("ErrorResponse")]},
}

# -- embeddings -------------------------------------------------------------------------------
EMBEDDINGS: dict[str, Schema] = {
    "CreateEmbeddingRequest": obj(
        {
            "model": MODEL_ID,
            "input": {
                "anyOf": [
                    NONEMPTY,
                    {"type": "array", "items": NONEMPTY, "minItems": 1, "maxItems": 2048},
                ]
            },
        },
        {
            "encoding_format": enum("float", "base64"),
            "dimensions": ranged("integer", 1),
            "user": STR,
        },
    ),
    "EmbeddingList": obj(
        {
            "object": const("list"),
            "data": {
                "type": "array",
                "items": obj(
                    {
                        "object": const("embedding"),
                        "index": NAT,
                        # floats, or little-endian float32 bytes in base64
                        "embedding": {"anyOf": [{"type": "array", "items": NUM}, STR]},
                    }
                ),
            },
            "model": STR,
            "usage": obj({"prompt_tokens": NAT, "total_tokens": NAT}),
        }
    ),
}
