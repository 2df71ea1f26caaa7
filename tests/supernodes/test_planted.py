"""Planted ground truth: suggestions against known groups, ours against the baseline."""

import statistics

import pytest
import torch

from circuitscope.graph.graph import FEATURE
from circuitscope.graph.supernodes import SupernodeSettings, cluster_features, suggest_supernodes
from circuitscope.graph.supernodes_clustering import adjusted_rand_index
from circuitscope.graph.supernodes_planted import PLANTED_KINDS, planted_graph

SEEDS = range(8)  # the thresholds were chosen on seeds 100 and up (benchmarks/supernodes.py)


def mean_ari(kind: str, method: str) -> float:
    scores = []
    for seed in SEEDS:
        planted = planted_graph(kind, seed)  # type: ignore[arg-type]
        clusters = cluster_features(planted.graph, SupernodeSettings(method))  # type: ignore[arg-type]
        scores.append(adjusted_rand_index(planted.truth, clusters))
    return statistics.mean(scores)


@pytest.mark.parametrize("kind", PLANTED_KINDS)
def test_ours_recovers_planted_groups_and_beats_the_baseline(kind):
    ours, baseline = mean_ari(kind, "ours"), mean_ari(kind, "baseline")
    assert ours >= 0.85
    assert ours >= baseline + 0.15


def test_planted_graphs_hold_what_they_claim():
    repeated = planted_graph("repeated", 0)
    graph, truth = repeated.graph, repeated.truth
    assert bool((graph.node_kind[: len(truth)] == FEATURE).all()) and len(truth) == graph.n_features
    for role in truth.unique().tolist():  # a repeated role: one feature, several positions
        members = torch.nonzero(truth == role).flatten()
        assert len({int(graph.node_feature[m]) for m in members}) == 1
    split = planted_graph("split", 0)
    sizes = torch.bincount(split.truth.unique(return_inverse=True)[1])
    assert int((sizes >= 2).sum()) >= 6  # most roles keep several near-duplicates
    two = planted_graph("two_circuits", 0)
    assert two.graph.n_logits == 4 and graph.n_logits == 2
    assert torch.equal(planted_graph("split", 3).graph.edges, planted_graph("split", 3).graph.edges)


def test_the_same_graph_gives_the_same_suggestions():
    graph = planted_graph("two_circuits", 1).graph
    first = suggest_supernodes(graph, SupernodeSettings())
    second = suggest_supernodes(graph, SupernodeSettings())
    assert [g.members for g in first] == [g.members for g in second]
    assert [g.label for g in first] == [g.label for g in second]
    assert [g.evidence for g in first] == [g.evidence for g in second]
    assert len(first) >= 8
