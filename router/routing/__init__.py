"""Choosing a node: strategies, scoring, affinity, the admission queue and the slot stores.

Owns: one `choose` interface over the routing strategies (cost-aware with affinity,
least-loaded, round-robin, random), node-speed scoring, the conversation affinity ring, the
fair admission queue, and the slot store seam with its local and Redis implementations.
May import: `fleet`, `obs` and the leaves; never `upstream` or `api`.
"""
