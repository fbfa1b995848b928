"""`jarvis-router models load|unload|pull`: operator control of a running router's models
(issue #15), through its admin API (`router.api.admin_models`). `pull` shows the node's
progress as it comes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

KEY_ENV = "JARVIS_API_KEY"


def admin_open(
    args: argparse.Namespace, path: str, body: dict[str, Any] | None = None, method: str = "POST"
) -> Any:
    """The open response of a request to an admin endpoint, or an exit code after saying why
    (`jarvis-router status`, `drain` and `models` all go through here)."""
    key = args.key or os.environ.get(KEY_ENV)
    if not key:
        print(f"error: give an admin API key with --key or {KEY_ENV}", file=sys.stderr)
        return 2
    url = args.url.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=args.timeout)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        print(f"error: {url} answered {exc.code}: {message}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: cannot reach {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1


def _load(args: argparse.Namespace) -> int:
    action = "unload" if args.unload else "load"
    path = f"/admin/models/{quote(args.model, safe='/:')}/{action}?node={quote(args.node)}"
    response = admin_open(args, path)
    if isinstance(response, int):
        return response
    with response:
        done = json.load(response)
    ctx = done.get("context_length")
    at = f" at context {ctx}" if ctx else ""
    print(f"{done['node_model']} {done['status']} on {done['node']}{at}")
    return 0


def progress(line: dict[str, Any]) -> str:
    """One progress line as people read it: `pulling dde5aa3fc5ff  12% of 2.0 GB`."""
    total, completed = line.get("total"), line.get("completed")
    text = str(line.get("status", ""))
    if isinstance(total, int) and total > 0 and isinstance(completed, int):
        text += f"  {100 * completed // total:3d}% of {total / 1e9:.1f} GB"
    return text


def _lines(response: Any) -> Iterator[dict[str, Any]]:
    for raw in response:
        if raw.strip():
            yield json.loads(raw)


def _pull(args: argparse.Namespace) -> int:
    response = admin_open(args, "/admin/models/pull", {"node": args.node, "model": args.model})
    if isinstance(response, int):
        return response
    failed = False
    with response:
        for line in _lines(response):
            if "error" in line:
                print(f"error: {line['error']}", file=sys.stderr)
                failed = True
            else:
                print(progress(line), flush=True)
    return 1 if failed else 0


def add_parsers(sub: Any) -> None:
    models = sub.add_parser("models", help="load, unload or pull a model on a node (admin key)")
    verbs = models.add_subparsers(dest="verb", required=True)
    for verb, unload, text in (
        ("load", False, "load a model on a node with its catalog options"),
        ("unload", True, "unload a model from a node's memory (keep_alive 0)"),
        ("pull", None, "pull a model onto a node, showing its progress"),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("model", help="a public id (ollama/llama3) or a node model (llama3:8b)")
        p.add_argument("--node", required=True, help="the node's name in the fleet file")
        p.add_argument("--url", default="http://127.0.0.1:8080", help="the router's base URL")
        p.add_argument("--key", help=f"an admin API key (default: ${KEY_ENV})")
        timeout = 3600.0 if unload is None else 600.0  # a pull or a load takes a while
        p.add_argument("--timeout", type=float, default=timeout, help="seconds")
        if unload is None:
            p.set_defaults(func=_pull)
        else:
            p.set_defaults(func=_load, unload=unload)
