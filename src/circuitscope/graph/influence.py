"""Influence of every node on the logits, through the normalised |edges|.

Conventions (see graph.py): the edge block A [n_targets, n_sources] has rows for
targets, features first then the n_logits logits, and columns for sources, the
features first (feature f is row f and column f), then errors and tokens.
Ā = |A| with each row scaled to sum 1. A node's influence is the
logit-probability-weighted sum over every path from it to the logits:
w · (Ā + Ā² + …) = w · ((I − Ā)⁻¹ − I) on the square matrix. On the block, the
walk starts at the logit rows, x₁ = w · Ā_logits [n_sources], and each step goes
on from the features it reached, x_{k+1} = x_k[:n_features] · Ā_features. The graph
is a DAG, so the walk ends after at most (longest path) steps.
"""

from __future__ import annotations

import numpy
import torch
from torch import Tensor


def normalize_rows(edges: Tensor, in_place: bool = False) -> Tensor:
    """|A| with every row scaled to sum 1 (all-zero rows stay zero). [r, m] -> [r, m].

    One new [r, m] tensor, or none with `in_place` (then `edges` itself is overwritten)."""
    magnitude = edges.abs_() if in_place else edges.abs()
    sums = magnitude.sum(dim=1, keepdim=True)
    scale = torch.where(sums > 0, 1.0 / sums.clamp(min=1e-30), 0.0)
    return magnitude.mul_(scale)


def influence(normalized: Tensor, logit_weights: Tensor, max_steps: int | None = None) -> Tensor:
    """Each source's influence on the logits: w · (Ā + Ā² + …). Returns [n_sources].

    normalized: Ā [n_features + n_logits, n_sources], rows features then logits (see the
    module docstring); logit_weights: w [n_logits], the weights of the logit rows.
    Where the feature block is strictly lower triangular (a trace's graph: features
    ordered by layer), the series is summed by one triangular solve
    (`solve_strictly_lower`), not step by step (a product over the whole block per
    step, as many steps as the longest path: about the number of layers). Otherwise
    the walk; it raises if it has not ended after `max_steps` steps (default
    n_features + 1): a cycle among the features."""
    n_features = normalized.shape[0] - len(logit_weights)
    steps = n_features + 1 if max_steps is None else max_steps
    features = normalized[:n_features]
    current = logit_weights @ normalized[n_features:]
    if max_steps is None and is_strictly_lower(features[:, :n_features]):
        reached = solve_strictly_lower(features[:, :n_features], current[:n_features])
        return current + reached @ features
    total = current.clone()
    for _ in range(steps):
        if not torch.any(current[:n_features]):
            return total
        current = current[:n_features] @ features
        total += current
    if torch.any(current[:n_features]):
        raise ValueError("influence series did not end: the edges have a cycle")
    return total


SOLVE_BLOCK = 256
"""Rows per block of `solve_strictly_lower` and `is_strictly_lower`."""


def is_strictly_lower(square: Tensor, block: int = SOLVE_BLOCK) -> bool:
    """True when `square` [f, f] is zero on and above its diagonal (a block at a time).

    A trace's feature block is: features are ordered by layer, and a feature reads only
    from features of lower layers."""
    size = square.shape[0]
    for start in range(0, size, block):
        stop = min(start + block, size)
        if bool(square[start:stop, stop:].any()):
            return False
        if bool(torch.triu(square[start:stop, start:stop]).any()):
            return False
    return True


def solve_strictly_lower(lower: Tensor, start: Tensor, block: int = SOLVE_BLOCK) -> Tensor:
    """t with t = start + t · lower, for `lower` [f, f] strictly lower triangular and
    start [f]: t = start · (I − lower)⁻¹ = start + start·L + start·L² + …, the
    influence series summed in one pass over the triangle. Element j takes only the
    elements i > j, so the blocks are solved from the last: each gets the products
    from the rows below it, then a unit-triangular solve inside. Returns [f]."""
    size = lower.shape[0]
    total = start.clone()
    for first in reversed(range(0, size, block)):
        stop = min(first + block, size)
        rhs = total[first:stop]
        if stop < size:
            rhs += total[stop:] @ lower[stop:, first:stop]
        within = -lower[first:stop, first:stop].t()  # upper; the unit diagonal is implied
        solved = torch.linalg.solve_triangular(within, rhs[:, None], upper=True, unitriangular=True)
        total[first:stop] = solved[:, 0]
    return total


