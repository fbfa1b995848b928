"""Log probabilities: OpenAI's request fields → Ollama's, Ollama's lines → OpenAI's shapes.

Pure. Ollama (api-reference.md 1.5, `api/types.go` `Logprob`) takes `logprobs: bool` and
`top_logprobs: 0..20` on `/api/chat` and `/api/generate`, and puts on each line (and on the
`stream: false` body) `"logprobs": [{"token", "logprob", "bytes"?, "top_logprobs"?: [{"token",
"logprob", "bytes"?}]}]` for the tokens of that line.

OpenAI has two shapes:
- chat: `choices[].logprobs = {"content": [{"token", "logprob", "bytes", "top_logprobs":
  [{"token", "logprob", "bytes"}]}], "refusal": null}`; request `logprobs: bool`,
  `top_logprobs: 0..20` (only with `logprobs: true`);
- completions: `choices[].logprobs = {"tokens", "token_logprobs", "top_logprobs":
  [{token: logprob}], "text_offset"}`; request `logprobs: int` (OpenAI caps it at 5; this
  router takes 0..20, what Ollama can give). `text_offset` counts characters from the start of
  the generated text and runs on across stream chunks (`CompletionOffsets`).
Only content tokens are reported: a line's logprobs ride on the chunk that carries its text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from router.errors import BadRequest

MAX_TOP = 20


@dataclass(frozen=True, slots=True)
class LogprobRequest:
    """What the client asked for; `enabled` False = no logprobs anywhere."""

    enabled: bool = False
    top: int = 0

    def ollama_fields(self) -> dict[str, Any]:
        """Fields to merge into the `/api/chat` or `/api/generate` payload."""
        if not self.enabled:
            return {}
        return {"logprobs": True, "top_logprobs": self.top}


OFF = LogprobRequest()


def _int(value: object, param: str, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(
            f"Invalid type for '{param}': expected an integer.", param=param, code="invalid_type"
        )
    if not 0 <= value <= hi:
        raise BadRequest(
            f"Invalid '{param}': expected a value between 0 and {hi}, but got {value} instead.",
            param=param,
            code="invalid_value",
        )
    return value


def parse_chat_logprobs(body: dict[str, Any]) -> LogprobRequest:
    """`logprobs` (bool) and `top_logprobs` (0..20, needs `logprobs: true`) of a chat body."""
    enabled = body.get("logprobs")
    if enabled is not None and not isinstance(enabled, bool):
        raise BadRequest(
            "Invalid type for 'logprobs': expected a boolean.",
            param="logprobs",
            code="invalid_type",
        )
    top = body.get("top_logprobs")
    if top is None:
        return LogprobRequest(True, 0) if enabled else OFF
    top = _int(top, "top_logprobs", MAX_TOP)
    if not enabled:
        raise BadRequest(
            "Invalid 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
            param="top_logprobs",
            code="invalid_value",
        )
    return LogprobRequest(True, top)


def parse_completion_logprobs(body: dict[str, Any]) -> LogprobRequest:
    """Completions' `logprobs` is an int: the number of alternatives per token (0 = only the
    chosen token)."""
    value = body.get("logprobs")
    if value is None:
        return OFF
    return LogprobRequest(True, _int(value, "logprobs", MAX_TOP))


def _bytes(entry: dict[str, Any]) -> list[int]:
    raw = entry.get("bytes")
    if isinstance(raw, list):
        return raw
    token = entry.get("token")  # `bytes` is omitempty in Ollama
    return list(token.encode()) if isinstance(token, str) else []


def _alternative(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "token": str(entry.get("token", "")),
        "logprob": float(entry.get("logprob", 0.0)),
        "bytes": _bytes(entry),
    }


def _entries(raw: object) -> Iterable[dict[str, Any]]:
    if isinstance(raw, list):
        return (e for e in raw if isinstance(e, dict))
    return ()


def chat_content(raw: object) -> list[dict[str, Any]]:
    """Ollama `logprobs` entries → OpenAI `ChatCompletionTokenLogprob` items."""
    out = []
    for entry in _entries(raw):
        item = _alternative(entry)
        item["top_logprobs"] = [_alternative(alt) for alt in _entries(entry.get("top_logprobs"))]
        out.append(item)
    return out


def chat_logprobs(raw: object) -> dict[str, Any]:
    """A chat choice's (or chunk's) `logprobs` object."""
    return {"content": chat_content(raw), "refusal": None}


class CompletionOffsets:
    """Completions' `logprobs` for one choice; keeps `text_offset` running across chunks."""

    __slots__ = ("offset",)

    def __init__(self, start: int = 0) -> None:
        self.offset = start

    def logprobs(self, raw: object) -> dict[str, Any]:
        tokens: list[str] = []
        token_logprobs: list[float] = []
        top: list[dict[str, float]] = []
        offsets: list[int] = []
        for entry in _entries(raw):
            token = str(entry.get("token", ""))
            tokens.append(token)
            token_logprobs.append(float(entry.get("logprob", 0.0)))
            top.append(
                {
                    str(alt.get("token", "")): float(alt.get("logprob", 0.0))
                    for alt in _entries(entry.get("top_logprobs"))
                }
            )
            offsets.append(self.offset)
            self.offset += len(token)
        return {
            "tokens": tokens,
            "token_logprobs": token_logprobs,
            "top_logprobs": top,
            "text_offset": offsets,
        }
