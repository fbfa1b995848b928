"""`router.wire.limits` on bytes: what counts as nesting and when a body is refused."""

from __future__ import annotations

import orjson
import pytest

from router.errors import BadRequest
from router.wire.limits import bracket_depth, check_body


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"{}", 1),
        (b"1", 0),
        (b'{"a": [[1], {"b": []}]}', 4),
        (b'{"a": "]]]]]]", "b": [[[[]]]]}', 5),  # closers in a string do not hide depth
        (b'{"a": "\\"[[[[", "b": 1}', 1),  # nor do openers after an escaped quote
        (b'{"a": "\\\\", "b": [[1]]}', 3),  # an escaped backslash ends before the quote
        (b'{"a": "\\\\\\"[[[", "b": [[1]]}', 3),
    ],
    ids=[
        "empty",
        "scalar",
        "mixed",
        "closers-in-string",
        "escaped-quote",
        "escaped-backslash",
        "both",
    ],
)
def test_bracket_depth(body: bytes, depth: int) -> None:
    assert bracket_depth(body) == depth
    if depth > 1:  # the exact check runs once the cheap bound (brackets counted) fails
        assert check_body(body, max_depth=depth, max_messages=10) in (None, orjson.loads(body))
        with pytest.raises(BadRequest):
            check_body(body, max_depth=depth - 1, max_messages=10)


def test_a_usual_body_is_not_parsed() -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "[[[{{{"}]}'
    assert check_body(body, max_depth=64, max_messages=10_000) is None


def test_a_body_that_had_to_be_parsed_is_returned() -> None:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}] * 3})
    assert check_body(body, max_depth=64, max_messages=2 + 1) == orjson.loads(body)
    with pytest.raises(BadRequest) as info:
        check_body(body, max_depth=64, max_messages=2)
    assert info.value.param == "messages"
    assert info.value.code == "array_above_max_length"


@pytest.mark.parametrize("body", [b"{nope", b"\xff\xfe", b"[" * 70], ids=["bad", "binary", "open"])
def test_what_is_not_json_is_left_to_the_parser_unless_too_deep(body: bytes) -> None:
    if body.startswith(b"[" * 70):
        with pytest.raises(BadRequest):
            check_body(body, max_depth=64, max_messages=10)
    else:
        assert check_body(body, max_depth=64, max_messages=10) is None
