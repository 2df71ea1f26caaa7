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

from circuitscope.graph.graph import ERROR, TOKEN, Graph
from circuitscope.graph.influence import influence, normalize_rows


@dataclass(frozen=True)
class GraphScores:
    replacement: float
    completeness: float


def graph_scores(graph: Graph) -> GraphScores:
    weights = graph.logit_weights()
    normalized = normalize_rows(graph.adjacency)
    node_influence = influence(normalized, weights)
    errors = graph.node_kind == ERROR
    tokens = graph.node_kind == TOKEN
    error_influence = node_influence[errors].sum()
    token_influence = node_influence[tokens].sum()
    source_total = token_influence + error_influence
    replacement = float(token_influence / source_total) if source_total > 0 else 1.0
    non_error_fraction = 1.0 - normalized[:, errors].sum(dim=1)
    has_inputs = normalized.sum(dim=1) > 0
    output_influence = (node_influence + weights) * has_inputs
    total = output_influence.sum()
    completeness = (
        float((non_error_fraction * output_influence).sum() / total) if total > 0 else 1.0
    )
    return GraphScores(replacement=replacement, completeness=completeness)
