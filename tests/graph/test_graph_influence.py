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
    is_strictly_lower,
    normalize_rows,
    solve_strictly_lower,
)
from circuitscope.graph.scores import (
    GraphScores,
    circuit_tracer_scores,
    error_share_by_layer,
    graph_scores,
)

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


@pytest.mark.parametrize("chunk_elements", [1, 5, 13, 10**9])
def test_scores_are_the_same_whatever_the_chunk(chunk_elements):
    # 4 rows over 6 nodes (rows: nodes 0..2 and the logit 5), in chunks of a part of a
    # row (one row each), a row and a bit, two rows and a bit, everything at once.
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    values[:, 5] = 0.0  # nothing leaves the logit
    values[0, 0] = values[1, :2] = values[2, :3] = 0.0  # acyclic: a row reads later nodes
    nodes = torch.tensor([0, 1, 2, 5])
    weights = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    result = influence_scores(values, nodes, weights, chunk_elements=chunk_elements)
    block = values[:, nodes].abs() / values.abs().sum(dim=1, keepdim=True)
    coefficients = weights[nodes] @ torch.linalg.inv(torch.eye(4, dtype=torch.float64) - block)
    expected = coefficients / values.abs().sum(dim=1) @ values.abs()
    torch.testing.assert_close(result.scores, expected, rtol=1e-12, atol=1e-12)


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


# --- circuit-tracer's formulas beside ours ---------------------------------------------------
def circuit_tracer_by_loops(graph: Graph) -> tuple[float, float]:
    """circuit-tracer's `compute_graph_scores` (circuit_tracer/graph.py), redone with plain
    loops over the square adjacency [target][source]: rows scaled by max(sum |a|, 1e-10);
    influence = w A + w A^2 + ... (w the logit probabilities); replacement = token / (token
    + error) influence; completeness sums over every node (features, errors, tokens,
    logits) (1 - its row's error share) * (its influence + its probability), over the sum
    of (influence + probability)."""
    square = graph.adjacency.tolist()
    kinds = graph.node_kind.tolist()
    n = len(kinds)
    norm = []
    for row in square:
        total = max(sum(abs(a) for a in row), 1e-10)
        norm.append([abs(a) / total for a in row])
    w = [
        float(v) if k == LOGIT else 0.0
        for k, v in zip(kinds, graph.node_value.tolist(), strict=True)
    ]
    node_influence, current = [0.0] * n, w
    for _ in range(n + 1):
        current = [sum(current[t] * norm[t][s] for t in range(n)) for s in range(n)]
        node_influence = [a + b for a, b in zip(node_influence, current, strict=True)]
    token = sum(x for x, k in zip(node_influence, kinds, strict=True) if k == TOKEN)
    error = sum(x for x, k in zip(node_influence, kinds, strict=True) if k == ERROR)
    explained = total = 0.0
    for t in range(n):
        non_error = 1.0 - sum(norm[t][s] for s in range(n) if kinds[s] == ERROR)
        output = node_influence[t] + w[t]
        explained += non_error * output
        total += output
    return token / (token + error), explained / total


def feature_error_token_logit() -> Graph:
    """f=0, e=1, t=2, L=3 (p=1): L <- f (1), L <- e (1); f <- t (1)."""
    kinds = [FEATURE, ERROR, TOKEN, LOGIT]
    return make_graph(kinds, {(3, 0): 1.0, (3, 1): 1.0, (0, 2): 1.0}, [1.0, 0.0, 0.0, 1.0])


def inputless_feature() -> Graph:
    """f=0 (no input edges), e=1, t=2 (no edges), L=3 (p=1): L <- f (3), L <- e (-1)."""
    kinds = [FEATURE, ERROR, TOKEN, LOGIT]
    return make_graph(kinds, {(3, 0): 3.0, (3, 1): -1.0}, [1.0, 0.0, 0.0, 1.0])


