"""Which features get rows next: influence on the logits from the rows computed so far.

The same estimate as circuit-tracer's: rows are |edges| scaled to sum 1 (over every
source, columns or not); the logit weights spread back through the rows computed
so far (paths through nodes that have rows, summed in the small [r, r] block);
a candidate's score is the weight arriving at its column. Features without a
column cannot be ranked, but none of them can score more than `outside_bound`:
the smaller of the bound from each row's largest outside |edge| and the one from
per-feature maxima over blocks of rows (`OutsideBlocks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.attribution.outside_blocks import OutsideBlocks


@dataclass(frozen=True)
class InfluenceEstimate:
    scores: Tensor
    """[n_nodes] the estimated influence of every column's source (and logits)."""
    outside_bound: float
    """No active feature without a column scores more than this."""
    coefficients: Tensor
    """[r] each row's weight c_r: a source scores sum_r c_r |A[r, source]|."""


CHUNK_ELEMENTS = 1 << 20
"""Entries of |values| made at a time (4 MB in float32): small enough to stay in cache.
Chunks of 512 long rows (hundreds of MB, fresh pages each time) made this estimate a
sixth of a 128-token trace on a 2-core CPU, 6x the time of these."""


def influence_scores(
    values: Tensor,
    nodes: Tensor,
    weights: Tensor,
    totals: Tensor | None = None,
    outside_max: Tensor | None = None,
    blocks: OutsideBlocks | None = None,
    max_steps: int = 256,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> InfluenceEstimate:
    """values [r, n_nodes] rows over every node as a column; nodes [r] each row's node;
    weights [n_nodes] logit weights (nonzero on logit nodes, which must have rows);
    totals [r] each row's sum of |edge| over every source, columns or not (by default
    over `values`, when every source has a column); outside_max [r] the largest |edge|
    from a source without a column; blocks: per-feature maxima of those (a tighter
    bound, see `OutsideBlocks`)."""
    if totals is None:
        totals = values.new_zeros(len(values))
        for rows, magnitudes in _magnitudes(values, chunk_elements):
            totals[rows] = magnitudes.sum(dim=1)
    scale = torch.where(totals > 0, 1.0 / totals.clamp(min=1e-30), 0.0)
    coefficients = _path_weights(values[:, nodes].abs() * scale[:, None], weights[nodes], max_steps)
    coefficients = coefficients * scale
    scores = torch.zeros_like(weights)
    for rows, magnitudes in _magnitudes(values, chunk_elements):
        scores.addmv_(magnitudes.t(), coefficients[rows])
    bounds = [] if outside_max is None else [float(coefficients @ outside_max)]
    if blocks is not None:
        bounds.append(blocks.bound(coefficients))
    return InfluenceEstimate(scores, min(bounds, default=0.0), coefficients)


def _magnitudes(values: Tensor, chunk_elements: int) -> Iterator[tuple[slice, Tensor]]:
    """(rows, |values[rows]|) in consecutive chunks of about `chunk_elements` entries,
    each written over the same scratch tensor (use it before taking the next)."""
    n_rows = max(1, chunk_elements // max(values.shape[1], 1))
    scratch = values.new_empty(min(n_rows, len(values)), values.shape[1])
    for start in range(0, len(values), n_rows):
        rows = slice(start, min(start + n_rows, len(values)))
        part = scratch[: rows.stop - start]
        torch.abs(values[rows], out=part)
        yield rows, part


def _path_weights(block: Tensor, start: Tensor, max_steps: int) -> Tensor:
    """w + w·B + w·B² + … for the normalised [r, r] block among rows; start w [r]."""
    current = start.clone()
    total = current.clone()
    for _ in range(max_steps):
        current = current @ block
        if not torch.any(current):
            return total
        total += current
    raise ValueError("influence did not converge: the rows have a cycle")
