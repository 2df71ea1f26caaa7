"""PNG pictures of a run: training curves, and per-layer MSE/L0 from an evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from circuitscope.plotting import pyplot

if TYPE_CHECKING:
    from circuitscope.training.evaluate import EvalReport

CURVES_FILE = "training_curves.png"


def plot_run(run: Path, png: Path | None = None) -> Path | None:
    """Normalized MSE, L0 and dead fraction against step, from run/train_log.jsonl."""
    log = run / "train_log.jsonl"
    if not log.is_file():
        return None
    try:
        plt = pyplot()
    except ImportError:
        return None
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3), dpi=80)
    for ax, key, title in zip(
        axes,
        ("nmse", "l0", "dead"),
        ("normalized MSE", "L0 (per layer)", "dead fraction"),
        strict=True,
    ):
        ax.plot(steps, [r[key] for r in records])
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylim(bottom=0)
    fig.tight_layout()
    target = png or run / CURVES_FILE
    fig.savefig(target)
    plt.close(fig)
    return target


def plot_eval(report: EvalReport, png: Path) -> Path:
    """Normalized MSE and L0 per layer, held out."""
    plt = pyplot()
    layers = list(range(len(report.nmse_per_layer)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3), dpi=80)
    axes[0].bar(layers, report.nmse_per_layer)
    axes[0].set_title("held-out normalized MSE per layer")
    axes[1].bar(layers, report.l0_per_layer)
    axes[1].set_title("held-out L0 per layer")
    for ax in axes:
        ax.set_xlabel("layer")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png
