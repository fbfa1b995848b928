"""The one error boundary's mapping: an exception → status, headers and a body.

Inner layers raise the domain errors of `router.errors` and know no status. Here one table,
`_ROWS`, says for each error class (ours, aiohttp's own 404/405/413, and any other exception)
the HTTP status, the OpenAI error `type` and default `code`, a fixed message when the
exception's own must not or cannot be shown, and extra headers. The most specific class wins.

The body is rendered by an envelope chosen per route (`envelope_for`): OpenAI's
`{"error": {"message", "type", "param", "code"}}` everywhere today. The Anthropic Messages API
will put its `{"type": "error", "error": {"type", "message"}}` in front for `/v1/messages`,
taking its error type from `Problem.status` (Anthropic's types follow the status).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from router.errors import (
    BadRequest,
    ContextLengthExceeded,
    JarvisError,
    ModelNotFound,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UpstreamRejected,
)
from router.wire.anthropic import error_body as anthropic_error_body
from router.wire.sse import error_body

_INVALID = "invalid_request_error"


@dataclass(frozen=True, slots=True)
class Problem:
    """What a client is told, before it is put in an envelope; `type` and `code` are OpenAI's."""

    status: int
    type: str
    message: str
    param: str | None = None
    code: str | None = None


Envelope = Callable[[Problem], bytes]


@dataclass(frozen=True, slots=True)
class _Row:
    status: int | None  # None: the exception's own (a node's 4xx, an aiohttp status)
    type: str
    code: str | None = None  # unless the exception names a more specific one
    message: str | None = None  # None: the exception's own; formatted with method and path
    headers: tuple[tuple[str, str], ...] = ()


_ROWS: dict[type[BaseException], _Row] = {
    BadRequest: _Row(400, _INVALID),
    ContextLengthExceeded: _Row(400, _INVALID, "context_length_exceeded"),
    Unauthorized: _Row(401, _INVALID, "invalid_api_key"),
    PermissionDenied: _Row(403, _INVALID, "permission_denied"),
    NotFound: _Row(404, _INVALID, "not_found"),
    ModelNotFound: _Row(404, _INVALID, "model_not_found"),
    UpstreamRejected: _Row(None, _INVALID),
    RateLimited: _Row(429, "requests", "rate_limit_exceeded"),
    ServiceUnavailable: _Row(503, "server_error", "service_unavailable"),
    JarvisError: _Row(500, "server_error"),
    web.HTTPNotFound: _Row(404, _INVALID, "unknown_url", "Unknown request URL: {method} {path}."),
    web.HTTPMethodNotAllowed: _Row(405, _INVALID, "method_not_allowed"),
    web.HTTPRequestEntityTooLarge: _Row(
        413, _INVALID, "request_too_large", "The request body is larger than this router accepts."
    ),
    web.HTTPRequestTimeout: _Row(408, _INVALID, "request_timeout"),
    web.HTTPException: _Row(None, _INVALID),
    # A bug: say nothing of it, and tell the SDK a retry will not help.
    Exception: _Row(
        500,
        "server_error",
        message="The router failed to handle the request.",
        headers=(("x-should-retry", "false"),),
    ),
}


def openai_envelope(problem: Problem) -> bytes:
    return error_body(problem.message, problem.type, problem.param, problem.code)


def anthropic_envelope(problem: Problem) -> bytes:
    # Anthropic's error type follows the status (the SDK picks its exception by status).
    return anthropic_error_body(problem.status, problem.message)


# (path prefix, envelope): the first match wins. The Anthropic Messages API comes first, at
# both base URLs SDKs use.
_ENVELOPES: tuple[tuple[str, Envelope], ...] = (
    ("/v1/messages", anthropic_envelope),
    ("/messages", anthropic_envelope),
    ("/", openai_envelope),
)


def envelope_for(path: str) -> Envelope:
    """The envelope of the API that `path` belongs to."""
    return next(envelope for prefix, envelope in _ENVELOPES if path.startswith(prefix))


def _row(exc: Exception) -> _Row:
    return next(_ROWS[cls] for cls in type(exc).__mro__ if cls in _ROWS)


def _status(exc: Exception, row: _Row) -> int:
    if row.status is not None:
        return row.status
    if isinstance(exc, UpstreamRejected):
        return exc.node_status
    return exc.status if isinstance(exc, web.HTTPException) else 500


def _message(exc: Exception, row: _Row, method: str, path: str) -> str:
    if row.message is not None:
        return row.message.format(method=method, path=path)
    if isinstance(exc, JarvisError):
        return exc.message
    return exc.reason if isinstance(exc, web.HTTPException) else str(exc)


def problem_of(exc: Exception, *, method: str, path: str) -> tuple[Problem, dict[str, str]]:
    """The problem `exc` is for the client, and the headers that go with it."""
    row = _row(exc)
    param = code = None
    headers = dict(row.headers)
    if isinstance(exc, JarvisError):
        param, code = exc.param, exc.code
    if isinstance(exc, RateLimited | ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, web.HTTPException) and "Allow" in exc.headers:
        headers["Allow"] = exc.headers["Allow"]
    problem = Problem(
        _status(exc, row), row.type, _message(exc, row, method, path), param, code or row.code
    )
    return problem, headers


def to_response(
    exc: Exception, *, method: str, path: str, envelope: Envelope | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for `exc`, in `envelope` (default: the one of `path`'s API)."""
    problem, headers = problem_of(exc, method=method, path=path)
    render = envelope or envelope_for(path)
    return problem.status, headers, render(problem)
