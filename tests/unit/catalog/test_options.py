"""The catalog's options in the payload a node gets: forced num_ctx, keep_alive and truncate,
a num_predict cap, a think default; the client's own values where the OpenAI API has a field."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from router.wire.openai import parse_chat, parse_completion
from router.wire.options import Overrides, apply_options, load_payload
from router.wire.to_ollama import chat_payload, completion_payload

USER = {"role": "user", "content": "hi"}
FULL = Overrides(num_ctx=8192, keep_alive="30m", num_predict=256, think=False)

APPLY: list[tuple[str, dict[str, Any], Overrides, dict[str, Any]]] = [
    # name, payload before, overrides, payload after
    ("defaults-only-truncate", {"options": {}}, Overrides(), {"options": {}, "truncate": False}),
    (
        "no-options-dict-yet",
        {},
        Overrides(num_ctx=4096),
        {"options": {"num_ctx": 4096}, "truncate": False},
    ),
    (
        "all-forced",
        {"options": {"temperature": 1.0}},
        FULL,
        {
            "options": {"temperature": 1.0, "num_ctx": 8192, "num_predict": 256},
            "keep_alive": "30m",
            "truncate": False,
            "think": False,
        },
    ),
    # num_ctx and keep_alive are the catalog's whatever the payload said (no reload storms)
    (
        "num-ctx-and-keep-alive-always-the-catalogs",
        {"options": {"num_ctx": 999}, "keep_alive": "1s"},
        Overrides(num_ctx=8192, keep_alive=-1),
        {"options": {"num_ctx": 8192}, "keep_alive": -1, "truncate": False},
    ),
    (
        "truncate-opt-in",
        {"options": {}},
        Overrides(truncate=True),
        {"options": {}, "truncate": True},
    ),
    (
        "a-handlers-truncate-choice-kept",
        {"options": {}, "truncate": True},
        Overrides(),
        {"options": {}, "truncate": True},
    ),
    (
        "max-tokens-below-cap-wins",
        {"options": {"num_predict": 100}},
        Overrides(num_predict=256),
        {"options": {"num_predict": 100}, "truncate": False},
    ),
    (
        "max-tokens-above-cap-clamped",
        {"options": {"num_predict": 9000}},
        Overrides(num_predict=256),
        {"options": {"num_predict": 256}, "truncate": False},
    ),
    (
        "unbounded-clamped",
        {"options": {"num_predict": -1}},
        Overrides(num_predict=256),
        {"options": {"num_predict": 256}, "truncate": False},
    ),
    (
        "client-think-wins",
        {"options": {}, "think": "high"},
        Overrides(think=False),
        {"options": {}, "think": "high", "truncate": False},
    ),
    (
        "think-default",
        {"options": {}},
        Overrides(think=True),
        {"options": {}, "think": True, "truncate": False},
    ),
]


@pytest.mark.parametrize(
    ("payload", "overrides", "expected"), [a[1:] for a in APPLY], ids=[a[0] for a in APPLY]
)
def test_apply_options(
    payload: dict[str, Any], overrides: Overrides, expected: dict[str, Any]
) -> None:
    assert apply_options(payload, overrides) == expected


def test_embed_payload_gets_context_and_truncate_only() -> None:
    payload = {"model": "bge-m3", "input": ["a"]}
    assert apply_options(payload, FULL, embed=True) == {
        "model": "bge-m3",
        "input": ["a"],
        "options": {"num_ctx": 8192},
        "keep_alive": "30m",
        "truncate": False,
    }


def sent(body: bytes) -> dict[str, Any]:
    """The JSON a node receives (parsed by another parser than the one that wrote it)."""
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def test_chat_payload_carries_the_catalogs_options() -> None:
    req = parse_chat({"model": "ollama/llama3", "messages": [USER], "max_tokens": 1000})
    body = sent(
        chat_payload(req, "llama3:70b", Overrides(num_ctx=8192, keep_alive="30m", num_predict=512))
    )
    assert body["model"] == "llama3:70b"
    assert body["options"]["num_ctx"] == 8192
    assert body["options"]["num_predict"] == 512
    assert body["keep_alive"] == "30m"
    assert body["truncate"] is False


def test_chat_payload_client_reasoning_effort_wins_over_the_think_default() -> None:
    req = parse_chat({"model": "m", "messages": [USER], "reasoning_effort": "low"})
    assert sent(chat_payload(req, "m", Overrides(think=False)))["think"] == "low"
    req = parse_chat({"model": "m", "messages": [USER]})
    assert sent(chat_payload(req, "m", Overrides(think=False)))["think"] is False


def test_completion_payload_carries_the_catalogs_options() -> None:
    req = parse_completion({"model": "m", "prompt": "once", "max_tokens": 10})
    body = sent(
        completion_payload(req, "m:7b", Overrides(num_ctx=2048, keep_alive=300, num_predict=64))
    )
    assert body["options"]["num_ctx"] == 2048
    assert body["options"]["num_predict"] == 10
    assert body["keep_alive"] == 300
    assert body["truncate"] is False


def test_without_overrides_the_payload_is_unchanged() -> None:
    chat = parse_chat({"model": "m", "messages": [USER], "max_tokens": 7})
    assert chat_payload(chat, "m") == chat_payload(chat, "m", None)
    assert b"truncate" not in chat_payload(chat, "m")
    completion = parse_completion({"model": "m", "prompt": "x"})
    assert completion_payload(completion, "m") == completion_payload(completion, "m", None)
    assert b"num_ctx" not in completion_payload(completion, "m")


LOADS: list[tuple[str, Overrides, bool, dict[str, Any]]] = [
    (
        "generate",
        FULL,
        False,
        {
            "model": "m:7b",
            "prompt": "",
            "stream": False,
            "options": {"num_ctx": 8192},
            "keep_alive": "30m",
        },
    ),
    (
        "generate-nothing-forced",
        Overrides(),
        False,
        {"model": "m:7b", "prompt": "", "stream": False},
    ),
    ("embed", FULL, True, {"model": "m:7b", "options": {"num_ctx": 8192}, "keep_alive": "30m"}),
]


@pytest.mark.parametrize(
    ("overrides", "embed", "expected"), [x[1:] for x in LOADS], ids=[x[0] for x in LOADS]
)
def test_load_payload(overrides: Overrides, embed: bool, expected: dict[str, Any]) -> None:
    assert orjson.loads(load_payload("m:7b", overrides, embed=embed)) == expected
