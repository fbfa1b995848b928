"""The commands that work on files, not on a running router: `check-config`, `keys new`,
`keys list`. None of them ever prints a stored digest; `keys new` prints its key once.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import yaml

from router.api.auth import digest, new_key
from router.config import (
    KEYS_FILE_ENV,
    ApiKeyConfig,
    FleetConfig,
    parse_config,
    parse_keys,
)
from router.config.keys import api_key
from router.config.validate import Section, read, read_yaml
from router.keys.policy import expired, expiry_text

_DURATION = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def _fleet_summary(path: str, config: FleetConfig) -> str:
    metrics_port = config.metrics.port
    lines = [
        f"{path}: OK",
        f"  listen    {config.listen.host}:{config.listen.port}",
        f"  nodes     {len(config.nodes)}",
        *(f"    {n.name:16} {n.url}  max_concurrency {n.max_concurrency}" for n in config.nodes),
        f"  api keys  {len(config.api_keys)}: "
        + ", ".join(k.name + (" (admin)" if k.admin else "") for k in config.api_keys),
        f"  health    every {config.health.interval_s:g} s, timeout {config.health.timeout_s:g} s",
        f"  routing   max_attempts {config.routing.max_attempts}, request_timeout "
        f"{config.routing.request_timeout_s:g} s, connect_timeout "
        f"{config.routing.connect_timeout_s:g} s",
        f"  logging   {config.logging.level}, {config.logging.format}",
        "  metrics   /metrics and /status on "
        + ("the API port" if metrics_port is None else f"port {metrics_port}")
        + (", keys required" if config.metrics.require_key else ", open"),
    ]
    keys_file = config.api_keys_file
    if keys_file is not None:
        present = os.path.exists(keys_file)
        lines.append(
            f"  keys file {keys_file}"
            + (
                ": read and checked"
                if present
                else ": not present here, so its keys were not checked (as in CI before the "
                f"Secret is mounted; check it alone with --keys-file {keys_file})"
            )
        )
    coordination = config.coordination
    if coordination is not None:  # not the URL: it may hold a password
        lines.append(
            f"  replicas  share node slots through Redis: prefix {coordination.key_prefix}, "
            f"lease ttl {coordination.lease_ttl_s:g} s, "
            f"wait up to {coordination.wait_timeout_s:g} s"
        )
    return "\n".join(lines)


def _is_keys_file(data: object) -> bool:
    """A YAML list, or a mapping with `api_keys` and no `nodes`, is a keys file."""
    return isinstance(data, list) or (
        isinstance(data, Mapping) and "api_keys" in data and "nodes" not in data
    )


def check_config(args: argparse.Namespace) -> int:
    if args.file is None and args.keys_file is None:
        print("error: give a fleet file, or a keys file with --keys-file", file=sys.stderr)
        return 2
    if args.file is None or (args.keys_file is None and _is_keys_file(read_yaml(args.file))):
        path = args.keys_file or args.file
        keys = parse_keys(read_yaml(path), path)
        print(f"{path}: OK, a keys file with {len(keys)} API keys\n{keys_table(keys)}")
        return 0
    env = dict(os.environ)
    if args.keys_file is not None:  # stands in for the mounted Secret, as the env var does
        env[KEYS_FILE_ENV] = args.keys_file
    config = parse_config(read_yaml(args.file), args.file, env=env, require_keys_file=False)
    print(_fleet_summary(args.file, config))
    return 0


def _policy(key: ApiKeyConfig) -> tuple[str, ...]:
    def limit(value: int | None) -> str:
        return "-" if value is None else str(value)

    return (
        key.name,
        "yes" if key.admin else "no",
        ", ".join(key.models) or "all",
        limit(key.rpm),
        limit(key.tpm),
        limit(key.max_concurrency),
        expiry_text(key) + (" (expired)" if expired(key, time.time()) else ""),
    )


KEY_COLUMNS = ("NAME", "ADMIN", "MODELS", "RPM", "TPM", "CONCURRENCY", "EXPIRES")


def keys_table(keys: Sequence[ApiKeyConfig]) -> str:
    """Names and policies, never digests."""
    rows = [KEY_COLUMNS, *(_policy(k) for k in keys)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(KEY_COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def keys_list(args: argparse.Namespace) -> int:
    data = read_yaml(args.config)
    if _is_keys_file(data):
        print(keys_table(parse_keys(data, args.config)))
        return 0
    config = parse_config(data, args.config, require_keys_file=False)
    print(keys_table(config.api_keys))
    if config.api_keys_file is not None and not os.path.exists(config.api_keys_file):
        print(f"\n(keys file {config.api_keys_file} is not present here: its keys are not listed)")
    return 0


def _expires(text: str) -> str:
    """`--expires`: an RFC 3339 time, or a duration from now (`90d`, `12h`, `30m`)."""
    match = _DURATION.match(text.strip())
    if match is None:
        return text
    delta = timedelta(**{_UNITS[match[2]]: int(match[1])})
    return (datetime.now(UTC) + delta).isoformat(timespec="seconds").replace("+00:00", "Z")


def keys_new(args: argparse.Namespace) -> int:
    key = new_key()
    entry: dict[str, object] = {"name": args.name, "sha256": digest(key)}
    if args.models:
        entry["models"] = [m.strip() for m in ",".join(args.models).split(",") if m.strip()]
    for field in ("rpm", "tpm", "max_concurrency"):
        if getattr(args, field) is not None:
            entry[field] = getattr(args, field)
    if args.expires:
        entry["expires_at"] = _expires(args.expires)
    if args.admin:
        entry["admin"] = True
    read(Section("jarvis-router keys new", entry, ""), api_key)  # refused as the router would
    text = yaml.safe_dump([entry], sort_keys=False, default_flow_style=False)
    print(f"API key for {args.name} (shown once, store it now):\n\n  {key}\n")
    print("Add this entry to api_keys in the fleet file (or to the keys file):\n")
    print("\n".join("  " + line for line in text.rstrip().splitlines()))
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate a fleet file or a keys file; summarise it")
    p.add_argument("file", nargs="?", help="fleet file (a keys file is recognised too)")
    p.add_argument(
        "--keys-file",
        help="a keys file: checked alone, or with FILE in place of its api_keys_file",
    )
    p.set_defaults(func=check_config)

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    p = keys_sub.add_parser("new", help="make a key; prints it once with its fleet-file entry")
    p.add_argument("name")
    p.add_argument("--models", action="append", help="allowed model ids or globs, comma-separated")
    p.add_argument("--rpm", type=int, help="requests per minute")
    p.add_argument("--tpm", type=int, help="tokens (prompt + completion) per minute")
    p.add_argument("--max-concurrency", type=int, help="requests in progress at once")
    p.add_argument("--expires", help="RFC 3339 time (2027-01-31T00:00:00Z) or 90d, 12h, 30m")
    p.add_argument("--admin", action="store_true", help="may use the /admin endpoints")
    p.set_defaults(func=keys_new)
    p = keys_sub.add_parser("list", help="names, policies and expiry of the configured keys")
    p.add_argument("--config", required=True, help="fleet file or keys file")
    p.set_defaults(func=keys_list)
