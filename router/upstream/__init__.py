"""The data plane: getting one request's generation from one node, with failover.

Owns: the node client (`client`, the only code that knows Ollama's URLs and statuses), the
NDJSON line reader, and dispatch (tenacity over choose → lease → open → first line).
May import: `routing`, `fleet`, `wire`, `obs` and the leaves; never `api`.
"""
