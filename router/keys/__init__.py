"""What an API key may do and how much: the model allowlist and expiry (`policy`), the
per-key request, token and concurrency limits (`limiter`: the `Limiter` seam with a local
in-memory implementation).

Pure: `policy` and `limiter` import only `router.config` and `router.modelnames`; `router.api`
applies them to every request in one place (the middleware and the routing of the model).
With coordination, `shared` builds their Redis side, which imports `redis` (an optional extra):
`redis_limiter` (limits that hold across replicas), `redis_usage` (usage totals for the whole
fleet, kept across restarts) over one `redis_client` link.
"""
