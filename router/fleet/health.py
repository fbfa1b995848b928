"""Health checking: one background task that polls every node's `/api/tags`.

It marks nodes healthy or not and refreshes their model lists; it makes no routing
decisions. `refresh()` runs one extra round on demand (a request for a model nobody is known
to have), at most once per `refresh_min_interval_s`, shared by everyone who asks meanwhile.

A round costs the HTTP client's work and little more (issue #5, S5): an answer with the same
bytes as the node's last one is not parsed again, and hands the fleet the same mapping, which
then only notes the check time. Nodes are reached through a `Probe` the app hands in (the
upstream client): the fleet layer never imports `upstream`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from router.config import HealthConfig
from router.fleet.registry import Fleet, NodeState
from router.obs.metrics import Metrics

log = logging.getLogger(__name__)
MAX_PARALLEL_PROBES = 64
_T_co = TypeVar("_T_co", covariant=True)


class Listed(Protocol[_T_co]):
    """A parsed answer (`value`); the probe hands it back as `last` next time."""

    @property
    def value(self) -> _T_co: ...


class Probe(Protocol):
    """How the checker reaches a node (`upstream.client.Upstream` is one). `last` is what the
    same call returned for the node last time: an unchanged answer may return it as is. It is
    `Any` here because its type is the probe's own (with what it needs to tell an unchanged
    answer); the checker only hands it back."""

    async def tags(
        self, node: NodeState, timeout_s: float, last: Any = None
    ) -> Listed[Mapping[str, int]]:
        """The node's installed models, canonical name → created (unix s)."""

    async def loaded(
        self, node: NodeState, timeout_s: float, last: Any = None
    ) -> Listed[Mapping[str, int | None]]:
        """The models loaded in the node's memory → their context (None: not said)."""


@dataclass(slots=True)
class _Seen:
    """What the last checks of one node brought back, and its histogram child."""

    observe: Callable[[float], None]
    tags: Listed[Mapping[str, int]] | None = None
    loaded: Listed[Mapping[str, int | None]] | None = None


class HealthChecker:
    def __init__(
        self,
        fleet: Fleet,
        probe: Probe,
        config: HealthConfig,
        metrics: Metrics,
        *,
        failure: type[Exception],
        clock: Callable[[], float],
    ) -> None:
        """`failure`: what `probe` raises when a node does not answer well (its str says why);
        anything else is a bug, logged by `run`."""
        self._fleet, self._probe, self._config = fleet, probe, config
        self._failure, self._metrics, self._clock = failure, metrics, clock
        self._probes = asyncio.Semaphore(MAX_PARALLEL_PROBES)
        self._round: asyncio.Task[None] | None = None
        self._last_round = float("-inf")
        self._seen: dict[NodeState, _Seen] = {}

    def reconfigure(self, config: HealthConfig) -> None:
        """A reloaded fleet file: the next probe and the next wait use the new values."""
        self._config = config

    async def check(self, node: NodeState) -> None:
        seen = self._seen.get(node)
        if seen is None:
            seen = self._seen[node] = _Seen(self._metrics.health_duration.labels(node.name).observe)
        async with self._probes:
            start = self._clock()
            try:
                tags = seen.tags = await self._probe.tags(node, self._config.timeout_s, seen.tags)
            except self._failure as exc:
                if self._fleet.nodes.get(node.name) is not node:
                    return  # removed (or replaced under its name) by a reload meanwhile
                if node.healthy or not node.checked:
                    log.warning("node %s failed its health check: %s", node.name, exc)
                self._fleet.mark_unhealthy(node.name, str(exc))
            else:
                if self._fleet.nodes.get(node.name) is not node:
                    return
                if not node.healthy:
                    log.info("node %s is healthy with %d models", node.name, len(tags.value))
                # The same answer hands the fleet the same mapping: it only notes the time.
                self._fleet.mark_healthy(node.name, tags.value, self._clock() - start)
                await self._check_loaded(node, seen)
            finally:
                seen.observe(self._clock() - start)

    async def _check_loaded(self, node: NodeState, seen: _Seen) -> None:
        """Which models are hot in the node's memory (`/api/ps`): a cold one costs a load."""
        try:
            loaded = await self._probe.loaded(node, self._config.timeout_s, seen.loaded)
        except self._failure as exc:  # older or partial servers: routing just loses the hint
            log.debug("node %s: /api/ps failed: %s", node.name, exc)
            return
        seen.loaded = loaded
        # Even when unchanged: it replaces what dispatch guessed since (a model it just ran).
        self._fleet.set_loaded(node.name, loaded.value)

    async def check_all(self) -> None:
        self._last_round = self._clock()
        nodes = self._fleet.nodes
        if len(self._seen) > len(nodes):  # a reload removed or replaced some
            self._seen = {n: s for n, s in self._seen.items() if nodes.get(n.name) is n}
        await asyncio.gather(*(self.check(n) for n in list(nodes.values())))

    async def refresh(self) -> None:
        """One more round now, unless one ran within `refresh_min_interval_s`."""
        if self._round is not None and not self._round.done():
            await asyncio.shield(self._round)
            return
        if self._clock() - self._last_round < self._config.refresh_min_interval_s:
            return
        self._round = asyncio.create_task(self.check_all())
        await asyncio.shield(self._round)

    async def run(self) -> None:
        """Poll forever (cancelled at shutdown)."""
        while True:
            await asyncio.sleep(self._config.interval_s)
            try:
                await self.check_all()
            except Exception:  # the poller must outlive any bug in one round
                log.exception("health round failed")
