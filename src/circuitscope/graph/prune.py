"""Pruning: keep the nodes and edges that carry most of the influence on the logits.

1. Node influence through the normalised |A|; keep the nodes that make up
   `node_threshold` of the total (tokens and logits always stay).
2. Among the kept nodes, each edge's influence (its normalised weight times its
   target's influence, logits counted by their probability); keep the edges that
   make up `edge_threshold` of the total.
3. Drop, until nothing changes, features and errors left without an outgoing
   edge and features left without an incoming one.
The same procedure as circuit-tracer's `prune_graph`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph, target_nodes
from circuitscope.graph.influence import (
    cumulative_threshold,
    edge_influence,
    influence,
    normalize_rows,
)


@dataclass(frozen=True)
class PruneResult:
    node_mask: Tensor
    """[n] bool: nodes kept."""
    edge_mask: Tensor
    """[n_targets, n_sources] bool: edges kept, laid out like `Graph.edges`."""
    node_influence: Tensor
    """[n] influence of every node in the unpruned graph (0 for the logits)."""


def prune_masks(
    edges: Tensor,
    node_kind: Tensor,
    logit_weights: Tensor,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
) -> PruneResult:
    """Masks of the nodes and edges to keep. edges: [n_targets, n_sources] as `Graph.edges`;
    node_kind: [n]; logit_weights: [n_logits]. Memory: one copy of `edges` at a time (plus
    the sort of its positive edge scores, see `cumulative_threshold`)."""
    _check_fraction("node_threshold", node_threshold)
    _check_fraction("edge_threshold", edge_threshold)
    node_influence = _node_influence(edges, logit_weights)
    always = (node_kind == TOKEN) | (node_kind == LOGIT)
    node_mask = (node_influence >= cumulative_threshold(node_influence, node_threshold)) | always
    rows, columns = node_mask[target_nodes(node_kind)], node_mask[: edges.shape[1]]
    scores = edge_scores(edges, rows, columns, logit_weights)
    edge_mask = scores >= cumulative_threshold(scores, edge_threshold)
    del scores
    edge_mask &= edges != 0
    node_mask = _drop_dangling(node_mask, edge_mask, node_kind)
    return PruneResult(node_mask, edge_mask, node_influence)


def _node_influence(edges: Tensor, logit_weights: Tensor) -> Tensor:
    """[n_sources + n_logits] every node's influence (the logits' is 0)."""
    sources = influence(normalize_rows(edges), logit_weights)
    return torch.cat([sources, torch.zeros_like(logit_weights)])


def edge_scores(edges: Tensor, rows: Tensor, columns: Tensor, logit_weights: Tensor) -> Tensor:
    """Edge influence in the graph restricted to the kept rows [n_targets] and columns
    [n_sources] (bool): normalised, then scaled by the influence of the targets. One new
    [n_targets, n_sources] tensor, computed in place."""
    scores = edges.abs()
    scores.mul_(rows[:, None]).mul_(columns[None, :])
    scores = normalize_rows(scores, in_place=True)
    return edge_influence(scores, logit_weights, in_place=True)


def _drop_dangling(node_mask: Tensor, edge_mask: Tensor, node_kind: Tensor) -> Tensor:
    """Remove features/errors without outgoing edges and features without incoming ones.

    edge_mask [n_targets, n_sources] is narrowed in place to edges between kept nodes."""
    node_mask = node_mask.clone()
    targets, n_sources = target_nodes(node_kind), edge_mask.shape[1]
    has_outputs = (node_kind[:n_sources] == FEATURE) | (node_kind[:n_sources] == ERROR)
    has_inputs = node_kind[targets] == FEATURE
    while True:
        edge_mask &= node_mask[targets][:, None]
        edge_mask &= node_mask[None, :n_sources]
        updated = node_mask.clone()
        updated[:n_sources] &= ~(has_outputs & ~edge_mask.any(dim=0))
        updated[targets] &= ~(has_inputs & ~edge_mask.any(dim=1))
        if torch.equal(updated, node_mask):
            return node_mask
        node_mask = updated


def prune_graph(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Graph:
    """The pruned graph: kept nodes, kept edges (others zeroed), influences attached."""
    result = prune_masks(
        graph.edges, graph.node_kind, graph.logit_weights(), node_threshold, edge_threshold
    )
    graph_with_influence = Graph(**{**graph.__dict__, "node_influence": result.node_influence})
    pruned = graph_with_influence.subgraph(result.node_mask)
    rows = torch.nonzero(result.node_mask[graph.target_nodes()]).flatten()
    columns = torch.nonzero(result.node_mask[: graph.n_sources]).flatten()
    pruned.edges.mul_(result.edge_mask[rows[:, None], columns])  # its own copy
    pruned.metadata["pruning"] = {
        "node_threshold": node_threshold,
        "edge_threshold": edge_threshold,
        "nodes_before": graph.n_nodes,
        "edges_before": graph.n_edges,
        "total_influence": float(result.node_influence.sum()),
    }
    return pruned


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
