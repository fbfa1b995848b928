"""Fleet status for operators: `GET /admin/nodes` (admin keys only) and its table form;
`POST /admin/nodes/{name}/drain` and `/undrain` take a node out of rotation (its in-flight
requests finish) and put it back.

`fleet_view` is the one description of the fleet that the admin API, the status page and
`jarvis-router status` share: per node its health, last check, check latency, in-flight
against capacity, models, completion tokens per second and recent errors; and which replica
answered. With coordination, `in_flight` is fleet-wide (every replica's, as Redis last said)
and `local_in_flight` this replica's. Times on the
router's monotonic clock become wall-clock UTC stamps plus an age in seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from router.api.state import STATE, RouterState
from router.context import CTX
from router.errors import NotFound, PermissionDenied
from router.fleet.registry import NodeState
from router.modelnames import public_id

log = logging.getLogger(__name__)
REPLICA_HEADER = "X-Jarvis-Replica"  # "<id> <hostname> <pid>" of the replica that answered


def _stamp(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _node_view(
    node: NodeState, state: RouterState, now: float, wall: float, outcomes: dict[str, int]
) -> dict[str, Any]:
    def when(at: float | None) -> dict[str, Any] | None:
        if at is None:
            return None
        return {"at": _stamp(wall - (now - at)), "age_s": round(now - at, 3)}

    status = "up" if node.healthy else ("down" if node.checked else "unknown")
    errors = [
        {"message": e.message, "count": e.count, **(when(e.at) or {})}
        for e in reversed(node.recent_errors)
    ]
    return {
        "name": node.name,
        "url": node.config.url,
        "status": status,
        "healthy": node.healthy,
        "draining": node.draining,
        "last_check": when(node.last_check),
        # The latency of the last check, when it passed (a failed one is in last_error).
        "check_latency_ms": (
            round(node.check_latency_s * 1000, 2)
            if node.healthy and node.check_latency_s is not None
            else None
        ),
        # Fleet-wide with coordination (this replica's and the others' as last seen).
        "in_flight": node.load,
        "local_in_flight": node.in_flight,
        "capacity": node.capacity,
        "models": sorted(public_id(m) for m in node.models),
        "tokens_per_s": round(state.metrics.tokens_per_second(node.name, now), 2),
        # Failed attempts since start by outcome (busy, http_5xx, timeout, ...).
        "upstream_errors": {k: v for k, v in sorted(outcomes.items()) if k != "ok" and v},
        "last_error": errors[0] if errors else None,
        "recent_errors": errors,
    }


def fleet_view(state: RouterState) -> dict[str, Any]:
    """The fleet as JSON-ready data; read at request time, never on the request path."""
    now, wall = state.clock(), time.time()
    outcomes = state.metrics.upstream_outcomes()
    nodes = [
        _node_view(node, state, now, wall, outcomes.get(name, {}))
        for name, node in state.fleet.nodes.items()
    ]
    return {
        "object": "list",
        "time": _stamp(wall),
        "replica": replica_view(state),
        "healthy_nodes": sum(1 for n in nodes if n["healthy"]),
        "data": nodes,
    }


def replica_view(state: RouterState) -> dict[str, Any]:
    """Which replica answered, and whether its counts are fleet-wide (Redis answers)."""
    dispatcher = getattr(state, "dispatcher", None)  # None before the app starts
    link = getattr(getattr(dispatcher, "slots", None), "link", None)  # RedisSlots' only
    return {
        "id": state.replica,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "fleet_wide": link is not None and bool(link.up),
    }


def replica_header(view: dict[str, Any]) -> dict[str, str]:
    replica = view["replica"]
    return {REPLICA_HEADER: f"{replica['id']} {replica['hostname']} {replica['pid']}"}


def require_admin(request: web.Request) -> None:
    key = request[CTX].key
    if key is None or not key.admin:
        raise PermissionDenied(
            "This endpoint needs an API key with `admin: true` in the fleet file."
        )


async def nodes(request: web.Request) -> web.StreamResponse:
    require_admin(request)  # the middleware has already answered 401 without a valid key
    view = fleet_view(request.app[STATE])
    return web.json_response(view, headers=replica_header(view))


async def usage(request: web.Request) -> web.StreamResponse:
    """Per key and model: requests, prompt and completion tokens since `since`; with
    coordination the whole fleet's, kept in Redis (`fleet_wide`), else this replica's."""
    require_admin(request)
    since, data, fleet_wide = await request.app[STATE].usage.report()
    return web.json_response(
        {"object": "list", "since": _stamp(since), "fleet_wide": fleet_wide, "data": data}
    )


async def drain(request: web.Request) -> web.StreamResponse:
    return _set_draining(request, draining=True)


async def undrain(request: web.Request) -> web.StreamResponse:
    return _set_draining(request, draining=False)


def _set_draining(request: web.Request, *, draining: bool) -> web.StreamResponse:
    require_admin(request)
    state, name = request.app[STATE], request.match_info["name"]
    if name not in state.fleet.nodes:
        raise NotFound(f"The fleet has no node named '{name}'.", code="node_not_found")
    node = state.fleet.set_draining(name, draining)
    key = request[CTX].key
    log.info(
        "node %s %s by API key %s; %d requests in flight",
        name,
        "drained" if draining else "back in rotation",
        key.name if key is not None else "-",
        node.in_flight,
    )
    outcomes = state.metrics.upstream_outcomes().get(name, {})
    return web.json_response(_node_view(node, state, state.clock(), time.time(), outcomes))


# -- `jarvis-router status`: the same data as a table -----------------------------------------
COLUMNS = ("NODE", "STATUS", "IN-FLIGHT", "TOK/S", "CHECKED", "LATENCY", "MODELS", "LAST ERROR")


def _age(view: dict[str, Any] | None) -> str:
    return "-" if view is None else f"{view['age_s']:.1f}s ago"


def _row(node: dict[str, Any]) -> tuple[str, ...]:
    latency = node["check_latency_ms"]
    error = node["last_error"]
    return (
        node["name"],
        "draining" if node.get("draining") else node["status"],
        f"{node['in_flight']}/{node['capacity']}",
        f"{node['tokens_per_s']:.1f}",
        _age(node["last_check"]),
        "-" if latency is None else f"{latency:.0f}ms",
        ", ".join(node["models"]) or "-",
        "-" if error is None else f"{error['message']} ({_age(error)})",
    )


def format_table(view: dict[str, Any]) -> str:
    rows: Sequence[tuple[str, ...]] = [COLUMNS, *(_row(n) for n in view["data"])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    healthy, total = view["healthy_nodes"], len(view["data"])
    footer = f"{healthy} of {total} nodes healthy at {view['time']}"
    replica = view.get("replica")
    if replica is not None:
        counts = "fleet-wide in-flight counts" if replica["fleet_wide"] else "its own counts"
        footer += f", from replica {replica['id']} on {replica['hostname']} ({counts})"
    return "\n".join([*lines, "", footer])
