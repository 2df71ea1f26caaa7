"""Agglomerative clustering against a naive greedy reference, and the adjusted Rand index."""

import pytest
import torch

from circuitscope.graph.supernodes_clustering import adjusted_rand_index, agglomerate


def greedy_reference(similarity: torch.Tensor, threshold: float, linkage: str) -> list[set[int]]:
    """Merge the most similar pair of clusters (by the linkage's cluster similarity) while
    it is at least `threshold`: the textbook definition, slow."""
    clusters = [{i} for i in range(len(similarity))]

    def between(a: set[int], b: set[int]) -> float:
        values = similarity[list(a)][:, list(b)]
        return float(values.mean() if linkage == "average" else values.min())

    while len(clusters) > 1:
        pairs = [
            (between(a, b), i, j)
            for i, a in enumerate(clusters)
            for j, b in enumerate(clusters)
            if i < j
        ]
        value, i, j = max(pairs)
        if value < threshold:
            break
        clusters[i] |= clusters.pop(j)
    return sorted(clusters, key=min)


def as_sets(labels: torch.Tensor) -> list[set[int]]:
    groups: dict[int, set[int]] = {}
    for item, label in enumerate(labels.tolist()):
        groups.setdefault(label, set()).add(item)
    return sorted(groups.values(), key=min)


@pytest.mark.parametrize("linkage", ["average", "complete"])
@pytest.mark.parametrize("seed", range(4))
def test_agglomerate_matches_the_greedy_definition(linkage, seed):
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(40, 6, generator=generator, dtype=torch.float64)
    points = points / points.norm(dim=1, keepdim=True)
    similarity = points @ points.T
    labels = agglomerate(similarity, 0.3, linkage)
    assert as_sets(labels) == greedy_reference(similarity, 0.3, linkage)
    assert 3 < len(set(labels.tolist())) < 40  # the cut is neither trivial nor total


def test_agglomerate_numbers_clusters_by_first_appearance():
    similarity = torch.tensor([[1.0, 0.1, 0.9], [0.1, 1.0, 0.0], [0.9, 0.0, 1.0]])
    assert agglomerate(similarity, 0.5).tolist() == [0, 1, 0]
    assert agglomerate(similarity, 0.95).tolist() == [0, 1, 2]
    assert agglomerate(similarity, -1.0).tolist() == [0, 0, 0]


def test_adjusted_rand_index_known_values():
    truth = torch.tensor([0, 0, 1, 1, 2, 2])
    assert adjusted_rand_index(truth, torch.tensor([5, 5, 7, 7, 9, 9])) == 1.0
    # sklearn.metrics.adjusted_rand_score gives 4/9 for this pair
    assert adjusted_rand_index(truth, torch.tensor([0, 0, 1, 2, 2, 2])) == pytest.approx(4 / 9)
    # every item alone against pairs: no agreeing pair, and the index is 0
    assert adjusted_rand_index(truth, torch.arange(6)) == pytest.approx(0.0)
    assert adjusted_rand_index(torch.zeros(4), torch.zeros(4)) == 1.0
