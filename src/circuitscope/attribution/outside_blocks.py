"""A bound, per feature, on the influence of active features that have no column.

A feature f without a column scores sum_r c_r |A[r, f]| (c_r >= 0: each row's
coefficient in `influence_scores`). Rows are grouped into blocks of consecutive
rows, and each block b keeps M_b[f] = max over its rows of |A[r, f]|; then

    score(f) <= sum_b C_b M_b[f],   C_b = sum of c_r over block b's rows,

a bound for each feature, where one per-row maximum (`RowBuffer.outside_max`)
bounds every feature at once by sum_r c_r max_f |A[r, f]|, which no single
feature need come near. Rows of one backward pass share a block: the pass
returns the maximum over its rows of each outside feature (`RowBatch`).

The rows computed before the columns were restricted (the logit rows and the
first feature rows, which carry most of the coefficients) are kept whole
instead (`exact`): their part of the bound is sum_r c_r |A[r, f]| itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class OutsideBlocks:
    n_outside: int
    """Active features without a column, in the order of the maxima's columns."""
    block_rows: int
    """A new block starts when a batch would take the last one past this many rows."""
    capacity: int
    """Rows the buffer holds (the length of `row_block`)."""
    maxima: list[Tensor] = field(default_factory=list)
    """Per block, [n_outside] the largest |edge| from each feature without a column."""
    row_block: Tensor = field(init=False)
    """[capacity] the block of each filled row."""
    rows_in_last: int = 0
    exact: Tensor | None = None
    """[e, n_outside] |edge| from each feature without a column into each of the first e
    rows, kept whole (the rows computed over every column); blocks start at row e."""

    @property
    def exact_rows(self) -> int:
        return 0 if self.exact is None else len(self.exact)

    def __post_init__(self) -> None:
        self.row_block = torch.zeros(self.capacity, dtype=torch.long)

    def add(self, first_row: int, n_rows: int, column_max: Tensor, new_block: bool = False) -> None:
        """Rows first_row .. first_row + n_rows - 1, with column_max [n_outside] the
        largest |edge| from each outside feature over those rows; in the last block
        unless `new_block` or they would take it past `block_rows`."""
        if first_row < self.exact_rows:
            raise ValueError(f"rows before {self.exact_rows} are kept whole, not in blocks")
        if column_max.shape != (self.n_outside,):
            raise ValueError(
                f"column maxima of shape {tuple(column_max.shape)}, not [{self.n_outside}]"
            )
        if new_block or not self.maxima or self.rows_in_last + n_rows > self.block_rows:
            self.maxima.append(column_max.clone())
            self.rows_in_last = 0
        else:
            torch.maximum(self.maxima[-1], column_max, out=self.maxima[-1])
        self.row_block[first_row : first_row + n_rows] = len(self.maxima) - 1
        self.rows_in_last += n_rows

    def bound(self, coefficients: Tensor) -> float:
        """The largest sum_r c_r |A[r, f]| (exact rows) + sum_b C_b M_b[f] (blocks) over
        outside features f; coefficients [r] of the first r rows (every one of them added)."""
        if self.n_outside == 0:
            return 0.0
        return float(self._bounds(coefficients).max())

    def _bounds(self, coefficients: Tensor) -> Tensor:
        exact = min(self.exact_rows, len(coefficients))
        bounds = torch.zeros(self.n_outside, dtype=coefficients.dtype)
        if exact:
            assert self.exact is not None
            bounds += coefficients[:exact] @ self.exact[:exact].to(coefficients.dtype)
        rows = len(coefficients)
        if self.maxima and rows > self.exact_rows:
            per_block = torch.zeros(len(self.maxima), dtype=coefficients.dtype)
            start = self.exact_rows
            per_block.index_add_(0, self.row_block[start:rows], coefficients[start:])
            for weight, maxima in zip(per_block.tolist(), self.maxima, strict=True):
                if weight:
                    bounds.add_(maxima.to(coefficients.dtype), alpha=weight)
        return bounds

    def feature_bounds(self, coefficients: Tensor) -> Tensor:
        """[n_outside] each outside feature's bound (see `bound`)."""
        return self._bounds(coefficients)

    def drop(self, features: Tensor) -> None:
        """Forget the outside features at these indices (they got a column); the others
        keep their order. In place: no second copy of the exact rows."""
        keep = torch.ones(self.n_outside, dtype=torch.bool)
        keep[features] = False
        index = torch.nonzero(keep).flatten()
        self.maxima = [maxima.index_select(0, index) for maxima in self.maxima]
        if self.exact is not None:
            for line in self.exact:
                line[: len(index)] = line.index_select(0, index)
            self.exact = self.exact[:, : len(index)]
        self.n_outside = len(index)

    @property
    def nbytes(self) -> int:
        """The blocks' memory (the exact rows live in the storage of the rows over every
        column, charged to their share: see `RowBuffer.restricted`)."""
        return sum(m.numel() * m.element_size() for m in self.maxima)
