"""Model management: `POST /api/show`, `POST /api/pull`, `DELETE /api/delete` (api-reference.md
1.8, 5.7; `server/routes.go` `ShowHandler`, `PullHandler`, `DeleteHandler`).

A pull "downloads" instantly, streaming Ollama's progress lines, and installs the model with
the facts its name implies (`catalog.model_info`); `EmulatorConfig.pullable` limits what the
registry has. A delete removes the model from `/api/tags`; a loaded copy stays in `/api/ps`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from .catalog import ModelInfo, display_name, is_valid_name, model_info
from .generation import STATE, error_response
from .gojson import DELETE_REQUEST, PULL_REQUEST, SHOW_REQUEST, WireError, check_types, load_json
from .run import NDJSON_HEADERS, json_response
from .state import NodeState

MANIFEST_MISSING = "pull model manifest: file does not exist"


def _name(request_body: Any, spec_fields: Any) -> tuple[dict[str, Any], str]:
    typed = check_types(request_body, spec_fields)
    return typed, typed.get("model") or typed.get("name") or ""


async def handle_show(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.requests["/api/show"] += 1
    try:
        _, model = _name(load_json(await request.read()), SHOW_REQUEST)
        if not model:
            raise WireError(400, "model is required")
        if not is_valid_name(model):
            raise WireError(400, "invalid model name")
        key = display_name(model)
        info = state.catalog.get(key)
        if info is None:
            raise WireError(404, f"model '{key}' not found")
    except WireError as exc:
        return error_response(exc)
    body = info.show_body(state.clock.format_ns(info.modified_at_ns))
    return json_response(orjson.dumps(body))


async def handle_delete(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.requests["/api/delete"] += 1
    try:
        _, model = _name(load_json(await request.read()), DELETE_REQUEST)
        if not model or not is_valid_name(model):
            raise WireError(400, f"name {orjson.dumps(model).decode()} is invalid")
        key = display_name(model)
        if key not in state.catalog:
            raise WireError(404, f"model '{model}' not found")
    except WireError as exc:
        return error_response(exc)
    state.remove(key)
    return web.Response(status=200)


def _progress(state: NodeState, info: ModelInfo) -> list[dict[str, Any]] | None:
    """Ollama's progress lines for a pull, or None when the registry lacks the model."""
    pullable = state.config.pullable
    if pullable is not None and info.name not in {display_name(n) for n in pullable}:
        return None
    layer = {"status": f"pulling {info.digest[:12]}", "digest": f"sha256:{info.digest}"}
    steps = [{**layer, "total": info.size}]
    steps += [{**layer, "total": info.size, "completed": info.size * n // 2} for n in (1, 2)]
    return [
        {"status": "pulling manifest"},
        *steps,
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]


async def handle_pull(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.stats.requests["/api/pull"] += 1
    try:
        typed, model = _name(load_json(await request.read()), PULL_REQUEST)
        if not model or not is_valid_name(model):
            raise WireError(400, "invalid model name")
    except WireError as exc:
        return error_response(exc)
    info = model_info(display_name(model), time.time_ns())
    lines = _progress(state, info)
    if not typed.get("stream", True):
        if lines is None:
            return error_response(WireError(500, MANIFEST_MISSING))
        state.install(info)
        return json_response(b'{"status":"success"}')
    if lines is None:  # the error comes after the first line, on a 200 (5.7)
        lines = [{"status": "pulling manifest"}, {"error": MANIFEST_MISSING}]
    resp = web.StreamResponse(headers=NDJSON_HEADERS)
    await resp.prepare(request)
    for line in lines:
        if line.get("status") == "success":  # listed once the manifest is written
            state.install(info)
        await resp.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
    return resp
