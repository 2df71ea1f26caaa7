"""An attribution graph is a DAG that respects layers and positions."""

import torch

from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN
from circuitscope.graph.influence import influence, is_strictly_lower, normalize_rows
from circuitscope.testing.tiny_graphs import tiny_graph


def test_edges_only_point_forward(arch):
    graph = tiny_graph(arch, "clt")
    rows, sources = torch.nonzero(graph.edges, as_tuple=True)
    targets = graph.target_nodes()[rows]
    kind_t, kind_s = graph.node_kind[targets], graph.node_kind[sources]
    assert torch.all((kind_t == FEATURE) | (kind_t == LOGIT)), (
        "only features and logits have inputs"
    )
    assert torch.all(kind_s != LOGIT), "logits are never sources"
    assert torch.all(graph.node_position[sources] <= graph.node_position[targets])
    into_features = kind_t == FEATURE
    from_layered = (kind_s == FEATURE) | (kind_s == ERROR)
    both = into_features & from_layered
    assert torch.all(graph.node_layer[sources][both] < graph.node_layer[targets][both])
    assert bool(both.any()) and bool((kind_s == TOKEN).any())
    # No feature at the BOS position, and influence is finite (no cycle).
    assert torch.all(graph.node_position[graph.node_kind == FEATURE] > 0)
    scores = influence(normalize_rows(graph.edges), graph.logit_weights())
    assert torch.isfinite(scores).all() and scores.sum() > 0


def test_the_feature_block_is_strictly_lower_triangular(arch):
    """Features are ordered by layer and read only lower layers, so `influence` sums its
    series by one triangular solve; a graph out of that order would fall back to the
    step-by-step walk (the same numbers, slower)."""
    for kind in ("clt", "plt"):
        graph = tiny_graph(arch, kind)
        n = graph.n_features
        assert n > 0 and is_strictly_lower(graph.edges[:n, :n])
        assert torch.all(torch.diff(graph.node_layer[:n]) >= 0)
