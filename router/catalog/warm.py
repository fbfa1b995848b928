"""Which node models are warm at the catalog's context, and where to load models next (issue #15).

Pure: the health round gives each node's `/api/ps` (`parse_ps_contexts`) and `/api/tags`; the
routing scores a node as cold unless `is_warm`; a background task runs `plan_warm` each round
and sends each action's load request (`router.wire.options.load_payload`).

**Warm at the right context.** A model loaded with another context than the catalog's
`num_ctx` is cold: the next request reloads it (api-reference.md pitfall 13). Accepted as right:
`num_ctx` itself, `num_ctx` times the node's parallel slots (Ollama versions that report the whole
KV cache), or the model's trained context when `num_ctx` is above it (Ollama caps there). A
node that does not report a context (older Ollama) is taken at its word that the model is
loaded.

**The floor.** An entry with `min_loaded: N` is kept warm on N healthy nodes (any of its
targets counts; a load under way counts). Short of N, it is loaded on more: for each node the
most preferred target installed there, nodes ordered by (needs no eviction, target preference,
has it loaded at another context, fewer models loaded, name). A node that re-loads the model
at the right context in place (fixing a runner the next request would reload), or has a free
slot (fewer than its `max_loaded_models`, Ollama's OLLAMA_MAX_LOADED_MODELS), needs
no eviction. A full node is used only if none of its models is *protected*: warm for an entry
that is at or below its own floor, since Ollama evicts a model we cannot choose.
A lost or restarted node drops out of the count, so the next round loads elsewhere (or on it
again once healthy).

**Demand.** Beyond the floor, an entry whose admission queue holds at least `queue_threshold`
requests gets one more node per round, only where a slot is free (a demand load never evicts
anything), not while a load of it is under way, and not again within `cooldown_s` of its last
demand load (the load and the queue's drain take time: this is the hysteresis). The router
never unloads: a demand-loaded model leaves when its `keep_alive` runs out without requests.

**Bounds.** At most `max_loads_per_round` loads per round and one per node, floors first
(the entry furthest below its floor first), so a restart of many nodes is caught up over a few
rounds instead of in one burst.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from router.catalog.entries import Entry
from router.modelnames import canonical

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def parse_ps_contexts(body: bytes) -> dict[str, int | None]:
    """`/api/ps` → canonical model name → its loaded `context_length` (None if not given).
    Raises ValueError for an answer that is not a JSON object."""
    data = orjson.loads(body)  # orjson.JSONDecodeError is a ValueError
    if not isinstance(data, dict):
        raise ValueError("/api/ps answer is not a JSON object")
    out: dict[str, int | None] = {}
    for item in data.get("models") or ():
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
            ctx = item.get("context_length")
            ok = isinstance(ctx, int) and not isinstance(ctx, bool) and ctx > 0
            out[canonical(item["name"])] = ctx if ok else None
    return out


def is_warm(
    loaded: Mapping[str, int | None],
    model: str,
    num_ctx: int | None,
    *,
    parallel: int = 1,
    trained_ctx: int | None = None,
) -> bool:
    """Whether `model` is loaded (per `parse_ps_contexts`) at a context a request with
    `num_ctx` runs on without a reload."""
    if model not in loaded:
        return False
    ctx = loaded[model]
    if num_ctx is None or ctx is None:
        return True
    want = min(num_ctx, trained_ctx) if trained_ctx else num_ctx
    return ctx in (want, want * max(parallel, 1))


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the planner knows of a node this round."""

    name: str
    healthy: bool  # in rotation: healthy, not drained, breaker closed
    installed: Collection[str]  # canonical names from /api/tags
    loaded: Mapping[str, int | None]  # parse_ps_contexts
    loading: Collection[str] = frozenset()  # loads sent and not yet seen in /api/ps
    max_loaded: int = 3  # NodeConfig.max_loaded_models
    parallel: int = 1  # NodeConfig.max_concurrency (its OLLAMA_NUM_PARALLEL)
    trained: Mapping[str, int] = field(default_factory=dict)  # /api/tags context_length

    def warm(self, model: str, num_ctx: int | None) -> bool:
        return model in self.loading or is_warm(
            self.loaded,
            model,
            num_ctx,
            parallel=self.parallel,
            trained_ctx=self.trained.get(model),
        )


