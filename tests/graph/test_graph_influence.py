"""Influence, thresholds and scores on hand-built graphs with known answers."""

import pytest
import torch
from graph_builders import diamond, make_graph

from circuitscope.attribution.influence_estimate import influence_scores
from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph
from circuitscope.graph.influence import (
    cumulative_threshold,
    influence,
    influence_by_inverse,
    normalize_rows,
)
from circuitscope.graph.scores import graph_scores

DIAMOND_INFLUENCE = torch.tensor([0.125, 0.375, 0.1875, 0.3125, 0.0], dtype=torch.float64)
"""Influence of a, b, e, t, L; `influence` returns it for the sources (all but L)."""


def test_normalize_rows():
    a = torch.tensor([[1.0, -3.0], [0.0, 0.0]])
    assert torch.equal(normalize_rows(a), torch.tensor([[0.25, 0.75], [0.0, 0.0]]))
    assert normalize_rows(a, in_place=True) is a and a.tolist() == [[0.25, 0.75], [0.0, 0.0]]


def test_diamond_influence_by_series_and_inverse():
    graph = diamond()
    normalized = normalize_rows(graph.edges)
    weights = graph.logit_weights()
    torch.testing.assert_close(influence(normalized, weights), DIAMOND_INFLUENCE[:4])
    torch.testing.assert_close(influence_by_inverse(normalized, weights), DIAMOND_INFLUENCE[:4])


def node_weights(graph) -> torch.Tensor:
    """[n] the logit weights on the logit nodes, 0 elsewhere (influence_scores' weights)."""
    return torch.where(graph.node_kind == LOGIT, graph.node_value, 0.0)


def test_scores_from_every_row_are_the_influence():
    graph = diamond()
    rows = torch.tensor([4, 0, 1])  # the nodes that have incoming edges
    result = influence_scores(graph.adjacency[rows], rows, node_weights(graph)).scores
    torch.testing.assert_close(result, DIAMOND_INFLUENCE)


def test_scores_from_the_logit_rows_only():
    graph = diamond()
    rows = torch.tensor([4])
    result = influence_scores(graph.adjacency[rows], rows, node_weights(graph)).scores
    expected = torch.tensor([0.125, 0.375, 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(result, expected)


def test_a_cycle_is_detected():
    kinds = [FEATURE, FEATURE, LOGIT]
    graph = make_graph(kinds, {(0, 1): 1.0, (1, 0): 1.0, (2, 0): 1.0}, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="cycle"):
        influence(normalize_rows(graph.edges), graph.logit_weights())


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.4, 4.0), (0.5, 3.0), (0.7, 3.0), (0.71, 2.0), (1.0, 1.0)]
)
def test_cumulative_threshold(fraction, expected):
    scores = torch.tensor([1.0, 4.0, 2.0, 3.0])  # cumulative shares 0.4, 0.7, 0.9, 1.0
    assert float(cumulative_threshold(scores, fraction)) == expected


def test_scores_by_hand():
    # logit (p=1) <- f (1), <- e (1); f <- t (1).
    kinds = [FEATURE, ERROR, TOKEN, LOGIT]
    graph = make_graph(kinds, {(3, 0): 1.0, (3, 1): 1.0, (0, 2): 1.0}, [1.0, 0.0, 0.0, 1.0])
    scores = graph_scores(graph)
    # influence: f 0.5, e 0.5, t 0.5 -> replacement 0.5 / (0.5 + 0.5)
    assert scores.replacement == pytest.approx(0.5)
    # nodes with inputs: logit (weight 1, non-error share 0.5), f (influence 0.5, share 1)
    assert scores.completeness == pytest.approx((1 * 0.5 + 0.5 * 1) / 1.5)


def test_scores_are_one_without_error_edges():
    graph = diamond()
    graph.edges[:, graph.span(ERROR)] = 0.0
    scores = graph_scores(graph)
    assert scores.replacement == 1.0 and scores.completeness == 1.0


def test_graph_checks_its_shape_and_order():
    graph = diamond()
    with pytest.raises(ValueError, match="ordered"):
        make_graph([LOGIT, FEATURE], {}, [1.0, 1.0])
    assert graph.n_features == 2 and graph.n_logits == 1 and graph.n_edges == 5
    assert graph.node_label(4) == "logit 'logit0'"
    with pytest.raises(ValueError, match=r"edges are \(3, 3\), expected \(3, 4\)"):
        Graph(**{**graph.__dict__, "edges": graph.edges[:, :3]})


def test_edge_block_layout():
    graph = diamond()  # rows a, b, L; columns a, b, e, t
    assert graph.edges.shape == (3, 4) and graph.target_nodes().tolist() == [0, 1, 4]
    assert graph.edges.tolist() == [[0, 0, 0, 2], [0, 0, -1, 1], [1, -3, 0, 0]]
    assert graph.edge(4, 1) == -3.0 and graph.edge(1, 2) == -1.0 and graph.edge(2, 3) == 0.0
    assert graph.span(ERROR) == slice(2, 3) and graph.span(TOKEN) == slice(3, 4)
    square = graph.adjacency
    assert square.shape == (5, 5) and int(torch.count_nonzero(square)) == 5
    assert square[4, 1] == -3.0 and square[0, 3] == 2.0


@pytest.mark.parametrize(("edge", "problem"), [((3, 0), "into error or token"),
                                                ((2, 3), "into error or token"),
                                                ((0, 4), "out of logit")])  # fmt: skip
def test_edges_outside_the_block_are_refused(edge, problem):
    with pytest.raises(ValueError, match=problem):
        make_graph([FEATURE, FEATURE, ERROR, TOKEN, LOGIT], {edge: 1.0}, [1.0] * 5)


def test_positive_values_are_gathered_in_chunks():
    from circuitscope.graph.influence import _positive_values

    scores = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0], [0.0, 0.0, 0.0], [4.0, 5.0, 0.0]])
    assert _positive_values(scores, chunk=2).tolist() == [2.0, 1.0, 3.0, 4.0, 5.0]
    assert _positive_values(scores.T, chunk=5).tolist() == [1.0, 4.0, 2.0, 5.0, 3.0]
