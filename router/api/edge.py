"""The edge: how many connections the router holds, how long a client may take to send a
request, what a request may be, and what every answer says about the server.

Per connection (`EdgeHandler`, aiohttp's `RequestHandler` that `EdgeSite` makes for each
accepted connection):
- beyond `server.max_connections` open connections a new one is closed at once: the client
  sees the connection close (the SDKs retry) and nothing queues inside the router;
- a request head must be complete `server.header_timeout_s` after the connection opened or
  after its first byte arrived, else the connection is closed (slowloris). One timer per
  request head, none per chunk; an idle keep-alive connection closes after
  `server.keepalive_timeout_s` (aiohttp's own timer);
- what aiohttp's parser refuses (a request line or header field over its limit, too many
  headers, not HTTP/1.x) is answered in the OpenAI envelope with a fixed message: nothing the
  client sent is echoed, no traceback, and the connection closes.
Per request (`begin`, `read_body`, `end`, called by the middleware): the body must have
arrived `server.body_timeout_s` after the head, else 408 and the connection closes; its JSON
must nest no deeper than `server.max_json_depth` and hold at most `server.max_messages`
messages (`router.wire.limits`). No answer carries a `Server` version banner.
(Just over 300 lines: the connection-level half must subclass aiohttp's handler in one place.)
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from router.api.errors import Problem, envelope_for
from router.api.stamp import SERVER_NAME
from router.api.state import STATE
from router.config import ConfigError, ServerConfig, TlsConfig
from router.errors import BadRequest
from router.wire.fields import load_json
from router.wire.limits import check_body

log = logging.getLogger(__name__)
_TOO_LARGE = Problem(
    431,
    "invalid_request_error",
    "The request line or its headers are larger than this router accepts.",
    code="request_header_fields_too_large",
)
_NOT_HTTP = Problem(
    400, "invalid_request_error", "The request is not valid HTTP/1.1.", code="invalid_request"
)
_FAILED = Problem(500, "server_error", "The router failed to handle the request.")


# The body as `read_body` parsed it, when its checks had to parse it.
PARSED_BODY = web.RequestKey("jarvis_parsed_body", object)


class BodyTimeout(web.HTTPRequestTimeout):
    """The body did not arrive in time: 408, and the connection closes."""


def handler_kwargs(server: ServerConfig) -> dict[str, Any]:
    """aiohttp `RequestHandler` settings: the runner's (for any site) and `EdgeSite`'s."""
    return {
        "access_log": None,
        "keepalive_timeout": server.keepalive_timeout_s,
        "max_line_size": server.max_request_line_bytes,
        "max_field_size": server.max_header_bytes,
        "max_headers": server.max_headers,
    }


class Gate:
    """What the connections of one listener share: the open count and the head timeout."""

    __slots__ = ("header_timeout_s", "loop", "max_connections", "open", "refused")

    def __init__(self, server: ServerConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.max_connections = server.max_connections
        self.header_timeout_s = server.header_timeout_s
        self.loop = loop
        self.open = 0
        self.refused = 0


class EdgeHandler(RequestHandler):
    __slots__ = ("_admitted", "_busy", "_close_when_answered", "_gate", "_head_due", "_head_timer")

    def __init__(self, manager: Server, gate: Gate, **kwargs: Any) -> None:
        super().__init__(manager, loop=gate.loop, **kwargs)
        self._gate = gate
        self._admitted = self._busy = self._close_when_answered = False
        # When the pending head is due (None: no head pending). One timer per connection, not
        # per request: a keep-alive connection's next head only moves the deadline, and the
        # timer, when it fires early, re-arms for what is left.
        self._head_due: float | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gate = self._gate
        if gate.open >= gate.max_connections:
            gate.refused += 1
            if gate.refused % 1000 == 1:  # a flood must not flood the log too
                log.warning(
                    "refused %d connections so far: server.max_connections (%d) are open",
                    gate.refused,
                    gate.max_connections,
                )
            transport.close()
            return
        gate.open += 1
        self._admitted = True
        self._head_started()  # the first request head is due as any other
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._gate.open -= 1
        self._head_due = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_due is None and not self._busy:
            self._head_started()  # the first byte of a head: the rest is due within the timeout
        super().data_received(data)

    def _head_started(self) -> None:
        gate = self._gate
        self._head_due = due = gate.loop.time() + gate.header_timeout_s
        if self._head_timer is None:
            self._head_timer = gate.loop.call_at(due, self._head_check)

    def _head_check(self) -> None:
        self._head_timer = None
        due = self._head_due
        if due is None or self._busy:
            return  # no head pending: the next one arms a timer again
        if due > self._gate.loop.time():  # a later head than the one this timer was armed for
            self._head_timer = self._gate.loop.call_at(due, self._head_check)
            return
        log.debug("closing a connection whose request head is overdue")
        self.force_close()

    def begin(self) -> None:
        """A request head was parsed and its handling starts: no head is pending (the timer,
        if armed, finds that out when it fires)."""
        self._head_due = None
        self._busy = True

    def end(self) -> None:
        """The answer went out (or the client left)."""
        self._busy = False
        if self._close_when_answered:
            self.force_close()

    def close_when_answered(self) -> None:
        self._close_when_answered = True

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request its parser refused (or whose handler failed outside
        the middleware): the envelope and a fixed message, never the client's bytes echoed."""
        if request.writer.output_size > 0:  # as aiohttp: no second answer on a started one
            raise ConnectionError("the answer was started, no error answer can follow")
        if isinstance(exc, HttpProcessingError) and status < 500:
            # The client's fault: no traceback in the log for every port scanner.
            log.debug("refused a malformed request: %s", type(exc).__name__)
            too_large = isinstance(exc, LineTooLong) or "Too many headers" in exc.message
            problem = _TOO_LARGE if too_large else _NOT_HTTP
        else:
            log.error("error outside the middleware", exc_info=exc)
            problem = _FAILED
        response = web.Response(
            status=problem.status, body=envelope_for("/")(problem), content_type="application/json"
        )
        response.headers["Server"] = SERVER_NAME
        response.force_close()
        return response


