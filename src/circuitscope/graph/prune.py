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

from circuitscope.graph.graph import FEATURE, LOGIT, TOKEN, Graph
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
    """[n, n] bool: edges kept."""
    node_influence: Tensor
    """[n] influence of every node in the unpruned graph."""


def prune_masks(
    adjacency: Tensor,
    node_kind: Tensor,
    logit_weights: Tensor,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
) -> PruneResult:
    """Masks of the nodes and edges to keep. adjacency [n, n]; node_kind, logit_weights [n]."""
    _check_fraction("node_threshold", node_threshold)
    _check_fraction("edge_threshold", edge_threshold)
    node_influence = influence(normalize_rows(adjacency), logit_weights)
    always = (node_kind == TOKEN) | (node_kind == LOGIT)
    node_mask = (node_influence >= cumulative_threshold(node_influence, node_threshold)) | always
    # The graph restricted to the kept nodes, normalised, then scaled into edge scores,
    # all in one n × n tensor (memory: one copy of the adjacency, not several).
    scores = normalize_rows(adjacency * node_mask[:, None] * node_mask[None, :])
    scores = edge_influence(scores, logit_weights, in_place=True)
    edge_mask = scores >= cumulative_threshold(scores, edge_threshold)
    del scores
    edge_mask &= (adjacency != 0) & node_mask[:, None] & node_mask[None, :]
    node_mask = _drop_dangling(node_mask, edge_mask, node_kind)
    edge_mask &= node_mask[:, None] & node_mask[None, :]
    return PruneResult(node_mask, edge_mask, node_influence)


def _drop_dangling(node_mask: Tensor, edge_mask: Tensor, node_kind: Tensor) -> Tensor:
    """Remove features/errors without outgoing edges and features without incoming ones."""
    node_mask = node_mask.clone()
    sources_only = (node_kind != TOKEN) & (node_kind != LOGIT)
    features = node_kind == FEATURE
    while True:
        edges = edge_mask & node_mask[:, None] & node_mask[None, :]
        has_out = edges.any(dim=0)
        has_in = edges.any(dim=1)
        updated = node_mask & ~(sources_only & ~has_out) & ~(features & ~has_in)
        if torch.equal(updated, node_mask):
            return node_mask
        node_mask = updated


def prune_graph(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Graph:
    """The pruned graph: kept nodes, kept edges (others zeroed), influences attached."""
    result = prune_masks(
        graph.adjacency, graph.node_kind, graph.logit_weights(), node_threshold, edge_threshold
    )
    graph_with_influence = Graph(**{**graph.__dict__, "node_influence": result.node_influence})
    pruned = graph_with_influence.subgraph(result.node_mask)
    kept = torch.nonzero(result.node_mask).flatten()
    pruned.adjacency = pruned.adjacency * result.edge_mask[kept][:, kept]
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
