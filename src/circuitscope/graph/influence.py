"""Influence of every node on the logits, through the normalised |adjacency|.

Conventions: A[t, s] is the direct effect of source s on target t (rows are
targets). Ā = |A| with each row scaled to sum 1. A node's influence is the
logit-probability-weighted sum over every path from it to the logits:
w · (Ā + Ā² + …) = w · ((I − Ā)⁻¹ − I). The graph is a DAG, so Ā is nilpotent
and the series ends after at most (longest path) terms.
"""

from __future__ import annotations

import torch
from torch import Tensor


def normalize_rows(adjacency: Tensor) -> Tensor:
    """|A| with every row scaled to sum 1 (all-zero rows stay zero). [n, m] -> [n, m].

    One new [n, m] tensor; the scaling is done in place on it."""
    magnitude = adjacency.abs()
    sums = magnitude.sum(dim=1, keepdim=True)
    scale = torch.where(sums > 0, 1.0 / sums.clamp(min=1e-30), 0.0)
    return magnitude.mul_(scale)


def influence(normalized: Tensor, weights: Tensor, max_steps: int | None = None) -> Tensor:
    """w · (Ā + Ā² + …) for square Ā [n, n] and w [n]; returns [n].

    Raises if the series has not ended after `max_steps` terms (default n): a cycle.
    """
    steps = normalized.shape[0] if max_steps is None else max_steps
    current = weights @ normalized
    total = current.clone()
    for _ in range(steps):
        if not torch.any(current):
            return total
        current = current @ normalized
        total += current
    if torch.any(current):
        raise ValueError("influence series did not end: the adjacency has a cycle")
    return total


def influence_by_inverse(normalized: Tensor, weights: Tensor) -> Tensor:
    """The same as `influence`, by w · ((I − Ā)⁻¹ − I); for checks on small graphs."""
    eye = torch.eye(normalized.shape[0], dtype=normalized.dtype, device=normalized.device)
    return weights @ (torch.linalg.inv(eye - normalized) - eye)


def partial_influence(
    rows: Tensor, row_nodes: Tensor, weights: Tensor, max_steps: int = 256, chunk: int = 512
) -> Tensor:
    """Influence from the rows computed so far of a graph still being built.

    rows: [r, n], the computed rows (targets) over all n nodes as columns;
    row_nodes: [r], the node each row belongs to; weights: [n], the logit weights
    (nonzero only on logit nodes, which must have rows). Returns [n].

    Paths run only through nodes that have rows, so the series is summed inside the
    small [r, r] block first, and the [r, n] rows are read once, in chunks (no
    normalised copy of them is made).
    """
    sums = torch.cat([rows[i : i + chunk].abs().sum(dim=1) for i in range(0, len(rows), chunk)])
    scale = torch.where(sums > 0, 1.0 / sums.clamp(min=1e-30), 0.0)
    block = rows[:, row_nodes].abs() * scale[:, None]
    current = weights[row_nodes].clone()
    paths = current.clone()
    for _ in range(max_steps):
        current = current @ block
        if not torch.any(current):
            break
        paths += current
    else:
        raise ValueError("partial influence did not end: the rows have a cycle")
    coefficients = paths * scale
    total = torch.zeros_like(weights)
    for i in range(0, len(rows), chunk):
        total += coefficients[i : i + chunk] @ rows[i : i + chunk].abs()
    return total


def edge_influence(normalized: Tensor, weights: Tensor, in_place: bool = False) -> Tensor:
    """Each edge's share of influence: Ā[t, s] · (influence(t) + w(t)). [n, n].

    in_place: scale `normalized` itself (no second n × n tensor)."""
    node = influence(normalized, weights) + weights
    if in_place:
        return normalized.mul_(node[:, None])
    return normalized * node[:, None]


def cumulative_threshold(scores: Tensor, fraction: float) -> Tensor:
    """The smallest score among the top scores that make up `fraction` of their sum.

    Scores are non-negative; only the positive ones are sorted (an n × n edge score
    matrix is mostly zeros)."""
    flat = scores.flatten()
    positive = flat[flat > 0]
    if len(positive) == 0:
        return flat.max() if len(flat) else torch.tensor(0.0)
    ordered = torch.sort(positive, descending=True).values
    total = ordered.sum()
    if total <= 0:
        return ordered[0] if len(ordered) else torch.tensor(0.0)
    cumulative = torch.cumsum(ordered, dim=0) / total
    index = int(torch.searchsorted(cumulative, torch.tensor(fraction, dtype=cumulative.dtype)))
    return ordered[min(index, len(ordered) - 1)]
