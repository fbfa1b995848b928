"""Usage you can bill: per-key request and token counters, and the totals `/admin/usage` shows.

Labels are bounded by the fleet file: key names (a revoked key's series stay until restart),
models the fleet knows and the API routes. `UsageBook` keeps the same counts as plain totals
since start, per key and model, so the admin endpoint reads them without parsing metrics; with
coordination, `router.keys.redis_usage.FleetUsage` also keeps them in Redis (fleet-wide, kept
across restarts) behind the same `record`/`report`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from router.obs.tally import Counter, CounterChild


@dataclass(slots=True)
class Totals:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def view(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def add(self, other: Totals) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


class _Series:
    """A (key, model, api)'s counter children and its (key, model) totals."""

    __slots__ = ("completion", "prompt", "requests", "totals")

    def __init__(self, requests: CounterChild, totals: Totals) -> None:
        self.requests, self.totals = requests, totals
        self.prompt: CounterChild | None = None
        self.completion: CounterChild | None = None


class UsageBook:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "jarvis_key_requests",
            "Requests that reached a model, by API key name, model and API route",
            ["key", "model", "api"],
            registry=registry,
        )
        self.tokens = Counter(
            "jarvis_key_tokens",
            "Tokens the nodes reported, by API key name, model and kind (prompt, completion)",
            ["key", "model", "kind"],
            registry=registry,
        )
        self.refused = Counter(
            "jarvis_key_rate_limited",
            "Requests refused with 429 by a key's own limit (rpm, tpm, too_large, concurrency)",
            ["key", "limit"],
            registry=registry,
        )
        self._totals: dict[tuple[str, str], Totals] = {}
        # Per (key, model, api): its counter children and totals, looked up once, not by
        # label on every request.
        self._series: dict[tuple[str, str, str], _Series] = {}
        self.since = time.time()  # wall clock: the totals count from here

    def record(self, key: str, model: str, api: str, prompt: int, completion: int) -> None:
        series = self._series.get((key, model, api))
        if series is None:
            series = self._series[(key, model, api)] = self._new_series(key, model, api)
        series.requests.inc()
        if prompt:  # a token series appears once it counts something, as before
            if series.prompt is None:
                series.prompt = self.tokens.labels(key, model, "prompt")
            series.prompt.inc(prompt)
        if completion:
            if series.completion is None:
                series.completion = self.tokens.labels(key, model, "completion")
            series.completion.inc(completion)
        totals = series.totals
        totals.requests += 1
        totals.prompt_tokens += prompt
        totals.completion_tokens += completion

    def _new_series(self, key: str, model: str, api: str) -> _Series:
        totals = self._totals.get((key, model))
        if totals is None:
            totals = self._totals[(key, model)] = Totals()
        return _Series(self.requests.labels(key, model, api), totals)

    def rate_limited(self, key: str, limit: str) -> None:
        self.refused.labels(key, limit).inc()

    def totals(self) -> list[dict[str, object]]:
        """Per key (sorted by name): its totals and, per model, the model's."""
        return rows(self._totals)

    async def report(self) -> tuple[float, list[dict[str, object]], bool]:
        """What `/admin/usage` shows: since when (wall clock), the rows, and whether they are
        the fleet's (a Redis-backed book) or this replica's alone."""
        return self.since, self.totals(), False


def rows(totals: dict[tuple[str, str], Totals]) -> list[dict[str, object]]:
    """Per key (sorted by name): its totals and, per model, the model's."""
    keys: dict[str, dict[str, Totals]] = {}
    for (key, model), counts in sorted(totals.items()):
        keys.setdefault(key, {})[model] = counts
    out: list[dict[str, object]] = []
    for key, models in keys.items():
        overall = Totals()
        for counts in models.values():
            overall.add(counts)
        models_view = {model: t.view() for model, t in models.items()}
        out.append({"key": key, **overall.view(), "models": models_view})
    return out
