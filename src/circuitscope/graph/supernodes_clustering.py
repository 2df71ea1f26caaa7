"""Deterministic agglomerative clustering of a similarity matrix, and the adjusted Rand index.

`agglomerate` merges the most similar pair of clusters until no pair is at least
`threshold` similar (computed as the whole dendrogram, by nearest-neighbour chains,
then cut). Linkage says how a merged cluster's similarity to the others
is updated: "average" (size-weighted mean, UPGMA) or "complete" (the minimum).
Ties break towards the lowest indices (`argmax` returns the first maximum), so the
same matrix always gives the same clusters.
"""

from __future__ import annotations

from math import comb
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Linkage = Literal["average", "complete"]


def agglomerate(similarity: Tensor, threshold: float, linkage: Linkage = "average") -> Tensor:
    """[n] a cluster id per item (0, 1, ... in order of first appearance) from a symmetric
    similarity [n, n]: the clusters of the dendrogram cut where similarity drops below
    `threshold` (items never merged stay alone)."""
    n = len(similarity)
    merges = dendrogram(similarity.detach().to(torch.float64).cpu().numpy(), linkage)
    owner = list(range(n))

    def root(item: int) -> int:
        while owner[item] != item:
            owner[item] = owner[owner[item]]
            item = owner[item]
        return item

    for a, b, height in merges:  # both linkages are monotone: a cut keeps a prefix of each chain
        if height >= threshold:
            ra, rb = root(a), root(b)
            owner[max(ra, rb)] = min(ra, rb)
    return first_appearance_ids(torch.tensor([root(i) for i in range(n)], dtype=torch.long))


def dendrogram(similarity: np.ndarray, linkage: Linkage) -> list[tuple[int, int, float]]:
    """Every merge (cluster a, cluster b, similarity), by the nearest-neighbour chain: O(n²)
    time. A cluster is named by its lowest item; ties go to the lowest index."""
    n = len(similarity)
    scores = np.nan_to_num(similarity, nan=-1e300, posinf=1e300, neginf=-1e300)
    np.fill_diagonal(scores, -np.inf)
    sizes = np.ones(n)
    active = np.ones(n, dtype=bool)
    merges: list[tuple[int, int, float]] = []
    chain: list[int] = []
    while len(merges) < n - 1:
        if not chain:
            chain.append(int(np.argmax(active)))
        a = chain[-1]
        b = int(np.argmax(scores[a]))
        if len(chain) > 1 and scores[a, chain[-2]] >= scores[a, b]:
            b = chain[-2]
        if len(chain) < 2 or b != chain[-2]:
            chain.append(b)
            continue
        chain.pop()
        chain.pop()
        merges.append((min(a, b), max(a, b), float(scores[a, b])))
        _merge(scores, sizes, active, min(a, b), max(a, b), linkage)
    return merges


def _merge(
    scores: np.ndarray,
    sizes: np.ndarray,
    active: np.ndarray,
    kept: int,
    gone: int,
    linkage: Linkage,
) -> None:
    """Lance-Williams update of `scores` after cluster `gone` joins cluster `kept`."""
    if linkage == "average":
        merged = (sizes[kept] * scores[kept] + sizes[gone] * scores[gone]) / (
            sizes[kept] + sizes[gone]
        )
    else:
        merged = np.minimum(scores[kept], scores[gone])
    merged[~active] = -np.inf
    merged[kept] = merged[gone] = -np.inf
    scores[kept], scores[:, kept] = merged, merged
    scores[gone], scores[:, gone] = -np.inf, -np.inf
    sizes[kept] += sizes[gone]
    active[gone] = False


def first_appearance_ids(labels: Tensor) -> Tensor:
    """[n] the same partition as `labels` [n], numbered 0, 1, ... in order of first appearance."""
    _, inverse = torch.unique(labels, return_inverse=True)
    first: dict[int, int] = {}
    return torch.tensor([first.setdefault(int(x), len(first)) for x in inverse.tolist()])


def adjusted_rand_index(truth: Tensor, predicted: Tensor) -> float:
    """Hubert and Arabie's adjusted Rand index of two partitions [n] (1: identical; about 0:
    chance). Two single-cluster or all-singleton partitions that agree score 1."""
    if len(truth) != len(predicted):
        raise ValueError(f"lengths differ: {len(truth)} and {len(predicted)}")
    _, t = torch.unique(truth, return_inverse=True)
    _, p = torch.unique(predicted, return_inverse=True)
    table = torch.zeros(int(t.max()) + 1, int(p.max()) + 1, dtype=torch.long)
    table.index_put_((t, p), torch.ones_like(t), accumulate=True)
    pairs = sum(comb(int(x), 2) for x in table.flatten().tolist())
    rows = sum(comb(int(x), 2) for x in table.sum(1).tolist())
    columns = sum(comb(int(x), 2) for x in table.sum(0).tolist())
    expected = rows * columns / comb(len(truth), 2) if len(truth) > 1 else 0.0
    best = (rows + columns) / 2
    if best == expected:
        return 1.0 if pairs == expected else 0.0
    return (pairs - expected) / (best - expected)
