"""The fleet's model index: model → the nodes in rotation that serve it, in fleet order, and
the models any node lists, healthy or not.

`sync(node)` brings one node's entries up to date after its health, models or rotation changed:
it touches that node's models only, so a node joining or flapping in a 1,000-node fleet costs
its own models (a list insert each), not a rebuild over every node (issue #5, S5). The tuple a
reader gets is made on its first read after a change and kept until the next one.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.fleet.registry import NodeState


class ModelIndex:
    """Kept by `Fleet`, which calls `add`, `remove` and `sync` as nodes change."""

    __slots__ = ("_cache", "_known", "_members", "_models", "_next", "_order", "_rotating")

    def __init__(self) -> None:
        self._next = 0
        self._order: dict[NodeState, int] = {}  # when the node joined the fleet
        self._models: dict[NodeState, frozenset[str]] = {}  # as indexed
        self._rotating: set[NodeState] = set()  # indexed as in rotation
        self._members: dict[str, list[NodeState]] = {}  # sorted by _order, never empty
        self._cache: dict[str, tuple[NodeState, ...]] = {}  # made on the first read after a change
        self._known: dict[str, int] = {}  # model → nodes that list it, in rotation or not

    def candidates(self, model: str) -> tuple[NodeState, ...]:
        found = self._cache.get(model)
        if found is None:
            members = self._members.get(model)
            if members is None:
                return ()
            found = self._cache[model] = tuple(members)
        return found

    def knows(self, model: str) -> bool:
        return model in self._known

    def served(self) -> Mapping[str, list[NodeState]]:
        return self._members

    def add(self, node: NodeState) -> None:
        self._order[node], self._next = self._next, self._next + 1
        self._models[node] = _NONE
        self.sync(node)

    def remove(self, node: NodeState) -> None:
        self._update(node, _NONE, rotating=False)
        del self._order[node], self._models[node]

    def sync(self, node: NodeState) -> None:
        old = self._models.get(node)
        if old is None:  # a reload removed it; its last requests may still fail
            return
        models = old if node.models.keys() == old else frozenset(node.models)
        self._update(node, models, rotating=node.in_rotation)

    def _update(self, node: NodeState, models: frozenset[str], *, rotating: bool) -> None:
        old = self._models[node]
        if models is not old:
            known = self._known
            for model in models - old:
                known[model] = known.get(model, 0) + 1
            for model in old - models:
                known[model] -= 1
                if not known[model]:
                    del known[model]
            self._models[node] = models
        was = node in self._rotating
        before, after = old if was else _NONE, models if rotating else _NONE
        for model in before - after:
            self._drop(model, node)
        for model in after - before:
            self._put(model, node)
        if rotating and not was:
            self._rotating.add(node)
        elif was and not rotating:
            self._rotating.discard(node)

    def _put(self, model: str, node: NodeState) -> None:
        members = self._members.get(model)
        order = self._order
        if members is None:
            self._members[model] = [node]
        elif order[members[-1]] < order[node]:
            members.append(node)
        else:
            insort(members, node, key=order.__getitem__)
        self._cache.pop(model, None)

    def _drop(self, model: str, node: NodeState) -> None:
        members = self._members[model]
        order = self._order
        del members[bisect_left(members, order[node], key=order.__getitem__)]
        if not members:
            del self._members[model]
        self._cache.pop(model, None)


_NONE: frozenset[str] = frozenset()