# (graph, replacement, ours, circuit-tracer's), worked out by hand:
HAND_SCORES = [
    # Ā: L: f 0.5, e 0.5; f: t 1. Influence f 0.5, e 0.5, t 0.5 (through f).
    # replacement 0.5 / (0.5 + 0.5).
    # ours: L (weight 1, non-error 0.5), f (0.5, 1): (0.5 + 0.5) / (1 + 0.5) = 2/3.
    # circuit-tracer adds e and t (0.5 each, non-error 1):
    #   (0.5 + 0.5 + 0.5 + 0.5) / (1 + 0.5 + 0.5 + 0.5) = 2 / 2.5 = 0.8.
    (feature_error_token_logit, 0.5, 2 / 3, 0.8),
    # diamond (graph_builders): influence a 0.125, b 0.375, e 0.1875, t 0.3125; L p 0.5.
    # replacement 0.3125 / (0.3125 + 0.1875) = 0.625.
    # ours: a (0.125, 1), b (0.375, 0.5), L (0.5, 1): (0.125 + 0.1875 + 0.5) / 1 = 0.8125.
    # circuit-tracer adds e 0.1875 and t 0.3125: (0.8125 + 0.5) / (1 + 0.5) = 0.875.
    (diamond, 0.625, 0.8125, 0.875),
    # Ā: L: f 0.75, e 0.25; f has no input edges. Influence f 0.75, e 0.25, t 0.
    # replacement 0 / (0 + 0.25) = 0.
    # ours: only L has inputs (1, 0.75): 0.75 / 1 = 0.75.
    # circuit-tracer: L 1 * 0.75, f 0.75 * 1 (empty row), e 0.25 * 1, t 0:
    #   (0.75 + 0.75 + 0.25) / (1 + 0.75 + 0.25) = 1.75 / 2 = 0.875.
    (inputless_feature, 0.0, 0.75, 0.875),
]


@pytest.mark.parametrize(("build", "replacement", "ours", "theirs"), HAND_SCORES)
def test_both_completeness_definitions_by_hand(build, replacement, ours, theirs):
    graph = build()
    scores, circuit_tracer = graph_scores(graph), circuit_tracer_scores(graph)
    assert scores.replacement == pytest.approx(replacement, abs=1e-12)
    assert circuit_tracer.replacement == pytest.approx(replacement, abs=1e-12)
    assert scores.completeness == pytest.approx(ours, abs=1e-12)
    assert circuit_tracer.completeness == pytest.approx(theirs, abs=1e-12)
    assert circuit_tracer.completeness > scores.completeness  # the two definitions differ
    assert circuit_tracer_by_loops(graph) == pytest.approx((replacement, theirs), abs=1e-12)


def layered_random_graph(seed: int) -> Graph:
    """6 features in 3 layers (inputs from lower layers, errors and tokens), 4 errors,
    3 tokens, 2 logits; about 60% of the possible edges, random signs and sizes."""
    generator = torch.Generator().manual_seed(seed)
    kinds = [FEATURE] * 6 + [ERROR] * 4 + [TOKEN] * 3 + [LOGIT] * 2
    n_sources = len(kinds) - 2
    edges = {}
    for target in [*range(6), n_sources, n_sources + 1]:
        for source in range(n_sources):
            lower = source >= 6 or target >= n_sources or source // 2 < target // 2
            if lower and float(torch.rand(1, generator=generator)) < 0.6:
                edges[(target, source)] = float(torch.randn(1, generator=generator))
    return make_graph(kinds, edges, [1.0] * 6 + [0.0] * 7 + [0.7, 0.3])


@pytest.mark.parametrize("seed", range(5))
def test_circuit_tracer_scores_match_its_formula_on_random_graphs(seed):
    graph = layered_random_graph(seed)
    circuit_tracer = circuit_tracer_scores(graph)
    replacement, completeness = circuit_tracer_by_loops(graph)
    assert circuit_tracer.replacement == pytest.approx(replacement, rel=1e-12)
    assert circuit_tracer.completeness == pytest.approx(completeness, rel=1e-12)
    assert graph_scores(graph).replacement == pytest.approx(replacement, rel=1e-12)
    assert circuit_tracer.completeness >= graph_scores(graph).completeness


def test_all_scores_are_one_without_error_nodes():
    # f=0, t=1, L=2 (p=1): L <- f (1), L <- t (-1); f <- t (2). No error nodes at all.
    kinds = [FEATURE, TOKEN, LOGIT]
    graph = make_graph(kinds, {(2, 0): 1.0, (2, 1): -1.0, (0, 1): 2.0}, [1.0, 0.0, 1.0])
    for scores in (graph_scores(graph), circuit_tracer_scores(graph)):
        assert scores == GraphScores(replacement=1.0, completeness=1.0)
    assert circuit_tracer_by_loops(graph) == (1.0, 1.0)
    # error nodes without edges: the same
    diamond_graph = diamond()
    diamond_graph.edges[:, diamond_graph.span(ERROR)] = 0.0
    assert circuit_tracer_scores(diamond_graph) == GraphScores(1.0, 1.0)


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


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_positive_values_leave_out_negatives_and_zeros(dtype):
    """numpy's path (fp32, fp64) and torch's (others) keep the same entries, in order."""
    from circuitscope.graph.influence import _positive_values

    scores = torch.tensor([[-1.0, 2.0, -0.0], [0.5, -3.0, 0.0], [4.0, -0.5, 1.0]], dtype=dtype)
    result = _positive_values(scores, chunk=4)
    assert result.dtype == dtype and result.tolist() == [2.0, 0.5, 4.0, 1.0]


