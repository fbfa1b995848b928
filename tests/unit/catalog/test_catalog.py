"""The catalog: what a requested name resolves to, what `/models` lists, targets in order."""

from __future__ import annotations

from typing import Any

import pytest

from router.catalog import Catalog, Entry, first_served, targets_in_order
from router.config import ModelConfig, parse_config
from router.modelnames import canonical
from router.wire.options import Overrides

BASE: dict[str, Any] = {
    "nodes": [{"name": "gpu-a", "url": "http://10.0.0.11:11434"}],
    "api_keys": [{"name": "team-a", "sha256": "a" * 64}],
}
MODELS = [
    {
        "name": "llama3",
        "targets": ["llama3:70b", "llama3:8b"],
        "num_ctx": 8192,
        "keep_alive": "30m",
        "hide_raw": True,
    },
    {"name": "mistral", "num_ctx": 2048, "min_loaded": 2, "think": False},
    {
        "name": "fast",
        "targets": ["llama3:8b"],
        "num_ctx": 8192,
        "keep_alive": "30m",
        "num_predict": 64,
    },
    {"name": "coder", "targets": ["qwen2.5-coder:32b"], "truncate": True},
]
LLAMA3 = Overrides(num_ctx=8192, keep_alive="30m")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    config = parse_config({**BASE, "models": MODELS}, "fleet.yaml", env={})
    return Catalog.from_config(config.models)


RESOLVE: list[tuple[str, str, tuple[str, ...], Overrides, bool]] = [
    # requested, public id, targets, options, configured
    ("ollama/llama3", "ollama/llama3", ("llama3:70b", "llama3:8b"), LLAMA3, True),
    ("LLAMA3:latest", "ollama/llama3", ("llama3:70b", "llama3:8b"), LLAMA3, True),
    (
        "ollama/mistral",
        "ollama/mistral",
        ("mistral:latest",),
        Overrides(num_ctx=2048, think=False),
        True,
    ),
    ("fast", "ollama/fast", ("llama3:8b",), Overrides(8192, "30m", num_predict=64), True),
    # raw tags resolve to themselves, with the options of the first entry that targets them
    ("ollama/llama3:70b", "ollama/llama3:70b", ("llama3:70b",), LLAMA3, False),
    ("llama3:8b", "ollama/llama3:8b", ("llama3:8b",), LLAMA3, False),
    (
        "qwen2.5-coder:32b",
        "ollama/qwen2.5-coder:32b",
        ("qwen2.5-coder:32b",),
        Overrides(truncate=True),
        False,
    ),
    # a name the catalog does not know: itself, truncate false, nothing forced
    ("ollama/phi3", "ollama/phi3", ("phi3:latest",), Overrides(), False),
]


@pytest.mark.parametrize(
    ("requested", "public", "targets", "overrides", "configured"),
    RESOLVE,
    ids=[r[0] for r in RESOLVE],
)
def test_resolve(
    catalog: Catalog,
    requested: str,
    public: str,
    targets: tuple[str, ...],
    overrides: Overrides,
    configured: bool,
) -> None:
    entry = catalog.resolve(canonical(requested))
    assert (entry.public_id, entry.targets, entry.overrides) == (public, targets, overrides)
    assert entry.configured is configured
    assert entry.overrides.truncate is (requested == "qwen2.5-coder:32b")


def test_entry_facts(catalog: Catalog) -> None:
    llama3 = catalog.resolve("llama3:latest")
    assert llama3.alias and llama3.num_ctx == 8192 and llama3.hide_raw
    mistral = catalog.resolve("mistral:latest")
    assert not mistral.alias and mistral.min_loaded == 2
    owner = catalog.owner("llama3:8b")
    assert owner is not None and owner.name == "llama3:latest"
    assert catalog.owner("phi3:latest") is None


def test_an_empty_catalog_resolves_everything_to_itself() -> None:
    entry = Catalog().resolve("llama3:70b")
    assert entry == Entry("llama3:70b", "ollama/llama3:70b", ("llama3:70b",))
    assert entry.overrides.truncate is False


LISTING: list[tuple[str, dict[str, int], list[tuple[str, int]]]] = [
    ("nothing-served", {}, []),
    (
        "alias-listed-raw-targets-hidden",
        {"llama3:8b": 20},
        [("ollama/fast", 20), ("ollama/llama3", 20)],
    ),
    (
        "alias-takes-its-preferred-targets-created",
        {"llama3:70b": 10, "llama3:8b": 20},
        [("ollama/fast", 20), ("ollama/llama3", 10)],
    ),
    (
        "raw-tags-listed-unless-hidden",
        {"mistral:latest": 5, "phi3:latest": 6, "qwen2.5-coder:32b": 7},
        [
            ("ollama/coder", 7),
            ("ollama/mistral", 5),
            ("ollama/phi3", 6),
            ("ollama/qwen2.5-coder:32b", 7),
        ],
    ),
    # a node model shadowed by an entry's name is not listed under that name unless served
    ("shadowed-name-not-listed", {"llama3:latest": 3}, []),
]


@pytest.mark.parametrize(
    ("served", "expected"), [x[1:] for x in LISTING], ids=[x[0] for x in LISTING]
)
def test_public_models(
    catalog: Catalog, served: dict[str, int], expected: list[tuple[str, int]]
) -> None:
    assert catalog.public_models(served) == expected


def test_without_hide_raw_the_targets_are_listed_too() -> None:
    config = parse_config(
        {**BASE, "models": [{"name": "llama3", "targets": ["llama3:70b"]}]}, "f", env={}
    )
    listed = Catalog.from_config(config.models).public_models({"llama3:70b": 1})
    assert listed == [("ollama/llama3", 1), ("ollama/llama3:70b", 1)]


def test_targets_in_order_spills_to_the_next_target(catalog: Catalog) -> None:
    llama3 = catalog.resolve("llama3:latest")
    both = {"llama3:8b": ["gpu-b"], "llama3:70b": ["gpu-a", "gpu-c"]}
    assert targets_in_order(llama3, both) == [
        ("llama3:70b", ["gpu-a", "gpu-c"]),
        ("llama3:8b", ["gpu-b"]),
    ]
    assert targets_in_order(llama3, {"llama3:70b": [], "llama3:8b": ["gpu-b"]}) == [
        ("llama3:8b", ["gpu-b"])
    ]
    assert targets_in_order(llama3, {}) == []


def test_first_served(catalog: Catalog) -> None:
    llama3 = catalog.resolve("llama3:latest")
    assert first_served(llama3, {"llama3:8b", "llama3:70b"}) == "llama3:70b"
    assert first_served(llama3, {"llama3:8b"}) == "llama3:8b"
    assert first_served(llama3, {"mistral:latest"}) is None


def test_from_config_canonicalises_names() -> None:
    catalog = Catalog.from_config([ModelConfig("Llama3", ("LLAMA3:70B",))])
    assert catalog.resolve("llama3:latest").targets == ("llama3:70b",)
