"""`server.max_connections`: beyond it a new connection is closed at once; freed, it is open."""

from __future__ import annotations

import asyncio

from router.config import ServerConfig
from tests.conftest import RouterFactory
from tests.edge.raw import connect, parse, read_to_close, request


async def test_connections_beyond_the_cap_are_closed_at_once(make_router: RouterFactory) -> None:
    router = await make_router(server=ServerConfig(max_connections=5))
    held = [await connect(router) for _ in range(5)]
    try:
        # The sixth is accepted by the kernel, then closed unanswered, even with a request.
        reader, writer = await connect(router)
        writer.write(request(router, "GET", "/v1/models"))
        assert await read_to_close(reader) == b""
        writer.close()
        # The held ones still work.
        held_reader, held_writer = held[0]
        held_writer.write(request(router, "GET", "/v1/models"))
        assert parse(await read_to_close(held_reader)).status == 200
    finally:
        for _, w in held:
            w.close()
    # Freed: the closes reach the router, then a new connection is served.
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        reader, writer = await connect(router)
        writer.write(request(router, "GET", "/v1/models"))
        raw = await read_to_close(reader)
        writer.close()
        if raw or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert parse(raw).status == 200
    models = await router.client().models.list()
    assert models.data
