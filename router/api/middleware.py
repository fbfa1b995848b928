"""The one middleware around every request, in this order:

1. request context: take the client's `X-Request-ID` (or make one) and start the clock;
2. auth: every API path needs a configured key, as `Authorization: Bearer` or `x-api-key`
   (`/healthz`, `/readyz`, `/openapi.json` and, unless `metrics.require_key`, `/metrics` and
   `/status` are open; `/admin/*` then checks `admin`); then the key's policy (`router.api.policy`):
   expiry, and its limits on requests that run a model;
3. the error boundary: any `JarvisError` or aiohttp HTTP error becomes its answer in the
   envelope of the API called (`router.api.errors`); anything else is logged and becomes a 500
   that leaks nothing (only if no byte was sent);
4. at the end, once, after the answer's last byte was handed to the socket: the key's limits
   settle the request's real token count and usage is recorded; the request log line and the
   request metrics.
Around all of it, the edge (`router.api.edge`): the connection's head timer stops when the
request starts; after auth, the body is read within `server.body_timeout_s` and its shape
checked before any handler (or the key's token estimate) sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from router.api import edge, policy
from router.api.errors import to_response
from router.api.stamp import stamp
from router.api.state import RouterState
from router.config import KEY_PREFIX
from router.context import CTX, RequestContext
from router.errors import JarvisError, Unauthorized
from router.ids import random_hex
from router.obs.logs import REQUEST_LOGGER, RequestLog, request_fields

log = logging.getLogger(__name__)
request_log = logging.getLogger(REQUEST_LOGGER)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Anthropic's SDKs send the key here (`anthropic-version` beside it is not checked).
API_KEY = "x-api-key"
# The API's description is public, as OpenAI's and Anthropic's are (router.api.openapi).
_OPEN_PATHS = frozenset(("/healthz", "/readyz", "/openapi.json"))
_OBSERVABILITY_PATHS = frozenset(("/metrics", "/status"))  # open unless metrics.require_key


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID")
    # An ID that looks like an API key is not echoed or logged: a key pasted in the wrong place.
    if given and _REQUEST_ID.match(given) and not given.startswith(KEY_PREFIX):
        return given
    return random_hex(16)


def _endpoint(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "other"
    return resource.canonical.removeprefix("/v1") or "/"


def _error_response(exc: Exception, request: web.Request, ctx: RequestContext) -> web.Response:
    status, headers, body = to_response(exc, method=request.method, path=request.path)
    ctx.error = ctx.error or f"http_{status}"
    return web.Response(
        status=status, body=body, content_type="application/json", headers=headers or None
    )


def _is_open(path: str, state: RouterState) -> bool:
    if path in _OPEN_PATHS:
        return True
    return path in _OBSERVABILITY_PATHS and not state.config.metrics.require_key


def make_middleware(state: RouterState) -> Middleware:
    # Keys and config are read from `state` per request: a reload swaps them.
    clock, metrics = state.clock, state.metrics
    request_lines = RequestLog(request_log)

    @web.middleware
    async def jarvis(request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = edge.begin(request)
        ctx = RequestContext(
            request_id=_request_id(request), start=clock(), endpoint=_endpoint(request)
        )
        request[CTX] = ctx
        response: web.StreamResponse | None = None
        try:
            response = await _answer(request, handler, ctx, state)
            if not response.prepared:
                stamp(request, response)
            ctx.status = ctx.status or response.status
            # The answer's last byte goes out before its log line and metrics are made, so at
            # low load they are not on the client's clock (aiohttp's own prepare/write_eof
            # after this are no-ops; a client that left is its business, as it was).
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            edge.end(connection)  # the answer is out: the next head is due, or a close
            if response is not None and not ctx.status:
                ctx.status = response.status
            end = clock()
            metrics.observe(ctx, end)
            if state.config.logging.access_log and request_log.isEnabledFor(logging.INFO):
                request_lines.write(request_fields(ctx, end))
            await policy.finish(ctx, state)

    return jarvis


async def _answer(
    request: web.Request, handler: Handler, ctx: RequestContext, state: RouterState
) -> web.StreamResponse:
    """Auth, the handler, and the one error boundary: every failure becomes its answer."""
    try:
        if not _is_open(request.path, state):
            headers = request.headers
            ctx.key = state.keys.authenticate(headers.get("Authorization"), headers.get(API_KEY))
            if ctx.key is None:
                raise Unauthorized(_auth_message(request))
        if request.body_exists:  # within the body timeout, its shape checked
            await edge.read_body(request, state.config.server)
        await policy.admit(request, ctx, state)  # expiry and the key's limits
        return await handler(request)
    except (JarvisError, web.HTTPException) as exc:
        return _error_response(exc, request, ctx)
    except asyncio.CancelledError:
        ctx.client_disconnected, ctx.status = True, 499
        raise
    except Exception as exc:  # the error boundary: log it, answer without details
        log.exception("unhandled error in request %s", ctx.request_id)
        ctx.error = "internal_error"
        if ctx.committed:  # bytes were sent: no status can follow, aiohttp closes instead
            raise
        return _error_response(exc, request, ctx)


def _auth_message(request: web.Request) -> str:
    if "Authorization" not in request.headers and API_KEY not in request.headers:
        return (
            "You didn't provide an API key. Send it in an Authorization header using "
            "Bearer auth (Authorization: Bearer jrv_...) or in an x-api-key header."
        )
    return "Incorrect API key provided."
