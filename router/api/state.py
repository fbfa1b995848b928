"""The one object a request needs: config, keys, fleet, metrics and the services built at start."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from router.api.auth import KeyRing
from router.config import FleetConfig
from router.fleet.health import HealthChecker
from router.fleet.registry import Fleet
from router.keys.limiter import Limiter
from router.obs.metrics import Metrics
from router.obs.usage import UsageBook
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
    # Built when the app starts (they need the running loop's ClientSession).
    dispatcher: Dispatcher = field(init=False)
    health: HealthChecker = field(init=False)


STATE = web.AppKey("jarvis_state", RouterState)
