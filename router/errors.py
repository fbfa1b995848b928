"""Errors the router answers with, in the OpenAI envelope.

```
JarvisError                    status  type
├── BadRequest                 400     invalid_request_error   (param names the field)
├── Unauthorized               401     invalid_request_error   code=invalid_api_key
├── PermissionDenied           403     invalid_request_error
├── NotFound                   404     invalid_request_error
│   └── ModelNotFound          404     invalid_request_error   code=model_not_found
├── MethodNotAllowed           405     invalid_request_error
├── PayloadTooLarge            413     invalid_request_error
├── UpstreamRejected           4xx     invalid_request_error   (a node refused the request itself)
├── RateLimited                429     requests                (Retry-After; the queue is full)
└── ServiceUnavailable         503     server_error            (Retry-After; the SDK retries it)
```
`to_openai_error` is the one place an exception becomes a response body.
"""

from __future__ import annotations

import orjson


class JarvisError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(JarvisError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(JarvisError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(JarvisError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class NotFound(JarvisError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(JarvisError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(JarvisError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UpstreamRejected(JarvisError):
    """A node answered 4xx for this request: the request's own fault, not the node's."""

    type = "invalid_request_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(JarvisError):
    """Every node is busy and the admission queue is full or the wait ran out."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class ServiceUnavailable(JarvisError):
    status = 503
    type = "server_error"
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after_s)})


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


def to_openai_error(exc: JarvisError) -> bytes:
    return error_body(exc.message, exc.type, exc.param, exc.code)
