"""Cost-aware scoring: how long a request would take on a node, from measured speeds (issue 7).

A node runs `capacity` requests at once, each taking a service time

    S = ttft + expected_tokens / tokens_per_s

(per node and model, from moving averages over finished requests). A new request starts at once
while the node's load (`NodeState.load`) < capacity; otherwise it waits for its place in the
node's queue, `capacity` requests leaving every S seconds:

    wait = (load - capacity + 1) * S / capacity

Expected completion = wait + S, plus `cold_load_s` when /api/ps says the model is not loaded on
the node (unknown = no penalty). `queue_weight` > 1 scales the wait, to price the delay a queued
request also puts on later ones (1 = each request's own completion, as issue 7 states it).

Unknown speeds fall back to the node's speed over all models, then to the median of the other
candidates' known speeds (`fleet_speed`), then to the policy's defaults: a new node is scored
like a typical one, gets a few requests and is measured. `router.routing.cost_aware.CostAware.costs`
applies the model; this module holds its parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import median
from typing import TypeVar

DEFAULT_TOKENS = 128.0  # expected completion length of a model never seen finishing

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted moving average per sample (no time decay); None until a sample."""

    alpha: float = 0.2
    value: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")

    def update(self, sample: float) -> None:
        if self.value is None:
            self.value = sample
        else:
            self.value += self.alpha * (sample - self.value)


@dataclass(slots=True)
class _PairStats:
    ttft: Ewma
    tokens_per_s: Ewma


class SpeedStats:
    """Per (node, model): EWMAs of time to first token (s) and decode speed (tokens/s); per
    node: decode speed over all its models; per model: completion length (tokens).

    Fed once per finished request. `ttft_s` should exclude a model load (Ollama's
    `load_duration`), which `CostPolicy.cold_load_s` already prices. Samples that are missing,
    negative or not finite are skipped. Each table keeps its `max_entries` most recently fed
    keys, so arbitrary names cannot grow memory without bound.
    """

    __slots__ = (
        "_alpha",
        "_default_tokens",
        "_load_median",
        "_loads",
        "_max",
        "_nodes",
        "_pairs",
        "_tokens",
    )

    def __init__(
        self,
        *,
        alpha: float = 0.2,
        max_entries: int = 100_000,
        default_tokens: float = DEFAULT_TOKENS,
    ) -> None:
        Ewma(alpha)  # validates alpha
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self._alpha, self._max, self._default_tokens = alpha, max_entries, default_tokens
        self._pairs: dict[tuple[str, str], _PairStats] = {}
        self._nodes: dict[str, Ewma] = {}
        self._tokens: dict[str, Ewma] = {}
        self._loads: dict[str, Ewma] = {}
        # The median of `_loads`, made when first asked after a change: requests read it for
        # every cold candidate never seen loading, loads are measured rarely.
        self._load_median: tuple[float | None] | None = None

    def observe(
        self,
        node: str,
        model: str,
        *,
        ttft_s: float | None,
        tokens: int,
        decode_s: float | None,
        capped: bool = False,
    ) -> None:
        """`capped`: the reply stopped at the request's token limit, so its natural length is
        at least `tokens`; it only raises the length estimate, never lowers it."""
        pair = self._touch(self._pairs, (node, model), self._new_pair)
        if ttft_s is not None and _ok(ttft_s):
            pair.ttft.update(ttft_s)
        if tokens > 0 and decode_s is not None and _ok(decode_s) and decode_s > 0:
            rate = tokens / decode_s
            pair.tokens_per_s.update(rate)
            self._touch(self._nodes, node, self._new_ewma).update(rate)
        if tokens >= 0:
            length = self._touch(self._tokens, model, self._new_ewma)
            if not capped or length.value is None or tokens > length.value:
                length.update(float(tokens))

    def observe_load(self, node: str, load_s: float) -> None:
        """How long `node` took to load a model that was cold (Ollama's `load_duration`)."""
        if _ok(load_s):
            self._touch(self._loads, node, self._new_ewma).update(load_s)
            self._load_median = None

    def load_s(self, node: str) -> float | None:
        """The node's measured time to load a cold model, else the median over nodes that
        loaded one (a node never seen loading is taken for a typical one); None if none did."""
        ewma = self._loads.get(node)
        if ewma is not None and ewma.value is not None:
            return ewma.value
        if self._load_median is None:
            known = [e.value for e in self._loads.values() if e.value is not None]
            self._load_median = (median(known) if known else None,)
        return self._load_median[0]

    def expected_tokens(self, model: str) -> float:
        ewma = self._tokens.get(model)
        value = None if ewma is None else ewma.value
        return self._default_tokens if value is None else value

    def estimate(self, node: str, model: str) -> tuple[float | None, float | None]:
        """(ttft, tokens/s) for `model` on `node`, speed falling back to the node's decode
        speed over all its models (the guess for a model never measured there); one lookup
        for the request path."""
        pair = self._pairs.get((node, model))
        ttft = rate = None
        if pair is not None:
            ttft, rate = pair.ttft.value, pair.tokens_per_s.value
        if rate is None:
            ewma = self._nodes.get(node)
            rate = None if ewma is None else ewma.value
        return ttft, rate

    def _new_pair(self) -> _PairStats:
        return _PairStats(Ewma(self._alpha), Ewma(self._alpha))

    def _new_ewma(self) -> Ewma:
        return Ewma(self._alpha)

    def _touch(self, table: dict[_K, _V], key: _K, make: Callable[[], _V]) -> _V:
        """The entry for `key`, made if new, moved to the young end; the oldest goes when full."""
        value = table.pop(key, None)
        if value is None:
            value = make()
            if len(table) >= self._max:
                del table[next(iter(table))]
        table[key] = value
        return value


@dataclass(frozen=True, slots=True)
class CostPolicy:
    default_ttft_s: float = 0.5
    default_tokens_per_s: float = 30.0
    cold_load_s: float = 10.0  # added when the model is not loaded on the node
    # > 1: a queued request also delays the ones behind it (the router uses
    # `routing.queue_weight`, default 3).
    queue_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.default_tokens_per_s > 0:
            raise ValueError(f"default_tokens_per_s must be > 0, got {self.default_tokens_per_s}")
        if not (self.default_ttft_s >= 0 and self.cold_load_s >= 0 and self.queue_weight >= 0):
            raise ValueError("default_ttft_s, cold_load_s and queue_weight must be >= 0")


def completion_s(
    *,
    load: float,
    capacity: int,
    service_s: float,
    cold_s: float = 0.0,
    queue_weight: float = 1.0,
) -> float:
    """Expected completion of one more request on a node running `load` of `capacity`."""
    capacity = max(capacity, 1)
    if load < capacity:
        return service_s + cold_s
    return queue_weight * (load - capacity + 1) * service_s / capacity + service_s + cold_s


def fleet_speed(
    estimates: Iterable[tuple[float | None, float | None]],
) -> tuple[float | None, float | None]:
    """Median known (ttft, tokens/s) over candidates' `SpeedStats.estimate`s; None if none known."""
    ttfts: list[float] = []
    rates: list[float] = []
    for ttft, rate in estimates:
        if ttft is not None:
            ttfts.append(ttft)
        if rate is not None:
            rates.append(rate)
    return (median(ttfts) if ttfts else None), (median(rates) if rates else None)


def _ok(x: float) -> bool:
    return math.isfinite(x) and x >= 0
