"""A validation on disk: open a trace folder, write the JSON report and the scatter plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from circuitscope.errors import CircuitscopeError
from circuitscope.graph.trace_folder import TraceFolder
from circuitscope.interventions.validation import ValidationContext, logit_directions
from circuitscope.outputs import write_atomically
from circuitscope.plotting import pyplot

REPORT_FILE = "validation.json"
PLOT_FILE = "validation.png"


def open_context(
    folder: str | Path, model: str = "", transcoder: str = "", device: str = "cpu"
) -> ValidationContext:
    """Load a trace folder and the model and transcoder it was traced with (the graph's
    recorded ones, resolved when traced; older folders: as typed, relative to the folder's
    parent or the working directory), unless `model` / `transcoder` name others."""
    from circuitscope.models.loading import load_model
    from circuitscope.transcoders.transcoder import Transcoder

    trace = TraceFolder.open(folder)
    full, pruned = trace.graph(), trace.pruned()
    saved = trace.settings()
    model = model or _recorded(full.metadata.get("model") or saved.get("model"), trace.path)
    transcoder = transcoder or _recorded(
        full.metadata.get("transcoder") or saved.get("transcoder"), trace.path
    )
    if not model or not transcoder:
        raise CircuitscopeError(
            f"{folder} does not say which model and transcoder made it; pass --model/--transcoder"
        )
    loaded = load_model(model, device=device)
    if loaded.adapter.n_layers != full.n_layers:
        raise CircuitscopeError(
            f"{model} has {loaded.adapter.n_layers} layers but the graph has {full.n_layers}"
        )
    opened = Transcoder.load(transcoder, device=str(loaded.adapter.device))
    directions = logit_directions(loaded.adapter, loaded.tokenizer, full, saved)
    return ValidationContext(loaded.adapter, opened, full, pruned, directions)


def _recorded(spec: Any, folder: Path) -> str:
    """A recorded model or transcoder: as recorded when it exists (absolute paths, hub ids,
    the bundled name), else a relative path found beside the trace folder."""
    if not spec:
        return ""
    spec = str(spec)
    if Path(spec).expanduser().is_absolute() or Path(spec).exists():
        return spec
    beside = folder.parent / spec
    return str(beside) if beside.exists() else spec


def write_report(report: dict[str, Any], folder: str | Path) -> Path:
    """validation.json and validation.png into `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / REPORT_FILE, json.dumps(_finite(report), indent=1))
    plot_report(report, folder / PLOT_FILE)
    return folder


def _finite(value: Any) -> Any:
    """NaN is not JSON: write None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Predicted vs measured: ablation, doubling, and (when checked) edges."""
    plt = pyplot()
    panels = [(name, report["experiments"][name]) for name in ("ablation", "doubling")]
    edges = report.get("edges", {})
    count = 3 if edges.get("n") else 2
    figure, axes = plt.subplots(1, count, figsize=(5 * count, 4.6))
    for axis, (name, summary) in zip(axes, panels, strict=False):
        rows = report["nodes"]
        xs = [row[f"predicted_{name}_replacement"] for row in rows]
        ys = [row[f"measured_{name}_replacement"] for row in rows]
        axis.scatter(xs, ys, s=10, c="#56b4e9", alpha=0.6, label="replacement model")
        xs = [row[f"predicted_{name}"] for row in rows]
        ys = [row[f"measured_{name}"] for row in rows]
        colors = ["#e69f00" if row["kind"] == "feature" else "#555555" for row in rows]
        title = f"{name}: Spearman {summary['spearman']:.2f} (features orange, errors grey)"
        _scatter(axis, xs, ys, colors, title)
        axis.legend(fontsize=7, loc="best")
        axis.set_xlabel("graph's prediction (Δ target logit)")
        axis.set_ylabel("measured on the model")
    if count == 3:
        title = f"edges (constrained): Spearman {edges['spearman']:.3f}"
        _scatter(axes[2], edges["predicted"], edges["measured"], "#2166ac", title)
        axes[2].set_xlabel("edge weight (ablation)")
        axes[2].set_ylabel("measured Δ of the target's input")
    figure.suptitle(report.get("prompt", ""), fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _scatter(axis: Any, xs: list[float], ys: list[float], colors: Any, title: str) -> None:
    axis.scatter(xs, ys, s=14, c=colors, alpha=0.8)
    low = min([*xs, *ys, 0.0])
    high = max([*xs, *ys, 0.0])
    axis.plot([low, high], [low, high], color="#444444", linewidth=0.7, linestyle="--")
    axis.axhline(0, color="#cccccc", linewidth=0.5)
    axis.axvline(0, color="#cccccc", linewidth=0.5)
    axis.set_title(title, fontsize=10)
