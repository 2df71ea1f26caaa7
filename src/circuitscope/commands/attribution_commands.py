"""`trace`: the attribution graph of a prompt's next token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.attribution.trace_config import TraceConfig
from circuitscope.commands import Command

if TYPE_CHECKING:
    from circuitscope.attribution.trace import TraceResult


def trace_command(config: TraceConfig) -> int:
    """Compute, prune and save the attribution graph of a prompt's next token."""
    from circuitscope.attribution.trace import trace, write_trace
    from circuitscope.models.loading import load_model
    from circuitscope.transcoders.transcoder import Transcoder

    loaded = load_model(config.model, device=config.device, dtype=config.dtype)
    transcoder = Transcoder.load(config.transcoder, device=str(loaded.adapter.device))
    result = trace(loaded, transcoder, config)
    folder = write_trace(result, config)
    print_summary(result)
    print(f"\nwritten to {folder}/ (graph.*, pruned.*, the Neuronpedia JSON, config.json)")
    return 0


def print_summary(result: TraceResult, top: int = 10) -> None:
    """Sizes, scores, the most influential features, time and memory."""
    from circuitscope.graph.graph import FEATURE

    graph, pruned = result.graph, result.pruned
    bos = "BOS prepended" if graph.metadata.get("bos_prepended") else "as tokenized"
    print(f"\nprompt tokens      {len(graph.input_ids)} ({bos})")
    print(f"active features    {result.n_active}   rows computed {result.rows_computed}")
    selection = graph.metadata.get("selection", {})
    if selection.get("kept_columns") is not None:
        exact = "provably as without it" if selection["exact"] else "may differ from without it"
        print(
            f"columns            restricted to {selection['kept_columns']} features after "
            f"{selection['exploration_rows']} rows (--row-buffer-mb); selection {exact}"
        )
    print(f"graph              {graph.n_nodes} nodes, {graph.n_edges} edges")
    print(f"pruned             {pruned.n_nodes} nodes, {pruned.n_edges} edges")
    print(f"replacement score  {result.scores.replacement:.3f}")
    print(f"completeness score {result.scores.completeness:.3f}")
    print(f"time               {result.seconds:.1f} s   peak memory {result.peak_memory_mb:.0f} MB")
    print("logit targets      " + ", ".join(graph.logit_labels))
    if pruned.node_influence is None:
        return
    features = (pruned.node_kind == FEATURE).nonzero().flatten()
    order = pruned.node_influence[features].argsort(descending=True)[:top]
    print(f"top features by influence (of {len(features)} kept):")
    for index in features[order].tolist():
        influence = float(pruned.node_influence[index])
        token = pruned.input_tokens[int(pruned.node_position[index])]
        activation = float(pruned.node_value[index])
        label = pruned.node_label(index)
        print(f"  {label:<22} on {token!r:<14} act {activation:7.3f}  influence {influence:.4f}")


COMMANDS = [Command("trace", TraceConfig, trace_command)]
