"""A client that leaves mid-request frees the node: the upstream request is closed at once, and
the attempt counts once, as the client's doing (never the node's: no breaker, no health mark)."""

from __future__ import annotations

import asyncio

import aiohttp

from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory, scrape, wait_until

SLOW = EmulatorConfig(models=("llama3",), tokens_per_second=20, default_tokens=200)


async def _only_a_cancel(router: Router) -> None:
    """The one attempt ended as `client_cancelled` (the router's own /metrics says), and the
    node's breaker saw nothing."""
    async with aiohttp.ClientSession() as http:
        metrics = await scrape(http, router.url)
    outcomes = metrics.series("jarvis_upstream_requests_total", "node", "outcome")
    assert outcomes == {("solo", "client_cancelled"): 1}, outcomes
    node = router.state.fleet.nodes["solo"]
    assert node.healthy  # a client cancel is never the node's fault
    assert node.breaker is not None and node.breaker.consecutive_failures == 0


async def test_stream_disconnect_frees_the_slot(make_router: RouterFactory, http) -> None:
    router = await make_router({"solo": SLOW})
    body = {
        "model": "ollama/llama3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    resp = await http.post(router.url + "/v1/chat/completions", json=body, headers=router.headers())
    assert resp.status == 200
    await resp.content.readuntil(b"\n\n")  # role chunk
    await resp.content.readuntil(b"\n\n")  # a token
    assert router.router_in_flight() == {"solo": 1}
    resp.close()  # the client goes away mid-stream
    await wait_until(lambda: router.router_in_flight() == {"solo": 0}, 2.0)
    await wait_until(lambda: router.nodes["solo"].stats.in_flight == 0, 2.0)
    assert router.nodes["solo"].stats.cancelled == 1
    await _only_a_cancel(router)


async def test_non_stream_disconnect_frees_the_slot(make_router: RouterFactory) -> None:
    router = await make_router({"solo": SLOW})
    client = router.client(timeout=0.5)
    task = asyncio.create_task(
        client.chat.completions.create(
            model="ollama/llama3", messages=[{"role": "user", "content": "hi"}]
        )
    )
    await wait_until(lambda: router.router_in_flight() == {"solo": 1}, 2.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await wait_until(lambda: router.router_in_flight() == {"solo": 0}, 2.0)
    await wait_until(lambda: router.nodes["solo"].stats.in_flight == 0, 2.0)
    assert router.nodes["solo"].stats.cancelled == 1
    await _only_a_cancel(router)
