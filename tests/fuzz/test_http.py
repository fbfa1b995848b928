"""Hostile HTTP around the body: random headers (names, values, invalid UTF-8, credentials),
unknown paths and methods, broken framing. Every answer is a success, a well-formed 4xx in the
envelope of the API the path belongs to, or a clean close; never a 5xx, never a hang."""

from __future__ import annotations

import string
from urllib.parse import unquote

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import (
    LiveRouter,
    check,
    check_error,
    exchange,
    head,
    request,
    still_serving,
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CHAT = orjson.dumps({"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}]})
TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
# Header values: printable text, other Unicode, and raw bytes that are not UTF-8 (sent as is
# through surrogateescape); never CR or LF, which would start another header or request.
values = st.text(
    st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=60
) | st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")).map(
    lambda b: b.decode("utf-8", "surrogateescape")
)
names = st.text(TOKEN, min_size=1, max_size=24) | st.sampled_from(
    [
        "Authorization",
        "x-api-key",
        "X-Request-ID",
        "X-Session-ID",
        "Content-Type",
        "Accept",
        "Accept-Encoding",
        "Content-Encoding",
        "Expect",
        "Upgrade",
        "anthropic-version",
        "Cookie",
    ]
)
KNOWN = [
    "/v1/chat/completions",
    "/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/messages",
    "/messages",
    "/v1/messages/count_tokens",
    "/v1/models",
    "/v1/models/ollama/llama3",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/admin/nodes",
    "/admin/usage",
]
path_chars = string.ascii_letters + string.digits + "-._~/%?=&:@+"
paths = st.one_of(
    st.sampled_from(KNOWN),
    st.builds(
        lambda base, tail: base + tail,
        st.sampled_from(["/", "/v1/", "/v1/messages/", "/messages/", "/admin/", "/v1/models/"]),
        st.text(path_chars, max_size=40),
    ),
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]) | st.text(
    string.ascii_uppercase, min_size=1, max_size=12
).filter(lambda m: m not in ("HEAD", "CONNECT", "PRI"))  # no body to read; other grammars


def _envelope_path(path: str) -> str:
    """The path as the router routes it: decoded, without the query."""
    return unquote(path.partition("?")[0])


@FUZZ
@given(headers=st.lists(st.tuples(names, values), max_size=8), path=st.sampled_from(KNOWN))
def test_random_headers(live: LiveRouter, headers: list[tuple[str, str]], path: str) -> None:
    # Expect: 100-continue is answered by an interim 100 first; not what this reads.
    headers = [(k, v) for k, v in headers if k.lower() not in ("expect", "content-length")]
    method = "GET" if "models" in path or not path.startswith(("/v1/", "/messages")) else "POST"
    answer = request(live, method, path, CHAT if method == "POST" else b"", headers=headers)
    check(answer, path)
    if answer is not None and answer.status < 400:
        # The request id is echoed only when it is a plain token.
        rid = answer.headers.get("x-request-id", "")
        assert all(c in string.ascii_letters + string.digits + "._:-" for c in rid)


@FUZZ
@given(method=methods, path=paths, auth=st.booleans(), body=st.sampled_from([b"", CHAT]))
def test_unknown_paths_and_methods(
    live: LiveRouter, method: str, path: str, auth: bool, body: bytes
) -> None:
    answer = request(live, method, path, body, auth=auth)
    check(answer, _envelope_path(path))


@settings(FUZZ, max_examples=30)  # a short body costs the body timeout (1 s)
@given(
    path=st.sampled_from(KNOWN[:8]),
    announced=st.integers(min_value=0, max_value=len(CHAT) + 10),
    chunked=st.booleans(),
    tail=st.binary(max_size=40),
)
def test_broken_framing(
    live: LiveRouter, path: str, announced: int, chunked: bool, tail: bytes
) -> None:
    """A body longer or shorter than announced, or chunks that are not chunks: an answer or
    a close within the body timeout (the harness's read timeout is the bound)."""
    auth = [("Authorization", f"Bearer {live.key}"), ("Content-Type", "application/json")]
    if chunked:
        data = head("POST", path, [*auth, ("Transfer-Encoding", "chunked")], b"", length=False)
        data += b"%x\r\n" % announced + CHAT[:announced] + b"\r\n" + tail
    else:
        data = head("POST", path, [*auth, ("Content-Length", str(announced))], b"", length=False)
        data += CHAT + tail
    answer = exchange(live.port, data)
    if answer is not None and answer.status >= 400:
        check_error(answer, path)
    check(answer, path)


@FUZZ
@given(line=st.binary(min_size=1, max_size=120))
def test_garbage_request_line(live: LiveRouter, line: bytes) -> None:
    answer = exchange(live.port, line.replace(b"\n", b" ") + b"\r\n\r\n")
    if answer is not None:  # a parser refusal: the OpenAI envelope, no echo
        assert answer.status < 500, answer
        if answer.status >= 400:
            check_error(answer, "/")
            assert line not in answer.body or len(line) < 4


def test_still_serving(live: LiveRouter) -> None:
    still_serving(live)
