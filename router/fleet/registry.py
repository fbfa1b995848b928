"""The fleet registry: what each node is (healthy, models, in-flight) and who has which model.

State changes only through `Fleet` methods, none of which awaits inside a change, so the
event loop never sees a half-made update and no locks are needed. The model → healthy-nodes
index is updated for the one node that changed, touching only that node's models (a node
joining a 1,000-node fleet costs its own models, not a rebuild over every node), so the request
path only does dict lookups.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from router.config import NodeConfig
from router.fleet.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from router.fleet.index import ModelIndex

RECENT_ERRORS = 5


@dataclass(slots=True)
class NodeError:
    """A failure that took the node out of rotation; repeats of the same text are folded."""

    at: float
    message: str
    count: int = 1


@dataclass(slots=True, eq=False)
class NodeState:
    config: NodeConfig
    name: str = ""
    capacity: int = 1
    healthy: bool = False
    checked: bool = False
    models: Mapping[str, int] = field(default_factory=dict)  # canonical name → created (unix s)
    in_flight: int = 0  # this replica's requests on the node
    # Other replicas' requests on the node, as coordination last saw them (0 without it).
    remote_in_flight: int = 0
    last_check: float | None = None
    check_latency_s: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    recent_errors: deque[NodeError] = field(default_factory=lambda: deque(maxlen=RECENT_ERRORS))
    # Models in the node's memory from /api/ps (None: not known yet); cold ones cost a load.
    loaded: frozenset[str] | None = None
    # The same models → the context each runs with (`/api/ps` `context_length`, None if not
    # said): one loaded at another context than the catalog's is cold too (issue #15).
    contexts: Mapping[str, int | None] = field(default_factory=dict)
    draining: bool = False  # taken out of rotation by an operator; in-flight requests finish
    ejected_until: float | None = None  # the circuit breaker took it out until then
    breaker: CircuitBreaker | None = None

    def __post_init__(self) -> None:
        self.name = self.config.name
        self.capacity = self.config.max_concurrency

    @property
    def in_rotation(self) -> bool:
        return self.healthy and not self.draining and self.ejected_until is None

    @property
    def load(self) -> int:
        """Requests on the node now: this replica's, and the other replicas' as last seen."""
        return self.in_flight + self.remote_in_flight

    @property
    def free(self) -> int:
        """Slots left before `capacity` (0 or less: full)."""
        return self.capacity - self.load


class LeaseOwner(Protocol):
    """The slot store that made a lease; told once when it is given back."""

    def released(self, lease: Lease) -> None: ...


class Lease:
    """One request's slot on a node, held from the moment it is made; `release()` (or leaving
    `async with`) gives it back exactly once, whatever happens, and tells the store that made
    it. Release never awaits, so a cancelled request always frees its slot. `id` is
    coordination's (the lease is also held in Redis); `model` is the node model the slot was
    taken for (a catalog entry's target, issue #15).
    """

    __slots__ = ("_held", "id", "model", "node", "owner")

    def __init__(
        self, node: NodeState, owner: LeaseOwner, id: str | None = None, model: str = ""
    ) -> None:
        node.in_flight += 1
        self.node, self.owner, self.id, self._held = node, owner, id, True
        self.model = model

    def release(self) -> None:
        if self._held:
            self._held = False
            self.node.in_flight -= 1
            self.owner.released(self)

    async def __aenter__(self) -> NodeState:
        return self.node

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Fleet:
    def __init__(
        self,
        nodes: Iterable[NodeConfig],
        *,
        clock: Callable[[], float],
        breaker: BreakerPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._breaker_policy = breaker or BreakerPolicy()
        self._rng = rng or random.Random()
        self.nodes: dict[str, NodeState] = {}
        self._index = ModelIndex()
        for config in nodes:
            self._add(config)
        self._capacity_watchers: list[Callable[[], None]] = []

    def watch_capacity(self, watcher: Callable[[], None]) -> Callable[[], None]:
        """Call `watcher` whenever capacity may have grown (a node (re)joined rotation, a
        probe passed, a reload): waiting requests may now have a slot. Returns the unwatch."""
        watchers = self._capacity_watchers
        watchers.append(watcher)

        def unwatch() -> None:
            if watcher in watchers:
                watchers.remove(watcher)

        return unwatch

    def _capacity_changed(self) -> None:
        for watcher in tuple(self._capacity_watchers):  # one may unwatch meanwhile
            watcher()

    def _add(self, config: NodeConfig) -> NodeState:
        node = NodeState(config)
        node.breaker = CircuitBreaker(self._breaker_policy, clock=self._clock, rng=self._rng)
        self.nodes[config.name] = node
        self._index.add(node)
        return node

    # -- reads (request path) -------------------------------------------------------------
    def candidates(self, model: str) -> tuple[NodeState, ...]:
        """Nodes in rotation that serve `model` (a canonical name), in fleet order."""
        return self._index.candidates(model)

    def knows(self, model: str) -> bool:
        """Some node, healthy or not, was last seen with `model`."""
        return self._index.knows(model)

    def any_healthy(self) -> bool:
        return any(n.in_rotation for n in self.nodes.values())

    def served_models(self) -> dict[str, int]:
        """Canonical name → created, for models that at least one healthy node serves."""
        out: dict[str, int] = {}
        for model, nodes in self._index.served().items():
            out[model] = max(n.models[model] for n in nodes)
        return out

    # -- writes (health checks and failed requests) ----------------------------------------
    def mark_healthy(self, name: str, models: Mapping[str, int], latency_s: float) -> None:
        """The node answered its check listing `models`, which the node keeps (not a copy):
        the caller must not change it afterwards. Handing the same mapping again, as the
        health checker does while a node's answer stays the same, costs no comparison."""
        node = self.nodes.get(name)
        if node is None:  # removed by a reload while it was being checked
            return
        node.last_check, node.check_latency_s = self._clock(), latency_s
        if node.healthy and node.models is models:
            return
        changed = not node.healthy or node.models.keys() != models.keys()
        node.healthy, node.checked, node.models = True, True, models
        if changed:
            self._changed(node)

    def mark_unhealthy(self, name: str, error: str) -> None:
        node = self.nodes.get(name)
        if node is None:  # removed by a reload; its last requests may still fail
            return
        node.last_check = node.last_error_at = now = self._clock()
        node.last_error, node.checked = error, True
        recent = node.recent_errors
        if recent and recent[-1].message == error:  # a dead node fails every health round
            recent[-1].at, recent[-1].count = now, recent[-1].count + 1
        else:
            recent.append(NodeError(now, error))
        if node.healthy:
            node.healthy = False
            self._changed(node)

    def set_loaded(self, name: str, loaded: Mapping[str, int | None]) -> None:
        """The node's `/api/ps`: loaded model → its context (None: not said)."""
        node = self.nodes.get(name)
        if node is not None:
            node.loaded, node.contexts = frozenset(loaded), loaded

    def record_success(self, node: NodeState) -> None:
        # Also while CLOSED: a success ends a run of failures, which must be consecutive to eject.
        if node.breaker is not None:
            node.breaker.record_success()
        if node.capacity != node.config.max_concurrency:  # the probe passed: full capacity
            node.capacity = node.config.max_concurrency
            self._capacity_changed()

    def record_failure(self, node: NodeState) -> None:
        """A request failed because of the node: enough in a row eject it for a back-off."""
        breaker = node.breaker
        if breaker is None:
            return
        breaker.record_failure()
        until = breaker.opened_until
        if breaker.state is BreakerState.OPEN and until is not None and node.ejected_until is None:
            node.ejected_until = until
            self._changed(node)
            asyncio.get_running_loop().call_later(
                max(0.0, until - self._clock()), self._readmit, node
            )

    def _readmit(self, node: NodeState) -> None:
        """The back-off is over: the node is half-open, its next request is the probe. Until
        one succeeds it has one slot, so a still-broken node fails one request, not a burst
        (with strict capacity the others wait or go elsewhere)."""
        node.ejected_until = None
        node.capacity = 1
        if self.nodes.get(node.name) is node:
            self._changed(node)

    def set_draining(self, name: str, draining: bool) -> NodeState:
        """Take a node out of rotation (its in-flight requests finish) or put it back."""
        node = self.nodes[name]
        if node.draining != draining:
            node.draining = draining
            self._changed(node)
        return node

    def update_nodes(self, configs: Iterable[NodeConfig]) -> tuple[list[str], list[str]]:
        """Apply a reloaded fleet: add new nodes, drop removed ones, update changed ones.

        A node whose URL changed is a new node. A dropped node's in-flight requests keep their
        `NodeState` through their leases and finish. Returns (added, removed) names."""
        wanted = {c.name: c for c in configs}
        removed = [
            n
            for n, node in self.nodes.items()
            if n not in wanted or wanted[n].url != node.config.url
        ]
        for name in removed:
            self._index.remove(self.nodes.pop(name))
        added = []
        for name, config in wanted.items():
            node = self.nodes.get(name)
            if node is None:
                self._add(config)
                added.append(name)
            elif node.config != config:
                node.config, node.capacity = config, config.max_concurrency
        self._capacity_changed()  # new nodes or larger capacities
        return added, removed

    def forget_model(self, name: str, model: str) -> None:
        """A node said it does not have `model` (deleted since the last check)."""
        node = self.nodes.get(name)
        if node is not None and model in node.models:
            node.models = {m: c for m, c in node.models.items() if m != model}
            self._changed(node)

    def _changed(self, node: NodeState) -> None:
        """`node`'s health, models or rotation changed: its index entries follow."""
        self._index.sync(node)
        self._capacity_changed()
