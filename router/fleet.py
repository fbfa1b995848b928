"""The fleet registry: what each node is (healthy, models, in-flight) and who has which model.

State changes only through `Fleet` methods, none of which awaits inside a change, so the
event loop never sees a half-made update and no locks are needed. The model → healthy-nodes
index is rebuilt on every health change (rare), so the request path only does dict lookups.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from router.config import NodeConfig

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

    def __post_init__(self) -> None:
        self.name = self.config.name
        self.capacity = self.config.max_concurrency


class Lease:
    """One request's slot on a node, held from the moment it is made; `release()` (or leaving
    `async with`) gives it back exactly once, whatever happens. Release never awaits, so a
    cancelled request always frees its slot. `id` and `on_release` are coordination's (a lease
    also held in Redis); a plain lease has neither.
    """

    __slots__ = ("_held", "_on_release", "id", "node")

    def __init__(
        self,
        node: NodeState,
        id: str | None = None,
        on_release: Callable[[Lease], None] | None = None,
    ) -> None:
        node.in_flight += 1
        self.node, self.id, self._on_release, self._held = node, id, on_release, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self.node.in_flight -= 1
            if self._on_release is not None:
                self._on_release(self)

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
    def __init__(self, nodes: Iterable[NodeConfig], *, clock: Callable[[], float]) -> None:
        self.nodes: dict[str, NodeState] = {n.name: NodeState(n) for n in nodes}
        self._clock = clock
        self._by_model: dict[str, tuple[NodeState, ...]] = {}
        self._known: frozenset[str] = frozenset()

    # -- reads (request path) -------------------------------------------------------------
    def candidates(self, model: str) -> tuple[NodeState, ...]:
        """Healthy nodes that serve `model` (a canonical name)."""
        return self._by_model.get(model, ())

    def knows(self, model: str) -> bool:
        """Some node, healthy or not, was last seen with `model`."""
        return model in self._known

    def any_healthy(self) -> bool:
        return any(n.healthy for n in self.nodes.values())

    def served_models(self) -> dict[str, int]:
        """Canonical name → created, for models that at least one healthy node serves."""
        out: dict[str, int] = {}
        for model, nodes in self._by_model.items():
            out[model] = max(n.models[model] for n in nodes)
        return out

    def lease(self, node: NodeState) -> Lease:
        """Take a slot on `node` now (this replica's count only)."""
        return Lease(node)

    # -- writes (health checks and failed requests) ----------------------------------------
    def mark_healthy(self, name: str, models: Mapping[str, int], latency_s: float) -> None:
        node = self.nodes[name]
        changed = not node.healthy or node.models.keys() != models.keys()
        node.healthy, node.checked, node.models = True, True, dict(models)
        node.last_check, node.check_latency_s = self._clock(), latency_s
        if changed:
            self._reindex()

    def mark_unhealthy(self, name: str, error: str) -> None:
        node = self.nodes[name]
        node.last_check = node.last_error_at = now = self._clock()
        node.last_error, node.checked = error, True
        recent = node.recent_errors
        if recent and recent[-1].message == error:  # a dead node fails every health round
            recent[-1].at, recent[-1].count = now, recent[-1].count + 1
        else:
            recent.append(NodeError(now, error))
        if node.healthy:
            node.healthy = False
            self._reindex()

    def forget_model(self, name: str, model: str) -> None:
        """A node said it does not have `model` (deleted since the last check)."""
        node = self.nodes[name]
        if model in node.models:
            node.models = {m: c for m, c in node.models.items() if m != model}
            self._reindex()

    def _reindex(self) -> None:
        by_model: dict[str, list[NodeState]] = {}
        known: set[str] = set()
        for node in self.nodes.values():
            known.update(node.models)
            if node.healthy:
                for model in node.models:
                    by_model.setdefault(model, []).append(node)
        self._by_model = {m: tuple(ns) for m, ns in by_model.items()}
        self._known = frozenset(known)
