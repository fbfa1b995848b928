"""Deterministic replies: the same (model, prompt, seed) always yields the same tokens.

Pure. Tokens are words from a fixed vocabulary, each with a leading space except the first, so
joining them gives readable text. A splitmix64 stream seeded from a blake2b digest keeps the result
identical across Python versions and processes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

VOCAB: tuple[str, ...] = (
    "the", "a", "sky", "is", "blue", "because", "of", "light", "scattering", "in", "air",
    "model", "router", "answer", "token", "stream", "node", "fleet", "quick", "brown", "fox",
    "jumps", "over", "lazy", "dog", "and", "then", "it", "rains", "on", "green", "hills",
    "while", "engineers", "write", "tests", "for", "every", "edge", "case", "we", "can",
    "find", "today", "so", "that", "nothing", "breaks", "later", "when", "users", "arrive",
    "with", "many", "requests", "at", "once", "under", "load", "ok", "yes", "no", "maybe", "done",
)  # fmt: skip
MIN_TOKENS = 8
MAX_TOKENS = 40
_MASK = (1 << 64) - 1
_WORDS = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class Reply:
    tokens: tuple[str, ...]
    done_reason: str  # "stop" or "length"

    @property
    def text(self) -> str:
        return "".join(self.tokens)


class _SplitMix:
    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK

    def next(self) -> int:
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)


def _seed(model: str, prompt: str, seed: int) -> int:
    digest = hashlib.blake2b(f"{model}\0{prompt}\0{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def natural_length(model: str, prompt: str, seed: int) -> int:
    """How many tokens the model 'wants' to say: 8..40, from the inputs' hash."""
    return MIN_TOKENS + _seed(model, prompt, seed) % (MAX_TOKENS - MIN_TOKENS + 1)


def _words(rng: _SplitMix, count: int) -> list[str]:
    return [VOCAB[rng.next() % len(VOCAB)] for _ in range(count)]


def _schema_value(spec: Any, rng: _SplitMix, count: int) -> Any:
    kind = spec.get("type") if isinstance(spec, dict) else None
    if isinstance(spec, dict) and isinstance(spec.get("enum"), list) and spec["enum"]:
        return spec["enum"][rng.next() % len(spec["enum"])]
    if kind == "integer":
        return rng.next() % 100
    if kind == "number":
        return (rng.next() % 10000) / 100
    if kind == "boolean":
        return rng.next() % 2 == 0
    if kind == "array":
        return _words(rng, min(count, 3))
    if kind == "object":
        return {}
    return " ".join(_words(rng, count))


def _json_text(fmt: Any, rng: _SplitMix, count: int) -> str:
    props = fmt.get("properties") if isinstance(fmt, dict) else None
    if isinstance(props, dict) and props:
        per = max(1, count // len(props))
        obj = {str(name): _schema_value(spec, rng, per) for name, spec in props.items()}
    else:
        obj = {"answer": " ".join(_words(rng, max(1, count)))}
    return orjson.dumps(obj).decode()


def natural_tokens(
    model: str, prompt: str, seed: int, *, default_tokens: int | None, fmt: Any = None
) -> list[str]:
    """The whole reply the model would give with no limit; `fmt` is None, "json" or a schema."""
    count = default_tokens if default_tokens is not None else natural_length(model, prompt, seed)
    rng = _SplitMix(_seed(model, prompt, seed))
    if fmt is not None:
        return _WORDS.findall(_json_text(fmt, rng, count))
    words = _words(rng, count)
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def make_reply(
    model: str,
    prompt: str,
    *,
    seed: int = -1,
    num_predict: int | None = None,
    stop: Sequence[str] = (),
    default_tokens: int | None = None,
    fmt: Any = None,
) -> Reply:
    """Cut the natural reply at a stop string (reason "stop") or at `num_predict` ("length")."""
    tokens = natural_tokens(model, prompt, seed, default_tokens=default_tokens, fmt=fmt)
    reason = "stop"
    if num_predict is not None and 0 <= num_predict < len(tokens):
        tokens = tokens[:num_predict]
        reason = "length"
    if stop:
        stops = frozenset(stop)
        for i, token in enumerate(tokens):
            if token in stops or token.strip() in stops:
                return Reply(tuple(tokens[:i]), "stop")
    return Reply(tuple(tokens), reason)


def prompt_eval_count(texts: Iterable[str], *, per_message: int = 4) -> int:
    """Prompt 'tokens': whitespace-separated words plus a template overhead per message."""
    total = sum(len(t.split()) + per_message for t in texts)
    return max(1, total)


def context_ids(model: str, prompt: str, seed: int, length: int) -> list[int]:
    """Token ids of prompt + answer for generate's `context` field."""
    rng = _SplitMix(_seed(model, prompt, seed) ^ 0x5F5F5F5F)
    return [rng.next() % 128_000 for _ in range(length)]


def schema_arguments(model: str, name: str, parameters: Any, seed: int) -> dict[str, Any]:
    """Tool-call arguments that fit a JSON-schema `parameters` object, from the inputs' hash."""
    props = parameters.get("properties") if isinstance(parameters, dict) else None
    if not isinstance(props, dict):
        return {}
    rng = _SplitMix(_seed(model, f"\0tool\0{name}", seed))
    return {str(key): _schema_value(spec, rng, 2) for key, spec in props.items()}


def thinking_tokens(model: str, prompt: str, seed: int) -> list[str]:
    """A short deterministic 'reasoning' (4..11 words) before a thinking model's answer."""
    count = 4 + _seed(model, f"\0think\0{prompt}", seed) % 8
    rng = _SplitMix(_seed(model, f"\0think\0{prompt}", seed))
    words = _words(rng, count)
    return [w if i == 0 else " " + w for i, w in enumerate(words)]
