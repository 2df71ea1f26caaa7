"""The feature vectors written into one layer's MLP output, grouped by position.

A feature s active at (layer l_s, position p_s) with activation a_s writes
a_s · W_dec[l_s → l][i_s] into the MLP output of every layer l it decodes to.
For the edges into a batch of targets, the gradient G_l [B, seq, d] at layer l's
MLP output is dotted with those vectors: one batched matmul per layer, with the
writers grouped (and padded) by position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.attribution.replacement import ActiveFeatures
from circuitscope.transcoders.transcoder import Transcoder


@dataclass
class WriterTable:
    columns: Tensor
    """[seq, width] the row column of each writer, -1 for padding (on the CPU)."""
    vectors: Tensor
    """[seq, width, d_model] each writer's output vector into this layer (on the device)."""

    def prefix(self, length: int) -> WriterTable:
        """The writers at the first `length` positions."""
        return WriterTable(self.columns[:length], self.vectors[:length])

    def edges(self, grad: Tensor) -> Tensor:
        """Each writer dotted with the gradient at its position.

        grad [B, seq, d] -> [B, seq, width].
        """
        out = torch.bmm(grad.transpose(0, 1).to(self.vectors.dtype), self.vectors.transpose(1, 2))
        return out.transpose(0, 1)


def writer_table(
    transcoder: Transcoder,
    features: ActiveFeatures,
    candidates: Tensor,
    layer: int,
    seq_len: int,
    dtype: torch.dtype,
) -> WriterTable:
    """The candidates (indices into `features`) that write into `layer`'s MLP output."""
    cand_layers = features.layer[candidates]
    clt = transcoder.config.kind == "clt"
    mask = cand_layers <= layer if clt else cand_layers == layer
    columns = torch.nonzero(mask).flatten()
    vectors = _writer_vectors(transcoder, features, candidates[columns], layer, dtype)
    positions = features.position[candidates[columns]]
    return _group_by_position(columns, vectors, positions, seq_len)


def _writer_vectors(
    transcoder: Transcoder, features: ActiveFeatures, chosen: Tensor, layer: int, dtype: torch.dtype
) -> Tensor:
    """[k, d]: a_s · W_dec[l_s → layer][i_s] for each chosen active feature."""
    d_model = transcoder.config.d_model
    vectors = torch.zeros(len(chosen), d_model, dtype=dtype, device=transcoder.home)
    source_layers = features.layer[chosen]
    for source in torch.unique(source_layers).tolist():
        rows = torch.nonzero(source_layers == source).flatten()
        index = features.index[chosen[rows]]
        unique, inverse = torch.unique(index, return_inverse=True)
        slot = layer - source if transcoder.config.kind == "clt" else 0
        decoders = transcoder.active_decoders(source, unique)[:, slot].to(dtype)
        values = features.activation[chosen[rows], None].to(transcoder.home, dtype)
        vectors[rows.to(transcoder.home)] = decoders[inverse.to(transcoder.home)] * values
    return vectors


def _group_by_position(
    columns: Tensor, vectors: Tensor, positions: Tensor, seq_len: int
) -> WriterTable:
    order = torch.argsort(positions, stable=True)
    columns, vectors, positions = columns[order], vectors[order], positions[order]
    counts = torch.bincount(positions, minlength=seq_len)
    width = max(int(counts.max()) if len(counts) else 0, 1)
    starts = torch.cumsum(counts, 0) - counts
    slots = torch.arange(len(positions)) - starts[positions]
    table_columns = torch.full((seq_len, width), -1, dtype=torch.long)
    table_vectors = vectors.new_zeros(seq_len, width, vectors.shape[-1])
    table_columns[positions, slots] = columns
    table_vectors[positions, slots] = vectors
    return WriterTable(table_columns, table_vectors)
