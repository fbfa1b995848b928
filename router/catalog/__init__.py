"""The model catalog (issue #15): public names over node models, the options each request for
a model carries, which loaded models are warm at the right context, and the warm-pool plan.

Owns: `Catalog` and `Entry` (`entries`), `is_warm`, `parse_ps_contexts` and `plan_warm`
(`warm`): pure, built from the fleet file's `models:` section; read by `routing` (targets in
order, cold if at another context), `upstream`/`api` (options into payloads, `/models`).
Also the two parts with a lifetime, which reach nodes only through protocols the app hands in
(the upstream client), as the health checker does: `runner.WarmRunner` (the warm pool's
rounds and loads) and `facts.Facts` (`/api/show` per node and model, cached).
May import: `config`, `modelnames`, `errors`, `wire` (pure) and `fleet` (node state).
"""

from router.catalog.entries import Catalog, Entry, first_served, targets_in_order
from router.catalog.warm import (
    NodeView,
    WarmAction,
    WarmPlan,
    WarmPolicy,
    is_warm,
    parse_ps_contexts,
    plan_warm,
)

__all__ = [
    "Catalog",
    "Entry",
    "NodeView",
    "WarmAction",
    "WarmPlan",
    "WarmPolicy",
    "first_served",
    "is_warm",
    "parse_ps_contexts",
    "plan_warm",
    "targets_in_order",
]
