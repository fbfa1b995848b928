"""`POST /v1/messages` and `/v1/messages/count_tokens` (Anthropic Messages API).

The same path as chat (`router.api.handlers`): `_route_model`, then `fetch` or `_relay` over a
`Generation`; only the wire format differs (`router.wire.anthropic*`). Errors get Anthropic's
envelope from the one error boundary, chosen by path (`router.api.errors.envelope_for`).
`count_tokens` is a one-token generation whose prompt count is the answer: Ollama has no
count endpoint, and its own count of the rendered prompt is the only exact one.
"""

from __future__ import annotations

from aiohttp import web

from router.api import edge
from router.api.handlers import (
    SESSION_HEADER,
    _gathers_stream,
    _json,
    _relay,
    _route_model,
    can_think,
    payloads,
)
from router.api.state import STATE, RouterState
from router.context import CTX, RequestContext
from router.ids import new_id
from router.routing.affinity import session_key
from router.upstream.client import CHAT_PATH
from router.upstream.generation import fetch
from router.wire.anthropic import (
    build_message,
    count_tokens_body,
    count_tokens_payload,
    messages_payload,
)
from router.wire.anthropic_parse import MessagesRequest, parse_count_tokens, parse_messages
from router.wire.anthropic_stream import MessagesStream


def _affinity(
    request: web.Request, state: RouterState, ctx: RequestContext, req: MessagesRequest
) -> None:
    if state.config.routing.affinity:
        ctx.session = session_key(
            session_id=request.headers.get(SESSION_HEADER), user=req.user, messages=req.messages
        )


async def messages(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    ctx.api = "messages"
    req = parse_messages(await edge.json_body(request))
    model = await _route_model(state, ctx, req.model)
    stream = req.stream or _gathers_stream(state)
    payload = payloads(
        state,
        model,
        lambda m, o: messages_payload(req, m, o, can_think=can_think(state, m), stream=stream),
    )
    ctx.max_tokens = req.max_tokens
    _affinity(request, state, ctx, req)
    id_ = new_id("msg_")
    if req.stream:
        encoder = MessagesStream(req.model, id_, new_id)
        return await _relay(request, state, ctx, model, CHAT_PATH, payload, encoder)
    gathered = await fetch(state.dispatcher, ctx, model, CHAT_PATH, payload, whole=not stream)
    body, usage = build_message(gathered.chat(), req.model, id_, new_id)
    ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    return _json(body, ctx, state)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    ctx.api = "messages"
    req = parse_count_tokens(await edge.json_body(request))
    model = await _route_model(state, ctx, req.model)
    payload = payloads(
        state, model, lambda m, o: count_tokens_payload(req, m, o, can_think=can_think(state, m))
    )
    ctx.max_tokens = 1
    _affinity(request, state, ctx, req)
    gathered = await fetch(state.dispatcher, ctx, model, CHAT_PATH, payload)
    done = gathered.chat()
    ctx.prompt_tokens = int(done.get("prompt_eval_count") or 0)
    ctx.completion_tokens = int(done.get("eval_count") or 0)
    return _json(count_tokens_body(done), ctx, state)
