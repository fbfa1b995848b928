"""The HTTP surface: app wiring, middleware, handlers per API, admin, status page, reload.

Owns: `create_app`/`make_runner`/`serve` (`app`), the middleware (request id, auth, the one
error boundary that turns domain errors into statuses and envelopes, one log line and one
metrics observation per request), the headers every answer carries (`stamp`), the handlers
(`handlers`: chat, completions, models, and the shared route/relay helpers; `responses`;
`messages`: Anthropic's), `/admin/*`, `/status`, the key ring (`auth`) and the live
fleet-file reload.
May import: every other package (`upstream`, `routing`, `fleet`, `wire`, `obs`) and the leaves.
Nothing below it imports `api`.
"""
