"""Decode request bodies the way Ollama's Go handlers do, with Go's error texts.

Pure. Go's `encoding/json` matches keys case-insensitively, treats `null` as "leave unset",
records the *first* type mismatch but keeps decoding, and aborts at once when a custom
`UnmarshalJSON` (keep_alive, think) fails; this module copies those rules so a router sees the
same 400s it would get from a real node. Over 300 lines because most of it is one table:
the fields of Ollama's request types with their Go types, kept together so it reads as the
Go structs do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson


class WireError(Exception):
    """An HTTP error the emulator answers with `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class GoField:
    name: str
    go_type: str
    kind: str  # string | bool | int | raw | map | list | duration | think
    item: GoStruct | None = None  # for lists of structs
    item_kind: str = ""  # for lists of scalars/opaque objects: object | string | int


@dataclass(frozen=True, slots=True)
class GoStruct:
    name: str  # e.g. "ChatRequest"
    go_type: str  # e.g. "api.ChatRequest"
    fields: tuple[GoField, ...]
    by_key: dict[str, GoField] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_key", {f.name.lower(): f for f in self.fields})

    def lookup(self, key: str) -> GoField | None:
        return self.by_key.get(key.lower())


def _s(name: str) -> GoField:
    return GoField(name, "string", "string")


def _b(name: str) -> GoField:
    return GoField(name, "bool", "bool")


MESSAGE = GoStruct(
    "Message",
    "api.Message",
    (
        _s("role"),
        _s("content"),
        _s("thinking"),
        GoField("images", "[]api.ImageData", "list", item_kind="string"),
        GoField("tool_calls", "[]api.ToolCall", "list", item_kind="object"),
        _s("tool_name"),
        _s("tool_call_id"),
    ),
)
_COMMON_TAIL = (
    GoField("format", "json.RawMessage", "raw"),
    GoField("keep_alive", "api.Duration", "duration"),
    GoField("options", "map[string]interface {}", "map"),
    GoField("think", "api.ThinkValue", "think"),
    _b("truncate"),
    _b("shift"),
    _b("logprobs"),
    GoField("top_logprobs", "int", "int"),
)
CHAT_REQUEST = GoStruct(
    "ChatRequest",
    "api.ChatRequest",
    (
        _s("model"),
        GoField("messages", "[]api.Message", "list", item=MESSAGE),
        GoField("tools", "api.Tools", "list", item_kind="object"),
        _b("stream"),
        *_COMMON_TAIL,
    ),
)
GENERATE_REQUEST = GoStruct(
    "GenerateRequest",
    "api.GenerateRequest",
    (
        _s("model"),
        _s("prompt"),
        _s("suffix"),
        _s("system"),
        _s("template"),
        GoField("context", "[]int", "list", item_kind="int"),
        _b("stream"),
        _b("raw"),
        GoField("images", "[]api.ImageData", "list", item_kind="string"),
        *_COMMON_TAIL,
    ),
)
EMBED_REQUEST = GoStruct(
    "EmbedRequest",
    "api.EmbedRequest",
    (
        _s("model"),
        GoField("input", "interface {}", "raw"),
        GoField("keep_alive", "api.Duration", "duration"),
        _b("truncate"),
        GoField("dimensions", "int", "int"),
        GoField("options", "map[string]interface {}", "map"),
    ),
)
SHOW_REQUEST = GoStruct(
    "ShowRequest",
    "api.ShowRequest",
    (_s("model"), _s("system"), _s("template"), _b("verbose"), _s("name")),
)
PULL_REQUEST = GoStruct(
    "PullRequest",
    "api.PullRequest",
    (_s("model"), _b("insecure"), _s("username"), _s("password"), _b("stream"), _s("name")),
)
DELETE_REQUEST = GoStruct("DeleteRequest", "api.DeleteRequest", (_s("model"), _s("name")))
_ITEM_TYPES = {"string": "api.ImageData", "object": "api.ToolCall", "int": "int"}


def json_kind(value: Any) -> str:
    """Go's name for a JSON value in `cannot unmarshal <kind>`."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: Any, where: str, go_type: str) -> WireError:
    kind = json_kind(value)
    if isinstance(value, float) and not isinstance(value, bool) and go_type == "int":
        kind = f"number {value!r}"
    return WireError(400, f"json: cannot unmarshal {kind} into Go {where} of type {go_type}")


def go_quote(text: str) -> str:
    return orjson.dumps(text).decode()


_UNITS_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def parse_go_duration(text: str) -> float:
    """Go `time.ParseDuration`, returning seconds; raises WireError(400) with Go's message."""
    rest = text
    negative = rest[:1] == "-"
    if rest[:1] in "-+" and rest:
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise WireError(400, f"time: invalid duration {go_quote(text)}")
    total_ns = 0.0
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        number = rest[:i]
        if not number or number == "." or number.count(".") > 1:
            raise WireError(400, f"time: invalid duration {go_quote(text)}")
        j = i
        while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
            j += 1
        unit = rest[i:j]
        if not unit:
            raise WireError(400, f"time: missing unit in duration {go_quote(text)}")
        if unit not in _UNITS_NS:
            raise WireError(
                400, f"time: unknown unit {go_quote(unit)} in duration {go_quote(text)}"
            )
        total_ns += float(number) * _UNITS_NS[unit]
        rest = rest[j:]
    return -total_ns / 1e9 if negative else total_ns / 1e9


def _keep_alive(value: Any) -> float:
    """`api.Duration.UnmarshalJSON`: seconds; negative means forever (math.inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        go_type = {"bool": "bool", "array": "[]interface {}", "object": "map[string]interface {}"}
        raise WireError(400, f"Unsupported type: '{go_type[json_kind(value)]}'")
    seconds = parse_go_duration(value) if isinstance(value, str) else float(value)
    return math.inf if seconds < 0 else seconds


_THINK_LEVELS = ("high", "medium", "low", "max")


def _think(value: Any) -> bool | str:
    """`api.ThinkValue.UnmarshalJSON`: a bool or one of the level strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in _THINK_LEVELS:
            return value
        levels = ", ".join(go_quote(level) for level in _THINK_LEVELS)
        raise WireError(
            400, f"invalid think value: {go_quote(value)} (must be {levels}, true, or false)"
        )
    raise WireError(
        400, 'think must be a boolean or string ("high", "medium", "low", true, or false)'
    )


class _Decoder:
    """One decode run: keeps Go's 'first type error wins, custom errors abort' rule."""

    __slots__ = ("first_error",)

    def __init__(self) -> None:
        self.first_error: WireError | None = None

    def mismatch(self, value: Any, where: str, go_type: str) -> None:
        if self.first_error is None:
            self.first_error = _type_error(value, where, go_type)

    def struct(self, obj: dict[str, Any], spec: GoStruct, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            f = spec.lookup(key)
            if f is None or value is None:
                continue
            fpath = f"{path}.{f.name}" if path else f.name
            where = f"struct field {spec.name}.{fpath}"
            checked = self.value(value, f, spec.name, fpath, where)
            if checked is not _SKIP:
                out[f.name] = checked
        return out

    def value(self, value: Any, f: GoField, owner: str, fpath: str, where: str) -> Any:
        kind = f.kind
        if kind == "raw":
            return value
        if kind == "duration":
            return _keep_alive(value)
        if kind == "think":
            return _think(value)
        ok = (
            (kind == "string" and isinstance(value, str))
            or (kind == "bool" and isinstance(value, bool))
            or (kind == "int" and isinstance(value, int) and not isinstance(value, bool))
            or (kind == "map" and isinstance(value, dict))
            or (kind == "list" and isinstance(value, list))
        )
        if not ok:
            self.mismatch(value, where, f.go_type)
            return _SKIP
        if kind == "list":
            return self.items(value, f, owner, fpath, where)
        return value

    def items(self, values: list[Any], f: GoField, owner: str, fpath: str, where: str) -> Any:
        out: list[Any] = []
        for item in values:
            if item is None:
                continue
            if f.item is not None:
                if isinstance(item, dict):
                    out.append(self.struct(item, f.item, fpath))
                else:
                    self.mismatch(item, where, f.item.go_type)
                continue
            wanted = f.item_kind
            ok = (
                (wanted == "string" and isinstance(item, str))
                or (wanted == "object" and isinstance(item, dict))
                or (wanted == "int" and isinstance(item, int) and not isinstance(item, bool))
            )
            if ok:
                out.append(item)
            else:
                self.mismatch(item, where, _ITEM_TYPES[wanted])
        return out


_SKIP: Any = object()


def load_json(raw: bytes) -> Any:
    """Parse the body; raises WireError(400) for an empty body or a syntax error."""
    if not raw.strip():
        raise WireError(400, "missing request body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError(400, _syntax_message(raw, exc)) from None


def check_types(body: Any, spec: GoStruct) -> dict[str, Any]:
    """The Go-typed view of `body`, keyed by canonical field names; raises WireError(400)."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        kind = json_kind(body)
        raise WireError(400, f"json: cannot unmarshal {kind} into Go value of type {spec.go_type}")
    decoder = _Decoder()
    typed = decoder.struct(body, spec, "")
    if decoder.first_error is not None:
        raise decoder.first_error
    return typed


def _syntax_message(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    """Approximate Go's `SyntaxError` texts (`invalid character ...`, `unexpected EOF`)."""
    text = raw.decode("utf-8", "replace")
    pos = exc.pos
    if pos >= len(text.rstrip()):
        return "unexpected EOF"
    char = text[pos]
    shown = "\\n" if char == "\n" else char
    return f"invalid character '{shown}' looking for beginning of value"
