"""Which source each column of an attribution row stands for.

Columns: the candidate features (a subset of the active ones, by default all),
then error nodes (layer-major: layer * seq + position), then token embeddings.
Active features that are not candidates have no column: rows only count them
(see rows.RowBatch). The backward passes fill rows over every active feature
(`all_columns`), where a feature's column is its index.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ColumnLayout:
    candidates: Tensor
    """[C] indices into the active features of those that get a column."""
    n_layers: int
    seq_len: int

    @property
    def n_features(self) -> int:
        return len(self.candidates)

    @property
    def n_errors(self) -> int:
        return self.n_layers * self.seq_len

    @property
    def n_columns(self) -> int:
        return self.n_features + self.n_errors + self.seq_len

    def error_columns(self, layer: int) -> slice:
        start = self.n_features + layer * self.seq_len
        return slice(start, start + self.seq_len)

    @property
    def token_columns(self) -> slice:
        start = self.n_features + self.n_errors
        return slice(start, start + self.seq_len)


def all_columns(n_active: int, n_layers: int, seq_len: int) -> ColumnLayout:
    return ColumnLayout(torch.arange(n_active), n_layers, seq_len)
