"""The OpenAPI schemas of the two APIs with named SSE events: OpenAI's Responses API
(`router.wire.responses*`) and Anthropic's Messages API (`router.wire.anthropic*`).

Each stream's event schema is an `anyOf` of one schema per group of event `type`s, each with
the fields those events carry, so an event with a type the router does not send, or without
its fields, fails validation. The SSE `event:` name equals the data's `type`.
"""

from __future__ import annotations

from router.api.openapi_schemas import (
    ANY_LIST,
    BOOL,
    INT,
    MODEL_ID,
    NAT,
    NUM,
    OBJ,
    STR,
    STRINGS,
    TOOL_CHOICE,
    Schema,
    const,
    enum,
    nullable,
    obj,
    ranged,
    ref,
)


def _events(types: tuple[str, ...], fields: dict[str, Schema], *, seq: bool) -> Schema:
    head: dict[str, Schema] = {"type": enum(*types)}
    if seq:
        head["sequence_number"] = NAT
    return obj({**head, **fields})


# -- Responses --------------------------------------------------------------------------------
_OUTPUT_TEXT = obj({"type": const("output_text"), "text": STR, "annotations": ANY_LIST})
_REASONING_TEXT = obj({"type": const("reasoning_text"), "text": STR})
_ITEM_STATUS = enum("in_progress", "completed", "incomplete")
_WHERE = {"item_id": STR, "output_index": NAT, "content_index": NAT}

RESPONSES: dict[str, Schema] = {
    "CreateResponseRequest": obj(
        {"model": MODEL_ID, "input": {"type": ["string", "array"]}},
        {
            "instructions": nullable(STR),
            "stream": BOOL,
            "temperature": ranged("number", 0, 2),
            "top_p": ranged("number", 0, 1),
            "max_output_tokens": ranged("integer", 1),
            "tools": {"type": "array", "items": OBJ},
            "tool_choice": TOOL_CHOICE,
            "parallel_tool_calls": BOOL,
            "text": OBJ,
            "reasoning": nullable(OBJ),
            "metadata": {"type": "object", "additionalProperties": STR},
            "user": STR,
            "store": BOOL,
        },
    ),
    "OutputItem": {
        "anyOf": [
            obj(
                {
                    "id": STR,
                    "type": const("message"),
                    "status": _ITEM_STATUS,
                    "role": const("assistant"),
                    "content": {"type": "array", "items": _OUTPUT_TEXT},
                }
            ),
            obj(
                {
                    "id": STR,
                    "type": const("reasoning"),
                    "summary": ANY_LIST,
                    "content": {"type": "array", "items": _REASONING_TEXT},
                },
                {"status": _ITEM_STATUS},
            ),
            obj(
                {
                    "id": STR,
                    "type": const("function_call"),
                    "status": _ITEM_STATUS,
                    "call_id": STR,
                    "name": STR,
                    "arguments": STR,
                }
            ),
        ]
    },
    "ResponseUsage": obj(
        {
            "input_tokens": NAT,
            "output_tokens": NAT,
            "total_tokens": NAT,
            "input_tokens_details": obj({"cached_tokens": NAT}),
            "output_tokens_details": obj({"reasoning_tokens": NAT}),
        }
    ),
    "Response": obj(
        {
            "id": STR,
            "object": const("response"),
            "created_at": INT,
            "status": enum("in_progress", "completed", "incomplete", "failed"),
            "error": nullable(OBJ),
            "incomplete_details": nullable(obj({"reason": STR})),
            "model": STR,
            "output": {"type": "array", "items": ref("OutputItem")},
            "usage": nullable(ref("ResponseUsage")),
        },
        {
            "instructions": nullable(STR),
            "max_output_tokens": nullable(INT),
            "metadata": OBJ,
            "parallel_tool_calls": BOOL,
            "temperature": NUM,
            "top_p": NUM,
            "tools": ANY_LIST,
            "tool_choice": {"type": ["string", "object"]},
            "text": OBJ,
            "reasoning": nullable(OBJ),
            "truncation": STR,
            "user": nullable(STR),
        },
    ),
    "ResponseStreamEvent": {
        "anyOf": [
            _events(
                (
                    "response.created",
                    "response.in_progress",
                    "response.completed",
                    "response.incomplete",
                ),
                {"response": ref("Response")},
                seq=True,
            ),
            _events(
                ("response.output_item.added", "response.output_item.done"),
                {"output_index": NAT, "item": ref("OutputItem")},
                seq=True,
            ),
            _events(
                ("response.content_part.added", "response.content_part.done"),
                {**_WHERE, "part": {"anyOf": [_OUTPUT_TEXT, _REASONING_TEXT]}},
                seq=True,
            ),
            _events(
                ("response.output_text.delta", "response.reasoning_text.delta"),
                {**_WHERE, "delta": STR},
                seq=True,
            ),
            _events(
                ("response.output_text.done", "response.reasoning_text.done"),
                {**_WHERE, "text": STR},
                seq=True,
            ),
            _events(
                ("response.function_call_arguments.delta",),
                {"item_id": STR, "output_index": NAT, "delta": STR},
                seq=True,
            ),
            _events(
                ("response.function_call_arguments.done",),
                {"item_id": STR, "output_index": NAT, "name": STR, "arguments": STR},
                seq=True,
            ),
            # A failure after the stream began; the nested `error` makes the SDK raise.
            _events(
                ("error",),
                {"code": nullable(STR), "message": STR, "error": obj({"message": STR})},
                seq=True,
            ),
        ]
    },
}

