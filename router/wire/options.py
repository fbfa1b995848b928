"""What the router sets over a client's request for a model: the catalog's options (issue #15).

Pure. `Overrides` is a model's forced options; `apply_options` writes them into an Ollama
payload dict before it is serialised once, so a payload is built in one place
(`router.wire.to_ollama`) without a second JSON round trip. The rules:

- `options.num_ctx` and `keep_alive`: always the catalog's when it sets them. The OpenAI API has
  no field for either, and another `num_ctx` than the loaded runner's makes Ollama reload the
  model (api-reference.md pitfall 13): every request for a model carries the same ones.
- `truncate`: the catalog's (false unless a model opts in), so an over-long prompt is a 400
  instead of a silently cut one; a handler that mapped a client's own choice (e.g. Responses'
  `truncation`) into the payload keeps it.
- `options.num_predict`: a cap. A client's `max_tokens` below it wins; above it, or absent, the
  cap applies.
- `think`: a default. A client's `reasoning_effort` (already in the payload) wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

KeepAlive = str | int | float


@dataclass(frozen=True, slots=True)
class Overrides:
    num_ctx: int | None = None
    keep_alive: KeepAlive | None = None
    truncate: bool = False
    num_predict: int | None = None  # a cap
    think: bool | str | None = None  # a default


def apply_options(
    payload: dict[str, Any], overrides: Overrides, *, embed: bool = False
) -> dict[str, Any]:
    """Write `overrides` into an Ollama chat, generate (or, with `embed`, embed) payload; returns
    the same dict. The client's values are those the payload already holds."""
    options = payload.get("options")
    if not isinstance(options, dict):
        options = {}
    if overrides.num_ctx is not None:
        options["num_ctx"] = overrides.num_ctx
    if overrides.keep_alive is not None:
        payload["keep_alive"] = overrides.keep_alive
    payload.setdefault("truncate", overrides.truncate)
    if embed:  # /api/embed has no num_predict or think
        if options:
            payload["options"] = options
        return payload
    cap = overrides.num_predict
    if cap is not None:
        asked = options.get("num_predict")
        # Ollama reads a negative num_predict as "unbounded": the cap applies then too.
        if not isinstance(asked, int) or asked < 0 or asked > cap:
            options["num_predict"] = cap
    if overrides.think is not None:
        payload.setdefault("think", overrides.think)
    if options:  # no empty `options` object on the wire
        payload["options"] = options
    return payload


def load_payload(model: str, overrides: Overrides, *, embed: bool = False) -> bytes:
    """Ollama's own load request, with the options the model will be asked with and the
    catalog's `keep_alive`: for `/api/generate` an empty prompt (api-reference.md 1.6); for
    `/api/embed` (embedding models refuse generate) no `input` (1.7)."""
    payload: dict[str, Any] = {"model": model}
    if not embed:
        payload.update(prompt="", stream=False)
    if overrides.num_ctx is not None:
        payload["options"] = {"num_ctx": overrides.num_ctx}
    if overrides.keep_alive is not None:
        payload["keep_alive"] = overrides.keep_alive
    return orjson.dumps(payload)
