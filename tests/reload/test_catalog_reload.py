"""A reload swaps the model catalog (issue #15): a name added to `models:` routes at once, with
its options; a bad entry is refused whole, its key named, and the running catalog stays."""

from __future__ import annotations

import openai
import pytest

from tests.reload.conftest import LiveFactory

HELLO = [{"role": "user", "content": "hi"}]


async def test_a_reload_adds_and_removes_a_catalog_name(live_router: LiveFactory) -> None:
    live = await live_router(("a",))
    client = live.router.client()
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="ollama/chat", messages=HELLO)
    live.fleet.data["models"] = [{"name": "chat", "targets": ["llama3"], "num_ctx": 4096}]
    live.fleet.write()
    assert await live.reloader.reload()
    reply = await client.chat.completions.create(model="ollama/chat", messages=HELLO)
    assert reply.model == "ollama/chat"
    body = live.router.nodes["a"].stats.bodies[-1]
    assert body["model"] == "llama3:latest" and body["options"]["num_ctx"] == 4096
    ids = {m.id for m in (await client.models.list()).data}
    assert {"ollama/chat", "ollama/llama3"} <= ids
    # A bad entry: refused, and the running catalog stays.
    live.fleet.data["models"] = [{"name": "chat", "targets": []}]
    live.fleet.write()
    assert not await live.reloader.reload()
    assert (await client.chat.completions.create(model="ollama/chat", messages=HELLO)).model
    del live.fleet.data["models"]
    live.fleet.write()
    assert await live.reloader.reload()
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="ollama/chat", messages=HELLO)
