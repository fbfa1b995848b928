"""The one object a request needs: config, keys, fleet, metrics and the services built at start."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from router.api.auth import KeyRing
from router.catalog.entries import Catalog
from router.catalog.facts import Facts
from router.catalog.runner import WarmRunner
from router.config import FleetConfig
from router.fleet.health import HealthChecker
from router.fleet.registry import Fleet
from router.keys.limiter import Limiter
from router.obs.metrics import Metrics
from router.obs.usage import UsageBook
from router.upstream.client import Upstream
from router.upstream.dispatch import Dispatcher


@dataclass(slots=True)
class RouterState:
    config: FleetConfig
    keys: KeyRing
    fleet: Fleet
    metrics: Metrics
    clock: Callable[[], float]
    rng: random.Random
    # Per-key limits and usage; a reload keeps them (keys are known by name).
    limiter: Limiter
    usage: UsageBook
    # Public names → node models and their options (issue #15); a reload swaps it.
    catalog: Catalog
    # Built when the app starts (they need the running loop's ClientSession).
    dispatcher: Dispatcher = field(init=False)
    health: HealthChecker = field(init=False)
    warm: WarmRunner = field(init=False)
    facts: Facts = field(init=False)  # /api/show per node and model, cached
    upstream: Upstream = field(init=False)
    # Which replica this is: its id in Redis (coordination) and in the fleet views.
    replica: str = field(default_factory=lambda: secrets.token_hex(6))


STATE = web.AppKey("jarvis_state", RouterState)
