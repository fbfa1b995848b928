"""Legacy completions (`/completions` → Ollama `/api/generate`), streamed and not."""

from __future__ import annotations

import pytest

from tests.conftest import Router


@pytest.mark.parametrize(
    "prompt", ["Once upon a time", ["Once upon a time"]], ids=["string", "list-of-one"]
)
async def test_non_stream_text_completion(router: Router, prompt: str | list[str]) -> None:
    resp = await router.client().completions.create(model="ollama/llama3", prompt=prompt, seed=4)
    assert resp.object == "text_completion"
    assert resp.id.startswith("cmpl-")
    assert resp.model == "ollama/llama3"
    assert resp.choices[0].text
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


async def test_stream_joined_equals_non_stream(router: Router) -> None:
    client = router.client()
    whole = await client.completions.create(
        model="ollama/llama3", prompt="Hello", seed=8, max_tokens=5
    )
    stream = await client.completions.create(
        model="ollama/llama3",
        prompt="Hello",
        seed=8,
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert all(c.object == "text_completion" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["length"] == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == 5


async def test_suffix_and_options_reach_generate(router: Router) -> None:
    await router.client().completions.create(
        model="ollama/phi3",
        prompt="def f(",
        suffix="\n",
        stop=["\n\n"],
        temperature=0.2,
        max_tokens=4,
    )
    sent = router.nodes["node-b"].stats.bodies[-1]
    assert sent["prompt"] == "def f(" and sent["suffix"] == "\n"
    assert sent["stream"] is True
    assert sent["options"]["stop"] == ["\n\n"]
    assert sent["options"]["num_predict"] == 4
