"""One unary call: a node's whole answer as one JSON object (`/api/embed` never streams).

The same path as a generation's: `Dispatcher.failover` (choose → lease → attempt, tenacity, the
admission queue, the breaker, metrics) drives each attempt, and the attempt ends the way
`generation.Generation._end` ends one: the node recorded well (`completed`), its failure
recorded (`record_failure`), or the client's leaving counted as a cancel (`record_cancel`);
the lease is given back on every path. There is no first token, so the first-token timeout
bounds the whole answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from router.context import RequestContext
from router.fleet.registry import Lease
from router.upstream.dispatch import Dispatcher
from router.upstream.outcome import Outcome, UpstreamError
from router.upstream.payloads import Payloads, payload_for

T = TypeVar("T")
# The answer's fields the cost model reads (`Dispatcher.completed`); the rest (vectors) stays.
_TIMINGS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration")


async def unary(
    dispatcher: Dispatcher,
    ctx: RequestContext,
    model: str,
    path: str,
    payload: bytes | Payloads,
    parse: Callable[[dict[str, Any]], T],
) -> T:
    """`parse(answer)` of the first node that answers well; `parse` raises ValueError when the
    answer is not what was asked for (the node's protocol failure: another node is tried)."""

    async def attempt_on(lease: Lease) -> T:
        return await _attempt(dispatcher, ctx, model, path, payload, parse, lease)

    return await dispatcher.failover(ctx, model, attempt_on)


async def _attempt(
    d: Dispatcher,
    ctx: RequestContext,
    model: str,
    path: str,
    payload: bytes | Payloads,
    parse: Callable[[dict[str, Any]], T],
    lease: Lease,
) -> T:
    node = lease.node
    served = ctx.served_model = lease.model or model  # the node model (a catalog target)
    started = d.clock()
    ended = False
    d.in_use[served] += 1
    try:
        try:
            async with asyncio.timeout(d.first_token_timeout_s):
                body = await d.upstream.post_json(
                    node, path, payload_for(payload, served), ctx.request_id
                )
        except TimeoutError as exc:
            raise UpstreamError(
                Outcome.TIMEOUT,
                f"node {node.name} did not answer within {d.first_token_timeout_s:g} s",
            ) from exc
        try:
            answer = orjson.loads(body)
            if not isinstance(answer, dict):
                raise ValueError("the answer is not a JSON object")
            result = parse(answer)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            raise UpstreamError(
                Outcome.PROTOCOL_ERROR, f"node {node.name} sent a bad answer: {exc}"
            ) from exc
        ended = True
        d.completed(node, served, {k: answer[k] for k in _TIMINGS if k in answer})
        return result
    except UpstreamError as exc:
        ended = True
        d.record_failure(node, served, exc)
        raise
    finally:
        if not ended:  # cancelled: the client left, never the node's fault
            d.record_cancel(node)
        ctx.upstream_s += d.clock() - started
        d.in_use[served] -= 1
        if not d.in_use[served]:
            del d.in_use[served]
        lease.release()
