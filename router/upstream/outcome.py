"""How an attempt on a node ended: one small `Outcome`, and `UpstreamError` carrying it.

Dispatch decides "retry elsewhere?" and "is the node sick?" from the outcome alone, without
knowing aiohttp or Ollama. A client that leaves is an outcome too (`CLIENT_CANCELLED`), and
never the node's fault.
"""

from __future__ import annotations

from enum import StrEnum

from router.fleet.registry import NodeState


class Outcome(StrEnum):
    OK = "ok"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    HTTP_5XX = "http_5xx"
    BUSY = "busy"
    HTTP_4XX = "http_4xx"
    MODEL_MISSING = "model_missing"
    STREAM_ERROR = "stream_error"
    PROTOCOL_ERROR = "protocol_error"
    CLIENT_CANCELLED = "client_cancelled"


# Worth trying another node: the failure says nothing about the request itself.
RETRYABLE = frozenset(
    {
        Outcome.CONNECT_ERROR,
        Outcome.TIMEOUT,
        Outcome.HTTP_5XX,
        Outcome.BUSY,
        Outcome.MODEL_MISSING,
        Outcome.PROTOCOL_ERROR,
        # An error line before the client saw a byte (a gathered answer, or the first line).
        Outcome.STREAM_ERROR,
    }
)
# The node itself is broken: take it out of rotation until the health poller sees it well.
NODE_DOWN = frozenset({Outcome.CONNECT_ERROR, Outcome.TIMEOUT})
# The node failed the request (not the client, not the request itself): its circuit breaker
# counts these, so a node that passes health checks but fails generations is ejected too.
NODE_FAULT = frozenset(
    {
        Outcome.CONNECT_ERROR,
        Outcome.TIMEOUT,
        Outcome.HTTP_5XX,
        Outcome.STREAM_ERROR,
        Outcome.PROTOCOL_ERROR,
    }
)


class UpstreamError(Exception):
    def __init__(self, outcome: Outcome, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.outcome in RETRYABLE


def from_exception(exc: BaseException, node: NodeState) -> UpstreamError:
    """A transport failure (aiohttp, OS, timeout) as the node's outcome."""
    if isinstance(exc, TimeoutError):
        return UpstreamError(Outcome.TIMEOUT, f"node {node.name} timed out")
    return UpstreamError(
        Outcome.CONNECT_ERROR, f"node {node.name} connection failed: {type(exc).__name__}"
    )
