"""Observability: every Prometheus metric family (on an injected registry), the request log,
and tokens-per-second windows.

May import: the leaves only (and `fleet` types for the per-node collector).
"""
