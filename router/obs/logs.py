"""Logging: configured once; JSON lines to stdout by default; one line per request.

Request lines are built only when the request logger is enabled, and never hold a key or a
prompt: the key appears only as its configured name (`key_name`). In the text format the same
fields follow the message as `name=value` pairs.

`RequestLog` writes the request line itself when logging is configured as `configure_logging`
leaves it (JSON lines to one stream): the same line `JsonFormatter` would make, without a
`LogRecord` and the formatter machinery, and one `write` per event-loop pass for all of that
pass's lines (together about 20 µs of the router's CPU per request, issue 5). With any other
set-up (text format, extra handlers, filters, pytest's capture) it goes through logging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import time
from typing import Any

import orjson

from router.context import RequestContext

REQUEST_LOGGER = "jarvis.request"
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _stamp(created: float, msecs: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _stamp(record.created, record.msecs),
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
        "api": ctx.api or None,
        "model": ctx.model,
        "node": ctx.node,
        "served_model": ctx.served_model,
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


class RequestLog:
    """One line per request on `logger` (at info), straight to the stream when it can be.

    Direct lines are gathered and written once per event-loop pass (one `write` for all the
    requests that ended in it, instead of a syscall each): a line waits at most until the
    loop next polls, and keeps its own time."""

    __slots__ = ("_handler", "_logger", "_pending", "_second", "_second_text")

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._second, self._second_text = -1, ""
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._handler: logging.StreamHandler[Any] | None = None

    def _direct(self) -> logging.StreamHandler[Any] | None:
        """The one JSON stream handler every request line ends in, if that is all there is."""
        logger, root = self._logger, logging.root
        if logger.handlers or logger.filters or not logger.propagate or logger.parent is not root:
            return None
        if root.filters or len(root.handlers) != 1:
            return None
        handler = root.handlers[0]
        if (
            type(handler) is not logging.StreamHandler
            or type(handler.formatter) is not JsonFormatter
            or handler.filters
            or handler.level > logging.INFO
        ):
            return None
        return handler

    def write(self, fields: dict[str, Any]) -> None:
        handler = self._direct()
        if handler is None:
            self._logger.info("request", extra=fields)
            return
        now = time.time()  # as LogRecord takes it: the same `time` text as JsonFormatter's
        second = int(now)
        if second != self._second:
            self._second, self._second_text = second, _stamp(now, 0)[:-5]
        line = {
            "time": f"{self._second_text}.{int((now - second) * 1000):03d}Z",
            "level": "info",
            "logger": self._logger.name,
            "message": "request",
            **fields,
        }
        text = orjson.dumps(line, default=str).decode() + handler.terminator
        if self._pending and handler is not self._handler:
            self.flush()  # logging was reconfigured since: the earlier lines go where they were
        self._handler = handler
        self._pending.append((text, fields))
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: now
                self.flush()

    def flush(self) -> None:
        pending, handler = self._pending, self._handler
        self._pending = []
        if not pending or handler is None:
            return
        try:
            with handler.lock or contextlib.nullcontext():
                handler.stream.write("".join(text for text, _ in pending))
                handler.stream.flush()
        except Exception:  # a stream that fails: logging's own handling (handleError)
            for _, fields in pending:
                self._logger.info("request", extra=fields)
