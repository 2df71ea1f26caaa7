"""Influence, thresholds and scores on hand-built graphs with known answers."""

import pytest
import torch
from graph_builders import diamond, make_graph

from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN
from circuitscope.graph.influence import (
    cumulative_threshold,
    influence,
    influence_by_inverse,
    normalize_rows,
    partial_influence,
)
from circuitscope.graph.scores import graph_scores

DIAMOND_INFLUENCE = torch.tensor([0.125, 0.375, 0.1875, 0.3125, 0.0], dtype=torch.float64)


def test_normalize_rows():
    a = torch.tensor([[1.0, -3.0], [0.0, 0.0]])
    assert torch.equal(normalize_rows(a), torch.tensor([[0.25, 0.75], [0.0, 0.0]]))


def test_diamond_influence_by_series_and_inverse():
    graph = diamond()
    normalized = normalize_rows(graph.adjacency)
    weights = graph.logit_weights()
    torch.testing.assert_close(influence(normalized, weights), DIAMOND_INFLUENCE)
    torch.testing.assert_close(influence_by_inverse(normalized, weights), DIAMOND_INFLUENCE)


def test_partial_influence_with_every_row_is_the_influence():
    graph = diamond()
    rows = torch.tensor([4, 0, 1])  # the nodes that have incoming edges
    result = partial_influence(graph.adjacency[rows], rows, graph.logit_weights())
    torch.testing.assert_close(result, DIAMOND_INFLUENCE)


def test_partial_influence_with_logit_rows_only():
    graph = diamond()
    rows = torch.tensor([4])
    result = partial_influence(graph.adjacency[rows], rows, graph.logit_weights())
    expected = torch.tensor([0.125, 0.375, 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(result, expected)


def test_a_cycle_is_detected():
    kinds = [FEATURE, FEATURE, LOGIT]
    graph = make_graph(kinds, {(0, 1): 1.0, (1, 0): 1.0, (2, 0): 1.0}, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="cycle"):
        influence(normalize_rows(graph.adjacency), graph.logit_weights())


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
    graph.adjacency[:, graph.node_kind == ERROR] = 0.0
    scores = graph_scores(graph)
    assert scores.replacement == 1.0 and scores.completeness == 1.0


def test_graph_checks_its_shape_and_order():
    graph = diamond()
    with pytest.raises(ValueError, match="ordered"):
        make_graph([LOGIT, FEATURE], {}, [1.0, 1.0])
    assert graph.n_features == 2 and graph.n_logits == 1 and graph.n_edges == 5
    assert graph.node_label(4) == "logit 'logit0'"
