"""One model turn as the emulator answers it: thinking, text, tool calls, log probabilities.

Pure and deterministic. Rules a test can steer:
- a thinking model (`catalog.capabilities_of`) reasons first unless `think` is false;
- with `tools` and a last message from the user, the model calls tools instead of answering:
  every tool whose name the last user message mentions, in `tools` order, else the first tool;
  after a `tool` message, or when the user message says `without tools`, it answers in text
  (as a model may, whatever `tool_choice` asked for);
- tool calls come on their own `done:false` line with `call_xxxxxxxx` ids (the rendered path)
  or, with `EmulatorConfig(tool_call_path="native")`, on the done line without ids (1.5);
- `logprobs` gives every streamed line the entries of its tokens (`api.Logprob`), the chosen
  token first among `top_logprobs` alternatives from the vocabulary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .parse import CHAT, GenRequest
from .textgen import VOCAB, Reply, schema_arguments, thinking_tokens

NO_TOOLS = "without tools"
TOOL_CALL_TOKENS = 12  # what a call "costs" in eval_count
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    thinking: bool = False


@dataclass(frozen=True, slots=True)
class Turn:
    pieces: tuple[Piece, ...]  # one streamed line each
    done_reason: str
    tool_calls: tuple[dict[str, Any], ...] = ()
    calls_on_done: bool = False  # native path: the calls ride on the done line
    logprobs: tuple[dict[str, Any], ...] | None = None  # one entry per piece when asked for

    @property
    def content(self) -> str:
        return "".join(p.text for p in self.pieces if not p.thinking)

    @property
    def thinking(self) -> str:
        return "".join(p.text for p in self.pieces if p.thinking)

    @property
    def eval_count(self) -> int:
        return len(self.pieces) + TOOL_CALL_TOKENS * len(self.tool_calls)


def _hash(*parts: object) -> int:
    text = "\0".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def call_id(*parts: object) -> str:
    """`call_` + 8 `[a-z0-9]`, Ollama's `toolCallId()` shape."""
    value = _hash(*parts)
    chars = []
    for _ in range(8):
        value, digit = divmod(value, len(_ID_CHARS))
        chars.append(_ID_CHARS[digit])
    return "call_" + "".join(chars)


def _tool_name(tool: dict[str, Any]) -> str:
    fn = tool.get("function")
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) else ""


def _tool_calls(req: GenRequest, seed: int, native: bool) -> tuple[dict[str, Any], ...]:
    tools = [t for t in req.tools if _tool_name(t)]
    chosen = [t for t in tools if _tool_name(t) in req.last_text] or tools[:1]
    calls = []
    for index, tool in enumerate(chosen):
        name = _tool_name(tool)
        fn = tool.get("function") or {}
        args = schema_arguments(req.key, name, fn.get("parameters"), seed)
        call: dict[str, Any] = {"function": {"index": index, "name": name, "arguments": args}}
        if not native:
            call = {"id": call_id(req.key, req.prompt, seed, index), **call}
        calls.append(call)
    return tuple(calls)


def token_logprob(model: str, position: int, token: str, top: int) -> dict[str, Any]:
    """One `api.Logprob`: the chosen token is the likeliest of its alternatives."""
    value = -round(0.001 + (_hash(model, position, token) % 2000) / 1000, 6)
    entry: dict[str, Any] = {"token": token, "logprob": value, "bytes": list(token.encode())}
    if top > 0:
        alternatives = [{"token": token, "logprob": value, "bytes": entry["bytes"]}]
        lead = " " if token.startswith(" ") else ""
        start = _hash(model, position, "alt") % len(VOCAB)
        for step in range(len(VOCAB)):
            if len(alternatives) >= top:
                break
            alt = lead + VOCAB[(start + step) % len(VOCAB)]
            if alt != token:
                alt_value = round(value - 0.5 * len(alternatives) - 0.25, 6)
                alternatives.append(
                    {"token": alt, "logprob": alt_value, "bytes": list(alt.encode())}
                )
        entry["top_logprobs"] = alternatives
    return entry


def make_turn(req: GenRequest, reply: Reply, seed: int, *, native_tools: bool = False) -> Turn:
    pieces: list[Piece] = []
    if req.think is not None:
        pieces += [Piece(t, True) for t in thinking_tokens(req.key, req.prompt, seed)]
    calls: tuple[dict[str, Any], ...] = ()
    reason = reply.done_reason
    wants_calls = req.last_role == "user" and NO_TOOLS not in req.last_text
    if req.kind == CHAT and req.tools and wants_calls:
        calls, reason = _tool_calls(req, seed, native_tools), "stop"
    else:
        pieces += [Piece(t) for t in reply.tokens]
    logprobs = None
    if req.logprobs:
        logprobs = tuple(
            token_logprob(req.key, i, p.text, req.top_logprobs) for i, p in enumerate(pieces)
        )
    return Turn(tuple(pieces), reason, calls, native_tools and bool(calls), logprobs)
