from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest


@pytest.fixture(scope="package")
def sdk() -> Iterator[openai.OpenAI]:
    """An SDK client whose SSE decoder reads what the encoders write (it sends nothing)."""
    with openai.OpenAI(api_key="test", base_url="http://127.0.0.1:9/v1", max_retries=0) as client:
        yield client
