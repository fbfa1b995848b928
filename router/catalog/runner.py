"""The warm pool at work: each round, `plan_warm` over the fleet as it is, and the loads it
asks for sent to the nodes (issue #15; the rules are `warm`'s docstring).

A round runs every health interval (and once at start, so `min_loaded` floors hold before the
first request). Each load runs as its own task: a load takes seconds to minutes, and the
round does not wait for it; while it runs the model counts as warm there (`loading`), so the
next round does not send it again. Demand is the admission queue's depth per model
(`SlotStore.waiting_by_model`). Nodes are reached through `Loader` (the upstream client),
handed in by the app, as the health checker's probe is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from router.catalog.entries import Catalog, Entry
from router.catalog.facts import Facts
from router.catalog.warm import NodeView, WarmAction, WarmPolicy, plan_warm
from router.fleet.registry import Fleet, NodeState
from router.wire.options import load_payload

log = logging.getLogger(__name__)


class Loader(Protocol):
    async def load(self, node: NodeState, payload: bytes, *, embed: bool = False) -> None: ...


class Demand(Protocol):
    def waiting_by_model(self) -> dict[str, int]: ...


class WarmRunner:
    def __init__(
        self,
        fleet: Fleet,
        loader: Loader,
        demand: Demand,
        catalog: Callable[[], Catalog],
        facts: Facts,
        *,
        failure: type[Exception],
        clock: Callable[[], float],
        interval_s: Callable[[], float],
        policy: WarmPolicy | None = None,
    ) -> None:
        self._fleet, self._loader, self._demand = fleet, loader, demand
        self._catalog, self._facts, self._failure = catalog, facts, failure
        self._clock, self._interval_s = clock, interval_s
        self.policy = policy or WarmPolicy()
        self.loading: dict[str, set[str]] = {}  # node → models being loaded now
        self._grown: Mapping[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def views(self) -> list[NodeView]:
        return [
            NodeView(
                n.name,
                # /api/ps not read yet: what it holds is unknown, so no load is planned there.
                n.in_rotation and n.loaded is not None,
                n.models.keys(),
                n.contexts,
                frozenset(self.loading.get(n.name, ())),
                n.config.max_loaded_models,
                n.config.max_concurrency,
            )
            for n in self._fleet.nodes.values()
        ]

    def demand(self, entries: tuple[Entry, ...]) -> dict[str, int]:
        """Requests waiting per entry: those whose most preferred model is one of its targets."""
        waiting = self._demand.waiting_by_model()
        return {e.name: sum(waiting.get(t, 0) for t in e.targets) for e in entries}

    async def round(self) -> list[WarmAction]:
        """Plan once and start the loads; returns them (for logs and tests)."""
        catalog = self._catalog()
        entries = catalog.entries
        if not entries:
            return []
        plan = plan_warm(
            entries,
            self.views(),
            demand=self.demand(entries),
            last_grown=self._grown,
            now=self._clock(),
            policy=self.policy,
        )
        self._grown = plan.grown
        for action in plan.actions:
            node = self._fleet.nodes.get(action.node)
            if node is None:
                continue
            log.info(
                "warm pool: loading %s on %s (%s of %s)",
                action.model,
                action.node,
                action.reason,
                action.entry,
            )
            self.loading.setdefault(node.name, set()).add(action.model)
            entry = catalog.resolve(action.entry)
            task = asyncio.create_task(self._background(node, action.model, entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return list(plan.actions)

    async def load(
        self, node: NodeState, model: str, entry: Entry, *, unload: bool = False
    ) -> None:
        """Load (or unload) `model` on `node` with `entry`'s options; raises the loader's
        failure. A load counts as warm at once, as dispatch notes a model it just ran."""
        overrides = entry.overrides
        if unload:
            overrides = replace(overrides, keep_alive=0)
        try:
            embed = (await self._facts.get(node, model)).embedding
            await self._loader.load(node, load_payload(model, overrides, embed=embed), embed=embed)
        except self._failure as exc:
            log.warning("warm pool: %s on %s failed: %s", model, node.name, exc)
            raise
        finally:
            self.loading.get(node.name, set()).discard(model)
        if node.loaded is None:
            return
        if unload:
            node.loaded = node.loaded - {model}
            node.contexts = {m: c for m, c in node.contexts.items() if m != model}
        else:
            node.loaded = node.loaded | {model}
            node.contexts = {**node.contexts, model: entry.num_ctx}

    async def _background(self, node: NodeState, model: str, entry: Entry) -> None:
        with contextlib.suppress(self._failure):  # logged; the next round looks again
            await self.load(node, model, entry)

    async def run(self) -> None:
        """A round every health interval (cancelled at shutdown); the loads it started are
        cancelled with it."""
        try:
            while True:
                await asyncio.sleep(self._interval_s())
                try:
                    await self.round()
                except Exception:  # the pool must outlive any bug in one round
                    log.exception("warm round failed")
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
