"""The Grafana dashboard and the alerting rules in deploy/ use only metrics the router exports,
the rules pass promtool (syntax and their unit tests), and docs/metrics.md lists every family."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry

from router.config import FleetConfig, NodeConfig
from router.fleet.registry import Fleet
from router.obs.metrics import Metrics
from router.obs.usage import UsageBook
from router.routing.build import build_slots
from router.routing.scoring import SpeedStats
from tests.conftest import RouterFactory, scrape
from tests.observability.conftest import PACED, ROOT, mixed_traffic, require_tool

DASHBOARD = ROOT / "deploy/grafana/jarvis-dashboard.json"
RULES = ROOT / "deploy/prometheus/jarvis-alerts.yaml"
RULE_TESTS = ROOT / "deploy/prometheus/jarvis-alerts.test.yaml"
DOCS = ROOT / "docs/metrics.md"
NAME = re.compile(r"\bjarvis_[a-z0-9_]+\b")
QUERY_KEYS = ("expr", "query", "definition")


def _queries(node: Any) -> Iterator[str]:
    """Every PromQL string in a dashboard: panel targets and template variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in QUERY_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _names(queries: list[str]) -> set[str]:
    return {name for query in queries for name in NAME.findall(query)}


async def _promtool(*args: str) -> str:
    promtool = require_tool("promtool")
    proc = await asyncio.create_subprocess_exec(
        promtool, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_promtool_check_rules() -> None:
    out = await _promtool("check", "rules", str(RULES))
    assert "SUCCESS: 5 rules found" in out


async def test_promtool_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in await _promtool("test", "rules", str(RULE_TESTS))


async def test_every_metric_in_dashboard_and_rules_is_in_a_live_scrape(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    used = _names(list(_queries(_dashboard()))) | _names(_rule_exprs())
    router = await make_router({"node-a": PACED, "node-b": PACED})
    await mixed_traffic(router, http)  # every family gets series: streams, failover, tokens
    exported = (await scrape(http, router.url)).names
    assert used - exported == set()
    # The dashboard covers what the issue asks for; the alerts cover the failure modes.
    assert {
        "jarvis_requests_total",
        "jarvis_request_duration_seconds_bucket",
        "jarvis_time_to_first_token_seconds_bucket",
        "jarvis_completion_tokens_total",
        "jarvis_node_up",
        "jarvis_node_local_in_flight",
        "jarvis_node_capacity",
        "jarvis_failovers_total",
    } <= _names(list(_queries(_dashboard())))


def test_docs_list_every_jarvis_family() -> None:
    documented = set(re.findall(r"^\| `(jarvis_[a-z0-9_]+)`", DOCS.read_text(), re.M))
    registry = CollectorRegistry()
    node = NodeConfig("n", "http://n:1")
    fleet = Fleet([node], clock=lambda: 0.0)
    metrics = Metrics(registry, fleet)
    UsageBook(registry)
    config = FleetConfig(nodes=(node,), api_keys=())
    build_slots(config, fleet, SpeedStats(), random.Random(0), metrics, lambda: 0.0)
    # The client names a counter family without `_total`; its samples and the docs have it.
    exported = {
        m.name + ("_total" if m.type == "counter" else "")
        for m in registry.collect()
        if m.name.startswith("jarvis_")
    }
    with_redis_only = {"jarvis_coordination_up", "jarvis_coordination_errors_total"}
    with_fleet_file_only = {"jarvis_config_reloads_total"}  # router.api.reload, `serve --config`
    assert exported | with_redis_only | with_fleet_file_only == documented


def test_dashboard_layout_is_sound() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "jarvis-router"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])


@pytest.mark.parametrize("path", [RULES, RULE_TESTS], ids=["rules", "rule-tests"])
def test_rule_files_are_plain_yaml(path: Any) -> None:
    assert yaml.safe_load(path.read_text())
