"""The rows computed so far: edges over the current columns, plus what lies outside them."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor

from circuitscope.attribution.outside_blocks import OutsideBlocks
from circuitscope.attribution.rows import RowBatch


@dataclass
class RowBuffer:
    values: Tensor
    """[capacity, n_columns + n_logits] edges; the logit columns stay zero (no edges out)."""
    nodes: Tensor
    """[capacity] the node of each row: a feature's column, or n_columns + i for logit i."""
    outside_max: Tensor
    """[capacity] the largest |edge| from an active feature without a column."""
    totals: Tensor
    """[capacity] sum of |edge| over every source, columns or not (fixed at `add`)."""
    n_columns: int
    n: int = 0
    """Rows filled."""
    blocks: OutsideBlocks | None = None
    """Once columns are restricted: the per-feature maxima of what lies outside them."""

    @classmethod
    def empty(cls, capacity: int, n_columns: int, n_logits: int, dtype: torch.dtype) -> RowBuffer:
        return cls(
            values=torch.zeros(capacity, n_columns + n_logits, dtype=dtype),
            nodes=torch.zeros(capacity, dtype=torch.long),
            outside_max=torch.zeros(capacity, dtype=dtype),
            totals=torch.zeros(capacity, dtype=dtype),
            n_columns=n_columns,
        )

    @property
    def capacity(self) -> int:
        return len(self.nodes)

    @property
    def full(self) -> bool:
        return self.n == self.capacity

    def add(self, batch: RowBatch, nodes: Tensor) -> None:
        k = len(nodes)
        if self.n + k > self.capacity:
            raise ValueError(f"{self.n} + {k} rows exceed the buffer's {self.capacity}")
        rows = slice(self.n, self.n + k)
        self.values[rows, : self.n_columns] = batch.values
        self.nodes[rows] = nodes
        self.outside_max[rows] = batch.outside_max
        self.totals[rows] = batch.values.abs().sum(dim=1) + batch.outside_sum
        if self.blocks is not None:
            if batch.outside_column_max is None:
                raise ValueError("rows of a restricted buffer need their outside column maxima")
            self.blocks.add(self.n, k, batch.outside_column_max)
        self.n += k

    def filled(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(values, nodes, totals, outside_max) of the filled rows (views)."""
        rows = slice(0, self.n)
        return self.values[rows], self.nodes[rows], self.totals[rows], self.outside_max[rows]

    def restricted(
        self, kept: Tensor, n_features: int, n_logits: int, capacity: int, block_rows: int = 128
    ) -> RowBuffer:
        """A buffer of `capacity` rows holding only the feature columns `kept` (sorted,
        from the first `n_features` columns), then the other columns as they are.

        The totals stay; what the dropped feature columns held moves into outside_max and
        the new buffer's `blocks` (the dropped features in column order; the logit rows
        first, then blocks of `block_rows` rows). Row nodes are renumbered to the new
        columns (every row's node must be kept)."""
        if self.blocks is not None:
            raise ValueError("the buffer's columns are restricted already")
        dropped = torch.ones(n_features, dtype=torch.bool)
        dropped[kept] = False
        rest = torch.arange(n_features, self.n_columns)
        columns = torch.cat([kept, rest])
        new = RowBuffer.empty(capacity, len(columns), n_logits, self.values.dtype)
        new.blocks = OutsideBlocks(int(dropped.sum()), block_rows, capacity)
        logits_end = min(n_logits, self.n)
        edges = sorted({0, logits_end, *range(logits_end, self.n, block_rows), self.n})
        for start, end in pairwise(edges):
            rows = slice(start, end)
            block = self.values[rows]
            new.values[rows, : len(columns)] = block.index_select(1, columns)
            lost = block[:, :n_features][:, dropped].abs()
            largest = lost.amax(dim=1) if lost.shape[1] else torch.zeros_like(lost[:, 0])
            new.outside_max[rows] = torch.maximum(self.outside_max[rows], largest)
            new.blocks.add(start, end - start, lost.amax(dim=0), new_block=True)
        renumber = torch.full((self.n_columns + n_logits,), -1, dtype=torch.long)
        renumber[columns] = torch.arange(len(columns))
        renumber[self.n_columns :] = torch.arange(n_logits) + len(columns)
        nodes = renumber[self.nodes[: self.n]]
        if bool((nodes < 0).any()):
            raise ValueError("a row's own node is not among the kept columns")
        new.nodes[: self.n] = nodes
        new.totals[: self.n] = self.totals[: self.n]
        new.n = self.n
        return new
