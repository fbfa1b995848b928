"""Model names: what clients send and what nodes list meet on one routing key."""

from __future__ import annotations

import pytest

from router.modelnames import canonical, public_id

CANONICAL = [
    ("ollama/llama3", "llama3:latest"),
    ("llama3", "llama3:latest"),
    ("llama3:latest", "llama3:latest"),
    ("LLAMA3:Latest", "llama3:latest"),
    ("Ollama/Llama3", "llama3:latest"),
    ("OLLAMA/LLAMA3", "llama3:latest"),
    ("llama3:70b", "llama3:70b"),
    ("ollama/llama3:70b", "llama3:70b"),
    ("llama3.2", "llama3.2:latest"),
    ("  llama3  ", "llama3:latest"),
    ("user/model", "user/model:latest"),
    ("user/model:v2", "user/model:v2"),
    ("hf.co/org/m:Q4_K_M", "hf.co/org/m:q4_k_m"),
    ("ollama/hf.co/org/m:Q4", "hf.co/org/m:q4"),
    ("hf.co/org/m", "hf.co/org/m:latest"),
    # the colon of a registry port is not a tag
    ("localhost:5000/m", "localhost:5000/m:latest"),
    ("localhost:5000/m:7b", "localhost:5000/m:7b"),
]


@pytest.mark.parametrize(("name", "expected"), CANONICAL, ids=[n for n, _ in CANONICAL])
def test_canonical(name: str, expected: str) -> None:
    assert canonical(name) == expected


PUBLIC = [
    ("llama3:latest", "ollama/llama3"),
    ("llama3", "ollama/llama3"),
    ("Llama3:Latest", "ollama/llama3"),
    ("llama3:70b", "ollama/llama3:70b"),
    ("llama3.2:1b", "ollama/llama3.2:1b"),
    ("user/model:latest", "ollama/user/model"),
    ("hf.co/org/m:Q4_K_M", "ollama/hf.co/org/m:q4_k_m"),
    ("hf.co/org/m:latest", "ollama/hf.co/org/m"),
    ("mistral:latest-instruct", "ollama/mistral:latest-instruct"),
]


@pytest.mark.parametrize(("node_name", "expected"), PUBLIC, ids=[n for n, _ in PUBLIC])
def test_public_id(node_name: str, expected: str) -> None:
    assert public_id(node_name) == expected


NODE_NAMES = [n for n, _ in PUBLIC]


@pytest.mark.parametrize("node_name", NODE_NAMES, ids=NODE_NAMES)
def test_the_listed_id_routes_back_to_the_node_model(node_name: str) -> None:
    # A client that copies an id from /models must reach the model the node listed.
    assert canonical(public_id(node_name)) == canonical(node_name)


@pytest.mark.parametrize(
    "spelling",
    ["llama3", "llama3:latest", "LLAMA3", "ollama/llama3", "ollama/llama3:latest", " Llama3 "],
)
def test_every_spelling_of_one_model_meets_on_one_key(spelling: str) -> None:
    assert canonical(spelling) == canonical("llama3:latest")


def test_different_tags_stay_different() -> None:
    assert canonical("llama3:70b") != canonical("llama3")
    assert public_id("llama3:70b") != public_id("llama3:latest")