@dataclass(frozen=True, slots=True)
class WarmPolicy:
    max_loads_per_round: int = 2
    queue_threshold: int = 4  # queued requests for an entry that call for one more node
    cooldown_s: float = 60.0  # between two demand loads of one entry


@dataclass(frozen=True, slots=True)
class WarmAction:
    node: str
    model: str  # the node model (a target) to load
    entry: str  # the catalog entry's name, for its options
    reason: str  # "floor" | "demand"


@dataclass(frozen=True, slots=True)
class WarmPlan:
    actions: tuple[WarmAction, ...]
    grown: Mapping[str, float]  # entry → time of its last demand load, for the next round


def plan_warm(
    entries: Sequence[Entry],
    nodes: Sequence[NodeView],
    *,
    demand: Mapping[str, int] = _EMPTY,
    last_grown: Mapping[str, float] = _EMPTY,
    now: float = 0.0,
    policy: WarmPolicy = WarmPolicy(),
) -> WarmPlan:
    """The loads to send this round (see the module docstring for the rules)."""
    healthy = [n for n in nodes if n.healthy]
    warm = {e.name: _warm_nodes(e, healthy) for e in entries}
    protected = _protected(entries, healthy, warm)
    actions: list[WarmAction] = []
    busy: set[str] = set()  # nodes given a load this round

    def add(e: Entry, picks: list[tuple[NodeView, str]], reason: str) -> None:
        for node, target in picks[: policy.max_loads_per_round - len(actions)]:
            actions.append(WarmAction(node.name, target, e.name, reason))
            busy.add(node.name)

    short = [e for e in entries if len(warm[e.name]) < e.min_loaded]
    for e in sorted(short, key=lambda e: len(warm[e.name]) - e.min_loaded):
        picks = _candidates(e, healthy, warm[e.name] | busy, protected, evict=True)
        add(e, picks[: e.min_loaded - len(warm[e.name])], "floor")
    grown = dict(last_grown)
    for e in entries:
        if (
            demand.get(e.name, 0) >= policy.queue_threshold
            and now - grown.get(e.name, float("-inf")) >= policy.cooldown_s
            and not any(a.entry == e.name for a in actions)
            and not any(t in n.loading for n in healthy for t in e.targets)
            and len(actions) < policy.max_loads_per_round
        ):
            picks = _candidates(e, healthy, warm[e.name] | busy, protected, evict=False)
            if picks:
                add(e, picks[:1], "demand")
                grown[e.name] = now
    return WarmPlan(tuple(actions), grown)


def _warm_nodes(entry: Entry, healthy: Sequence[NodeView]) -> set[str]:
    return {n.name for n in healthy if any(n.warm(t, entry.num_ctx) for t in entry.targets)}


def _protected(
    entries: Sequence[Entry], healthy: Sequence[NodeView], warm: Mapping[str, set[str]]
) -> set[tuple[str, str]]:
    """(node, model) pairs whose eviction would take an entry below its floor."""
    out: set[tuple[str, str]] = set()
    for e in entries:
        if e.min_loaded and len(warm[e.name]) <= e.min_loaded:
            for n in healthy:
                out.update((n.name, t) for t in e.targets if n.warm(t, e.num_ctx))
    return out


def _candidates(
    entry: Entry,
    healthy: Sequence[NodeView],
    skip: Collection[str],
    protected: Collection[tuple[str, str]],
    *,
    evict: bool,
) -> list[tuple[NodeView, str]]:
    """(node, target) where a load would add a warm node for `entry`, best first."""
    ranked: list[tuple[tuple[bool, int, bool, int, str], NodeView, str]] = []
    for n in healthy:
        if n.name in skip:
            continue
        found = next(((i, t) for i, t in enumerate(entry.targets) if t in n.installed), None)
        if found is None:
            continue
        rank, target = found
        occupied = set(n.loaded) | set(n.loading)
        # Loaded at another context: the load replaces it in place, no other model leaves.
        in_place = target in n.loaded
        needs_eviction = not in_place and len(occupied) >= n.max_loaded
        if needs_eviction and (not evict or any((n.name, m) in protected for m in occupied)):
            continue
        ranked.append(((needs_eviction, rank, not in_place, len(occupied), n.name), n, target))
    ranked.sort(key=lambda r: r[0])
    return [(n, target) for _, n, target in ranked]