def test_error_share_by_layer_by_hand():
    # logit (p=1) <- f (1), <- e1 (1); f <- t (1), <- e0 (1); e0 at layer 0, e1 at layer 1.
    kinds = [FEATURE, ERROR, ERROR, TOKEN, LOGIT]
    edges = {(4, 0): 1.0, (4, 2): 1.0, (0, 3): 1.0, (0, 1): 1.0}
    graph = make_graph(kinds, edges, [1.0, 0.0, 0.0, 0.0, 1.0])
    graph.node_layer[2] = 1
    # influence: f 0.5, e1 0.5, t 0.25, e0 0.25; of the sources' 1.0, t has 0.25
    shares = error_share_by_layer(graph)
    torch.testing.assert_close(shares, torch.tensor([0.25, 0.5], dtype=torch.float64))
    assert float(shares.sum()) == pytest.approx(1 - graph_scores(graph).replacement)


# --- the triangular solve ----------------------------------------------------------------------
def random_block(n_features: int, n_logits: int, n_other: int, seed: int) -> torch.Tensor:
    """Ā [n_features + n_logits, n_features + n_other]: features read only earlier
    features (a strictly lower feature block), as a trace's graph does."""
    generator = torch.Generator().manual_seed(seed)
    edges = torch.rand(n_features + n_logits, n_features + n_other, generator=generator)
    edges = edges.double() * (torch.rand(edges.shape, generator=generator) < 0.3)
    edges[:n_features, :n_features] = torch.tril(edges[:n_features, :n_features], diagonal=-1)
    return normalize_rows(edges)


@pytest.mark.parametrize("block", [1, 3, 7, 256])
def test_the_solve_is_the_series(block: int):
    lower = random_block(20, 0, 0, seed=block)
    start = torch.rand(20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    series, step = start.clone(), start.clone()
    for _ in range(21):
        step = step @ lower
        series += step
    assert not step.any()  # 21 steps end a walk over 20 features
    torch.testing.assert_close(
        solve_strictly_lower(lower, start, block=block), series, rtol=1e-12, atol=1e-14
    )


def test_influence_of_a_triangular_graph_matches_the_inverse():
    normalized = random_block(600, 4, 50, seed=0)  # three blocks of the solve
    weights = torch.tensor([0.5, 0.25, 0.15, 0.1], dtype=torch.float64)
    assert is_strictly_lower(normalized[:600, :600])
    expected = influence_by_inverse(normalized, weights)
    torch.testing.assert_close(influence(normalized, weights), expected, rtol=1e-10, atol=1e-14)
    walked = influence(normalized, weights, max_steps=601)  # the step-by-step walk
    torch.testing.assert_close(walked, expected, rtol=1e-10, atol=1e-14)


def test_a_dag_out_of_order_is_walked():
    """Features not ordered by layer: not triangular, the walk gives the same influence."""
    normalized = random_block(40, 2, 5, seed=3)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    rows = torch.cat([order, torch.tensor([40, 41])])
    columns = torch.cat([order, torch.arange(40, 45)])
    shuffled = normalized[rows][:, columns]
    assert not is_strictly_lower(shuffled[:40, :40])
    weights = torch.tensor([0.7, 0.3], dtype=torch.float64)
    result = influence(shuffled, weights)
    torch.testing.assert_close(
        result[:40], influence(normalized, weights)[order], rtol=1e-10, atol=1e-14
    )


@pytest.mark.parametrize(
    ("entry", "lower"), [((2, 1), True), ((1, 1), False), ((1, 2), False), ((0, 9), False)]
)
def test_is_strictly_lower(entry: tuple[int, int], lower: bool):
    square = torch.zeros(10, 10)
    square[entry] = 1.0
    assert is_strictly_lower(square, block=4) is lower
