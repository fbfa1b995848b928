"""What an API key may do and how much: the model allowlist and expiry (`policy`), the
per-key request, token and concurrency limits (`limiter`: the `Limiter` seam with a local
in-memory implementation; a Redis one for many replicas fits the same interface).

Pure: imports only `router.config` and `router.modelnames`; `router.api` applies it to every
request in one place (the middleware and the routing of the model).
"""
