"""`logprobs`/`top_logprobs` through the router: asked of Ollama, returned in OpenAI's shapes.

The emulator gives every token its `api.Logprob` entry (the chosen token first among its
alternatives), so the tokens joined must equal the text the client got.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Router

pytestmark = pytest.mark.timeout(30)

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about the sky."}]


def sent(router: Router) -> dict[str, Any]:
    """The one body a node received."""
    (body,) = [b for n in router.nodes.values() for b in n.stats.bodies]
    return body


async def test_chat_logprobs_non_streamed(router: Router) -> None:
    resp = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, logprobs=True, top_logprobs=2, max_tokens=8
    )
    choice = resp.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    for t in tokens:
        assert t.logprob < 0 and t.bytes == list(t.token.encode())
        assert len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token
    body = sent(router)
    assert body["logprobs"] is True and body["top_logprobs"] == 2


async def test_chat_logprobs_streamed_ride_on_their_chunks(router: Router) -> None:
    stream = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, logprobs=True, max_tokens=8, stream=True
    )
    text, tokens = "", []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                text += choice.delta.content
                assert choice.logprobs is not None and choice.logprobs.content
                tokens += [t.token for t in choice.logprobs.content]
                assert all(t.top_logprobs == [] for t in choice.logprobs.content)
    assert text and "".join(tokens) == text


async def test_chat_without_logprobs_has_none(router: Router) -> None:
    resp = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, max_tokens=4
    )
    assert resp.choices[0].logprobs is None
    assert "logprobs" not in sent(router)


async def test_completion_logprobs_non_streamed(router: Router) -> None:
    resp = await router.client().completions.create(
        model="ollama/llama3", prompt="Once upon a time", logprobs=3, max_tokens=8
    )
    choice = resp.choices[0]
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert lp.text_offset is not None
    assert "".join(lp.tokens) == choice.text
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert all(
        len(top) == 3 and token in top
        for token, top in zip(lp.tokens, lp.top_logprobs, strict=True)
    )
    offsets = [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    assert lp.text_offset == offsets


async def test_completion_logprobs_streamed_offsets_run_on(router: Router) -> None:
    stream = await router.client().completions.create(
        model="ollama/llama3", prompt="Once upon a time", logprobs=0, max_tokens=8, stream=True
    )
    text, offsets = "", []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.text:
                assert choice.logprobs is not None and choice.logprobs.text_offset is not None
                assert "".join(choice.logprobs.tokens or []) == choice.text
                offsets += choice.logprobs.text_offset
                assert offsets[-1] >= len(text)
                text += choice.text
    assert text and offsets[0] == 0 and offsets == sorted(offsets)


async def test_n_and_logprobs_together(router: Router) -> None:
    resp = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, logprobs=True, n=2, seed=3, max_tokens=6
    )
    for choice in resp.choices:
        assert choice.logprobs is not None and choice.logprobs.content
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
