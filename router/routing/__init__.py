"""Choosing a node: strategies, scoring, affinity, the admission queue and the slot stores.

Owns: the one routing decision (`choose.Chooser`) over the strategies (`cost_aware`, and
`strategies`: least-loaded, round-robin, random), node-speed scoring (`scoring`), the
conversation affinity ring (`affinity`), the fair admission queue (`admission`) and its line
(`line`), and the slot store seam (`slots`) with its local (`local`) and Redis (`redis_slots`,
with `redis_leases`, `redis_link`, `shares`) implementations; `build` makes them from the
fleet file.
May import: `fleet`, `obs` and the leaves; never `upstream` or `api`.
"""
