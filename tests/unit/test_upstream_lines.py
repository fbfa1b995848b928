"""`LineReader.parse_lines`: one read's NDJSON lines, up to the done line; a bad line is returned
as the error, after the good lines before it."""

from __future__ import annotations

from typing import Any, cast

import pytest

from router.config import NodeConfig
from router.fleet.registry import NodeState
from router.upstream.lines import LineReader
from router.upstream.outcome import Outcome

TOKEN = b'{"message":{"content":"a"},"done":false}'
DONE = b'{"done":true,"eval_count":1}'


@pytest.mark.parametrize(
    ("raws", "good", "outcome", "message"),
    [
        ([TOKEN, TOKEN], 2, None, None),
        ([TOKEN, DONE, b"not json"], 2, None, None),  # nothing after done is read
        ([TOKEN, b"{nope", TOKEN], 1, Outcome.PROTOCOL_ERROR, "node n sent invalid JSON"),
        ([b"[1]"], 0, Outcome.PROTOCOL_ERROR, "node n sent a non-object line"),
        ([TOKEN, b'{"error":"boom"}'], 1, Outcome.STREAM_ERROR, "node n failed: boom"),
        ([], 0, None, None),
    ],
    ids=["tokens", "stops-at-done", "invalid-json", "not-an-object", "error-line", "empty"],
)
def test_parse_lines(
    raws: list[bytes], good: int, outcome: Outcome | None, message: str | None
) -> None:
    reader = LineReader(cast(Any, None), NodeState(NodeConfig("n", "http://127.0.0.1:1")))
    lines, error = reader.parse_lines(raws)
    assert len(lines) == good and all(isinstance(line, dict) for line in lines)
    assert (error and error.outcome) == outcome
    assert (error and error.message) == message
