"""An emulated Ollama node: Ollama's native wire format plus fault modes.

Used by `jarvis-router demo`, by the test suite (many nodes in one process, faults flipped per
test) and by benchmarks (separate processes via `serve_forever`).

    config.py      EmulatorConfig (static), Faults (flipped at run time), NodeStats (observed)
    catalog.py     model names and the static /api/tags, /api/ps facts            (pure)
    textgen.py     deterministic replies                                          (pure)
    gojson.py      Go-like request decoding and its error texts                   (pure)
    parse.py       typed body → GenRequest; options/format checks                 (pure)
    lines.py       NDJSON/JSON line encoders in Go key order
    turn.py        one turn: thinking, text, tool calls, logprobs                 (pure)
    state.py       installed and loaded models, slots, prefix cache of one node
    run.py         one admitted generation: pacing, faults, lines, metrics
    generation.py  POST /api/chat, /api/generate: checks in Ollama's order
    embed.py       POST /api/embed: deterministic unit vectors
    models.py      POST /api/show, /api/pull, DELETE /api/delete
    server.py      the aiohttp app, small handlers, runner, serve_forever
    node.py        EmulatedNode lifecycle: start / kill / stop / restart
"""

from .config import EmulatorConfig, Faults, NodeStats
from .node import EmulatedNode
from .server import create_emulator_app, make_runner, serve_forever

__all__ = [
    "EmulatedNode",
    "EmulatorConfig",
    "Faults",
    "NodeStats",
    "create_emulator_app",
    "make_runner",
    "serve_forever",
]
