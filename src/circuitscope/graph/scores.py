"""How much of a graph's explanation runs through error nodes.

Both scores read the influence of `graph/influence.py`: the edges' magnitudes |A|,
each target's row scaled to sum 1 (Ā), and a node's influence w · (Ā + Ā² + …) with w
the logit probabilities.

replacement score: of the influence that reaches the logits from tokens and error
nodes (the graph's ultimate sources), the fraction from tokens. This is circuit-tracer's
formula (`compute_graph_scores` in circuit_tracer/graph.py): token influence over token
plus error influence. The one difference: where no influence reaches a token or an
error node (0 / 0) this gives 1.0 and circuit-tracer nan.

completeness score (`graph_scores`, as the "Circuit Tracing" paper defines it: the
share of input edges, weighted by the target's influence and the edge's |attribution|,
that come from features and token embeddings rather than error nodes): every node
with at least one input edge counts, that is every feature and logit whose row of
`edges` is not all zero, weighted by its influence (a feature) or its probability (a
logit); it contributes the share of its row of Ā from features and tokens. Error and
token nodes have no input edges, so they are in neither the numerator nor the
denominator (nor is a feature or logit whose input edges are all zero).

circuit-tracer's completeness (`circuit_tracer_scores`) is not that. It runs over all
nodes of its square adjacency, weighting each by its influence plus its logit
probability, and a node without input edges has an all-zero row, whose non-error share
is 1 - 0 = 1: every error node and every token node counts as fully explained, with
its own influence as its weight (as does a feature or logit with no input edges). With
N / D our numerator and denominator and X the influence of the error and token nodes,
circuit-tracer's completeness is (N + X) / (D + X): never below ours, equal only when
X = 0 or N = D; the more influence the error nodes carry, the more they add to it. We
keep the paper's definition as `graph_scores` (what `trace` reports and the suites
measure) because an error node is the part of the computation the graph leaves
unexplained; `circuit_tracer_scores` is there to put the two side by side. Both are
1.0 in a graph without error edges.

Row normalisation is the same in both (|A| over its row sum) except at tiny sums:
circuit-tracer divides by max(sum, 1e-10), we by any positive sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.graph.graph import ERROR, TOKEN, Graph
from circuitscope.graph.influence import influence, normalize_rows


@dataclass(frozen=True)
class GraphScores:
    replacement: float
    completeness: float


def graph_scores(graph: Graph) -> GraphScores:
    """Both scores, completeness as the paper defines it (module docstring); memory:
    one normalised copy of `graph.edges`."""
    return _scores(graph, circuit_tracer=False)


def circuit_tracer_scores(graph: Graph) -> GraphScores:
    """Both scores by circuit-tracer's `compute_graph_scores` formulas (the module
    docstring): the same replacement score as `graph_scores`, and a completeness that
    also counts every error and token node as fully explained, weighted by its
    influence. 1.0 where circuit-tracer would divide 0 by 0. Memory: as `graph_scores`."""
    return _scores(graph, circuit_tracer=True)


def error_share_by_layer(graph: Graph) -> Tensor:
    """[n_layers] each layer's error nodes' share of the influence that reaches the graph's
    ultimate sources (tokens and error nodes): sums to 1 - the replacement score, so it
    says which layers' reconstruction errors hold the replacement score down. Memory: as
    `graph_scores`."""
    source_influence = influence(normalize_rows(graph.edges), graph.logit_weights())
    errors = graph.span(ERROR)
    total = source_influence[errors].sum() + source_influence[graph.span(TOKEN)].sum()
    layers = graph.node_layer[errors].long()
    shares = source_influence.new_zeros(graph.n_layers)
    shares.index_add_(0, layers, source_influence[errors])
    return shares / total if total > 0 else shares


def _scores(graph: Graph, circuit_tracer: bool) -> GraphScores:
    weights = graph.logit_weights()
    normalized = normalize_rows(graph.edges)
    source_influence = influence(normalized, weights)
    error_influence = source_influence[graph.span(ERROR)].sum()
    token_influence = source_influence[graph.span(TOKEN)].sum()
    replacement = _fraction(token_influence, token_influence + error_influence)
    # rows of `edges`: features (weighted by influence), then logits (by probability)
    non_error_fraction = 1.0 - normalized[:, graph.span(ERROR)].sum(dim=1)
    row_weights = torch.cat([source_influence[: graph.n_features], weights])
    if circuit_tracer:
        # every row counts, an input-less one with non-error share 1; errors and tokens
        # (no rows) count whole, weighted by their influence
        sources = error_influence + token_influence
        explained = (non_error_fraction * row_weights).sum() + sources
        total = row_weights.sum() + sources
    else:
        row_weights = row_weights * (normalized.sum(dim=1) > 0)
        explained = (non_error_fraction * row_weights).sum()
        total = row_weights.sum()
    return GraphScores(replacement=replacement, completeness=_fraction(explained, total))


def _fraction(part: Tensor, whole: Tensor) -> float:
    """part / whole, 1.0 when whole is 0 (nothing to explain)."""
    return float(part / whole) if whole > 0 else 1.0
