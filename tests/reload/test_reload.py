"""Fleet-file reloads under continuous SDK load: nodes added, removed and re-weighted, keys
added and revoked, a bad file refused; zero failed requests among the load's."""

from __future__ import annotations

import asyncio
import logging

import openai
import pytest

from router.api.reload import pin_restart_only
from router.config import load_config
from tests.conftest import wait_until
from tests.reload.conftest import MODEL, LiveFactory, Load, chats, run_load

pytestmark = pytest.mark.timeout(20)
HELLO = [{"role": "user", "content": "hi"}]


async def test_fleet_changes_under_load_drop_no_request(
    live_router: LiveFactory, caplog: pytest.LogCaptureFixture
) -> None:
    live = await live_router(("a", "b"))
    router, fleet = live.router, live.fleet
    temp_key = fleet.add_key("temp")
    fleet.write()
    assert await live.reloader.reload()
    temp = router.client(key=temp_key)
    await temp.chat.completions.create(model=MODEL, messages=HELLO)

    stop, load = asyncio.Event(), Load()
    # One client per slot of a, b and c: at lighter load cost-aware routing may leave a node
    # idle (a light load goes to the nodes it scores best), and b must be busy when removed.
    traffic = asyncio.create_task(run_load(router, stop, load, clients=12))
    async with asyncio.timeout(15):
        await wait_until(lambda: chats(router.nodes["a"]) > 2 and chats(router.nodes["b"]) > 2)

        # Add a node: health-checked at once, it takes traffic.
        c = await live.start_node("c")
        fleet.data["nodes"].append({"name": "c", "url": c.url, "max_concurrency": 4})
        fleet.write()
        assert await live.reloader.reload()
        assert router.state.fleet.nodes["c"].in_rotation
        await wait_until(lambda: chats(c) > 2)

        # Remove a node while it has requests in flight: they finish, no new ones arrive.
        b = router.nodes["b"]
        await wait_until(lambda: b.stats.in_flight > 0)
        fleet.data["nodes"] = [n for n in fleet.data["nodes"] if n["name"] != "b"]
        fleet.write()
        assert await live.reloader.reload()
        assert "b" not in router.state.fleet.nodes
        await wait_until(lambda: b.stats.in_flight == 0)
        seen = chats(b)
        await asyncio.sleep(0.3)
        assert chats(b) == seen

        # Re-weight: a takes one request at a time from now on.
        fleet.node("a")["max_concurrency"] = 1
        fleet.write()
        assert await live.reloader.reload()
        assert router.state.fleet.nodes["a"].capacity == 1
        await wait_until(lambda: router.state.fleet.nodes["a"].in_flight <= 1)
        for _ in range(20):
            assert router.state.fleet.nodes["a"].in_flight <= 1
            await asyncio.sleep(0.01)

        # Revoke a key (its next request gets 401) and add one (it works at once).
        fleet.data["api_keys"] = [k for k in fleet.data["api_keys"] if k["name"] != "temp"]
        new_key = fleet.add_key("new")
        fleet.write()
        assert await live.reloader.reload()
        with pytest.raises(openai.AuthenticationError):
            await temp.chat.completions.create(model=MODEL, messages=HELLO)
        await router.client(key=new_key).chat.completions.create(model=MODEL, messages=HELLO)

        # A bad file is refused whole: the running config stays, the error is logged, counted.
        running = router.state.config
        fleet.write(fleet.path.read_text().replace("max_concurrency: 1", "max_concurrency: 0"))
        with caplog.at_level(logging.ERROR, logger="router.api.reload"):
            assert not await live.reloader.reload()
        assert "nodes[0].max_concurrency must be >= 1, got 0" in caplog.text
        assert live.reloads("error") == 1 and live.reloads("ok") == 5
        assert router.state.config is running
        assert router.state.fleet.nodes["a"].capacity == 1
        await router.client(key=new_key).chat.completions.create(model=MODEL, messages=HELLO)

        await asyncio.sleep(0.2)
        stop.set()
        await traffic
    assert load.failures == []
    assert load.ok > 50
    assert chats(c) > 2


async def test_restart_only_values_keep_their_running_value(
    live_router: LiveFactory, caplog: pytest.LogCaptureFixture
) -> None:
    live = await live_router(("a",))
    fleet, state = live.fleet, live.router.state
    fleet.data["listen"] = {"port": 9999}
    fleet.data["routing"]["max_attempts"] = 5
    fleet.data["routing"]["max_connections_per_node"] = 7
    fleet.write()
    with caplog.at_level(logging.WARNING, logger="router.api.reload"):
        assert await live.reloader.reload()
    assert "listen, routing.max_connections_per_node changed, which takes a restart" in caplog.text
    assert state.config.listen.port == 8080
    assert state.config.routing.max_connections_per_node == 4096
    assert state.config.routing.max_attempts == state.dispatcher.max_attempts == 5


def test_pin_restart_only_is_pure(tmp_path) -> None:
    path = tmp_path / "f.yaml"
    base = (
        "api_keys: [{name: k, sha256: " + "a" * 64 + "}]\nnodes: [{name: a, url: 'http://a:1'}]\n"
    )
    path.write_text(base)
    running = load_config(str(path), env={})
    path.write_text(base + "metrics: {port: 9100}\nhealth: {interval_s: 9}\n")
    loaded = load_config(str(path), env={})
    config, changed = pin_restart_only(running, loaded)
    assert changed == ["metrics.port"]
    assert config.metrics.port is None and config.health.interval_s == 9
    assert pin_restart_only(running, running) == (running, [])


async def test_the_watcher_reloads_a_changed_file(live_router: LiveFactory) -> None:
    live = await live_router(("a",), poll_s=0.05)
    key = live.fleet.add_key("late")
    live.fleet.write()
    await wait_until(lambda: live.reloads("ok") == 1)
    await live.router.client(key=key).chat.completions.create(model=MODEL, messages=HELLO)
    live.fleet.write("nodes: [\n")  # broken YAML: refused once, not at every poll
    await wait_until(lambda: live.reloads("error") == 1)
    await asyncio.sleep(0.2)
    assert live.reloads("error") == 1
    await live.router.client(key=key).chat.completions.create(model=MODEL, messages=HELLO)


async def test_a_reload_changes_how_the_next_answer_is_gathered(live_router: LiveFactory) -> None:
    """`routing.gather` applies from the next request on: no restart, no dropped request."""
    live = await live_router(("a",), poll_s=0.05)
    node, client = live.router.nodes["a"], live.router.client()
    asked: list[object] = []

    async def ask() -> None:
        answer = await client.chat.completions.create(model=MODEL, messages=HELLO)
        assert answer.choices[0].message.content and answer.usage is not None
        asked.append(node.stats.bodies[-1].get("stream"))

    await ask()
    for mode, reloads in (("whole", 1), ("stream", 2)):
        live.fleet.data.setdefault("routing", {})["gather"] = mode
        live.fleet.write()

        def reloaded(n: int = reloads) -> bool:
            return live.reloads("ok") == n

        await wait_until(reloaded)
        await ask()
    assert asked == [True, False, True]
