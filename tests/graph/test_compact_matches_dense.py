"""The edge block gives the same numbers as the square adjacency did.

The dense formulas below are the ones circuitscope used on `adjacency` [n, n]
before graphs stored only `edges`; each is compared with the compact path on a
random hand-built graph and on a traced tiny graph, in float64.
"""

import pytest
import torch
from graph_builders import make_graph
from torch import Tensor

from circuitscope.graph.effects import total_effects_on_logits
from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph, adjacency_from_edges
from circuitscope.graph.influence import cumulative_threshold, influence, normalize_rows
from circuitscope.graph.prune import prune_graph, prune_masks
from circuitscope.graph.scores import graph_scores
from circuitscope.testing.tiny_graphs import traced_tiny


def assert_exact(actual: Tensor, expected: Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


# --- the dense reference ------------------------------------------------------------------
def dense_weights(graph: Graph) -> Tensor:
    return torch.where(graph.node_kind == LOGIT, graph.node_value, 0.0).double()


def dense_normalize(adjacency: Tensor) -> Tensor:
    magnitude = adjacency.abs()
    sums = magnitude.sum(dim=1, keepdim=True)
    return magnitude * torch.where(sums > 0, 1.0 / sums.clamp(min=1e-30), 0.0)


def dense_influence(normalized: Tensor, weights: Tensor) -> Tensor:
    current = weights @ normalized
    total = current.clone()
    for _ in range(len(normalized)):
        if not torch.any(current):
            break
        current = current @ normalized
        total += current
    return total


def dense_threshold(scores: Tensor, fraction: float) -> Tensor:
    flat = scores.flatten()
    positive = flat[flat > 0]
    ordered = torch.sort(positive, descending=True).values
    cumulative = torch.cumsum(ordered, dim=0) / ordered.sum()
    index = int(torch.searchsorted(cumulative, torch.tensor(fraction, dtype=cumulative.dtype)))
    return ordered[min(index, len(ordered) - 1)]


def dense_scores(graph: Graph) -> tuple[float, float]:
    weights, normalized = dense_weights(graph), dense_normalize(graph.adjacency)
    node_influence = dense_influence(normalized, weights)
    errors, tokens = graph.node_kind == ERROR, graph.node_kind == TOKEN
    error_influence, token_influence = node_influence[errors].sum(), node_influence[tokens].sum()
    replacement = float(token_influence / (token_influence + error_influence))
    non_error = 1.0 - normalized[:, errors].sum(dim=1)
    output = (node_influence + weights) * (normalized.sum(dim=1) > 0)
    return replacement, float((non_error * output).sum() / output.sum())


def dense_prune(graph: Graph, node_threshold: float, edge_threshold: float):
    adjacency, kind, weights = graph.adjacency, graph.node_kind, dense_weights(graph)
    node_influence = dense_influence(dense_normalize(adjacency), weights)
    always = (kind == TOKEN) | (kind == LOGIT)
    node_mask = (node_influence >= dense_threshold(node_influence, node_threshold)) | always
    both = node_mask[:, None] & node_mask[None, :]
    scores = dense_normalize(adjacency * both)
    scores = scores * (dense_influence(scores, weights) + weights)[:, None]
    edge_mask = (scores >= dense_threshold(scores, edge_threshold)) & (adjacency != 0) & both
    sources_only, features = (kind == FEATURE) | (kind == ERROR), kind == FEATURE
    while True:
        edges = edge_mask & node_mask[:, None] & node_mask[None, :]
        updated = node_mask & ~(sources_only & ~edges.any(0)) & ~(features & ~edges.any(1))
        if torch.equal(updated, node_mask):
            break
        node_mask = updated
    return node_mask, edge_mask & node_mask[:, None] & node_mask[None, :], node_influence


def dense_total_effects(graph: Graph, sources: Tensor) -> Tensor:
    activation = torch.ones(graph.n_nodes, dtype=torch.float64)
    features, logits = graph.indices(FEATURE), graph.indices(LOGIT)
    values = graph.node_value.double()
    activation[features] = torch.where(values[features] != 0, values[features], 1.0)
    unit = graph.adjacency / activation
    change = activation[sources] * (graph.node_kind[sources] == FEATURE) + (
        graph.node_kind[sources] != FEATURE
    )
    b_ff = unit[features][:, features]
    moved = torch.linalg.solve(torch.eye(len(features)) - b_ff, unit[features][:, sources] * change)
    return unit[logits][:, sources] * change + unit[logits][:, features] @ moved


# --- graphs ---------------------------------------------------------------------------------
def random_graph(seed: int = 0, n_features: int = 12, n_logits: int = 3) -> Graph:
    """Features in 4 layers (edges only from lower layers), 8 errors, 4 tokens, logits;
    about half the possible edges, random signs and sizes."""
    generator = torch.Generator().manual_seed(seed)
    kinds = [FEATURE] * n_features + [ERROR] * 8 + [TOKEN] * 4 + [LOGIT] * n_logits
    layer = torch.arange(n_features) * 4 // n_features
    n_sources = len(kinds) - n_logits
    edges = {}
    for target in [*range(n_features), *range(n_sources, len(kinds))]:
        for source in range(n_sources):
            lower = source >= n_features or target >= n_sources or layer[source] < layer[target]
            if lower and float(torch.rand(1, generator=generator)) < 0.5:
                edges[(target, source)] = float(torch.randn(1, generator=generator))
    values = torch.rand(len(kinds), generator=generator) + 0.1
    values[n_features:n_sources] = 0.0
    values[n_sources:] = values[n_sources:] / values[n_sources:].sum()
    return make_graph(kinds, edges, values.tolist())


@pytest.fixture(scope="module", params=["random", "traced"])
def graph(request) -> Graph:
    if request.param == "random":
        return random_graph()
    traced = traced_tiny("llama", "clt").graph
    assert traced.edges.dtype == torch.float64
    return traced


# --- the comparisons -------------------------------------------------------------------------
def test_influence(graph: Graph):
    compact = influence(normalize_rows(graph.edges), graph.logit_weights())
    dense = dense_influence(dense_normalize(graph.adjacency), dense_weights(graph))
    assert_exact(compact, dense[: graph.n_sources])
    assert not dense[graph.n_sources :].any()


def test_scores(graph: Graph):
    scores = graph_scores(graph)
    replacement, completeness = dense_scores(graph)
    assert scores.replacement == pytest.approx(replacement, rel=1e-12, abs=1e-12)
    assert scores.completeness == pytest.approx(completeness, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("node_threshold", "edge_threshold"), [(0.8, 0.98), (0.5, 0.7)])
def test_prune_masks_and_graph(graph: Graph, node_threshold: float, edge_threshold: float):
    result = prune_masks(
        graph.edges, graph.node_kind, graph.logit_weights(), node_threshold, edge_threshold
    )
    node_mask, edge_mask, node_influence = dense_prune(graph, node_threshold, edge_threshold)
    assert torch.equal(result.node_mask, node_mask)
    assert torch.equal(adjacency_from_edges(result.edge_mask, graph.node_kind), edge_mask)
    assert_exact(result.node_influence, node_influence)
    pruned = prune_graph(graph, node_threshold, edge_threshold)
    kept = torch.nonzero(node_mask).flatten()
    expected = (graph.adjacency * edge_mask)[kept][:, kept]
    assert torch.equal(pruned.adjacency, expected) and pruned.n_edges == int(edge_mask.sum())


def test_total_effects(graph: Graph):
    sources = torch.cat([graph.indices(FEATURE)[:6], graph.indices(ERROR)[-3:]])
    sources = torch.cat([sources, graph.indices(TOKEN)[-2:]])
    compact = total_effects_on_logits(graph, sources)
    assert_exact(compact, dense_total_effects(graph, sources))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cumulative_threshold_is_the_sorted_reference(dtype: torch.dtype):
    generator = torch.Generator().manual_seed(1)
    scores = torch.rand(300, 500, generator=generator, dtype=dtype)
    scores[scores < 0.6] = 0.0
    scores[:, :7] = 0.25  # ties
    for fraction in (0.1, 0.5, 0.8, 0.98, 1.0):
        expected = dense_threshold(scores, fraction)
        assert torch.equal(cumulative_threshold(scores, fraction), expected)
        assert torch.equal(cumulative_threshold(scores.T, fraction), expected)