def _connection(request: web.BaseRequest) -> EdgeHandler | None:
    protocol = request.protocol
    return protocol if isinstance(protocol, EdgeHandler) else None


def begin(request: web.BaseRequest) -> EdgeHandler | None:
    """The middleware's first call: stops the head timer. The connection, for `end`."""
    connection = _connection(request)
    if connection is not None:
        connection.begin()
    return connection


def end(connection: EdgeHandler | None) -> None:
    if connection is not None:
        connection.end()


async def read_body(request: web.Request, server: ServerConfig) -> None:
    """Read the body (aiohttp keeps it for the handler's `read()`) within the body timeout,
    and check its size (aiohttp's `client_max_size`), JSON depth and message count."""
    try:
        if request.content.is_eof():  # the usual case: it came with the head, no timer
            body = await request.read()
        else:
            async with asyncio.timeout(server.body_timeout_s):
                body = await request.read()
    except TimeoutError:
        connection = _connection(request)
        if connection is not None:
            connection.close_when_answered()  # the rest of the body may never come
        raise BodyTimeout(
            reason=f"The request body did not arrive within {server.body_timeout_s:g} s."
        ) from None
    except HttpProcessingError:  # e.g. a broken chunked encoding
        raise BadRequest("The request body could not be read.", code="invalid_body") from None
    # Set even when None: `json_body` then finds the key (an absent one costs a KeyError).
    request[PARSED_BODY] = check_body(
        body, max_depth=server.max_json_depth, max_messages=server.max_messages
    )


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object: the one `read_body` parsed for its checks (a long
    conversation is then parsed once, not twice), else parsed now."""
    parsed = request.get(PARSED_BODY)
    if isinstance(parsed, dict):
        return parsed
    return load_json(await request.read())  # the errors (not JSON, not an object) are its


def ssl_context(tls: TlsConfig | None) -> ssl.SSLContext | None:
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # TLS 1.2 and up
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            tls.cert_file, f"listen.tls: cannot load the certificate and key: {exc}"
        ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


class EdgeSite(web.BaseSite):
    """A TCP listener whose connections are `EdgeHandler`s, optionally behind TLS."""

    __slots__ = ("_config", "_gate", "_host", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        server: ServerConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=1024)
        self._host, self._port, self._config = host, port, server
        self._reuse_port = reuse_port  # one of `serve --workers` (`workers`)
        self._gate: Gate | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def gate(self) -> Gate | None:
        return self._gate

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None  # the runner was set up (BaseSite checks)
        gate = self._gate = Gate(self._config, loop)
        kwargs = handler_kwargs(self._config)
        self._server = await loop.create_server(
            lambda: EdgeHandler(manager, gate, **kwargs),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port,
            # A TLS handshake is part of the head's time.
            ssl_handshake_timeout=self._config.header_timeout_s if self._ssl_context else None,
        )


async def start_site(
    runner: web.AppRunner, host: str, port: int, *, reuse_port: bool = False
) -> EdgeSite:
    """The router's listener on `host:port`, with the edge's limits and `listen.tls`;
    `reuse_port` shares the port with the other workers of `serve --workers`."""
    config = runner.app[STATE].config
    tls = ssl_context(config.listen.tls)
    site = EdgeSite(runner, host, port, config.server, ssl_context=tls, reuse_port=reuse_port)
    await site.start()
    return site
