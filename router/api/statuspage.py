"""`GET /status`: one small server-rendered HTML page that reloads itself every few seconds.

No script and no build step: a `<meta http-equiv="refresh">` reload of the same
`admin.fleet_view` data that `/admin/nodes` serves, without node URLs. Every text from
outside (node names, models, error messages) is escaped, and the Content-Security-Policy
allows nothing but the inline style. Access follows `/metrics`: open unless
`metrics.require_key`, which makes it need an admin key (docs/metrics.md says why).
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from router.api.admin import fleet_view, replica_header, require_admin
from router.api.admin_models import MODEL_COLUMNS, model_cells, models_view
from router.api.state import STATE

REFRESH_S = 5
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .7em;
border-bottom:1px solid #ddd;vertical-align:top}th{background:#f4f4f4}
.up{color:#176b2c;font-weight:600}.down{color:#b00020;font-weight:600}.unknown{color:#777}
.bar{display:inline-block;width:6em;height:.6em;background:#eee;margin-left:.5em}
.bar span{display:block;height:100%;background:#3a7bd5}.muted{color:#777}
"""


def _age(view: dict[str, Any] | None) -> str:
    return "never" if view is None else f"{view['age_s']:.1f} s ago"


def _node_row(node: dict[str, Any]) -> str:
    used, capacity = node["in_flight"], node["capacity"]
    fill = min(100, round(100 * used / capacity)) if capacity else 0
    error = node["last_error"]
    error_text = (
        '<span class="muted">none</span>'
        if error is None
        else f"{escape(error['message'])} <span class='muted'>({_age(error)})</span>"
    )
    failed = ", ".join(f"{escape(k)} {v}" for k, v in node["upstream_errors"].items())
    cells = [
        escape(node["name"]),
        f'<span class="{node["status"]}">{node["status"]}</span>',
        f'{used} / {capacity}<span class="bar"><span style="width:{fill}%"></span></span>',
        escape(", ".join(node["models"])) or '<span class="muted">none</span>',
        f"{node['tokens_per_s']:.1f}",
        _age(node["last_check"]),
        failed or '<span class="muted">none</span>',
        error_text,
    ]
    tds = "".join(f"<td>{cell}</td>" for cell in cells)
    return f'<tr data-node="{escape(node["name"])}" data-status="{node["status"]}">{tds}</tr>'


def _error_items(nodes: list[dict[str, Any]]) -> str:
    items = sorted(
        ((e, n["name"]) for n in nodes for e in n["recent_errors"]),
        key=lambda pair: pair[0]["age_s"],
    )
    if not items:
        return '<p class="muted">No node has failed since the router started.</p>'
    lines = "".join(
        f"<li><b>{escape(name)}</b> {escape(e['message'])} "
        f"<span class='muted'>(last {_age(e)}, {e['count']} times)</span></li>"
        for e, name in items
    )
    return f"<ul>{lines}</ul>"


def _models_table(models: dict[str, Any] | None) -> str:
    """Per model: installed, loaded (with context), in use, queued (issue #15)."""
    if models is None:
        return ""
    header = "".join(f"<th>{escape(h.title())}</th>" for h in MODEL_COLUMNS)
    rows = "".join(
        f'<tr data-model="{escape(r["id"])}">'
        + "".join(f"<td>{escape(c)}</td>" for c in model_cells(r))
        + "</tr>"
        for r in models["data"]
    )
    return (
        f'<h2>Models</h2><table id="models"><thead><tr>{header}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def render(
    view: dict[str, Any], *, refresh_s: int = REFRESH_S, models: dict[str, Any] | None = None
) -> str:
    nodes: list[dict[str, Any]] = view["data"]
    header = "".join(
        f"<th>{h}</th>"
        for h in (
            "Node",
            "Health",
            "In flight / capacity",
            "Models",
            "Tokens/s (1 min)",
            "Last check",
            "Failed attempts",
            "Last error",
        )
    )
    rows = "".join(_node_row(n) for n in nodes)
    replica = view.get("replica")
    answered = (
        ""
        if replica is None
        else f'<p id="replica" class="muted">Replica {escape(replica["id"])} on '
        f"{escape(replica['hostname'])}: "
        + ("in flight counts every replica's" if replica["fleet_wide"] else "its own counts")
        + "</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh_s}">
<title>Jarvis Router status</title><style>{_STYLE}</style></head>
<body><h1>Jarvis Router</h1>
<p id="summary">{view["healthy_nodes"]} of {len(nodes)} nodes healthy
<span class="muted">at {view["time"]}, refreshed every {refresh_s} s</span></p>
{answered}
<table id="nodes"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>
{_models_table(models)}
<h2>Recent errors</h2>{_error_items(nodes)}
</body></html>
"""


async def status(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if state.config.metrics.require_key:
        require_admin(request)
    view = fleet_view(state)
    headers = {**_HEADERS, **replica_header(view)}
    page = render(view, models=models_view(state))
    return web.Response(text=page, content_type="text/html", headers=headers)
