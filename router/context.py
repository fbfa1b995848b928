"""Per-request facts, written along the request path and logged and observed once at the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from router.config import ApiKeyConfig

if TYPE_CHECKING:
    from router.keys.limiter import Decision


@dataclass(slots=True)
class RequestContext:
    request_id: str
    start: float
    endpoint: str = "other"
    # The API a model request speaks (chat, completions, embeddings, responses, messages),
    # set by its handler; "" for the rest. A metrics label and a log field.
    api: str = ""
    key: ApiKeyConfig | None = None
    model: str | None = None  # as the client asked
    model_label: str = ""  # bounded: a model the fleet knows, else "unknown"
    node: str | None = None
    served_model: str | None = None  # the node model that ran it (a catalog target)
    attempts: int = 0
    stream: bool = False
    session: str | None = None  # conversation key for affinity (never logged)
    max_tokens: int | None = None  # the request's length cap: a hint for cost-aware routing
    committed: bool = False  # response headers sent: errors can no longer be a status
    status: int = 0
    # Written by `upstream.generation` alone: request start → the answer's first token; the
    # mean gap between a stream's tokens; the time spent on generations (every attempt's open
    # → end, summed: what `Server-Timing` calls upstream).
    ttft_s: float | None = None
    tpot_s: float | None = None
    upstream_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    client_disconnected: bool = False
    error: str | None = None
    # The key's limits for this request (`api.policy`), when it has any: settled at the end,
    # and its `x-ratelimit-*` headers go on the answer.
    limits: Decision | None = None


CTX = web.RequestKey("jarvis_ctx", RequestContext)
