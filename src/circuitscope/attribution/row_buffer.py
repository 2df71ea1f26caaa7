"""The rows computed so far: edges over the current columns, plus what lies outside them."""

from __future__ import annotations

from dataclasses import dataclass

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
    storage: Tensor | None = None
    """[capacity, width + spare]: `values` is its first columns, the rest room for the
    columns `insert_columns` adds (None: no room)."""

    @classmethod
    def empty(
        cls,
        capacity: int,
        n_columns: int,
        n_logits: int,
        dtype: torch.dtype,
        spare_columns: int = 0,
    ) -> RowBuffer:
        storage = torch.zeros(capacity, n_columns + n_logits + spare_columns, dtype=dtype)
        return cls(
            values=storage[:, : n_columns + n_logits],
            nodes=torch.zeros(capacity, dtype=torch.long),
            outside_max=torch.zeros(capacity, dtype=dtype),
            totals=torch.zeros(capacity, dtype=dtype),
            n_columns=n_columns,
            storage=storage,
        )

    @property
    def spare_columns(self) -> int:
        """Columns `insert_columns` can still add."""
        return 0 if self.storage is None else self.storage.shape[1] - self.values.shape[1]

    def insert_columns(self, at: int, columns: Tensor, chunk: int = 256) -> None:
        """Put k new columns [n, k] (their values in the filled rows) before column `at`;
        the columns from `at` on, and the row nodes among them, move k to the right."""
        k = columns.shape[1]
        if columns.shape[0] != self.n or k > self.spare_columns:
            raise ValueError(
                f"{tuple(columns.shape)} new columns for {self.n} rows with room for "
                f"{self.spare_columns}"
            )
        assert self.storage is not None
        width = self.values.shape[1]
        self.values = self.storage[:, : width + k]
        for start in range(0, self.n, chunk):
            rows = slice(start, min(start + chunk, self.n))
            tail = self.values[rows, at:width].clone()
            self.values[rows, at + k :] = tail
            self.values[rows, at : at + k] = columns[rows].to(self.values.dtype)
        moved = self.nodes[: self.n] >= at
        self.nodes[: self.n][moved] += k
        self.n_columns += k

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
        self,
        kept: Tensor,
        n_features: int,
        n_logits: int,
        capacity: int,
        block_rows: int = 128,
        spare_columns: int = 0,
    ) -> RowBuffer:
        """A buffer of `capacity` rows holding only the feature columns `kept` (sorted,
        from the first `n_features` columns), then the other columns as they are.

        The totals stay. What the dropped feature columns held moves into outside_max and,
        kept whole as |edge|, into the new buffer's `blocks.exact` (the dropped features
        in column order), in this buffer's own storage: this buffer is used up. Later
        rows go into blocks of `block_rows` rows. Row nodes are renumbered to the new
        columns (every row's node must be kept). The new buffer has room for
        `spare_columns` more columns."""
        if self.blocks is not None:
            raise ValueError("the buffer's columns are restricted already")
        dropped = torch.ones(n_features, dtype=torch.bool)
        dropped[kept] = False
        rest = torch.arange(n_features, self.n_columns)
        columns = torch.cat([kept, rest])
        renumber = torch.full((self.n_columns + n_logits,), -1, dtype=torch.long)
        renumber[columns] = torch.arange(len(columns))
        renumber[self.n_columns :] = torch.arange(n_logits) + len(columns)
        nodes = renumber[self.nodes[: self.n]]
        if bool((nodes < 0).any()):
            raise ValueError("a row's own node is not among the kept columns")
        lost_columns = torch.nonzero(dropped).flatten()
        new = RowBuffer.empty(capacity, len(columns), n_logits, self.values.dtype, spare_columns)
        new.blocks = OutsideBlocks(len(lost_columns), block_rows, capacity)
        for row in range(self.n):  # one row at a time: its |edge| lost overwrite it in place
            line = self.values[row]
            new.values[row, : len(columns)] = line.index_select(0, columns)
            lost = line.index_select(0, lost_columns).abs_()
            largest = lost.max() if len(lost) else lost.new_zeros(())
            new.outside_max[row] = torch.maximum(self.outside_max[row], largest)
            line[: len(lost)] = lost
        new.blocks.exact = self.values[: self.n, : len(lost_columns)]
        self.values = self.values[:0]
        new.nodes[: self.n] = nodes
        new.totals[: self.n] = self.totals[: self.n]
        new.n = self.n
        return new
