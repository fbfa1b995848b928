"""The model catalog: a public name → the node models that serve it, most preferred first, and
the options every request for it carries (issue #15).

`Catalog.from_config(config.models)` is built once per fleet file (a reload builds a new one).
Every name here is canonical (`router.modelnames.canonical`): `resolve("llama3:latest")` for a
client's `ollama/llama3`. The rules:

- A name of `models:` resolves to its entry: its targets in order, its options.
- Any other name resolves to itself as the only target ("raw" tags keep working). A raw tag that
  is some entries' target gets the options of the first such entry in the file: its `num_ctx`
  and `keep_alive` are the same in all of them (the fleet file refuses otherwise), so a raw
  request never reloads a model the catalog keeps at its context. Any other raw tag gets the
  defaults: `truncate: false` and nothing forced.
- A name of `models:` shadows a node model of the same name unless that model is its target.
- `/models` lists the names whose some target is served, and every served node model under its
  own id, except the targets of an entry with `hide_raw: true` (hidden from the list only: a
  request for one still resolves).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from router.config.model import ModelConfig
from router.modelnames import canonical, public_id
from router.wire.options import Overrides

T = TypeVar("T")
DEFAULT_OVERRIDES = Overrides()


@dataclass(frozen=True, slots=True)
class Entry:
    name: str  # canonical: the routing key the client's name became
    public_id: str  # what /models shows and metrics label: ollama/<name>
    targets: tuple[str, ...]  # canonical node model names, most preferred first
    overrides: Overrides = DEFAULT_OVERRIDES
    min_loaded: int = 0
    hide_raw: bool = False
    configured: bool = False  # an entry of `models:` (else a raw node model's own)

    @property
    def num_ctx(self) -> int | None:
        return self.overrides.num_ctx

    @property
    def alias(self) -> bool:
        """Routes to other node models than its own name."""
        return self.targets != (self.name,)


class Catalog:
    __slots__ = ("_by_name", "_hidden", "_raw", "entries")

    def __init__(self, entries: Sequence[Entry] = ()) -> None:
        self.entries = tuple(entries)  # configured, in file order
        self._by_name = {e.name: e for e in self.entries}
        self._raw: dict[str, Entry] = {}  # a target's own entry, with its first owner's options
        self._hidden: set[str] = set()
        for e in self.entries:
            for target in e.targets:
                if target not in self._by_name and target not in self._raw:
                    self._raw[target] = Entry(target, public_id(target), (target,), e.overrides)
            if e.hide_raw:
                self._hidden.update(t for t in e.targets if t != e.name)

    @classmethod
    def from_config(cls, models: Sequence[ModelConfig]) -> Catalog:
        return cls([_entry(m) for m in models])

    def resolve(self, model: str) -> Entry:
        """The entry for a canonical name; never fails (a name no node serves is the caller's
        404)."""
        found = self._by_name.get(model) or self._raw.get(model)
        return found if found is not None else _own_entry(model)

    def owner(self, target: str) -> Entry | None:
        """The first configured entry with `target` among its targets (for its options)."""
        return next((e for e in self.entries if target in e.targets), None)

    def public_models(self, served: Mapping[str, int]) -> list[tuple[str, int]]:
        """(public id, created) for `/models`, sorted by id; `served` maps the canonical node
        models that some healthy node serves to their `created` time."""
        out: dict[str, int] = {}
        for e in self.entries:
            target = first_served(e, served)
            if target is not None:
                out[e.public_id] = served[target]
        for model, created in served.items():
            if model not in self._hidden and model not in self._by_name:
                out.setdefault(public_id(model), created)
        return sorted(out.items())


def first_served(entry: Entry, served: Collection[str]) -> str | None:
    """The most preferred target of `entry` that is in `served` (e.g. a node's models)."""
    return next((t for t in entry.targets if t in served), None)


def targets_in_order(
    entry: Entry, candidates_by_target: Mapping[str, Sequence[T]]
) -> list[tuple[str, Sequence[T]]]:
    """(target, its candidates) for the targets that have any, most preferred first: routing
    tries the first target's nodes with a free slot, spills to the next when all are full or
    down, and queues only when every target's are."""
    out: list[tuple[str, Sequence[T]]] = []
    for target in entry.targets:
        candidates = candidates_by_target.get(target)
        if candidates:
            out.append((target, candidates))
    return out


@lru_cache(maxsize=4096)
def _own_entry(model: str) -> Entry:
    """A name the catalog does not know: itself, with the defaults (bounded: clients choose
    the names)."""
    return Entry(model, public_id(model), (model,))


def _entry(m: ModelConfig) -> Entry:
    name = canonical(m.name)
    overrides = Overrides(
        num_ctx=m.num_ctx,
        keep_alive=m.keep_alive,
        truncate=m.truncate,
        num_predict=m.num_predict,
        think=m.think,
    )
    targets = tuple(canonical(t) for t in m.targets)
    return Entry(name, public_id(name), targets, overrides, m.min_loaded, m.hide_raw, True)
