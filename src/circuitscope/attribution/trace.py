"""`trace`: a prompt's attribution graph, pruned, scored and written to a folder."""

from __future__ import annotations

import json
import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from circuitscope.allocator import set_policy_for_passes
from circuitscope.attribution.attribute import AttributionLimits, attribute
from circuitscope.attribution.prompts import prompt_ids, token_texts
from circuitscope.attribution.replacement import build_replacement
from circuitscope.attribution.targets import (
    LogitTarget,
    contrast_target,
    named_logit_targets,
    top_logit_targets,
)
from circuitscope.attribution.trace_config import TraceConfig
from circuitscope.configs import config_to_dict
from circuitscope.errors import CircuitscopeError
from circuitscope.graph.files import save_graph
from circuitscope.graph.graph import Graph
from circuitscope.graph.neuronpedia import export_neuronpedia
from circuitscope.graph.neuronpedia_metadata import neuronpedia_scan
from circuitscope.graph.prune import prune_graph
from circuitscope.graph.render import render_graph
from circuitscope.graph.scores import GraphScores, graph_scores
from circuitscope.models.loading import LoadedModel
from circuitscope.transcoders.transcoder import Transcoder


@dataclass
class TraceResult:
    graph: Graph
    pruned: Graph
    scores: GraphScores
    seconds: float
    peak_memory_mb: float
    rows_computed: int
    n_active: int


def trace(loaded: LoadedModel, transcoder: Transcoder, config: TraceConfig) -> TraceResult:
    """Build, prune and score the graph of `config.prompt` (files: `write_trace`)."""
    start = time.perf_counter()
    ids, bos_prepended = prompt_ids(loaded.tokenizer, config.prompt, config.bos)
    replacement = build_replacement(loaded.adapter, transcoder, ids)
    targets = _targets(loaded, replacement.recording.logits[0, -1], config)
    limits = AttributionLimits(
        config.max_feature_nodes,
        config.batch_size,
        config.update_interval,
        config.row_buffer_mb,
        config.writer_cache_mb,
    )
    _check_limits(limits)
    if loaded.adapter.device.type == "cpu":
        itemsize = torch.empty((), dtype=replacement.dtype).element_size()
        pass_bytes = limits.batch_size * replacement.seq_len * loaded.adapter.d_model * itemsize
        set_policy_for_passes(pass_bytes)
    run = attribute(replacement, targets, limits, progress=config.progress)
    graph = run.graph
    graph.prompt = config.prompt
    graph.input_tokens = token_texts(loaded.tokenizer, ids[0])
    seconds = time.perf_counter() - start
    graph.metadata.update(
        model=loaded.source,
        transcoder=config.transcoder,
        architecture=loaded.adapter.spec.name,
        bos_prepended=bos_prepended,
        n_active_features=run.n_active,
        rows_computed=run.rows_computed,
        selection=run.selection,
        seconds=round(seconds, 3),
        config=config_to_dict(config),
    )
    scores = graph_scores(graph)
    graph.metadata["scores"] = {
        "replacement": scores.replacement,
        "completeness": scores.completeness,
    }
    pruned = prune_graph(graph, config.node_threshold, config.edge_threshold)
    return TraceResult(
        graph, pruned, scores, seconds, peak_memory_mb(), run.rows_computed, run.n_active
    )


def write_trace(result: TraceResult, config: TraceConfig) -> Path:
    """graph.* (full), pruned.* (pruned), pruned.png, <slug>.json (Neuronpedia), config.json."""
    folder = Path(config.output)
    save_graph(result.graph, folder, "graph")
    save_graph(result.pruned, folder, "pruned")
    slug = config.slug or _slug(config.prompt)
    scan = neuronpedia_scan(config.model)
    document = export_neuronpedia(result.pruned, slug, scan, config.node_threshold)
    (folder / f"{slug}.json").write_text(json.dumps(document))
    (folder / "config.json").write_text(json.dumps(config_to_dict(config), indent=1))
    render_graph(result.pruned, folder / "pruned.png")
    return folder


def peak_memory_mb() -> float:
    """Peak resident memory of this process (and CUDA's peak allocation when used), MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        peak += torch.cuda.max_memory_allocated() / 2**20
    return peak


def _targets(
    loaded: LoadedModel, last_logits: torch.Tensor, config: TraceConfig
) -> list[LogitTarget]:
    adapter, tokenizer = loaded.adapter, loaded.tokenizer
    if config.contrast and len(config.contrast) != 2:
        raise CircuitscopeError(f"--contrast takes two tokens A B, got {len(config.contrast)}")
    targets: list[LogitTarget] = []
    if config.target:
        targets += named_logit_targets(adapter, tokenizer, config.target, last_logits)
    if config.contrast:
        targets.append(contrast_target(adapter, tokenizer, *config.contrast))
    if not targets:
        targets = top_logit_targets(
            adapter, tokenizer, last_logits, config.max_n_logits, config.desired_logit_prob
        )
    return targets


def _check_limits(limits: AttributionLimits) -> None:
    if limits.batch_size < 1 or limits.update_interval < 1:
        raise CircuitscopeError("--batch-size and --update-interval must be at least 1")
    if limits.max_feature_nodes is not None and limits.max_feature_nodes < 0:
        raise CircuitscopeError("--max-feature-nodes must not be negative")
    if limits.row_buffer_mb <= 0 or limits.writer_cache_mb < 0:
        raise CircuitscopeError("--row-buffer-mb must be positive, --writer-cache-mb not negative")


def _slug(prompt: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
    return words[:48] or "graph"
