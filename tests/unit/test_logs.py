"""The request line written straight to the stream is the line `JsonFormatter` makes."""

from __future__ import annotations

import io
import logging
import re
from typing import Any

import orjson
import pytest

from router.obs.logs import REQUEST_LOGGER, JsonFormatter, RequestLog

FIELDS: dict[str, Any] = {
    "request_id": "abc",
    "key_name": "test",
    "endpoint": "/chat/completions",
    "model": "llama3 \u00e9",
    "node": None,
    "attempts": 1,
    "stream": False,
    "status": 200,
    "ttft_ms": 1.25,
    "duration_ms": 3.5,
    "prompt_tokens": 9,
    "completion_tokens": 8,
    "client_disconnected": False,
    "error": None,
}


def _json_handler(stream: io.StringIO) -> logging.StreamHandler[io.StringIO]:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    return handler


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "through-logging"])
def test_the_line_is_the_formatters_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, direct: bool
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    stream = io.StringIO()
    handlers: list[logging.Handler] = [_json_handler(stream)]
    if not direct:  # a second handler (here pytest's capture) sends the line through logging
        handlers.append(caplog.handler)
    monkeypatch.setattr(logging.root, "handlers", handlers)
    logger = logging.getLogger(REQUEST_LOGGER)
    RequestLog(logger).write(dict(FIELDS))
    logger.info("request", extra=dict(FIELDS))  # the reference: the formatter's line

    mine, reference = stream.getvalue().splitlines()
    assert re.fullmatch(r'\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",.*\}', mine)
    assert mine.split(",", 1)[1] == reference.split(",", 1)[1]  # all but the time, byte for byte
    assert orjson.loads(mine)["model"] == "llama3 \u00e9"
    assert len([r for r in caplog.records if r.name == REQUEST_LOGGER]) == (0 if direct else 2)
