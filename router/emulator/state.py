"""Per-app mutable state of one emulated node: loaded models, slots, prefix cache, live tasks.

Mutations happen without an `await` in between, so no locks are needed except the per-model
load lock, which makes concurrent requests for a cold model share one load.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import orjson

from .catalog import ModelInfo, build_catalog
from .config import EmulatorConfig, Faults, NodeStats
from .lines import WallClock

DEFAULT_KEEP_ALIVE_S = 300.0
# What Go prints for "forever": now + MaxInt64 nanoseconds (about 292 years).
_FOREVER_S = (2**63 - 1) / 1e9
_PREFIX_CACHE_ENTRIES = 50_000


class NodeState:
    __slots__ = (
        "capacity",
        "catalog",
        "clock",
        "closing",
        "config",
        "faults",
        "known",
        "load_locks",
        "loaded",
        "prefixes",
        "semaphore",
        "stats",
        "tags_body",
        "tasks",
        "version_body",
    )

    def __init__(self, config: EmulatorConfig, faults: Faults, stats: NodeStats) -> None:
        self.config = config
        self.faults = faults
        self.stats = stats
        self.catalog = build_catalog(config.models)  # installed models
        self.known = dict(self.catalog)  # every model ever installed: a deleted one may be loaded
        self.clock = WallClock()
        self.semaphore = asyncio.Semaphore(config.max_parallel)
        self.capacity = config.max_parallel + config.max_queue
        # display name → (monotonic expiry, keep-alive seconds, `expires_at` as /api/ps shows
        # it, the runner's context length); order = least recently used first
        self.loaded: OrderedDict[str, tuple[float, float, str, int]] = OrderedDict()
        self.load_locks = {key: asyncio.Lock() for key in self.catalog}
        self.prefixes: dict[bytes, None] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = asyncio.Event()
        if config.preloaded:
            keys = list(self.catalog)
            if config.max_loaded_models:
                keys = keys[: config.max_loaded_models]
            for key in keys:
                self.touch(key, None)
        self.tags_body = b""
        self.refresh_tags()
        self.version_body = orjson.dumps({"version": config.version})

    def refresh_tags(self) -> None:
        """Re-encode `/api/tags` after the installed models changed (pull, delete)."""
        entries = sorted(self.catalog.values(), key=lambda m: m.modified_at_ns, reverse=True)
        models = [m.tags_entry(self.clock.format_ns(m.modified_at_ns)) for m in entries]
        self.tags_body = orjson.dumps({"models": models})

    def install(self, info: ModelInfo) -> None:
        self.catalog[info.name] = self.known[info.name] = info
        self.load_locks.setdefault(info.name, asyncio.Lock())
        self.refresh_tags()

    def remove(self, key: str) -> None:
        """Delete the files; a loaded copy stays loaded, as in Ollama's `DeleteHandler`."""
        del self.catalog[key]
        self.refresh_tags()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Count one accepted generation; a client that leaves (reset or cancel) is counted.

        Cancellation while `closing` is the node going down (kill/stop), not the client leaving.
        """
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            yield
        except ConnectionResetError:
            stats.cancelled += 1
            raise
        except asyncio.CancelledError:
            if not self.closing.is_set():
                stats.cancelled += 1
            raise
        finally:
            stats.in_flight -= 1
            if task is not None:
                self.tasks.discard(task)

    def delay_s(self, ms: float) -> float:
        return ms * self.faults.slow_factor / 1000.0

    # -- loaded models ---------------------------------------------------------------------------
    def is_loaded(self, key: str) -> bool:
        entry = self.loaded.get(key)
        if entry is None:
            return False
        if entry[0] <= time.monotonic():
            del self.loaded[key]
            return False
        return True

    def touch(self, key: str, keep_alive_s: float | None, ctx: int | None = None) -> None:
        """Mark `key` loaded and most recently used; evict the least recently used over the cap."""
        previous = self.loaded.pop(key, None)
        if keep_alive_s is None:
            keep_alive_s = previous[1] if previous else DEFAULT_KEEP_ALIVE_S
        if ctx is None:
            ctx = previous[3] if previous else self.known[key].loaded_context(None)
        # Ollama stores the expiry when a request ends and /api/ps shows that stored time: the
        # same text on every call until the model is used again.
        wall_expiry = time.time() + min(keep_alive_s, _FOREVER_S)
        expires_at = self.clock.format_ns(int(wall_expiry * 1e9))
        self.loaded[key] = (time.monotonic() + keep_alive_s, keep_alive_s, expires_at, ctx)
        cap = self.config.max_loaded_models
        while cap and len(self.loaded) > cap:
            self.loaded.popitem(last=False)

    def unload(self, key: str) -> None:
        self.loaded.pop(key, None)

    def context_of(self, key: str) -> int | None:
        entry = self.loaded.get(key)
        return entry[3] if entry is not None else None

    async def ensure_loaded(
        self, key: str, keep_alive_s: float | None, num_ctx: int | None = None
    ) -> int:
        """Load `key` if needed (sleeping `load_ms`), mark it used, return its context length.

        A `num_ctx` other than the loaded runner's reloads the model (`sched.go` `needsReload`).
        """
        info = self.known[key]
        want = info.loaded_context(num_ctx) if num_ctx else None

        def ready() -> bool:
            return self.is_loaded(key) and want in (None, self.context_of(key))

        if not ready():
            async with self.load_locks[key]:
                if not ready():
                    delay = self.delay_s(self.config.load_ms)
                    if delay > 0:
                        await asyncio.sleep(delay)
                    self.loaded.pop(key, None)  # a (re)load starts a fresh runner
                    self.touch(key, keep_alive_s, want or info.loaded_context(None))
        self.touch(key, keep_alive_s)
        return self.context_of(key) or info.loaded_context(None)

    def ps_body(self) -> bytes:
        rows = []
        for key in list(self.loaded):
            if not self.is_loaded(key):
                continue
            expiry, _, expires_at, ctx = self.loaded[key]
            rows.append((min(expiry, _FOREVER_S), key, expires_at, ctx))
        rows.sort(reverse=True)  # the latest expiry first, as Ollama sorts
        models = [self.known[key].ps_entry(expires_at, ctx) for _, key, expires_at, ctx in rows]
        return orjson.dumps({"models": models})

    # -- prefix cache ----------------------------------------------------------------------------
    @staticmethod
    def _chain(key: str, units: tuple[str, ...]) -> list[bytes]:
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        chain = []
        for unit in units:
            digest = hashlib.blake2b(digest + unit.encode(), digest_size=16).digest()
            chain.append(digest)
        return chain

    def prefix_hit(self, key: str, units: tuple[str, ...]) -> bool:
        """Whether everything but the last unit was part of an earlier prompt or reply."""
        if not self.config.prefix_cache or len(units) < 2:
            return False
        return self._chain(key, units[:-1])[-1] in self.prefixes

    def remember(self, key: str, units: tuple[str, ...], reply_unit: str | None) -> None:
        if not self.config.prefix_cache:
            return
        full = (*units, reply_unit) if reply_unit is not None else units
        for digest in self._chain(key, full):
            self.prefixes[digest] = None
        while len(self.prefixes) > _PREFIX_CACHE_ENTRIES:
            del self.prefixes[next(iter(self.prefixes))]
