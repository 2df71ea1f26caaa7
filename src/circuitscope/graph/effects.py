"""What a graph predicts: the total effect of changing one node, through every path.

An edge A[t, s] (`Graph.edges`: rows are targets) is the direct effect of source
s's whole output (its activation a_s times its decoder vectors) on t's input, so
per unit of activation it is B[t, s] = A[t, s] / a_s (error and token nodes have
activation 1). The graph's linear model says a feature's activation moves
one-for-one with its input (a JumpReLU above its threshold), so a change d_s of
source s moves the features by

    x = (I − B_ff)⁻¹ B_fs d_s,        and the logits by   B_ls d_s + B_lf x,

B_ff the feature-to-feature block (strictly lower triangular: edges go from
earlier to later layers), B_fs and B_ls the source's columns into features and
logits. Ablating a node is d_s = −a_s; doubling it is d_s = +a_s. Pure tensor
functions, no model; they read only the columns they need, never the whole block.
"""

from __future__ import annotations

import torch
from torch import Tensor

from circuitscope.graph.graph import FEATURE, Graph


def unit_effects(graph: Graph, columns: Tensor) -> Tensor:
    """B [n_targets, k]: the columns [k] (source nodes) of `graph.edges`, each feature's
    column divided by its activation (rows as in `Graph.edges`)."""
    values = graph.node_value[columns].to(graph.edges.dtype)
    is_feature = graph.node_kind[columns] == FEATURE
    activation = torch.where(is_feature & (values != 0), values, 1.0)
    return graph.edges.index_select(1, columns) / activation


def total_effects_on_logits(graph: Graph, sources: Tensor) -> Tensor:
    """[n_logits, k]: each logit's change when source node sources[j] gains its own
    activation once more (doubling it; ablation is the negative). sources: [k] indices."""
    n_features = graph.n_features
    features = torch.arange(n_features)
    unit = unit_effects(graph, sources)
    activation = torch.ones(len(sources), dtype=unit.dtype)
    is_feature = graph.node_kind[sources] == FEATURE
    activation[is_feature] = graph.node_value[sources][is_feature].to(unit.dtype)
    injected = unit[:n_features] * activation  # direct change of each feature input
    from_features = unit_effects(graph, features)
    b_ff = from_features[:n_features]
    identity = torch.eye(n_features, dtype=unit.dtype)
    if bool(torch.triu(b_ff).any()):  # not in layer order (e.g. an imported graph)
        moved = torch.linalg.solve(identity - b_ff, injected)
    else:
        moved = torch.linalg.solve_triangular(identity - b_ff, injected, upper=False)
    direct = unit[n_features:] * activation
    return direct + from_features[n_features:] @ moved
