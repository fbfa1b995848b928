"""`n` choices, logprobs and tool_choice: the pure helpers the handlers call.

Ollama lines follow api-reference.md 1.5/1.6/1.11 (logprobs: `api/types.go` `Logprob`). Every
built answer and chunk is validated against the openai SDK's types.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from router.errors import BadRequest
from router.wire.choices import (
    ChatChoiceStream,
    CompletionChoiceStream,
    StreamFrame,
    chat_choice,
    completion_choice,
    merged_body,
    parse_best_of,
    parse_n,
    total_usage,
)
from router.wire.logprobs import (
    OFF,
    CompletionOffsets,
    LogprobRequest,
    chat_logprobs,
    parse_chat_logprobs,
    parse_completion_logprobs,
)
from router.wire.toolchoice import (
    REQUIRED,
    ToolPlan,
    limit_calls,
    plan_tools,
    tool_name,
    with_instruction,
)
from router.wire.translate import Usage

MODEL, ID, CREATED = "ollama/llama3", "chatcmpl-0123456789abcdef", 1733000000
ON = LogprobRequest(True, 2)


def lp(token: str, logprob: float, *alts: tuple[str, float]) -> dict[str, Any]:
    entry: dict[str, Any] = {"token": token, "logprob": logprob, "bytes": list(token.encode())}
    if alts:
        entry["top_logprobs"] = [
            {"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in alts
        ]
    return entry


HELLO = [lp("Hel", -0.1, ("Hel", -0.1), ("Hi", -2.5)), lp("lo", -0.01, ("lo", -0.01))]


def chat_answer(content: str, *, logprobs: Any = None, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    message.update(extra.pop("message_extra", {}))
    answer: dict[str, Any] = {
        "model": "llama3",
        "created_at": "2025-01-01T00:00:00Z",
        "message": message,
        "done": True,
        "done_reason": extra.pop("done_reason", "stop"),
        "prompt_eval_count": 10,
        "eval_count": extra.pop("eval_count", 3),
    }
    if logprobs is not None:
        answer["logprobs"] = logprobs
    return answer


# -- n ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [({}, 1), ({"n": None}, 1), ({"n": 1}, 1), ({"n": 3}, 3), ({"n": 128}, 128)],
    ids=["absent", "null", "one", "three", "max"],
)
def test_parse_n(body: dict[str, Any], expected: int) -> None:
    assert parse_n(body) == expected


@pytest.mark.parametrize(
    "value", [0, -1, 129, 2.0, "2", True], ids=["zero", "neg", "big", "float", "str", "bool"]
)
def test_parse_n_errors(value: object) -> None:
    with pytest.raises(BadRequest) as info:
        parse_n({"n": value})
    assert info.value.param == "n"


def test_best_of_only_equal_to_n() -> None:
    parse_best_of({}, 3)
    parse_best_of({"best_of": 2}, 2)
    with pytest.raises(BadRequest) as info:
        parse_best_of({"best_of": 3}, 1)
    assert info.value.param == "best_of"


def test_total_usage_counts_the_prompt_once() -> None:
    assert total_usage([Usage(10, 3), Usage(10, 5), Usage(10, 1)]) == Usage(10, 9)
    assert total_usage([]) == Usage(0, 0)


def test_merged_chat_body_has_n_choices_in_order() -> None:
    answers = [chat_answer("a", eval_count=1), chat_answer("bb", eval_count=2)]
    answers.append(chat_answer("ccc", eval_count=3, done_reason="length"))
    built = [chat_choice(a, i) for i, a in enumerate(answers)]
    built.reverse()  # gathered in any order; indexes decide
    raw = merged_body(
        "chat.completion",
        [c for c, _ in built],
        [u for _, u in built],
        model=MODEL,
        id_=ID,
        created=CREATED,
    )
    parsed = ChatCompletion.model_validate(json.loads(raw))
    assert [c.index for c in parsed.choices] == [0, 1, 2]
    assert [c.message.content for c in parsed.choices] == ["a", "bb", "ccc"]
    assert [c.finish_reason for c in parsed.choices] == ["stop", "stop", "length"]
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (10, 6)
    assert parsed.usage.total_tokens == 16
    assert parsed.model == MODEL and parsed.id == ID


def test_chat_choice_with_tool_calls_and_no_parallel_calls() -> None:
    calls = [
        {"function": {"name": "a", "arguments": {"x": 1}}},
        {"function": {"name": "b", "arguments": {}}},
    ]
    answer = chat_answer("", message_extra={"tool_calls": calls})
    both, _ = chat_choice(answer, 0)
    first, _ = chat_choice(answer, 0, max_calls=1)
    assert [c["function"]["name"] for c in both["message"]["tool_calls"]] == ["a", "b"]
    assert [c["function"]["name"] for c in first["message"]["tool_calls"]] == ["a"]
    assert first["finish_reason"] == "tool_calls"
    assert json.loads(first["message"]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}


def test_chat_choice_logprobs() -> None:
    choice, _ = chat_choice(chat_answer("Hello", logprobs=HELLO), 1, logprobs=ON)
    body = {"id": ID, "object": "chat.completion", "created": CREATED, "model": MODEL}
    parsed = ChatCompletion.model_validate({**body, "choices": [choice]})
    assert parsed.choices[0].logprobs is not None
    content = parsed.choices[0].logprobs.content
    assert content is not None
    assert [t.token for t in content] == ["Hel", "lo"]
    assert content[0].bytes == [72, 101, 108]
    assert [(a.token, a.logprob) for a in content[0].top_logprobs] == [("Hel", -0.1), ("Hi", -2.5)]
    assert parsed.choices[0].index == 1
    off, _ = chat_choice(chat_answer("Hello", logprobs=HELLO), 0)
    assert off["logprobs"] is None


def test_completion_choices_merge_with_logprobs() -> None:
    answer = {"response": "Hello", "done": True, "done_reason": "stop", "logprobs": HELLO}
    answer |= {"prompt_eval_count": 4, "eval_count": 2}
    built = [completion_choice(answer, i, logprobs=ON) for i in range(2)]
    raw = merged_body(
        "text_completion",
        [c for c, _ in built],
        [u for _, u in built],
        model=MODEL,
        id_="cmpl-1",
        created=CREATED,
    )
    parsed = Completion.model_validate(json.loads(raw))
    assert [c.index for c in parsed.choices] == [0, 1]
    logprobs = parsed.choices[1].logprobs
    assert logprobs is not None
    assert logprobs.tokens == ["Hel", "lo"]
    assert logprobs.token_logprobs == [-0.1, -0.01]
    assert logprobs.text_offset == [0, 3]
    assert logprobs.top_logprobs == [{"Hel": -0.1, "Hi": -2.5}, {"lo": -0.01}]
    assert parsed.usage is not None and parsed.usage.completion_tokens == 4


# -- logprobs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected", "fields"),
    [
        ({}, OFF, {}),
        ({"logprobs": False}, OFF, {}),
        ({"logprobs": True}, LogprobRequest(True, 0), {"logprobs": True, "top_logprobs": 0}),
        (
            {"logprobs": True, "top_logprobs": 5},
            LogprobRequest(True, 5),
            {"logprobs": True, "top_logprobs": 5},
        ),
    ],
    ids=["absent", "false", "true", "top-5"],
)
def test_parse_chat_logprobs(
    body: dict[str, Any], expected: LogprobRequest, fields: dict[str, Any]
) -> None:
    parsed = parse_chat_logprobs(body)
    assert parsed == expected
    assert parsed.ollama_fields() == fields


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"logprobs": "yes"}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 1.5}, "top_logprobs"),
    ],
    ids=["not-bool", "top-without-logprobs", "top-with-false", "too-many", "negative", "float"],
)
def test_parse_chat_logprobs_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_chat_logprobs(body)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {}),
        ({"logprobs": 0}, {"logprobs": True, "top_logprobs": 0}),
        ({"logprobs": 5}, {"logprobs": True, "top_logprobs": 5}),
    ],
    ids=["absent", "zero", "five"],
)
def test_parse_completion_logprobs(body: dict[str, Any], fields: dict[str, Any]) -> None:
    assert parse_completion_logprobs(body).ollama_fields() == fields


@pytest.mark.parametrize("value", [True, 21, "2"], ids=["bool", "too-many", "string"])
def test_parse_completion_logprobs_errors(value: object) -> None:
    with pytest.raises(BadRequest) as info:
        parse_completion_logprobs({"logprobs": value})
    assert info.value.param == "logprobs"


def test_chat_logprobs_fill_missing_bytes_and_top() -> None:
    got = chat_logprobs([{"token": "é", "logprob": -1}, "junk"])
    assert got == {
        "content": [{"token": "é", "logprob": -1.0, "bytes": [195, 169], "top_logprobs": []}],
        "refusal": None,
    }
    assert chat_logprobs(None) == {"content": [], "refusal": None}


def test_completion_offsets_run_on_across_chunks() -> None:
    offsets = CompletionOffsets()
    first = offsets.logprobs([lp("The", -0.5)])
    second = offsets.logprobs([lp(" sky", -0.2), lp(" is", -0.3)])
    assert first["text_offset"] == [0]
    assert second["text_offset"] == [3, 7]
    assert second["tokens"] == [" sky", " is"]


# -- streams -----------------------------------------------------------------------------------
def frames(stream: bytes) -> list[dict[str, Any]]:
    assert stream.endswith(b"data: [DONE]\n\n")
    events = stream.split(b"\n\n")[:-2]
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in events)
    return [json.loads(e[len(b"data: ") :]) for e in events]


def chat_line(content: str, logprobs: Any = None, **message: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "model": "llama3",
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content, **message},
        "done": False,
    }
    if logprobs is not None:
        line["logprobs"] = logprobs
    return line


def done_line(**extra: Any) -> dict[str, Any]:
    line = chat_line("", **extra)
    return line | {"done": True, "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 2}


def test_multiplexed_chat_stream_interleaves_choices() -> None:
    frame = StreamFrame("chat.completion.chunk", model=MODEL, id_=ID, created=CREATED)
    encoders = [ChatChoiceStream(frame, i, logprobs=ON) for i in range(3)]
    out = b"".join(e.start() for e in encoders)
    # Lines arrive interleaved, as the handler's queue would deliver them.
    for i in (2, 0, 1, 0):
        out += encoders[i].feed(chat_line(f"t{i}", [lp(f"t{i}", -0.5)]))
    usages: list[Usage] = []
    for i in (1, 0, 2):
        tail, usage = encoders[i].finish(done_line())
        out, usages = out + tail, [*usages, usage]
    out += frame.close(usages, include_usage=True)
    chunks = frames(out)
    for chunk in chunks:
        parsed = ChatCompletionChunk.model_validate(chunk)
        assert parsed.id == ID and parsed.created == CREATED and parsed.model == MODEL
    texts: dict[int, str] = {0: "", 1: "", 2: ""}
    finishes: dict[int, str] = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        texts[choice["index"]] += choice["delta"].get("content") or ""
        if choice["finish_reason"]:
            finishes[choice["index"]] = choice["finish_reason"]
        if choice["delta"].get("content"):
            assert choice["logprobs"]["content"][0]["token"] == choice["delta"]["content"]
    assert texts == {0: "t0t0", 1: "t1", 2: "t2"}
    assert finishes == {0: "stop", 1: "stop", 2: "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}


def test_chat_choice_stream_tool_call_indexes_and_limit() -> None:
    frame = StreamFrame("chat.completion.chunk", model=MODEL, id_=ID, created=CREATED)
    calls: list[dict[str, Any]] = [{"function": {"name": n, "arguments": {}}} for n in "ab"]
    every, first = ChatChoiceStream(frame, 1), ChatChoiceStream(frame, 1, max_calls=1)
    outs = []
    for enc in (every, first):
        out = enc.start() + enc.feed(chat_line("", tool_calls=calls[:1]))
        out += enc.feed(done_line(tool_calls=calls[1:]))
        tail, _ = enc.finish(done_line())
        outs.append(frames(out + tail + frame.close([], include_usage=False)))
    for chunks, names in zip(outs, (["a", "b"], ["a"]), strict=True):
        got = [
            (call["index"], call["function"]["name"])
            for chunk in chunks
            for call in chunk["choices"][0]["delta"].get("tool_calls") or []
        ]
        assert got == list(enumerate(names))
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
        assert all(c["choices"][0]["index"] == 1 for c in chunks)
        for chunk in chunks:
            ChatCompletionChunk.model_validate(chunk)


def test_completion_choice_streams() -> None:
    frame = StreamFrame("text_completion", model=MODEL, id_="cmpl-1", created=CREATED)
    encoders = [CompletionChoiceStream(frame, i, logprobs=ON) for i in range(2)]
    out = b"".join(e.start() for e in encoders)
    out += encoders[1].feed({"response": "The", "done": False, "logprobs": [lp("The", -0.1)]})
    out += encoders[1].feed({"response": " sky", "done": False, "logprobs": [lp(" sky", -0.2)]})
    out += encoders[0].feed({"response": "", "done": False})
    done = {"response": "", "done": True, "done_reason": "length", "eval_count": 2}
    usages: list[Usage] = []
    for enc in encoders:
        tail, usage = enc.finish(done)
        out, usages = out + tail, [*usages, usage]
    chunks = frames(out + frame.close(usages, include_usage=False))
    for chunk in chunks:
        # Text chunks carry finish_reason null as OpenAI's do, which the SDK's type does not
        # allow (it builds them leniently); validate everything else, logprobs included.
        (choice,) = chunk["choices"]
        Completion.model_validate({**chunk, "choices": [{**choice, "finish_reason": "stop"}]})
    texts = [c["choices"][0] for c in chunks if c["choices"][0]["text"]]
    assert [(c["index"], c["text"]) for c in texts] == [(1, "The"), (1, " sky")]
    assert [c["logprobs"]["text_offset"] for c in texts] == [[0], [3]]
    assert [c["choices"][0]["finish_reason"] for c in chunks[-2:]] == ["length", "length"]


# -- tool_choice -------------------------------------------------------------------------------
def tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


TOOLS = [tool("get_weather"), tool("get_time")]


def named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def allowed(mode: str, *names: str) -> dict[str, Any]:
    return {
        "type": "allowed_tools",
        "allowed_tools": {"mode": mode, "tools": [named(n) for n in names]},
    }


@pytest.mark.parametrize(
    ("tools", "choice", "parallel", "sent", "instruction", "required", "max_calls"),
    [
        (TOOLS, None, None, ["get_weather", "get_time"], None, False, None),
        (TOOLS, "auto", None, ["get_weather", "get_time"], None, False, None),
        (TOOLS, "none", None, None, None, False, None),
        (None, "none", None, None, None, False, None),
        (None, None, None, None, None, False, None),
        (TOOLS, "required", None, ["get_weather", "get_time"], REQUIRED, True, None),
        (TOOLS, named("get_time"), None, ["get_time"], "get_time", True, None),
        (
            TOOLS,
            {"type": "function", "name": "get_time"},
            None,
            ["get_time"],
            "get_time",
            True,
            None,
        ),
        (TOOLS, allowed("auto", "get_time"), None, ["get_time"], None, False, None),
        (TOOLS, allowed("required", "get_weather"), None, ["get_weather"], REQUIRED, True, None),
        (TOOLS, None, False, ["get_weather", "get_time"], None, False, 1),
        (TOOLS, "required", True, ["get_weather", "get_time"], REQUIRED, True, None),
    ],
    ids=[
        "absent",
        "auto",
        "none",
        "none-no-tools",
        "no-tools",
        "required",
        "named-chat",
        "named-responses",
        "allowed-auto",
        "allowed-required",
        "no-parallel",
        "parallel",
    ],
)
def test_plan_tools(
    tools: list[dict[str, Any]] | None,
    choice: object,
    parallel: object,
    sent: list[str] | None,
    instruction: str | None,
    required: bool,
    max_calls: int | None,
) -> None:
    plan = plan_tools(tools, choice, parallel)
    assert (None if plan.tools is None else [tool_name(t) for t in plan.tools]) == sent
    if instruction is None:
        assert plan.instruction is None
    else:
        assert plan.instruction is not None and instruction in plan.instruction
    assert (plan.required, plan.max_calls) == (required, max_calls)


@pytest.mark.parametrize(
    ("tools", "choice", "parallel", "param"),
    [
        (None, "required", None, "tool_choice"),
        (None, named("x"), None, "tool_choice"),
        (TOOLS, named("nope"), None, "tool_choice"),
        (TOOLS, {"type": "function"}, None, "tool_choice"),
        (TOOLS, "always", None, "tool_choice"),
        (TOOLS, {"type": "custom", "custom": {"name": "x"}}, None, "tool_choice"),
        (TOOLS, allowed("sometimes", "get_time"), None, "tool_choice"),
        (TOOLS, allowed("auto", "nope"), None, "tool_choice"),
        (TOOLS, None, "no", "parallel_tool_calls"),
    ],
    ids=[
        "required-no-tools",
        "named-no-tools",
        "unknown-name",
        "no-name",
        "bad-string",
        "custom",
        "bad-mode",
        "allowed-unknown",
        "parallel-not-bool",
    ],
)
def test_plan_tools_errors(
    tools: list[dict[str, Any]] | None, choice: object, parallel: object, param: str
) -> None:
    with pytest.raises(BadRequest) as info:
        plan_tools(tools, choice, parallel)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "user", "content": "hi"}],
            [{"role": "system", "content": "DO"}, {"role": "user", "content": "hi"}],
        ),
        (
            [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
            [{"role": "system", "content": "Be terse.\n\nDO"}, {"role": "user", "content": "hi"}],
        ),
        (
            [{"role": "system", "content": ""}],
            [{"role": "system", "content": "DO"}],
        ),
    ],
    ids=["prepended", "joined", "empty-system"],
)
def test_with_instruction(messages: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    before = json.dumps(messages)
    assert with_instruction(messages, "DO") == expected
    assert json.dumps(messages) == before  # not changed in place
    assert with_instruction(messages, None) == messages


def test_limit_calls() -> None:
    assert limit_calls([1, 2, 3], None) == [1, 2, 3]
    assert limit_calls([1, 2, 3], 1) == [1]
    assert limit_calls([], 1) == []
    assert ToolPlan(None).max_calls is None
