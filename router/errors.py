"""The domain errors inner layers raise; they know nothing of HTTP.

```
JarvisError                     (the router itself failed)
├── BadRequest                  the request is invalid (`param` names the field)
│   └── ContextLengthExceeded   the prompt is longer than the model's context (`num_ctx`)
├── Unauthorized                no key, or a key the ring does not hold
├── PermissionDenied            a valid key that may not do this
├── NotFound                    no such thing (`code` says which, e.g. node_not_found)
│   └── ModelNotFound           no node serves the model
├── UpstreamRejected            a node refused the request itself (`node_status`: its 4xx)
├── RateLimited                 every node is busy and the queue is full (`retry_after_s`)
└── ServiceUnavailable          no node can serve it now (`retry_after_s`)
```
Every error has a client-safe `message`, and may carry a `param` and a `code`, a specific reason
in the OpenAI vocabulary (e.g. `invalid_json`). Only `router.api.errors` turns an error into a
status, headers and a body, in the envelope of the API that was called.
"""

from __future__ import annotations


class JarvisError(Exception):
    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BadRequest(JarvisError):
    pass


class ContextLengthExceeded(BadRequest):
    """A node refused a prompt longer than the model's context: the client's fault, so no
    failover and no breaker count (issue #15). `num_ctx` and `prompt_tokens` when known."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = "messages",
        num_ctx: int | None = None,
        prompt_tokens: int | None = None,
    ) -> None:
        super().__init__(message, param=param, code="context_length_exceeded")
        self.num_ctx = num_ctx
        self.prompt_tokens = prompt_tokens


class Unauthorized(JarvisError):
    pass


class PermissionDenied(JarvisError):
    pass


class NotFound(JarvisError):
    pass


class ModelNotFound(NotFound):
    pass


class UpstreamRejected(JarvisError):
    """A node answered 4xx for this request: the request's own fault, not the node's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.node_status = status


class RateLimited(JarvisError):
    """Every node is busy and the admission queue is full or the wait ran out."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServiceUnavailable(JarvisError):
    """No node can serve the request now (none healthy, or every attempt failed)."""

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s
