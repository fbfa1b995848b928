"""`GET /metrics`: after a known mix of requests, a real scrape says exactly what happened."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest

from router.emulator import EmulatorConfig
from tests.conftest import RouterFactory, Scrape, scrape, scrape_until, wait_until
from tests.observability.conftest import MODEL, PACED, mixed_traffic, ollama_counts, require_tool

TWO_NODES = {"node-a": PACED, "node-b": PACED}


def _without_scrapes(series: dict[tuple[str, ...], float]) -> dict[tuple[str, ...], float]:
    return {labels: v for labels, v in series.items() if labels[0] != "/metrics"}


def _check_histogram(result: Scrape, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Buckets never decrease and +Inf equals _count; returns the counts."""
    counts = result.series(f"{name}_count", *labels)
    buckets: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    for labels_, value in result.series(f"{name}_bucket", *labels, "le").items():
        buckets.setdefault(labels_[:-1], []).append((float(labels_[-1]), value))
    for key, pairs in buckets.items():
        values = [v for _, v in sorted(pairs)]
        assert values == sorted(values), (name, key)
        assert values[-1] == counts[key], (name, key)
    return counts


async def test_scrape_counts_exactly_what_happened(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    router = await make_router(TWO_NODES)
    traffic = await mixed_traffic(router, http)
    result = await scrape_until(
        http,
        router.url,
        lambda s: (
            ("/chat/completions", MODEL, "499")
            in s.series("jarvis_requests_total", "endpoint", "model", "status_code")
        ),
    )
    chats = sum(1 for s in traffic.served if s.endpoint == "/chat/completions")
    requests = _without_scrapes(
        result.series("jarvis_requests_total", "endpoint", "model", "status_code")
    )
    assert requests == {
        ("/chat/completions", MODEL, "200"): chats,
        ("/completions", MODEL, "200"): 1,
        ("/chat/completions", "unknown", "404"): 1,  # the client's model name is not a label
        ("/chat/completions", MODEL, "499"): 1,
    }
    durations = _check_histogram(result, "jarvis_request_duration_seconds", "endpoint", "model")
    assert _without_scrapes(durations) == {
        ("/chat/completions", MODEL): chats + 1,
        ("/completions", MODEL): 1,
        ("/chat/completions", "unknown"): 1,
    }
    # Every request that produced a token, streamed or not (the router always streams from
    # the node), on the node that answered it; and the stream cut off after its first token.
    ttft = _check_histogram(result, "jarvis_time_to_first_token_seconds", "model", "node")
    expected_ttft = Counter((MODEL, s.node) for s in traffic.served)
    expected_ttft[(MODEL, traffic.disconnect_node)] += 1
    assert ttft == expected_ttft
    tpot = _check_histogram(result, "jarvis_time_per_output_token_seconds", "model", "node")
    assert tpot == {(MODEL, traffic.stream_node): 1}

    outcomes = Counter((s.node, "ok") for s in traffic.served)
    outcomes[("node-a", "http_5xx")] += traffic.failovers
    outcomes[(traffic.disconnect_node, "client_cancelled")] += 1
    assert result.series("jarvis_upstream_requests_total", "node", "outcome") == outcomes
    assert result.series("jarvis_failovers_total", "model") == {(MODEL,): traffic.failovers}

    assert result.series("jarvis_node_up", "node") == {("node-a",): 1, ("node-b",): 1}
    assert result.series("jarvis_node_in_flight", "node") == {("node-a",): 0, ("node-b",): 0}
    assert result.series("jarvis_node_capacity", "node") == {("node-a",): 4, ("node-b",): 4}
    assert result.series("jarvis_node_models", "node") == {("node-a",): 1, ("node-b",): 1}
    assert result.series("jarvis_model_healthy_nodes", "model") == {(MODEL,): 2}
    health = _check_histogram(result, "jarvis_health_check_duration_seconds", "node")
    assert set(health) == {("node-a",), ("node-b",)}
    assert "process_cpu_seconds_total" in result.names
    assert "python_info" in result.names


async def test_token_counters_equal_ollamas_own_counts(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    router = await make_router(TWO_NODES)
    traffic = await mixed_traffic(router, http)
    expected: Counter[tuple[str, str, str]] = Counter()
    completion: Counter[tuple[str, str, str]] = Counter()
    for served in traffic.served:
        prompt_n, eval_n = await ollama_counts(router, served)
        assert prompt_n > 0 and eval_n > 0
        expected[(MODEL, served.node, "test")] += prompt_n
        completion[(MODEL, served.node, "test")] += eval_n
    result = await scrape(http, router.url)
    # The api_key label is the key's configured name; the key itself never appears.
    assert result.series("jarvis_prompt_tokens_total", "model", "node", "api_key") == expected
    assert result.series("jarvis_completion_tokens_total", "model", "node", "api_key") == completion
    assert router.key not in result.text


async def test_a_dead_node_and_an_orphaned_model_show_in_the_gauges(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    router = await make_router(
        {"node-a": EmulatorConfig(models=("llama3", "phi3")), "node-b": PACED},
        max_concurrency={"node-a": 2, "node-b": 6},
    )
    await router.nodes["node-a"].kill()
    await wait_until(lambda: not router.state.fleet.nodes["node-a"].healthy)
    result = await scrape(http, router.url)
    assert result.series("jarvis_node_up", "node") == {("node-a",): 0, ("node-b",): 1}
    assert result.series("jarvis_node_capacity", "node") == {("node-a",): 2, ("node-b",): 6}
    assert result.series("jarvis_model_healthy_nodes", "model") == {
        ("ollama/llama3",): 1,
        ("ollama/phi3",): 0,  # what the "no healthy node for a model" alert fires on
    }


async def test_live_scrape_passes_promtool_check_metrics(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    promtool = require_tool("promtool")
    router = await make_router(TWO_NODES)
    await mixed_traffic(router, http)
    text = (await scrape(http, router.url)).text
    proc = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(text.encode()), 10)
    assert proc.returncode == 0, out.decode()
    assert out.decode().strip() == ""  # no lint findings either


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_a_client_that_leaves_before_the_answer_counts_once(
    make_router: RouterFactory, http: aiohttp.ClientSession, stream: bool
) -> None:
    router = await make_router({"slow": EmulatorConfig(models=("llama3",), ttft_ms=2000)})
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with pytest.raises(TimeoutError):
        async with http.post(
            router.url + "/v1/chat/completions",
            json=body,
            headers=router.headers(),
            timeout=aiohttp.ClientTimeout(total=0.3),
        ) as resp:
            await resp.read()
    result = await scrape_until(
        http,
        router.url,
        lambda s: bool(_without_scrapes(s.series("jarvis_requests_total", "endpoint"))),
    )
    assert _without_scrapes(
        result.series("jarvis_requests_total", "endpoint", "model", "status_code")
    ) == {("/chat/completions", MODEL, "499"): 1}
    # The node did nothing wrong: one attempt, counted as the client's doing.
    assert result.series("jarvis_upstream_requests_total", "node", "outcome") == {
        ("slow", "client_cancelled"): 1
    }
