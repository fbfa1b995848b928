"""The demo fleet: emulated Ollama nodes in this process, and a fleet config pointing at them.

Together the nodes serve the five models of the product docs, some on several nodes, so the
model map matters.
"""

from __future__ import annotations

from router.api.auth import digest
from router.config import ApiKeyConfig, FleetConfig, HealthConfig, ListenConfig, NodeConfig
from router.emulator import EmulatedNode, EmulatorConfig

DEMO_NODES: dict[str, tuple[str, ...]] = {
    "gpu-a": ("llama3", "mistral", "phi3"),
    "gpu-b": ("llama3", "deepseek-coder", "gemma2"),
    "gpu-c": ("mistral", "deepseek-coder", "phi3", "gemma2"),
}
DEMO_CONCURRENCY = 4


def demo_nodes(tokens_per_second: float = 40.0, ttft_ms: float = 80.0) -> list[EmulatedNode]:
    return [
        EmulatedNode(
            EmulatorConfig(
                models=models,
                tokens_per_second=tokens_per_second,
                ttft_ms=ttft_ms,
                max_parallel=DEMO_CONCURRENCY,
            ),
            name=name,
        )
        for name, models in DEMO_NODES.items()
    ]


def demo_config(nodes: list[EmulatedNode], key: str, host: str, port: int) -> FleetConfig:
    return FleetConfig(
        nodes=tuple(NodeConfig(n.name, n.url, DEMO_CONCURRENCY) for n in nodes),
        api_keys=(ApiKeyConfig("demo", digest(key), admin=True),),
        listen=ListenConfig(host, port),
        health=HealthConfig(interval_s=2.0, timeout_s=1.0),
    )
