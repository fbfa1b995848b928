"""Limits on the shape of a JSON request body: how deep it nests, how many messages it holds.

`check_body` first counts bytes (two passes in C, no parse): a body cannot nest deeper than it
has `{` and `[`, and cannot hold more messages than it has `{`. A usual request passes on that
alone. Only one that fails the bound (a long conversation, a big tool schema) is parsed and
walked; the parsed body is returned, so the caller need not parse it again.
"""

from __future__ import annotations

from array import array
from itertools import accumulate
from typing import Any

import orjson

from router.errors import BadRequest

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes


def check_body(body: bytes, *, max_depth: int, max_messages: int) -> Any:
    """Raise `BadRequest` when `body` nests deeper than `max_depth` or has more than
    `max_messages` messages. Returns the parsed body when it had to be parsed, else None.
    A body that is not JSON passes: its parser says what is wrong with it."""
    opening = body.count(b"{")
    maybe_deep = opening + body.count(b"[") > max_depth
    if not maybe_deep and opening <= max_messages:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        # Not JSON, or nested past orjson's own limit (1024): say which, it is a rare path.
        if maybe_deep and bracket_depth(body) > max_depth:
            raise _too_deep(max_depth) from None
        return None
    if maybe_deep and _deeper_than(data, max_depth):
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


def bracket_depth(body: bytes) -> int:
    """How deep the brackets of JSON text nest, not counting those inside strings."""
    # In a JSON string every backslash starts a two-byte escape: drop `\\`, then `\"`, and
    # the quotes left delimit the strings.
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(plain.split(b'"')[::2])
    steps = outside.translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", steps)), default=0)
