"""The one error boundary's table: each error → its status, headers and OpenAI envelope.

Inner layers raise domain errors without a status; `router.api.errors` alone decides what the
client sees. aiohttp's own 404/405/413 and an unexpected exception go through the same table.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from router.api.errors import Problem, envelope_for, openai_envelope, to_response
from router.errors import (
    BadRequest,
    JarvisError,
    ModelNotFound,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UpstreamRejected,
)

INVALID = "invalid_request_error"


def error(message: str, type_: str, param: str | None = None, code: str | None = None) -> Any:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


CASES: list[tuple[str, Exception, int, dict[str, str], Any]] = [
    (
        "bad-request",
        BadRequest("Invalid 'top_p'.", param="top_p", code="invalid_value"),
        400,
        {},
        error("Invalid 'top_p'.", INVALID, "top_p", "invalid_value"),
    ),
    (
        "unauthorized",
        Unauthorized("No key."),
        401,
        {},
        error("No key.", INVALID, None, "invalid_api_key"),
    ),
    (
        "permission-denied",
        PermissionDenied("Admins only."),
        403,
        {},
        error("Admins only.", INVALID, None, "permission_denied"),
    ),
    (
        "not-found-with-its-own-code",
        NotFound("No node 'x'.", code="node_not_found"),
        404,
        {},
        error("No node 'x'.", INVALID, None, "node_not_found"),
    ),
    (
        "model-not-found",
        ModelNotFound("No model.", param="model"),
        404,
        {},
        error("No model.", INVALID, "model", "model_not_found"),
    ),
    (
        "upstream-rejected-keeps-the-node-status",
        UpstreamRejected(422, "bad template"),
        422,
        {},
        error("bad template", INVALID),
    ),
    (
        "rate-limited",
        RateLimited("Busy.", retry_after_s=2),
        429,
        {"Retry-After": "2"},
        error("Busy.", "requests", None, "rate_limit_exceeded"),
    ),
    (
        "service-unavailable",
        ServiceUnavailable("No node.", retry_after_s=1, code="no_healthy_node"),
        503,
        {"Retry-After": "1"},
        error("No node.", "server_error", None, "no_healthy_node"),
    ),
    (
        "service-unavailable-default-code",
        ServiceUnavailable("No node.", retry_after_s=0),
        503,
        {"Retry-After": "0"},
        error("No node.", "server_error", None, "service_unavailable"),
    ),
    ("jarvis-error", JarvisError("Broke."), 500, {}, error("Broke.", "server_error")),
    (
        "aiohttp-unknown-url",
        web.HTTPNotFound(),
        404,
        {},
        error("Unknown request URL: POST /v1/x.", INVALID, None, "unknown_url"),
    ),
    (
        "aiohttp-wrong-method",
        web.HTTPMethodNotAllowed("POST", ["GET"]),
        405,
        {"Allow": "GET"},
        error("Method Not Allowed", INVALID, None, "method_not_allowed"),
    ),
    (
        "aiohttp-body-too-large",
        web.HTTPRequestEntityTooLarge(max_size=1024, actual_size=4096),
        413,
        {},
        error(
            "The request body is larger than this router accepts.",
            INVALID,
            None,
            "request_too_large",
        ),
    ),
    ("aiohttp-other", web.HTTPGone(), 410, {}, error("Gone", INVALID)),
    (
        "a-bug-says-nothing-of-itself",
        KeyError("secret detail"),
        500,
        {"x-should-retry": "false"},
        error("The router failed to handle the request.", "server_error"),
    ),
]


@pytest.mark.parametrize(
    ("exc", "status", "headers", "body"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_error_becomes_its_status_headers_and_openai_envelope(
    exc: Exception, status: int, headers: dict[str, str], body: Any
) -> None:
    got_status, got_headers, got_body = to_response(exc, method="POST", path="/v1/x")
    assert (got_status, got_headers, json.loads(got_body)) == (status, headers, body)


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/completions", "/admin/nodes", "/nothing"]
)
def test_every_route_speaks_openai_today(path: str) -> None:
    assert envelope_for(path) is openai_envelope


def test_an_envelope_renders_the_same_problem_its_own_way() -> None:
    def anthropic_like(problem: Problem) -> bytes:  # the shape /v1/messages will need
        kind = {404: "not_found_error", 429: "rate_limit_error"}.get(problem.status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": problem.message}}
        return json.dumps(body).encode()

    exc = RateLimited("Busy.", retry_after_s=3)
    status, headers, body = to_response(
        exc, method="POST", path="/v1/messages", envelope=anthropic_like
    )
    assert (status, headers) == (429, {"Retry-After": "3"})
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Busy."},
    }
