"""`POST /responses` (OpenAI Responses API, stateless): parse → route → the one generation path.

The same path as chat (`router.api.handlers`): the key's model allowlist and the 404 of
`_route_model`, then `fetch` (gathered) or `_relay` (streamed) over a `Generation`, so
routing, the admission queue, failover, timeouts, affinity, metrics and the request log are
chat's own. Only the wire format differs: `router.wire.responses*`.
"""

from __future__ import annotations

import time

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
from router.api.state import STATE
from router.context import CTX
from router.ids import new_id
from router.routing.affinity import session_key
from router.upstream.client import CHAT_PATH
from router.upstream.generation import fetch
from router.wire.responses import ResponseHead, build_response, responses_payload
from router.wire.responses_parse import parse_responses
from router.wire.responses_stream import ResponsesStream


async def responses(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    ctx.api = "responses"
    req = parse_responses(await edge.json_body(request))
    model = await _route_model(state, ctx, req.model)
    # `think` only where the node has not said the model cannot think (`can_think`).
    stream = req.stream or _gathers_stream(state)
    payload = payloads(
        state,
        model,
        lambda m, o: responses_payload(req, m, o, can_think=can_think(state, m), stream=stream),
    )
    ctx.max_tokens = req.max_output_tokens
    if state.config.routing.affinity:
        ctx.session = session_key(
            session_id=request.headers.get(SESSION_HEADER), user=req.user, messages=req.messages
        )
    head = ResponseHead.of(req, new_id("resp_"), int(time.time()))
    if req.stream:
        encoder = ResponsesStream(head, new_id)
        return await _relay(request, state, ctx, model, CHAT_PATH, payload, encoder)
    gathered = await fetch(state.dispatcher, ctx, model, CHAT_PATH, payload, whole=not stream)
    body, usage = build_response(gathered.chat(), head, new_id)
    ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    return _json(body, ctx, state)
