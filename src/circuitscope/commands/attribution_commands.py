"""`trace`: the attribution graph of a prompt's next token, written to a trace folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from circuitscope.allocator import HeapPasses
from circuitscope.attribution.limits import AttributionLimits
from circuitscope.attribution.target_choice import TargetChoice
from circuitscope.cli_args import positional
from circuitscope.commands import Command
from circuitscope.commands.options import BosOption, ModelOptions
from circuitscope.graph.pruning_thresholds import PruningThresholds

if TYPE_CHECKING:
    from circuitscope.attribution.trace import TraceResult


@dataclass(kw_only=True)
class TraceConfig(BosOption, AttributionLimits, PruningThresholds, TargetChoice, ModelOptions):
    transcoder: str = positional()
    """The transcoder: a circuitscope folder, another supported format, or a hub id."""
    prompt: str = positional()
    """The text whose next token the graph explains."""
    output: str = field(default="graph", metadata={"short": "-o"})
    """Folder for the graph files: a new folder, or a previous trace folder (replaced)."""
    slug: str = ""
    """Name of the graph in the Neuronpedia JSON (default: from the prompt)."""
    progress: bool = True
    """Show a progress bar."""
    heap_passes: HeapPasses = "auto"
    """On CPU, whether the backward passes keep their large gradients on the heap from
    one pass to the next: auto (for gradients up to 64 MB: batch 32 up to ~900 tokens
    of SmolLM2), always, never. always is faster on longer prompts at some memory: the
    1,024-token benchmark took 16 min instead of 21.5, and peaked at 7.8 GiB with
    --row-buffer-mb 1536 (8.5 GiB with the default 2048)."""


def trace_command(config: TraceConfig) -> int:
    """Compute, prune and save the attribution graph of a prompt's next token."""
    import torch

    from circuitscope import allocator
    from circuitscope.attribution.prompts import check_prompt, prompt_ids
    from circuitscope.attribution.trace import save_trace, trace
    from circuitscope.configs import config_part, config_to_dict
    from circuitscope.graph.trace_folder import check_slug, prepare_trace_folder, slug_of
    from circuitscope.models.loading import load_model, resolved_source
    from circuitscope.transcoders.checks import check_against_model
    from circuitscope.transcoders.transcoder import Transcoder

    folder = Path(config.output).expanduser()
    slug = check_slug(config.slug or slug_of(check_prompt(config.prompt)))
    prepare_trace_folder(folder, dry_run=True)  # refuse a wrong -o before any work
    transcoder = Transcoder.load(config.transcoder)  # a bad path fails before the model loads
    fits = partial(check_against_model, transcoder)  # checked before the weights load
    loaded = load_model(config.model, device=config.device, dtype=config.dtype, check=fits)
    transcoder.to_device(loaded.adapter.device)
    if loaded.adapter.device.type == "cpu":  # a process-wide setting: the command's to make
        seq = int(prompt_ids(loaded.tokenizer, config.prompt, config.bos)[0].shape[1])
        itemsize = torch.empty((), dtype=loaded.adapter.dtype).element_size()
        pass_bytes = config.batch_size * seq * loaded.adapter.d_model * itemsize
        allocator.set_policy_for_passes(pass_bytes, config.heap_passes)
    result = trace(
        loaded.adapter,
        loaded.tokenizer,
        transcoder,
        config.prompt,
        targets=config_part(config, TargetChoice),
        limits=config_part(config, AttributionLimits),
        pruning=config_part(config, PruningThresholds),
        bos=config.bos,
        progress=config.progress,
        model_id=resolved_source(config.model),
        transcoder_id=resolved_source(config.transcoder),
    )
    save_trace(result, folder, slug, config_to_dict(config))
    print_summary(result)
    print(f"\nwritten to {folder}/ (graph.*, pruned.*, {slug}.json, config.json)")
    return 0


def print_summary(result: TraceResult, top: int = 10) -> None:
    """Sizes, scores, the most influential features, time and memory."""
    from circuitscope.graph.graph import FEATURE

    graph, pruned, info = result.graph, result.pruned, result.info
    bos = "BOS prepended" if info.bos_prepended else "as tokenized"
    print(f"\nprompt tokens      {len(graph.input_ids)} ({bos})")
    print(f"active features    {info.n_active_features}   rows computed {info.rows_computed}")
    selection = info.selection
    if selection.get("kept_columns") is not None:
        exact = "provably as without it" if selection["exact"] else "may differ from without it"
        promoted = selection.get("promoted_columns", 0)
        print(
            f"columns            restricted to {selection['kept_columns']} features after "
            f"{selection['exploration_rows']} rows (--row-buffer-mb), {promoted} added "
            f"later by their bound; selection {exact}"
        )
    print(f"graph              {graph.n_nodes} nodes, {graph.n_edges} edges")
    print(f"pruned             {pruned.n_nodes} nodes, {pruned.n_edges} edges")
    print(f"replacement score  {result.scores.replacement:.3f}")
    print(f"completeness score {result.scores.completeness:.3f}")
    phases = info.phase_seconds
    print(
        f"time               {info.seconds:.1f} s (graph {phases['graph']:.1f} s, scores and "
        f"pruning {phases['scores_and_pruning']:.1f} s)   peak memory {info.peak_memory_mb:.0f} MB"
    )
    print("logit targets      " + ", ".join(graph.logit_labels))
    if pruned.node_influence is None:
        return
    features = (pruned.node_kind == FEATURE).nonzero().flatten()
    if not len(features):
        print(
            "no feature node survives pruning: the pruned graph runs through error and token "
            "nodes only (a higher --node-threshold keeps more)"
        )
        return
    order = pruned.node_influence[features].argsort(descending=True)[:top]
    print(f"top features by influence (of {len(features)} kept):")
    for index in features[order].tolist():
        influence = float(pruned.node_influence[index])
        token = pruned.input_tokens[int(pruned.node_position[index])]
        activation = float(pruned.node_value[index])
        label = pruned.node_label(index)
        print(f"  {label:<22} on {token!r:<14} act {activation:7.3f}  influence {influence:.4f}")


COMMANDS = [Command("trace", TraceConfig, trace_command)]
