"""Latency vs concurrency, router against direct (and the Python floor), as a PNG.

matplotlib is a benchmark-only extra (`pip install -e '.[bench]'`); without it no plot is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"direct": "#1f77b4", "floor": "#7f7f7f", "router": "#d62728"}
PANELS = (
    ("non-streamed, 8 tokens", "p50_ms", "p99_ms", "end-to-end latency (ms)"),
    ("streamed, 64 tokens", "ttft_p50_ms", "ttft_p99_ms", "time to first token (ms)"),
)


def plot(sweep: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, (shape, p50, p99, label) in zip(axes, PANELS, strict=True):
        points = [p for p in sweep["points"] if p["shape"] == shape]
        for target, color in COLORS.items():
            mine = sorted(
                (p for p in points if p["target"] == target), key=lambda p: p["concurrency"]
            )
            if not mine:
                continue
            xs = [p["concurrency"] for p in mine]
            ax.plot(xs, [p[p50] for p in mine], "-o", color=color, label=f"{target} p50")
            ax.plot(xs, [p[p99] for p in mine], "--", color=color, alpha=0.6, label=f"{target} p99")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(label)
        ax.set_title(shape)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Jarvis Router vs direct access to an emulated Ollama node (same run)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
