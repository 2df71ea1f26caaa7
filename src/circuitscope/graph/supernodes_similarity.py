"""How alike two feature nodes of a graph are, as signals for grouping them into supernodes.

- Signed edge profile (the baseline: Neuronpedia's draft, hijohnnylin/neuronpedia PR #229):
  a feature node's incoming row and outgoing column of `Graph.edges`, each scaled to unit
  norm and concatenated; two nodes' similarity is the cosine of their profiles. Partners
  are nodes, so the same role at two token positions (different partners) looks unrelated.
- Pooled inputs and pooled outputs: a node's incoming and outgoing edges with partners
  pooled over positions (a partner is a feature (layer, index), an error layer, a token
  id or a logit), compared separately, so a feature repeated across positions, or split
  into near-duplicates at different positions, reads from and writes to the same
  pooled partners. Ours asks for both: the smaller of the two cosines.
- Same feature: the nodes are one transcoder feature (layer, index) at several positions.

All matrices are [k, k] over the graph's feature nodes (node indices 0..k-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph


@dataclass
class Similarities:
    """Every signal, [k, k] over the feature nodes."""

    edge_profile: Tensor
    """Cosine of signed edge profiles (partners are nodes)."""
    pooled_inputs: Tensor
    """Cosine of signed incoming edges, partners pooled over positions."""
    pooled_outputs: Tensor
    """Cosine of signed outgoing edges, partners pooled over positions."""
    same_feature: Tensor
    """bool: the two nodes are one feature at different positions."""

    def combined(self) -> Tensor:
        """Our similarity: 1 for one feature at several positions, else the smaller of the
        pooled input and output cosines (alike in what they read and in what they write)."""
        pooled = torch.minimum(self.pooled_inputs, self.pooled_outputs)
        return torch.where(self.same_feature, 1.0, pooled)


def similarities(graph: Graph) -> Similarities:
    """All signals of `graph`'s feature nodes."""
    incoming, outgoing = pooled_edges(graph)
    return Similarities(
        edge_profile=cosine_matrix(signed_edge_profiles(graph)),
        pooled_inputs=cosine_matrix(incoming),
        pooled_outputs=cosine_matrix(outgoing),
        same_feature=same_feature(graph),
    )


def signed_edge_profiles(graph: Graph) -> Tensor:
    """[k, n_sources + n_targets] each feature node's incoming row and outgoing column of
    `graph.edges`, each half scaled to unit norm (a half with no edges stays zero)."""
    k = graph.n_features
    incoming = graph.edges[:k].double()
    outgoing = graph.edges[:, :k].T.double()
    return torch.cat([unit_rows(incoming), unit_rows(outgoing)], dim=1)


def pooled_edges(graph: Graph) -> tuple[Tensor, Tensor]:
    """([k, n_keys] incoming, [k, n_keys] outgoing): each feature node's signed edges with
    partners summed over positions (see `partner_keys`)."""
    k = graph.n_features
    keys, n_keys = partner_keys(graph)
    incoming = torch.zeros(k, n_keys, dtype=torch.float64)
    incoming.index_add_(1, keys[: graph.n_sources], graph.edges[:k].double())
    outgoing = torch.zeros(k, n_keys, dtype=torch.float64)
    outgoing.index_add_(1, keys[graph.target_nodes()], graph.edges[:, :k].T.double())
    return incoming, outgoing


def partner_keys(graph: Graph) -> tuple[Tensor, int]:
    """([n] a key per node that ignores its position, the number of keys): features by
    (layer, index), error nodes by layer, tokens by token id, logits by token id and rank."""
    kind, layer, feature = graph.node_kind, graph.node_layer, graph.node_feature
    logit_rank = torch.cumsum((kind == LOGIT).long(), 0)
    what = torch.where(kind == FEATURE, feature, torch.zeros_like(feature))
    what = torch.where(kind == TOKEN, feature, what)
    what = torch.where(kind == LOGIT, logit_rank, what)
    where = torch.where((kind == FEATURE) | (kind == ERROR), layer, torch.zeros_like(layer))
    rows = torch.stack([kind, where, what], dim=1)
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    return inverse, len(unique)


def same_feature(graph: Graph) -> Tensor:
    """[k, k] bool: nodes i and j are the same transcoder feature (layer and index)."""
    k = graph.n_features
    layer, feature = graph.node_layer[:k], graph.node_feature[:k]
    return (layer[:, None] == layer[None, :]) & (feature[:, None] == feature[None, :])


def unit_rows(matrix: Tensor) -> Tensor:
    """[k, m] each row divided by its norm (zero rows stay zero)."""
    norms = matrix.norm(dim=1, keepdim=True)
    return matrix / torch.where(norms > 0, norms, 1.0)


def cosine_matrix(profiles: Tensor) -> Tensor:
    """[k, k] cosine similarity of the rows of `profiles` [k, m] (0 for a zero row); the
    profiles are sparse (a node has few edges), so the product is taken sparse."""
    unit = unit_rows(profiles)
    return torch.sparse.mm(unit.to_sparse(), unit.T.contiguous())
