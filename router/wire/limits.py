"""Limits on the shape of a JSON request body: how deep it nests, how many messages it holds.

A small body is checked by counting bytes (in C, no parse): it cannot nest deeper than it has
`{` and `[`, nor hold more messages than it has `{`, and a usual request passes on that alone.
A bigger one (where counting costs about what parsing does), or one that fails the bound, is
parsed and its containers walked; the parsed body is returned, so it need not be parsed again.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import BadRequest

# Up to here counting brackets is cheaper than a parse; above, most bodies are conversations
# whose `{` count fails the bound anyway.
SCAN_MAX_BYTES = 4096


def check_body(body: bytes, *, max_depth: int, max_messages: int) -> Any:
    """Raise `BadRequest` when `body` nests deeper than `max_depth` or has more than
    `max_messages` messages. Returns the parsed body when it had to be parsed, else None.
    A body that is not JSON passes: its parser says what is wrong with it."""
    if len(body) <= SCAN_MAX_BYTES:
        objects = body.count(b"{")
        if objects + body.count(b"[") <= max_depth and objects <= max_messages:
            return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg:  # nested past orjson's own limit (1024)
            raise _too_deep(max_depth) from None
        return None
    if _deeper_than(data, max_depth):
        raise _too_deep(max_depth)
    messages = data.get("messages") if isinstance(data, dict) else None
    if isinstance(messages, list) and len(messages) > max_messages:
        # OpenAI's own wording for an over-long array.
        raise BadRequest(
            f"Invalid 'messages': array too long. Expected an array with maximum length "
            f"{max_messages}, but got an array with length {len(messages)} instead.",
            param="messages",
            code="array_above_max_length",
        )
    return data


def _too_deep(max_depth: int) -> BadRequest:
    return BadRequest(
        f"The request body nests JSON arrays and objects deeper than this router accepts "
        f"(at most {max_depth} levels).",
        code="json_too_deep",
    )


def _deeper_than(value: object, limit: int) -> bool:
    """Whether parsed JSON nests deeper than `limit`; iterative, so no recursion limit."""
    if type(value) is not dict and type(value) is not list:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if type(node) is dict else node
        for child in children:
            if type(child) is dict or type(child) is list:
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False
