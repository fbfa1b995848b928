"""Logging: configured once; JSON lines to stdout by default; one line per request.

Request lines are built only when the request logger is enabled, and never hold a key or a
prompt: the key appears only as its configured name (`key_name`). In the text format the same
fields follow the message as `name=value` pairs.
"""

from __future__ import annotations

import logging
import logging.config
import time
from typing import Any

import orjson

from router.context import RequestContext

REQUEST_LOGGER = "jarvis.request"
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """`%(asctime)s %(levelname)s %(name)s %(message)s` plus the record's extra fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extra = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and value is not None
        )
        return f"{line} {extra}" if extra else line


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    formatter = {"()": JsonFormatter if fmt == "json" else TextFormatter}
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"main": formatter},
            "handlers": {
                "stdout": {
                    "class": "logging.StreamHandler",
                    "formatter": "main",
                    "stream": "ext://sys.stdout",
                }
            },
            "root": {"level": level.upper(), "handlers": ["stdout"]},
            "loggers": {"aiohttp.access": {"level": "WARNING"}},
        }
    )


def request_fields(ctx: RequestContext, end: float) -> dict[str, Any]:
    return {
        "request_id": ctx.request_id,
        "key_name": ctx.key.name if ctx.key is not None else None,
        "endpoint": ctx.endpoint,
        "model": ctx.model,
        "node": ctx.node,
        "attempts": ctx.attempts,
        "stream": ctx.stream,
        "status": ctx.status,
        "ttft_ms": None if ctx.ttft_s is None else round(ctx.ttft_s * 1000, 2),
        "duration_ms": round((end - ctx.start) * 1000, 2),
        "prompt_tokens": ctx.prompt_tokens,
        "completion_tokens": ctx.completion_tokens,
        "client_disconnected": ctx.client_disconnected,
        "error": ctx.error,
    }
