"""How much of a graph's explanation runs through error nodes.

replacement score: of the influence that reaches the logits from tokens and
error nodes (the graph's ultimate sources), the fraction from tokens.
completeness score: of the incoming edge weight of every node, weighted by that
node's influence (logits by their probability), the fraction that comes from
features and tokens rather than error nodes. Both are 1.0 without error nodes.
(The same formulas as circuit-tracer's `compute_graph_scores`.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from circuitscope.graph.graph import ERROR, TOKEN, Graph
from circuitscope.graph.influence import influence, normalize_rows


@dataclass(frozen=True)
class GraphScores:
    replacement: float
    completeness: float


def graph_scores(graph: Graph) -> GraphScores:
    """Both scores; memory: one normalised copy of `graph.edges`."""
    weights = graph.logit_weights()
    normalized = normalize_rows(graph.edges)
    source_influence = influence(normalized, weights)
    error_influence = source_influence[graph.span(ERROR)].sum()
    token_influence = source_influence[graph.span(TOKEN)].sum()
    source_total = token_influence + error_influence
    replacement = float(token_influence / source_total) if source_total > 0 else 1.0
    non_error_fraction = 1.0 - normalized[:, graph.span(ERROR)].sum(dim=1)
    has_inputs = normalized.sum(dim=1) > 0
    row_weights = torch.cat([source_influence[: graph.n_features], weights])
    output_influence = row_weights * has_inputs
    total = output_influence.sum()
    completeness = (
        float((non_error_fraction * output_influence).sum() / total) if total > 0 else 1.0
    )
    return GraphScores(replacement=replacement, completeness=completeness)
