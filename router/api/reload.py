"""Changing the fleet without downtime: re-read the fleet file, validate it, apply it live.

`Reloader.reload()` is the one path: a bad file is refused whole (the running config stays, the
error is logged and counted); a good one swaps the key ring and the config, adds, removes and
re-weights nodes through `Fleet.update_nodes`, and updates the dispatcher's and the health
checker's knobs. In-flight requests are untouched: a removed node's requests hold its
`NodeState` through their leases and finish. Values built into long-lived objects at start
(`RESTART_ONLY`) keep their running value and a warning names them.
`Reloader.watch()` runs for the app's lifetime: it reloads on SIGHUP (`request()`) and when the
fleet file (or its keys file) changes on disk, checked every `server.reload_poll_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import replace

from aiohttp import web

from router.api.auth import KeyRing
from router.api.state import RouterState
from router.catalog.entries import Catalog
from router.config import ConfigError, FleetConfig, load_config

log = logging.getLogger(__name__)

# Built into sockets, the runner, the connection pool, the slot store, the breaker policy or the
# logging setup at start. None: the whole section.
RESTART_ONLY: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("listen", None),
    (
        "server",
        (
            "max_body_bytes",
            "shutdown_grace_s",
            "max_request_line_bytes",
            "max_header_bytes",
            "max_headers",
            "header_timeout_s",
            "keepalive_timeout_s",
            "max_connections",
        ),
    ),
    ("metrics", ("port",)),
    ("coordination", None),
    ("logging", ("level", "format")),
    ("breaker", None),
    (
        "routing",
        (
            "max_connections_per_node",
            "request_timeout_s",
            "connect_timeout_s",
            "strategy",
            "max_queue",
            "queue_timeout_s",
            "affinity",
            "affinity_balance",
            "cold_load_s",
            "queue_weight",
        ),
    ),
)


def pin_restart_only(running: FleetConfig, loaded: FleetConfig) -> tuple[FleetConfig, list[str]]:
    """`loaded` with every restart-only value put back to the running one, and which changed."""
    changed: list[str] = []
    updates: dict[str, object] = {}
    for section, fields in RESTART_ONLY:
        old, new = getattr(running, section), getattr(loaded, section)
        if fields is None:
            if old != new:
                changed.append(section)
                updates[section] = old
            continue
        differ = [f for f in fields if getattr(old, f) != getattr(new, f)]
        if differ:
            changed.extend(f"{section}.{f}" for f in differ)
            updates[section] = replace(new, **{f: getattr(old, f) for f in differ})
    return replace(loaded, **updates), changed  # type: ignore[arg-type]


def _stat(path: str | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Reloader:
    def __init__(self, state: RouterState, path: str) -> None:
        self.state, self.path = state, path
        self._lock = asyncio.Lock()  # SIGHUP, the watcher and tests never apply two at once
        self._wake = asyncio.Event()
        state.metrics.enable_reloads()

    def request(self) -> None:
        """SIGHUP: reload now (the watcher does it, so a signal handler never awaits)."""
        log.info("SIGHUP: reloading %s", self.path)
        self._wake.set()

    async def reload(self) -> bool:
        """Read, validate and apply the fleet file; False if it was refused."""
        async with self._lock:
            try:
                loaded = await asyncio.to_thread(load_config, self.path)
            except ConfigError as exc:
                log.error("fleet file refused, the running config stays: %s", exc)
                self.state.metrics.count_reload("error")
                return False
            added = self._apply(loaded)
            self.state.metrics.count_reload("ok")
            # New nodes serve as soon as they pass a check, not at the next health round.
            fleet = self.state.fleet
            await asyncio.gather(
                *(self.state.health.check(fleet.nodes[n]) for n in added if n in fleet.nodes)
            )
        return True

    def _apply(self, loaded: FleetConfig) -> list[str]:
        """Swap everything at once (no await), so no request sees half a config."""
        state = self.state
        config, pinned = pin_restart_only(state.config, loaded)
        if pinned:
            log.warning(
                "%s: %s changed, which takes a restart; keeping the running values",
                self.path,
                ", ".join(pinned),
            )
        # Re-weighting is a max_concurrency change; update_nodes re-indexes, which wakes the
        # admission queue (Fleet.watch_capacity), so waiting requests see the new capacity.
        added, removed = state.fleet.update_nodes(config.nodes)
        state.keys = KeyRing(config.api_keys)
        state.limiter.retain(state.keys.names())  # a revoked key's windows go with it
        routing, dispatcher = config.routing, state.dispatcher
        dispatcher.max_attempts, dispatcher.retry_after_s = (
            routing.max_attempts,
            routing.retry_after_s,
        )
        dispatcher.first_token_timeout_s = routing.first_token_timeout_s
        dispatcher.token_gap_timeout_s = routing.token_gap_timeout_s
        state.health.reconfigure(config.health)
        state.catalog = dispatcher.catalog = Catalog.from_config(config.models)
        state.config = config
        log.info(
            "reloaded %s: %d nodes (added: %s; removed: %s), %d API keys",
            self.path,
            len(config.nodes),
            ", ".join(added) or "none",
            ", ".join(removed) or "none",
            len(config.api_keys),
        )
        return added

    def _signature(self) -> tuple[object, ...]:
        return (_stat(self.path), _stat(self.state.config.api_keys_file))

    async def watch(self) -> None:
        """Reload on SIGHUP and on a change on disk, for the app's lifetime (cancelled at stop)."""
        last = self._signature()
        while True:
            poll_s = self.state.config.server.reload_poll_s  # 0: only SIGHUP wakes us
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_s or None):
                    await self._wake.wait()
            hup, now = self._wake.is_set(), self._signature()
            self._wake.clear()
            if not hup and now == last:
                continue
            last = now  # taken before reading: a write during the reload triggers another
            try:
                await self.reload()
            except Exception:  # the watcher must outlive a bug in one reload
                log.exception("reloading %s failed; the running config stays", self.path)
                self.state.metrics.count_reload("error")


RELOADER = web.AppKey("jarvis_reloader", Reloader)
