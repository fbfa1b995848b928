"""The data plane: getting one request's generation from one node, with failover.

Owns: the node client (`client`, the only code that knows Ollama's URLs and statuses), how an
attempt ended (`outcome`), the NDJSON line reader (`lines`), dispatch (tenacity over choose →
lease → attempt; `retrying`: tenacity's run, lighter per request) and the generation
(`generation`: one async context manager that owns its lease and the node's answer, yields
parsed lines, and is where every stream ends); `unary` is the same for an answer that is one
JSON object (`/api/embed`).
May import: `routing`, `fleet`, `wire`, `obs` and the leaves; never `api`.
"""
