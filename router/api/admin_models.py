"""Operator control of models (issue #15), admin keys only:

- `GET /admin/models`: per public model its targets and options, and per node model which
  nodes have it installed, loaded (and at which context), requests in use and queued;
- `POST /admin/models/{model}/load?node=N` and `.../unload?node=N`: Ollama's own load
  request with the model's catalog options (unload: `keep_alive: 0`), on the target of
  `model` that node has installed; answers when the node has done it;
- `POST /admin/models/pull` `{"node": N, "model": M}`: `/api/pull` on the node, its
  progress lines relayed as NDJSON (an `{"error": ...}` line ends a failed pull, as Ollama's
  own does); when it succeeded, the node's `/api/tags` is read again so the model is
  routable at once.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from aiohttp import web

from router.api.admin import require_admin
from router.api.stamp import stamp
from router.api.state import STATE, RouterState
from router.catalog.entries import Entry
from router.context import CTX
from router.errors import BadRequest, NotFound, ServiceUnavailable, UpstreamRejected
from router.fleet.registry import NodeState
from router.modelnames import canonical, public_id
from router.upstream.outcome import Outcome, UpstreamError

log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"
# An Ollama model name (as the fleet file's `models:` accepts them).
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$")


def _node(state: RouterState, name: object) -> NodeState:
    if not isinstance(name, str) or not name:
        raise BadRequest("Name the node: ?node=<name>.", param="node")
    node = state.fleet.nodes.get(name)
    if node is None:
        raise NotFound(f"The fleet has no node named '{name}'.", code="node_not_found")
    return node


def _target(entry: Entry, node: NodeState, requested: str) -> str:
    """The most preferred target of `entry` installed on `node`."""
    found = next((t for t in entry.targets if t in node.models), None)
    if found is None:
        raise NotFound(
            f"Node {node.name} has none of the node models of '{requested}' installed "
            f"({', '.join(entry.targets)}); pull one first.",
            code="model_not_found",
        )
    return found


def _failed(exc: UpstreamError) -> Exception:
    if exc.outcome in (Outcome.HTTP_4XX, Outcome.MODEL_MISSING):
        return UpstreamRejected(exc.status or 400, exc.message)
    return ServiceUnavailable(f"The node failed: {exc.message}", retry_after_s=1)


async def load(request: web.Request) -> web.StreamResponse:
    return await _load(request, unload=False)


async def unload(request: web.Request) -> web.StreamResponse:
    return await _load(request, unload=True)


async def _load(request: web.Request, *, unload: bool) -> web.StreamResponse:
    require_admin(request)
    state, requested = request.app[STATE], request.match_info["model"]
    node = _node(state, request.query.get("node"))
    entry = state.catalog.resolve(canonical(requested))
    target = _target(entry, node, requested)
    try:
        await state.warm.load(node, target, entry, unload=unload)
    except UpstreamError as exc:
        raise _failed(exc) from exc
    key = request[CTX].key
    log.info(
        "model %s %s on node %s by API key %s",
        target,
        "unloaded" if unload else "loaded",
        node.name,
        key.name if key is not None else "-",
    )
    return web.json_response(
        {
            "model": entry.public_id,
            "node_model": target,
            "node": node.name,
            "status": "unloaded" if unload else "loaded",
            "context_length": None if unload else entry.num_ctx,
        }
    )


async def pull(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    state = request.app[STATE]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest('The body must be {"node": ..., "model": ...}.')
    node = _node(state, body.get("node"))
    model = body.get("model")
    if not isinstance(model, str) or not _MODEL_RE.match(model) or "ollama/" in model.lower():
        raise BadRequest("`model` must be an Ollama model name such as llama3:8b.", param="model")
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    stamp(request, response)
    await response.prepare(request)
    ok = False
    try:
        async for line in state.upstream.pull(node, model):
            ok = ok or line.get("status") == "success"
            await response.write(orjson.dumps(line) + b"\n")
    except UpstreamError as exc:  # the node's own `{"error": ...}` line, or a failure
        await response.write(orjson.dumps({"error": exc.message}) + b"\n")
    if ok:  # routable now, not at the next health round
        state.facts.forget(node.name)
        await state.health.check(node)
        ready = canonical(model) in node.models
        line = {"status": "routable" if ready else "not listed yet", "model": public_id(model)}
        await response.write(orjson.dumps(line) + b"\n")
    await response.write_eof()
    return response


def models_view(state: RouterState) -> dict[str, Any]:
    """Per public model (catalog entries, then node models): installed, loaded, in use,
    queued. Shared by `/admin/models`, the status page and `jarvis-router status`."""
    catalog, nodes = state.catalog, list(state.fleet.nodes.values())
    waiting = state.dispatcher.slots.waiting_by_model()
    in_use = state.dispatcher.in_use
    rows: list[dict[str, Any]] = []
    listed: set[str] = set()
    names = [e.name for e in catalog.entries]
    names += sorted({m for n in nodes for m in n.models} - set(names))
    for name in names:
        entry = catalog.resolve(name)
        if not entry.configured and name in listed:
            continue
        listed.update(entry.targets)
        rows.append(
            {
                "id": entry.public_id,
                "targets": list(entry.targets),
                "num_ctx": entry.num_ctx,
                "min_loaded": entry.min_loaded,
                "installed": sorted(
                    f"{n.name}:{t}" if entry.alias else n.name
                    for n in nodes
                    for t in entry.targets
                    if t in n.models
                ),
                "loaded": [
                    {"node": n.name, "model": t, "context_length": n.contexts.get(t)}
                    for n in nodes
                    for t in entry.targets
                    if n.loaded is not None and t in n.loaded
                ],
                "in_use": sum(in_use.get(t, 0) for t in entry.targets),
                "queued": sum(waiting.get(t, 0) for t in entry.targets),
            }
        )
    return {"object": "list", "data": rows}


async def models(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    return web.json_response(models_view(request.app[STATE]))


# -- `jarvis-router status` and the status page: the same data as a table --------------------
MODEL_COLUMNS = ("MODEL", "INSTALLED", "LOADED", "IN USE", "QUEUED")


def model_cells(row: dict[str, Any]) -> tuple[str, ...]:
    loaded = ", ".join(
        f"{item['node']}:{item['model']}"
        + (f" ({item['context_length']})" if item["context_length"] else "")
        for item in row["loaded"]
    )
    return (
        row["id"],
        ", ".join(row["installed"]) or "-",
        loaded or "-",
        str(row["in_use"]),
        str(row["queued"]),
    )


def format_models(view: dict[str, Any]) -> str:
    rows = [MODEL_COLUMNS, *(model_cells(r) for r in view["data"])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(MODEL_COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
