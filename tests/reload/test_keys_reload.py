"""Key lifecycle through the fleet file: a revoked key stops working at the next reload, with
no restart; a changed policy applies to the key's next request; a plaintext key is refused."""

from __future__ import annotations

import openai
import pytest

from router.api.auth import new_key
from tests.reload.conftest import MODEL, LiveFactory

pytestmark = pytest.mark.timeout(20)
HELLO = [{"role": "user", "content": "hi"}]


async def test_a_revoked_key_gets_401_after_a_reload_without_restart(
    live_router: LiveFactory,
) -> None:
    live = await live_router(("a",))
    router, fleet = live.router, live.fleet
    temp_key = fleet.add_key("temp")
    fleet.data["api_keys"][-1].update({"rpm": 100, "max_concurrency": 2})
    fleet.write()
    assert await live.reloader.reload()
    temp = router.client(key=temp_key)
    await temp.chat.completions.create(model=MODEL, messages=HELLO)
    app = router.app

    fleet.data["api_keys"] = [k for k in fleet.data["api_keys"] if k["name"] != "temp"]
    fleet.write()
    assert await live.reloader.reload()
    with pytest.raises(openai.AuthenticationError) as info:
        await temp.chat.completions.create(model=MODEL, messages=HELLO)
    assert info.value.code == "invalid_api_key"
    assert router.app is app  # the same running app: no restart
    await router.client().chat.completions.create(model=MODEL, messages=HELLO)


async def test_a_changed_policy_applies_to_the_next_request(live_router: LiveFactory) -> None:
    live = await live_router(("a",))
    router, fleet = live.router, live.fleet
    client = router.client()
    await client.chat.completions.create(model=MODEL, messages=HELLO)
    fleet.data["api_keys"][0]["rpm"] = 1  # "test": one request a minute from now on
    fleet.write()
    assert await live.reloader.reload()
    await client.chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=MODEL, messages=HELLO)
    del fleet.data["api_keys"][0]["rpm"]
    fleet.write()
    assert await live.reloader.reload()
    await client.chat.completions.create(model=MODEL, messages=HELLO)


async def test_a_plaintext_key_in_the_file_is_refused_and_the_running_keys_stay(
    live_router: LiveFactory,
) -> None:
    live = await live_router(("a",))
    router, fleet = live.router, live.fleet
    leaked = new_key()
    fleet.data["api_keys"].append({"name": "leak", "sha256": leaked})
    fleet.write()
    assert not await live.reloader.reload()
    assert live.reloads("error") == 1
    await router.client().chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.AuthenticationError):
        await router.client(key=leaked).chat.completions.create(model=MODEL, messages=HELLO)
