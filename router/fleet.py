"""The fleet registry: what each node is (healthy, models, in-flight) and who has which model.

State changes only through `Fleet` methods, none of which awaits inside a change, so the
event loop never sees a half-made update and no locks are needed. The model → healthy-nodes
index is rebuilt on every health change (rare), so the request path only does dict lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from router.config import NodeConfig


@dataclass(slots=True, eq=False)
class NodeState:
    config: NodeConfig
    name: str = ""
    capacity: int = 1
    healthy: bool = False
    checked: bool = False
    models: Mapping[str, int] = field(default_factory=dict)  # canonical name → created (unix s)
    in_flight: int = 0
    last_check: float | None = None
    check_latency_s: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    def __post_init__(self) -> None:
        self.name = self.config.name
        self.capacity = self.config.max_concurrency


class Lease:
    """One request's slot on a node: taken on enter, given back on exit, whatever happens."""

    __slots__ = ("node",)

    def __init__(self, node: NodeState) -> None:
        self.node = node

    async def __aenter__(self) -> NodeState:
        self.node.in_flight += 1
        return self.node

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.node.in_flight -= 1


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
        node.last_check = node.last_error_at = self._clock()
        node.last_error, node.checked = error, True
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
