"""`tool_choice` and `parallel_tool_calls`, honoured as far as Ollama allows.

Pure. Ollama has neither field (api-reference.md 2.1, 2.4, pitfall 34); it only takes `tools`.
What the router does for each value:

- absent or `"auto"`: all tools, nothing else;
- `"none"`: no tools, so the model cannot call anything;
- `"required"`: all tools, plus a system instruction to call one of them;
- a named function, chat's `{"type":"function","function":{"name":N}}` or Responses'
  `{"type":"function","name":N}`: only tool N, plus a system instruction to call N;
- `{"type":"allowed_tools","allowed_tools":{"mode","tools"}}`: only the listed tools, plus the
  instruction when `mode` is `"required"`;
- `parallel_tool_calls: false`: tools unchanged; the answer keeps its first call (`limit_calls`).

A model may still answer in text despite the instruction: Ollama cannot constrain decoding to a
call, so the router passes that answer on (finish reason `stop`) rather than retrying, which a
stream could not do anyway. `required`/a name without `tools`, an unknown name or another
shape is a 400 naming `tool_choice`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from router.errors import BadRequest

REQUIRED = (
    "You must answer by calling one or more of the provided tools. Do not answer with text only."
)


@dataclass(frozen=True, slots=True)
class ToolPlan:
    tools: tuple[dict[str, Any], ...] | None  # what Ollama gets; None = no tools
    instruction: str | None = None  # system text to add (`with_instruction`)
    required: bool = False  # the client demanded a call
    max_calls: int | None = None  # 1 when parallel_tool_calls is false


def _bad(message: str, param: str = "tool_choice") -> BadRequest:
    return BadRequest(message, param=param, code="invalid_value")


def tool_name(tool: dict[str, Any]) -> str | None:
    """A function tool's name, chat-shaped (`function.name`) or flat (Responses, `name`)."""
    fn = tool.get("function")
    name = fn.get("name") if isinstance(fn, dict) else tool.get("name")
    return name if isinstance(name, str) else None


def _named(choice: dict[str, Any]) -> str:
    fn = choice.get("function")
    name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
    if not isinstance(name, str) or not name:
        raise _bad("Invalid 'tool_choice': a function choice needs 'function.name'.")
    return name


def _select(tools: Sequence[dict[str, Any]], names: Sequence[str]) -> tuple[dict[str, Any], ...]:
    by_name = {tool_name(t): t for t in tools}
    for name in names:
        if name not in by_name:
            raise _bad(f"Invalid 'tool_choice': no tool named {name!r} in 'tools'.")
    wanted = set(names)
    return tuple(t for t in tools if tool_name(t) in wanted)


def _allowed(tools: Sequence[dict[str, Any]], choice: dict[str, Any]) -> ToolPlan:
    spec = choice.get("allowed_tools")
    spec = spec if isinstance(spec, dict) else choice  # Responses puts mode/tools at top level
    mode, listed = spec.get("mode", "auto"), spec.get("tools")
    if mode not in ("auto", "required") or not isinstance(listed, list) or not listed:
        raise _bad("Invalid 'tool_choice': allowed_tools needs 'mode' and a list of 'tools'.")
    names = [_named(t) if isinstance(t, dict) else "" for t in listed]
    selected = _select(tools, names)
    if mode == "required":
        return ToolPlan(selected, REQUIRED, required=True)
    return ToolPlan(selected)


def plan_tools(
    tools: Sequence[dict[str, Any]] | None, tool_choice: object, parallel_tool_calls: object = None
) -> ToolPlan:
    """Decide what Ollama gets for this request's `tools`/`tool_choice`/`parallel_tool_calls`."""
    if parallel_tool_calls is not None and not isinstance(parallel_tool_calls, bool):
        raise BadRequest(
            "Invalid type for 'parallel_tool_calls': expected a boolean.",
            param="parallel_tool_calls",
            code="invalid_type",
        )
    max_calls = 1 if parallel_tool_calls is False else None
    plan = _plan(tuple(tools or ()), tool_choice)
    if max_calls is None:
        return plan
    return ToolPlan(plan.tools, plan.instruction, plan.required, max_calls)


def _plan(tools: tuple[dict[str, Any], ...], choice: object) -> ToolPlan:
    if choice is None or choice == "auto":
        return ToolPlan(tools or None)
    if choice == "none":
        return ToolPlan(None)
    if not tools:
        raise _bad("Invalid 'tool_choice': it is only allowed when 'tools' are specified.")
    if choice == "required":
        return ToolPlan(tools, REQUIRED, required=True)
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = _named(choice)
        return ToolPlan(_select(tools, [name]), _call(name), required=True)
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return _allowed(tools, choice)
    raise _bad("Invalid 'tool_choice': expected 'none', 'auto', 'required' or a function to call.")


def _call(name: str) -> str:
    return f"You must answer by calling the tool `{name}`. Do not answer with text only."


def with_instruction(
    messages: Sequence[dict[str, Any]], instruction: str | None
) -> list[dict[str, Any]]:
    """Ollama messages with the plan's instruction added to the leading system message (or a
    new one in front); the input is not changed."""
    out = list(messages)
    if not instruction:
        return out
    if out and out[0].get("role") == "system":
        first = dict(out[0])
        content = first.get("content") or ""
        first["content"] = f"{content}\n\n{instruction}" if content else instruction
        out[0] = first
    else:
        out.insert(0, {"role": "system", "content": instruction})
    return out


def limit_calls(calls: list[Any], max_calls: int | None) -> list[Any]:
    """The tool calls a client gets when it asked for no parallel calls."""
    if max_calls is None or len(calls) <= max_calls:
        return calls
    return calls[:max_calls]
