"""`router.wire.limits`: what counts as nesting, when a body is refused, when it is parsed."""

from __future__ import annotations

import orjson
import pytest

from router.errors import BadRequest
from router.wire.limits import SCAN_MAX_BYTES, check_body

PAD = b' "pad": "' + b"x" * SCAN_MAX_BYTES + b'"'  # makes a body big: parsed, not counted


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b'{"a": [[1], {"b": []}]}', 4),
        (b'{"a": "]]]]]]", "b": [[[[]]]]}', 5),  # closers in a string do not hide depth
        (b'{"a": "[[[[[[[[[[", "b": 1}', 1),  # openers in a string are no depth
        (b"[" * 1500 + b"]" * 1500, 1500),  # past orjson's own limit
    ],
    ids=["mixed", "closers-in-string", "openers-in-string", "past-orjson"],
)
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
def test_depth(body: bytes, depth: int, big: bool) -> None:
    if big and body.startswith(b"{"):
        body = body[:-1] + b"," + PAD + b"}"
    if depth < 1500:
        check_body(body, max_depth=depth, max_messages=10)
    if depth < 2:
        return
    with pytest.raises(BadRequest) as info:
        check_body(body, max_depth=depth - 1, max_messages=10)
    assert info.value.code == "json_too_deep"


def test_a_usual_small_body_is_not_parsed() -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "[[[{{{"}]}'
    assert check_body(body, max_depth=64, max_messages=10_000) is None


@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
def test_too_many_messages(big: bool) -> None:
    data = {"model": "m", "messages": [{"role": "user", "content": "hi"}] * 3}
    if big:
        data["pad"] = "x" * SCAN_MAX_BYTES
    body = orjson.dumps(data)
    assert check_body(body, max_depth=64, max_messages=3) in (None, data)
    with pytest.raises(BadRequest) as info:
        check_body(body, max_depth=64, max_messages=2)
    assert info.value.param == "messages"
    assert info.value.code == "array_above_max_length"


@pytest.mark.parametrize("body", [b"{nope", b"\xff\xfe" * 3000], ids=["bad", "binary-big"])
def test_what_is_not_json_is_left_to_the_parser(body: bytes) -> None:
    assert check_body(body, max_depth=1, max_messages=0) is None
