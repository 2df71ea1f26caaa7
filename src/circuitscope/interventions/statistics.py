"""Agreement between predicted and measured effects: rank correlation and signs."""

from __future__ import annotations

import torch
from torch import Tensor


def ranks(values: Tensor) -> Tensor:
    """[n] 1-based ranks, ties sharing their average rank (as Spearman's rho needs)."""
    values = values.double()
    order = torch.argsort(values)
    sorted_values = values[order]
    ranked = torch.empty_like(values)
    start = 0
    n = len(values)
    while start < n:
        end = start
        while end + 1 < n and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranked[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranked


def pearson(x: Tensor, y: Tensor) -> float:
    """Pearson correlation of two [n] vectors; NaN when either is constant or n < 2."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denominator = float(x.norm() * y.norm())
    return float((x * y).sum()) / denominator if denominator > 0 else float("nan")


def spearman(x: Tensor, y: Tensor) -> float:
    """Spearman's rank correlation of two [n] vectors (ties averaged)."""
    if len(x) != len(y):
        raise ValueError(f"lengths differ: {len(x)} and {len(y)}")
    return pearson(ranks(x), ranks(y))


def sign_agreement(predicted: Tensor, measured: Tensor) -> float:
    """The fraction of [n] pairs whose signs agree (a zero agrees only with a zero)."""
    if len(predicted) == 0:
        return float("nan")
    return float((torch.sign(predicted) == torch.sign(measured)).double().mean())
