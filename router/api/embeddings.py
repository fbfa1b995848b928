"""`POST /embeddings` and `/v1/embeddings`: OpenAI embeddings onto Ollama's `/api/embed`.

Routed like completions, to the nodes that have the model. A batch of more than `BATCH`
inputs, with more than one node to serve it, is cut into contiguous spans (at most one per
node, none smaller than `BATCH`), embedded concurrently, each span with its own failover and
slot, and joined back in input order. One failing span fails the request; the others are
cancelled (their slots come back). The translation is `router.wire.embeddings`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from router.api import edge
from router.api.handlers import _json, _route_model, payloads
from router.api.state import STATE, RouterState
from router.api.together import all_of
from router.context import CTX, RequestContext
from router.upstream.client import EMBED_PATH
from router.upstream.unary import unary
from router.wire.embeddings import (
    EmbeddingsRequest,
    embed_answer,
    embed_payload,
    embeddings_response,
    join_batches,
    parse_embeddings,
    split_batches,
)

# Inputs per span below which a batch is not split: one node embeds a small batch faster than
# two round trips would.
BATCH = 32

Vectors = list[list[float]]


def parts_for(count: int, nodes: int) -> int:
    """How many spans `count` inputs go out in, with `nodes` nodes to serve them."""
    if count <= BATCH or nodes < 2:
        return 1
    return min(nodes, -(-count // BATCH))


async def embeddings(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    ctx.api = "embeddings"
    req = parse_embeddings(await edge.json_body(request))
    model = await _route_model(state, ctx, req.model)
    dispatcher = state.dispatcher
    nodes = sum(len(state.fleet.candidates(t)) for t in state.catalog.resolve(model).targets)
    spans = split_batches(len(req.inputs), parts_for(len(req.inputs), nodes))

    async def embed(start: int, stop: int) -> tuple[Vectors, int]:
        def parse(answer: dict[str, Any]) -> tuple[Vectors, int]:
            return embed_answer(answer, expected=stop - start)

        inputs = req.inputs[start:stop]
        payload = payloads(state, model, lambda m, o: embed_payload(req, m, inputs, o))
        return await unary(dispatcher, ctx, model, EMBED_PATH, payload, parse)

    if len(spans) == 1:
        results = [await embed(*spans[0])]
    else:
        results = await all_of([embed(a, b) for a, b in spans])
    return _answer(req, results, ctx, state)


def _answer(
    req: EmbeddingsRequest,
    results: list[tuple[Vectors, int]],
    ctx: RequestContext,
    state: RouterState,
) -> web.Response:
    tokens = sum(count for _, count in results)
    ctx.prompt_tokens = tokens
    body = embeddings_response(
        join_batches([vectors for vectors, _ in results]),
        model=req.model,
        prompt_tokens=tokens,
        encoding_format=req.encoding_format,
    )
    return _json(body, ctx, state)
