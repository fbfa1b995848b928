"""Request decoding with Go's rules and texts, options, format, names (pure)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from router.emulator.catalog import build_catalog, display_name, is_valid_name
from router.emulator.gojson import (
    CHAT_REQUEST,
    GENERATE_REQUEST,
    WireError,
    check_types,
    load_json,
    parse_go_duration,
)
from router.emulator.parse import CHAT, GENERATE, build_request, check_model, parse_format
from router.emulator.parse import parse_options as options_of


def chat_error(body: Any) -> str:
    with pytest.raises(WireError) as info:
        check_types(body, CHAT_REQUEST)
    assert info.value.status == 400
    return info.value.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "missing request body"),
        (b"  \n", "missing request body"),
        (b"{bad", "invalid character 'b' looking for beginning of value"),
        (b'{"model":', "unexpected EOF"),
    ],
    ids=["empty", "whitespace", "syntax", "truncated"],
)
def test_load_json_errors(raw: bytes, message: str) -> None:
    with pytest.raises(WireError) as info:
        load_json(raw)
    assert (info.value.status, info.value.message) == (400, message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "json: cannot unmarshal array into Go value of type api.ChatRequest"),
        (
            {"messages": "hi"},
            "json: cannot unmarshal string into Go struct field ChatRequest.messages"
            " of type []api.Message",
        ),
        (
            {"messages": ["hi"]},
            "json: cannot unmarshal string into Go struct field ChatRequest.messages"
            " of type api.Message",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "json: cannot unmarshal number into Go struct field Message.messages.content"
            " of type string",
        ),
        (
            {"options": []},
            "json: cannot unmarshal array into Go struct field ChatRequest.options"
            " of type map[string]interface {}",
        ),
        (
            {"stream": "yes"},
            "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool",
        ),
        (
            {"top_logprobs": 1.5},
            "json: cannot unmarshal number 1.5 into Go struct field ChatRequest.top_logprobs"
            " of type int",
        ),
        (
            {"model": 1, "stream": "x"},
            "json: cannot unmarshal number into Go struct field ChatRequest.model of type string",
        ),
        ({"model": 1, "keep_alive": "300"}, 'time: missing unit in duration "300"'),
        ({"keep_alive": "-1"}, 'time: missing unit in duration "-1"'),
        ({"keep_alive": "5x"}, 'time: unknown unit "x" in duration "5x"'),
        ({"keep_alive": "abc"}, 'time: invalid duration "abc"'),
        ({"keep_alive": True}, "Unsupported type: 'bool'"),
        (
            {"think": "huge"},
            'invalid think value: "huge" (must be "high", "medium", "low", "max", true, or false)',
        ),
    ],
    ids=[
        "top-level-array",
        "messages-string",
        "message-item-string",
        "content-number",
        "options-array",
        "stream-string",
        "float-into-int",
        "first-type-error-wins",
        "custom-error-beats-type-error",
        "keep-alive-minus-one-string",
        "keep-alive-unknown-unit",
        "keep-alive-garbage",
        "keep-alive-bool",
        "think-level",
    ],
)
def test_type_errors(body: Any, message: str) -> None:
    assert chat_error(body) == message


def test_generate_type_error_names_its_struct() -> None:
    with pytest.raises(WireError) as info:
        check_types({"prompt": ["a"]}, GENERATE_REQUEST)
    assert info.value.message == (
        "json: cannot unmarshal array into Go struct field GenerateRequest.prompt of type string"
    )


def test_keys_match_case_insensitively_and_null_and_unknown_are_ignored() -> None:
    typed = check_types(
        {"MODEL": "llama3", "Stream": False, "options": None, "extra": {"x": 1}}, CHAT_REQUEST
    )
    assert typed == {"model": "llama3", "stream": False}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("5m", 300.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("-1m", -60.0), ("250ms", 0.25)],
    ids=["zero", "minutes", "compound", "fraction", "negative", "millis"],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "want"),
    [(300, 300.0), ("0", 0.0), (-1, math.inf), ("-5m", math.inf), (0.5, 0.5)],
    ids=["number", "zero-string", "negative-number", "negative-string", "float"],
)
def test_keep_alive_values(value: Any, want: float) -> None:
    assert check_types({"keep_alive": value}, CHAT_REQUEST)["keep_alive"] == want


@pytest.mark.parametrize(
    ("kind", "body", "status", "message"),
    [
        (CHAT, {}, 400, "model is required"),
        (GENERATE, {}, 404, "model '' not found"),
        (CHAT, {"model": "bad name!"}, 400, "invalid model name"),
    ],
    ids=["chat-missing", "generate-missing", "invalid"],
)
def test_model_errors(kind: str, body: dict[str, Any], status: int, message: str) -> None:
    with pytest.raises(WireError) as info:
        check_model(kind, body)
    assert (info.value.status, info.value.message) == (status, message)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("llama3", "llama3:latest"),
        ("LLAMA3:Latest", "llama3:latest"),
        ("library/llama3", "llama3:latest"),
        ("registry.ollama.ai/library/llama3:8b", "llama3:8b"),
        ("user/model", "user/model:latest"),
        ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo:q4_k_m"),
        ("localhost:5000/m", "localhost:5000/m:latest"),
    ],
    ids=["bare", "case", "library", "registry", "namespace", "hf", "host-port"],
)
def test_display_name(name: str, key: str) -> None:
    assert display_name(name) == key
    assert is_valid_name(name)


def test_catalog_deduplicates_and_keeps_order() -> None:
    catalog = build_catalog(("llama3", "LLAMA3:latest", "qwen2:7b"))
    assert list(catalog) == ["llama3:latest", "qwen2:7b"]
    assert all(len(info.digest) == 64 for info in catalog.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stop": "x"}, 'option "stop" must be of type array'),
        ({"stop": ["x", 1]}, 'option "stop" must be of type array of strings'),
        ({"num_predict": "5"}, 'option "num_predict" must be of type integer'),
        ({"seed": True}, 'option "seed" must be of type integer'),
        ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
        ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
    ],
    ids=["stop-string", "stop-item", "num-predict-string", "seed-bool", "float", "bool"],
)
def test_option_errors_are_500(options: dict[str, Any], message: str) -> None:
    with pytest.raises(WireError) as info:
        options_of(options)
    assert (info.value.status, info.value.message) == (500, message)


def test_options_values() -> None:
    opts = options_of({"num_predict": 5.9, "seed": 3, "stop": ["a"], "unknown": "x", "top_k": 4})
    assert (opts.num_predict, opts.seed, opts.stop) == (5, 3, ("a",))
    assert options_of({"num_predict": -1}).num_predict is None


@pytest.mark.parametrize(
    ("value", "want"),
    [(None, None), ("", None), ("json", "json"), ({"type": "object"}, {"type": "object"})],
    ids=["null", "empty", "json", "schema"],
)
def test_format_accepted(value: Any, want: Any) -> None:
    assert parse_format(value) == want


@pytest.mark.parametrize(
    ("value", "shown"),
    [("yaml", r'"\"yaml\""'), (5, '"5"'), ([1], '"[1]"'), ("JSON", r'"\"JSON\""')],
    ids=["string", "number", "array", "upper-case"],
)
def test_format_rejected(value: Any, shown: str) -> None:
    with pytest.raises(WireError) as info:
        parse_format(value)
    assert info.value.status == 500
    assert info.value.message == (
        f'invalid format: {shown}; expected "json" or a valid JSON Schema object'
    )


def test_build_chat_request() -> None:
    typed = check_types(
        orjson.loads(b'{"model":"Llama3","messages":[{"role":"user","content":"a b"}]}'),
        CHAT_REQUEST,
    )
    req = build_request(CHAT, typed, "llama3:latest")
    assert (req.model, req.stream, req.prompt, req.prompt_tokens) == ("Llama3", True, "a b", 6)
    assert not req.is_load


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "prompt": "x", "raw": True, "system": "s"}, "raw mode does not support"),
        ({"model": "m", "prompt": "x", "think": True}, '"m" does not support thinking'),
    ],
    ids=["raw-with-system", "think"],
)
def test_build_request_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(WireError) as info:
        build_request(GENERATE, check_types(body, GENERATE_REQUEST), "m:latest")
    assert info.value.status == 400
    assert info.value.message.startswith(message)
