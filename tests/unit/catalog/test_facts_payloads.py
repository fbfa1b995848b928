"""Pure parts around the catalog: `/api/show` facts, `/api/ps` contexts, payloads per target,
and the CLI's pull progress line."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.catalog.entries import Catalog
from router.catalog.facts import ModelFacts, parse_show
from router.cli_models import progress
from router.config import ModelConfig, NodeConfig
from router.fleet.registry import NodeState
from router.upstream.client import parse_loaded
from router.upstream.payloads import Payloads, payload_for
from router.wire.options import Overrides


@pytest.mark.parametrize(
    ("body", "facts"),
    [
        (
            {"capabilities": ["completion", "tools"], "model_info": {"llama.context_length": 8192}},
            ModelFacts(("completion", "tools"), 8192),
        ),
        ({"capabilities": ["embedding"]}, ModelFacts(("embedding",), None)),
        ({}, ModelFacts()),
        ({"capabilities": "tools", "model_info": {"x.context_length": -1}}, ModelFacts()),
    ],
    ids=["chat", "embedding", "old-server", "malformed"],
)
def test_parse_show(body: dict[str, Any], facts: ModelFacts) -> None:
    assert parse_show(body) == facts


def test_an_embedding_model_is_one_without_completion() -> None:
    assert ModelFacts(("embedding",)).embedding
    assert not ModelFacts(("completion", "embedding")).embedding


def test_parse_loaded_reads_contexts() -> None:
    node = NodeState(NodeConfig("a", "http://a:1"))
    body = orjson.dumps(
        {
            "models": [
                {"name": "Llama3:70b", "context_length": 8192},
                {"name": "mistral", "context_length": True},
                {"name": "phi3"},
            ]
        }
    )
    assert parse_loaded(body, node) == {
        "llama3:70b": 8192,
        "mistral:latest": None,
        "phi3:latest": None,
    }


def test_payloads_are_built_once_per_target_with_the_entrys_options() -> None:
    catalog = Catalog.from_config([ModelConfig("llama3", ("llama3:70b", "llama3:8b"), num_ctx=99)])
    built: list[tuple[str, Overrides]] = []

    def build(model: str, overrides: Overrides) -> bytes:
        built.append((model, overrides))
        return model.encode()

    payloads = Payloads(catalog.resolve("llama3:latest"), build)
    assert payload_for(payloads, "llama3:8b") == b"llama3:8b"
    assert payload_for(payloads, "llama3:8b") == b"llama3:8b"
    assert payload_for(payloads, "llama3:70b") == b"llama3:70b"
    assert [m for m, _ in built] == ["llama3:8b", "llama3:70b"]
    assert {o.num_ctx for _, o in built} == {99}
    assert payload_for(b"same", "anything") == b"same"


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ({"status": "pulling manifest"}, "pulling manifest"),
        (
            {"status": "pulling dde5aa3fc5ff", "total": 2_000_000_000, "completed": 500_000_000},
            "pulling dde5aa3fc5ff   25% of 2.0 GB",
        ),
        ({"status": "pulling x", "total": 0, "completed": 0}, "pulling x"),
    ],
    ids=["status", "progress", "no-total"],
)
def test_progress_line(line: dict[str, Any], text: str) -> None:
    assert progress(line) == text
