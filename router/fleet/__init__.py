"""The fleet registry: each node's state (health, models, in-flight), the model index, the
health poller and the circuit breaker.

Owns: `Fleet` (state changes only through its methods), `NodeState`, `Lease`, the model →
healthy-nodes index, health checks and per-node breakers.
May import: `obs` and the leaves (`config`, `modelnames`, `errors`); never `routing`,
`upstream` or `api`. The health poller reaches nodes through a probe it is given.
"""
