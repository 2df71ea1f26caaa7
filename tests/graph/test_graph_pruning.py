"""Pruning on hand-built graphs: which nodes and edges stay, exactly."""

import torch
from graph_builders import diamond, make_graph

from circuitscope.graph.graph import FEATURE, LOGIT, TOKEN, adjacency_from_edges
from circuitscope.graph.prune import prune_graph, prune_masks


def kept_edges(result, graph) -> list[list[int]]:
    """The kept edges as [target, source] node pairs."""
    return adjacency_from_edges(result.edge_mask, graph.node_kind).nonzero().tolist()


def test_diamond_node_threshold():
    graph = diamond()  # influences: a .125, b .375, e .1875, t .3125
    # 0.55 of the total (1.0) needs b (.375) and t (.3125): features/errors below drop.
    result = prune_masks(graph.edges, graph.node_kind, graph.logit_weights(), 0.55, 1.0)
    # a and e are below the threshold; t and L always stay; b keeps its edges to t and L.
    assert result.node_mask.tolist() == [False, True, False, True, True]
    assert kept_edges(result, graph) == [[1, 3], [4, 1]]


def test_diamond_edge_threshold_drops_weak_edges_and_dangling_nodes():
    graph = diamond()
    # Edge influence (normalised weight x (influence + weight) of its target):
    #   L<-a .125, L<-b .375, a<-t .125, b<-t .1875, b<-e .1875 (total 1.0)
    result = prune_masks(graph.edges, graph.node_kind, graph.logit_weights(), 1.0, 0.5)
    # Edges holding 0.5: L<-b (.375) and one of b's .1875 edges -> threshold .1875 keeps both.
    assert kept_edges(result, graph) == [[1, 2], [1, 3], [4, 1]]
    # a lost its outgoing edge, so it goes; e keeps its edge into b.
    assert result.node_mask.tolist() == [False, True, True, True, True]


def test_prune_graph_returns_the_subgraph():
    graph = diamond()
    pruned = prune_graph(graph, node_threshold=0.55, edge_threshold=1.0)
    assert pruned.node_kind.tolist() == [FEATURE, TOKEN, LOGIT]
    assert pruned.edges.tolist() == [[0.0, 1.0], [-3.0, 0.0]]  # rows b, L; columns b, t
    assert pruned.adjacency.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-3.0, 0.0, 0.0]]
    assert pruned.node_influence is not None
    assert pruned.node_influence.tolist() == [0.375, 0.3125, 0.0]
    assert pruned.metadata["pruning"]["nodes_before"] == 5


def test_feature_without_incoming_edges_is_dropped():
    kinds = [FEATURE, FEATURE, TOKEN, LOGIT]
    # f1 feeds the logit but nothing feeds f1; f0 is fed by the token.
    edges = {(3, 0): 1.0, (3, 1): 1.0, (0, 2): 1.0}
    graph = make_graph(kinds, edges, [1.0, 1.0, 0.0, 1.0])
    result = prune_masks(graph.edges, graph.node_kind, graph.logit_weights(), 1.0, 1.0)
    assert result.node_mask.tolist() == [True, False, True, True]
    # rows f0, f1, L; columns f0, f1, t
    expected = torch.tensor([[0, 0, 1], [0, 0, 0], [1, 0, 0]], dtype=torch.bool)
    assert torch.equal(result.edge_mask, expected)
