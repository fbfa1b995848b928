"""What every answer of the router carries, written once just before its head goes out.

`X-Request-ID`, `Server: jarvis-router` (no version banner: it only helps whoever scans for
old ones), the key's `x-ratelimit-*` headers (`policy.add_rate_headers`) and the node model
that served the request. Called where an answer is prepared: the middleware for whole answers
and errors, the stream handlers at their commit point. (Not aiohttp's `on_response_prepare`
signal: a coroutine per hook on every request.)
"""

from __future__ import annotations

from aiohttp import web

from router.api import policy
from router.context import CTX

SERVER_NAME = "jarvis-router"
# The node model that served a request (`ollama/llama3` may run on llama3:70b or llama3:8b).
SERVED_MODEL_HEADER = "X-Jarvis-Served-Model"


def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """Write the answer's common headers; before `response.prepare()`."""
    headers = response.headers
    headers["Server"] = SERVER_NAME
    ctx = request.get(CTX)
    if ctx is not None:
        headers["X-Request-ID"] = ctx.request_id
        if ctx.served_model is not None:
            headers[SERVED_MODEL_HEADER] = ctx.served_model
        policy.add_rate_headers(ctx, response)
