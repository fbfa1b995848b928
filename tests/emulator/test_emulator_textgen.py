"""Deterministic text generation (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.emulator import textgen
from router.emulator.textgen import MAX_TOKENS, MIN_TOKENS, VOCAB, make_reply


def test_same_inputs_same_reply() -> None:
    a = make_reply("llama3:latest", "hello world", seed=7)
    b = make_reply("llama3:latest", "hello world", seed=7)
    assert a == b
    assert MIN_TOKENS <= len(a.tokens) <= MAX_TOKENS
    assert a.done_reason == "stop"


@pytest.mark.parametrize(
    ("model", "prompt", "seed"),
    [
        ("qwen2:latest", "hello world", 7),
        ("llama3:latest", "hello world!", 7),
        ("llama3:latest", "hello world", 8),
    ],
    ids=["other-model", "other-prompt", "other-seed"],
)
def test_each_input_changes_the_reply(model: str, prompt: str, seed: int) -> None:
    base = make_reply("llama3:latest", "hello world", seed=7)
    assert make_reply(model, prompt, seed=seed).tokens != base.tokens


def test_tokens_are_vocabulary_words_with_leading_spaces() -> None:
    tokens = make_reply("llama3:latest", "tell me", default_tokens=30).tokens
    assert len(tokens) == 30
    assert tokens[0] in VOCAB
    assert all(t.startswith(" ") and t[1:] in VOCAB for t in tokens[1:])


@pytest.mark.parametrize(
    ("num_predict", "default_tokens", "want_len", "want_reason"),
    [
        (None, 10, 10, "stop"),
        (3, 10, 3, "length"),
        (10, 10, 10, "stop"),
        (50, 10, 10, "stop"),
        (0, 10, 0, "length"),
        (1, None, 1, "length"),
    ],
    ids=["natural", "cut", "equal-is-natural", "above", "zero", "one-of-hashed"],
)
def test_num_predict(
    num_predict: int | None, default_tokens: int | None, want_len: int, want_reason: str
) -> None:
    reply = make_reply("m:latest", "p", num_predict=num_predict, default_tokens=default_tokens)
    assert len(reply.tokens) == want_len
    assert reply.done_reason == want_reason


def test_num_predict_is_a_prefix_of_the_natural_reply() -> None:
    full = make_reply("m:latest", "p", seed=1).tokens
    assert make_reply("m:latest", "p", seed=1, num_predict=4).tokens == full[:4]


def test_stop_string_cuts_before_the_token() -> None:
    full = make_reply("m:latest", "p", default_tokens=20).tokens
    index = 5
    stop_word = full[index].strip()
    first = next(i for i, t in enumerate(full) if t.strip() == stop_word)
    reply = make_reply("m:latest", "p", default_tokens=20, stop=["zzz", stop_word])
    assert reply.tokens == full[:first]
    assert reply.done_reason == "stop"


def test_stop_after_length_cut_reports_stop() -> None:
    full = make_reply("m:latest", "p", default_tokens=20).tokens
    reply = make_reply("m:latest", "p", default_tokens=20, num_predict=5, stop=[full[0]])
    assert reply.tokens == ()
    assert reply.done_reason == "stop"


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("json", lambda obj: isinstance(obj["answer"], str)),
        (
            {
                "type": "object",
                "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
            },
            lambda obj: set(obj) == {"city", "n"} and isinstance(obj["n"], int),
        ),
        (
            {"properties": {"ok": {"type": "boolean"}, "tags": {"type": "array"}}},
            lambda obj: isinstance(obj["ok"], bool) and isinstance(obj["tags"], list),
        ),
        ({"type": "object"}, lambda obj: "answer" in obj),
    ],
    ids=["json", "schema", "schema-bool-array", "schema-without-properties"],
)
def test_format_gives_valid_json(fmt: Any, check: Any) -> None:
    reply = make_reply("m:latest", "p", seed=3, fmt=fmt)
    assert check(json.loads(reply.text))
    assert make_reply("m:latest", "p", seed=3, fmt=fmt) == reply


@pytest.mark.parametrize(
    ("texts", "want"),
    [([""], 4), (["one two three"], 7), (["a", "b c"], 11), ([], 1)],
    ids=["empty-message", "three-words", "two-messages", "nothing"],
)
def test_prompt_eval_count(texts: list[str], want: int) -> None:
    assert textgen.prompt_eval_count(texts) == want


def test_context_ids_deterministic() -> None:
    ids = textgen.context_ids("m:latest", "p", 1, 12)
    assert ids == textgen.context_ids("m:latest", "p", 1, 12)
    assert len(ids) == 12
    assert all(isinstance(i, int) and i >= 0 for i in ids)
