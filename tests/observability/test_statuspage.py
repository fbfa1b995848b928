"""`GET /status` as an operator sees it: loaded in headless Chromium, and rendered safely."""

from __future__ import annotations

import asyncio
import tempfile
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest

from router.api.statuspage import render
from router.emulator import EmulatorConfig
from tests.conftest import RouterFactory, wait_until
from tests.observability.conftest import MESSAGES, MODEL, PACED, SHORT, require_tool

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class _Page(HTMLParser):
    """The visible text of the summary, of each node row (by cell) and of the error list."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.summary = ""
        self.errors: list[str] = []
        self.refresh: str | None = None
        self._row: list[str] | None = None
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and a.get("http-equiv") == "refresh":
            self.refresh = a.get("content")
        elif tag == "tr" and a.get("data-node"):
            self._row = self.rows.setdefault(str(a["data-node"]), [])
        elif tag == "td" and self._row is not None:
            self._row.append("")
        elif tag == "p" and a.get("id") == "summary":
            self._in = "summary"
        elif tag == "li":
            self.errors.append("")
            self._in = "li"

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        elif tag in ("p", "li"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._row:
            self._row[-1] += data
        elif self._in == "summary":
            self.summary += data
        elif self._in == "li":
            self.errors[-1] += data


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


async def _chromium_dom(url: str) -> str:
    chromium = require_tool("chromium")
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0
    return out.decode()


async def test_chromium_shows_a_killed_node_as_down(make_router: RouterFactory) -> None:
    router = await make_router(
        {"node-a": PACED, "node-b": EmulatorConfig(models=("llama3", "phi3"))},
        max_concurrency={"node-a": 3, "node-b": 5},
    )
    await router.client().chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=SHORT)
    await router.nodes["node-b"].kill()
    await wait_until(lambda: not router.state.fleet.nodes["node-b"].healthy)

    page = _parse(await _chromium_dom(router.url + "/status"))

    assert page.refresh == "5"
    assert page.summary.startswith("1 of 2 nodes healthy")
    name, health, load, models, _tokens, _checked, _failed, error = page.rows["node-b"]
    assert (name, health, load.strip()) == ("node-b", "down", "0 / 5")
    assert models == f"{MODEL}, ollama/phi3"
    assert "node node-b connection failed" in error
    name, health, load, models, *_, error = page.rows["node-a"]
    assert (name, health, load.strip(), models, error) == ("node-a", "up", "0 / 3", MODEL, "none")
    assert any(item.startswith("node-b node node-b connection failed") for item in page.errors)
    assert router.nodes["node-a"].url not in str(page.rows)  # no node addresses on the page


async def test_status_page_headers(make_router: RouterFactory, http: aiohttp.ClientSession) -> None:
    router = await make_router({"node-a": PACED})
    async with http.get(router.url + "/status") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert resp.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        page = _parse(await resp.text())
    assert page.rows["node-a"][:2] == ["node-a", "up"]


def _view(**node: Any) -> dict[str, Any]:
    base = {
        "name": "gpu-a",
        "status": "down",
        "healthy": False,
        "in_flight": 9,
        "capacity": 4,
        "models": ["ollama/llama3"],
        "tokens_per_s": 0.0,
        "last_check": None,
        "upstream_errors": {},
        "last_error": None,
        "recent_errors": [],
    }
    return {"time": "2030-01-01T00:00:00.000Z", "healthy_nodes": 0, "data": [{**base, **node}]}


HOSTILE = '<script>alert("x")</script>'


@pytest.mark.parametrize(
    "node",
    [
        {"models": [HOSTILE]},
        {"last_error": {"message": HOSTILE, "age_s": 1.0, "count": 1, "at": "t"}},
        {"recent_errors": [{"message": HOSTILE, "age_s": 1.0, "count": 2, "at": "t"}]},
    ],
    ids=["model-name", "last-error", "recent-errors"],
)
def test_text_from_nodes_is_escaped(node: dict[str, Any]) -> None:
    html = render(_view(**node))
    assert "<script" not in html
    assert "&lt;script&gt;" in html


def test_an_overloaded_node_fills_its_bar_no_further() -> None:
    html = render(_view())
    assert 'style="width:100%"' in html and "9 / 4" in html