# -- Anthropic Messages -----------------------------------------------------------------------
_BLOCK = {
    "anyOf": [
        obj({"type": const("text"), "text": STR}),
        obj({"type": const("thinking"), "thinking": STR, "signature": STR}),
        obj({"type": const("tool_use"), "id": STR, "name": STR, "input": OBJ}),
    ]
}
_STOP = nullable(enum("end_turn", "max_tokens", "stop_sequence", "tool_use"))
_MESSAGE_FIELDS: dict[str, Schema] = {
    "model": MODEL_ID,
    "messages": {
        "type": "array",
        "minItems": 1,
        "items": obj({"role": enum("user", "assistant"), "content": {"type": ["string", "array"]}}),
    },
}
_MESSAGE_OPTIONAL: dict[str, Schema] = {
    "system": {"type": ["string", "array"]},
    "stop_sequences": STRINGS,
    "temperature": ranged("number", 0, 1),
    "top_p": ranged("number", 0, 1),
    "top_k": INT,
    "tools": {"type": "array", "items": OBJ},
    "tool_choice": OBJ,
    "thinking": OBJ,
    "metadata": OBJ,
}

MESSAGES: dict[str, Schema] = {
    "CreateMessageRequest": obj(
        {**_MESSAGE_FIELDS, "max_tokens": ranged("integer", 1)},
        {**_MESSAGE_OPTIONAL, "stream": BOOL},
    ),
    "CountTokensRequest": obj(_MESSAGE_FIELDS, _MESSAGE_OPTIONAL),
    "Message": obj(
        {
            "id": STR,
            "type": const("message"),
            "role": const("assistant"),
            "model": STR,
            "content": {"type": "array", "items": _BLOCK},
            "stop_reason": _STOP,
            "stop_sequence": nullable(STR),
            "usage": obj({"input_tokens": NAT, "output_tokens": NAT}),
        }
    ),
    "TokenCount": obj({"input_tokens": NAT}),
    "MessageStreamEvent": {
        "anyOf": [
            _events(("message_start",), {"message": ref("Message")}, seq=False),
            _events(("ping", "message_stop"), {}, seq=False),
            _events(("content_block_start",), {"index": NAT, "content_block": _BLOCK}, seq=False),
            _events(
                ("content_block_delta",),
                {
                    "index": NAT,
                    "delta": {
                        "anyOf": [
                            obj({"type": const("text_delta"), "text": STR}),
                            obj({"type": const("thinking_delta"), "thinking": STR}),
                            obj({"type": const("input_json_delta"), "partial_json": STR}),
                        ]
                    },
                },
                seq=False,
            ),
            _events(("content_block_stop",), {"index": NAT}, seq=False),
            _events(
                ("message_delta",),
                {
                    "delta": obj({"stop_reason": _STOP, "stop_sequence": nullable(STR)}),
                    "usage": obj({"output_tokens": NAT}),
                },
                seq=False,
            ),
            ref("AnthropicErrorResponse"),  # `event: error`: a failure after the stream began
        ]
    },
}
