"""LiteLLM as a peer target: its config (an `ollama_chat/` model on the emulated node) and the
command that starts its proxy from `.venv-litellm` (made by `make bench-peers`)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-litellm"
MASTER_KEY_PREFIX = "sk-bench-"


def executable() -> Path | None:
    exe = VENV / "bin" / "litellm"
    return exe if exe.exists() else None


def write_config(path: Path, model: str, node_url: str, master_key: str) -> Path:
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {"model": f"ollama_chat/{model}", "api_base": node_url},
            }
        ],
        "general_settings": {"master_key": master_key},
        # As shipped otherwise; no callbacks, no cache, no database.
        "litellm_settings": {"telemetry": False},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def argv(config: Path, port: int) -> list[str]:
    exe = executable()
    if exe is None:
        raise RuntimeError("LiteLLM is not installed: run `make bench-peers`")
    return [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]  # fmt: skip


def env() -> dict[str, str]:
    """No network: the bundled model cost map, no telemetry."""
    return {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "NO_DOCS": "True",
    }
