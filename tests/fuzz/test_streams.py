"""Broken SSE clients: a client that reads some of a stream (any API) and then leaves, by a
close or a reset, at any point. The router cancels the generation: the node's slot comes back
on both sides, and the router serves the next request."""

from __future__ import annotations

import socket
import struct

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import SLOW_MODEL, LiveRouter, connect, head, still_serving

FUZZ = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MODEL = f"ollama/{SLOW_MODEL}"  # its answers take ~2 s: the client leaves in the middle
USER = [{"role": "user", "content": "Tell me a long story."}]
STREAMS = {
    "/v1/chat/completions": {"model": MODEL, "messages": USER, "stream": True},
    "/v1/completions": {"model": MODEL, "prompt": "Once", "stream": True},
    "/v1/responses": {"model": MODEL, "input": "Hi", "stream": True},
    "/v1/messages": {"model": MODEL, "max_tokens": 400, "messages": USER, "stream": True},
}


@FUZZ
@given(
    path=st.sampled_from(sorted(STREAMS)),
    read=st.integers(min_value=0, max_value=4000),
    reset=st.booleans(),
)
def test_client_leaves_mid_stream(live: LiveRouter, path: str, read: int, reset: bool) -> None:
    body = orjson.dumps(STREAMS[path])
    headers = [("Authorization", f"Bearer {live.key}"), ("Content-Type", "application/json")]
    sock = connect(live.port)
    try:
        sock.sendall(head("POST", path, headers, body) + body)
        got = b""
        while len(got) < read:  # each recv is bounded by the harness's timeout
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        if read:
            assert got.startswith(b"HTTP/1.1 200 "), got[:200]
        if reset:  # RST instead of FIN: the router's next write fails at once
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()
    live.wait_idle()  # the node stopped generating for nobody, the lease came back


def test_still_serving(live: LiveRouter) -> None:
    still_serving(live)
