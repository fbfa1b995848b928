"""Key policy on every request, applied in one place that every API goes through.

The middleware calls `admit` after auth (expiry, then the key's limits for requests that run a
model: every POST outside `/admin`) and `finish` once the answer is out (the real token count
settles the estimate; usage is recorded). The handlers' model routing calls `require_model` and
`visible_models`, so a model outside a key's allowlist is absent for it: 404 `model_not_found`
and left out of its `/models`. New APIs get all of this by routing their model the same way.
"""

from __future__ import annotations

import time

from aiohttp import web

from router.api.state import RouterState
from router.config import ApiKeyConfig
from router.context import RequestContext
from router.errors import ModelNotFound, RateLimited, Unauthorized
from router.keys.limiter import Decision, rate_headers
from router.keys.policy import expired, expiry_text, may_use

# A prompt's tokens before a node counts them: about 4 bytes a token for English text, taken
# over the whole body (an over-estimate), settled to the node's count after the answer.
BYTES_PER_TOKEN = 4


def metered(request: web.Request) -> bool:
    """Whether a request counts against its key's limits: a POST to an API route (they run a
    model); not the admin API, not a path the router does not serve."""
    if request.method != "POST" or request.path.startswith("/admin/"):
        return False
    return request.match_info.route.resource is not None


async def admit(request: web.Request, ctx: RequestContext, state: RouterState) -> None:
    """Refuse an expired key (401) or a request over its key's limits (429)."""
    key = ctx.key
    if key is None:
        return
    if expired(key, time.time()):
        raise Unauthorized(f"This API key expired at {expiry_text(key)}.")
    if not key.limited or not metered(request):
        return
    est = -(-len(await request.read()) // BYTES_PER_TOKEN) if key.tpm is not None else 0
    decision = await state.limiter.acquire(key, est)
    ctx.limits = decision  # its headers go on the answer, refused or not
    if not decision.allowed:
        state.usage.rate_limited(key.name, decision.reason)
        raise RateLimited(_refusal(key, decision, est), retry_after_s=decision.retry_after_s)


def _refusal(key: ApiKeyConfig, decision: Decision, est: int) -> str:
    retry = f"Please try again in {decision.retry_after_s}s."
    where = f"Rate limit reached for API key '{key.name}'"
    if decision.reason == "concurrency":
        return f"{where} on requests at once: Limit {key.max_concurrency}. {retry}"
    if decision.reason == "rpm":
        return f"{where} on requests per minute (rpm): Limit {key.rpm}. {retry}"
    if decision.reason == "too_large":
        return (
            f"Request too large for API key '{key.name}' on tokens per minute (tpm): "
            f"Limit {key.tpm}, Requested {est}. Send a smaller request."
        )
    used = decision.tokens.limit - decision.tokens.remaining if decision.tokens else 0
    return (
        f"{where} on tokens per minute (tpm): Limit {key.tpm}, Used {used}, "
        f"Requested {est}. {retry}"
    )


async def finish(ctx: RequestContext, state: RouterState) -> None:
    """Once per request, after the answer: settle its tokens, free its slot, record usage."""
    decision = ctx.limits
    if decision is not None and decision.allowed:
        try:
            await state.limiter.settle(decision, ctx.prompt_tokens + ctx.completion_tokens)
        finally:
            await state.limiter.release(decision)
    if ctx.key is not None and ctx.model_label:
        state.usage.record(
            ctx.key.name, ctx.model_label, ctx.endpoint, ctx.prompt_tokens, ctx.completion_tokens
        )


def add_rate_headers(ctx: RequestContext, response: web.StreamResponse) -> None:
    """Where an answer is stamped (`router.api.stamp`): OpenAI's `x-ratelimit-*`
    headers on every answer of a limited key, streamed or not, errors included."""
    if ctx.limits is not None:
        response.headers.update(rate_headers(ctx.limits))


def require_model(key: ApiKeyConfig | None, model: str, requested: str) -> None:
    """404 for a model outside `key`'s allowlist, worded as for a model no node serves."""
    if not may_use(key, model):
        raise ModelNotFound(
            f"The model '{requested}' does not exist or no node serves it.", param="model"
        )


def visible_models(key: ApiKeyConfig | None, served: dict[str, int]) -> dict[str, int]:
    """The served models (name → created) that `key` may see."""
    if key is None or not key.models:
        return served
    return {m: c for m, c in served.items() if may_use(key, m)}