def influence_by_inverse(normalized: Tensor, logit_weights: Tensor) -> Tensor:
    """The same as `influence`, in closed form: x₁ + x₁[:f] (I − Ā_ff)⁻¹ Ā_features,
    Ā_ff the feature-to-feature block [f, f]; for checks on small graphs."""
    n_features = normalized.shape[0] - len(logit_weights)
    features = normalized[:n_features]
    first = logit_weights @ normalized[n_features:]
    eye = torch.eye(n_features, dtype=normalized.dtype, device=normalized.device)
    reached = first[:n_features] @ torch.linalg.inv(eye - features[:, :n_features])
    return first + reached @ features


def edge_influence(normalized: Tensor, logit_weights: Tensor, in_place: bool = False) -> Tensor:
    """Each edge's share of influence: Ā[r, s] times the weight of row r's target (a
    feature's influence, a logit's probability). [n_targets, n_sources] like Ā.

    in_place: scale `normalized` itself (no second copy of the block)."""
    n_features = normalized.shape[0] - len(logit_weights)
    sources = influence(normalized, logit_weights)
    row_weights = torch.cat([sources[:n_features], logit_weights])
    if in_place:
        return normalized.mul_(row_weights[:, None])
    return normalized * row_weights[:, None]


def cumulative_threshold(scores: Tensor, fraction: float) -> Tensor:
    """The smallest score among the top scores that make up `fraction` of their sum.

    Scores are non-negative; only the positive ones are sorted (an edge score block is
    mostly zeros). Memory: two [k] tensors for the k positive scores."""
    positive = _positive_values(scores)
    if len(positive) == 0:
        return scores.max() if scores.numel() else torch.tensor(0.0)
    ordered = _sort_descending(positive)
    total = ordered.sum()
    if total <= 0:
        return ordered[0] if len(ordered) else torch.tensor(0.0)
    cumulative = torch.cumsum(ordered, dim=0).div_(total)
    index = int(torch.searchsorted(cumulative, torch.tensor(fraction, dtype=cumulative.dtype)))
    return ordered[min(index, len(ordered) - 1)]


def _positive_values(scores: Tensor, chunk: int = 1 << 22) -> Tensor:
    """[k] the positive entries of `scores` (any shape), gathered a chunk at a time (a
    boolean index of the whole tensor would make [k] int64 indices).

    On the CPU numpy compares and counts (torch's `(x > 0).sum()` sums the comparison
    as int64: a 7,800 x 8,000 edge block with 3% nonzeros took 249 ms, numpy 82 ms)."""
    flat = scores.flatten()
    if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64):
        return _positive_values_numpy(flat, chunk)
    pieces = range(0, len(flat), chunk)
    counts = [int((flat[i : i + chunk] > 0).sum()) for i in pieces]
    positive = torch.empty(sum(counts), dtype=scores.dtype, device=scores.device)
    start = 0
    for i, count in zip(pieces, counts, strict=True):
        piece = flat[i : i + chunk]
        positive[start : start + count] = piece[piece > 0]
        start += count
    return positive


def _positive_values_numpy(flat: Tensor, chunk: int) -> Tensor:
    values = flat.detach().numpy()
    pieces = range(0, len(values), chunk)
    counts = [int(numpy.count_nonzero(values[i : i + chunk] > 0)) for i in pieces]
    positive = torch.empty(sum(counts), dtype=flat.dtype)
    out, start = positive.numpy(), 0
    for i, count in zip(pieces, counts, strict=True):
        piece = values[i : i + chunk]
        out[start : start + count] = piece[piece > 0]
        start += count
    return positive


def _sort_descending(values: Tensor) -> Tensor:
    """`values` [k] sorted from largest to smallest, in place where it can be.

    On the CPU numpy sorts the negated values in place (torch.sort would make a sorted
    copy and [k] int64 indices); negation is exact, so the result is the same."""
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        values.neg_().numpy().sort()
        return values.neg_()
    return torch.sort(values, descending=True).values
