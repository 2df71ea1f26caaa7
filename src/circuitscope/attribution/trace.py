"""`trace`: the attribution graph of a prompt's next token, pruned and scored.

One call from a notebook, a server or a benchmark:

    result = trace(adapter, tokenizer, transcoder, "The capital of France is")
    result.graph       # the full graph: prompt, tokens, logit targets and their vectors
    result.pruned      # the pruned graph, node influences attached
    result.info        # what was traced with what, and how it went

`save_trace` writes the result as a trace folder (`graph.trace_folder` owns its files).
"""

from __future__ import annotations

import dataclasses
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from circuitscope.attribution.attribute import attribute
from circuitscope.attribution.limits import AttributionLimits
from circuitscope.attribution.prompts import BosPolicy, prompt_ids, token_texts
from circuitscope.attribution.replacement import build_replacement
from circuitscope.attribution.target_choice import TargetChoice
from circuitscope.graph.graph import Graph
from circuitscope.graph.neuronpedia import export_neuronpedia
from circuitscope.graph.neuronpedia_metadata import neuronpedia_scan
from circuitscope.graph.prune import prune_graph
from circuitscope.graph.pruning_thresholds import PruningThresholds
from circuitscope.graph.render import render_graph
from circuitscope.graph.scores import GraphScores, graph_scores
from circuitscope.graph.trace_folder import write_trace_folder
from circuitscope.models.adapter import ModelAdapter
from circuitscope.models.tokenizer import Tokenizer
from circuitscope.transcoders.transcoder import Transcoder


@dataclass(frozen=True)
class TraceInfo:
    """What a graph was traced with, and how it went (kept in `graph.metadata`)."""

    model: str
    """The model as the caller named it (a resolved path for local folders)."""
    transcoder: str
    """The transcoder likewise."""
    architecture: str
    input_site: str
    """What the transcoder reads: mlp_in or resid_mid."""
    bos_prepended: bool
    """Whether a BOS token was put before the prompt (position 0, the attention sink)."""
    n_active_features: int
    rows_computed: int
    selection: dict[str, Any] = field(default_factory=dict)
    """How features were chosen for rows (see `attribution.visit.Selection.summary`)."""
    backward: dict[str, int] = field(default_factory=dict)
    """The backward passes' work, counted: passes, layer_rows, layer_row_positions (see
    `attribution.rows.BackwardWork`)."""
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    """Where `seconds` went: "graph" (forward pass, targets, rows and the full graph: what
    circuit-tracer's `attribute()` does), "scores_and_pruning" (the rest, nearly all)."""
    peak_memory_mb: float = 0.0


@dataclass
class TraceResult:
    graph: Graph
    pruned: Graph
    scores: GraphScores
    info: TraceInfo


def trace(
    adapter: ModelAdapter,
    tokenizer: Tokenizer,
    transcoder: Transcoder,
    prompt: str,
    *,
    targets: TargetChoice | None = None,
    limits: AttributionLimits | None = None,
    pruning: PruningThresholds | None = None,
    bos: BosPolicy = "auto",
    progress: bool = False,
    model_id: str = "",
    transcoder_id: str = "",
) -> TraceResult:
    """Build, prune and score the graph of `prompt`'s next token.

    targets: which logits to explain (default: the top tokens); limits: rows and memory;
    pruning: thresholds; bos: prepend the tokenizer's BOS (auto: when it adds none);
    model_id, transcoder_id: names recorded in the graph's metadata.
    """
    start = time.perf_counter()
    targets, limits = targets or TargetChoice(), limits or AttributionLimits()
    pruning = pruning or PruningThresholds()
    ids, bos_prepended = prompt_ids(tokenizer, prompt, bos)
    replacement = build_replacement(adapter, transcoder, ids)
    chosen = targets.targets(adapter, tokenizer, replacement.recording.logits[0, -1])
    run = attribute(replacement, chosen, limits, progress=progress)
    graph_seconds = time.perf_counter() - start
    graph = run.graph
    graph.prompt = prompt
    graph.input_tokens = token_texts(tokenizer, ids[0])
    info = TraceInfo(
        model=model_id,
        transcoder=transcoder_id,
        architecture=adapter.spec.name,
        input_site=transcoder.config.input_kind,
        bos_prepended=bos_prepended,
        n_active_features=run.n_active,
        rows_computed=run.rows_computed,
        selection=run.selection,
        backward=dataclasses.asdict(run.work),
    )
    scores = graph_scores(graph)
    graph.metadata["scores"] = dataclasses.asdict(scores)
    pruned = prune_graph(graph, pruning.node_threshold, pruning.edge_threshold)
    seconds = time.perf_counter() - start
    phases = {"graph": graph_seconds, "scores_and_pruning": seconds - graph_seconds}
    info = dataclasses.replace(
        info,
        seconds=round(seconds, 3),
        phase_seconds={name: round(value, 3) for name, value in phases.items()},
        peak_memory_mb=peak_memory_mb(),
    )
    for kept in (graph, pruned):
        kept.metadata.update(dataclasses.asdict(info), scores=graph.metadata["scores"])
    return TraceResult(graph, pruned, scores, info)


def save_trace(
    result: TraceResult, folder: str | Path, slug: str, settings: dict[str, Any]
) -> Path:
    """Write `result` as a trace folder: both graphs, the attribution-graph JSON `<slug>.json`
    of the pruned graph, `settings` (the config that made it) and a picture."""
    threshold = float(result.pruned.metadata["pruning"]["node_threshold"])
    scan = neuronpedia_scan(result.info.model or "model")
    document = export_neuronpedia(result.pruned, slug, scan, threshold, settings=settings)
    return write_trace_folder(
        Path(folder), result.graph, result.pruned, document, settings, render_graph
    )


def peak_memory_mb() -> float:
    """Peak resident memory of this process (and CUDA's peak allocation when used), MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        peak += torch.cuda.max_memory_allocated() / 2**20
    return peak
