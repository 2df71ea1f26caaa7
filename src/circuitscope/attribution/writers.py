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

from circuitscope.attribution.columns import PADDING
from circuitscope.attribution.replacement import ActiveFeatures
from circuitscope.transcoders.transcoder import Transcoder


@dataclass
class WriterTable:
    columns: Tensor
    """[seq, width] each writer's row column; PADDING or OUTSIDE (on the CPU)."""
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


def writers_into(transcoder: Transcoder, features: ActiveFeatures, layer: int) -> Tensor:
    """[k] indices of the active features that write into `layer`'s MLP output."""
    clt = transcoder.config.kind == "clt"
    mask = features.layer <= layer if clt else features.layer == layer
    return torch.nonzero(mask).flatten()


def writer_table_bytes(
    transcoder: Transcoder, features: ActiveFeatures, layer: int, seq_len: int, dtype: torch.dtype
) -> int:
    """The size of `writer_table`'s vectors for `layer`, from the feature table alone."""
    positions = features.position[writers_into(transcoder, features, layer)]
    counts = torch.bincount(positions, minlength=seq_len)
    width = max(int(counts.max()) if len(counts) else 0, 1)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return seq_len * width * transcoder.config.d_model * itemsize


class ActiveDecoders:
    """The decoder rows of the active features, read once per source layer and kept."""

    def __init__(self, transcoder: Transcoder, features: ActiveFeatures) -> None:
        self.transcoder = transcoder
        self.features = features
        self._rows: dict[int, tuple[Tensor, Tensor]] = {}

    def of_layer(self, source: int) -> tuple[Tensor, Tensor]:
        """(unique [u] feature indices active in `source`, their rows [u, n_out, d])."""
        if source not in self._rows:
            index = self.features.index[self.features.layer == source]
            unique = torch.unique(index)
            self._rows[source] = (unique, self.transcoder.active_decoders(source, unique))
        return self._rows[source]


def writer_table(
    decoders: ActiveDecoders,
    feature_columns: Tensor,
    layer: int,
    seq_len: int,
    dtype: torch.dtype,
) -> WriterTable:
    """Every active feature that writes into `layer`'s MLP output.

    feature_columns [N]: each active feature's row column, or OUTSIDE."""
    features = decoders.features
    chosen = writers_into(decoders.transcoder, features, layer)
    vectors = _writer_vectors(decoders, chosen, layer, dtype)
    return _group_by_position(feature_columns[chosen], vectors, features.position[chosen], seq_len)


def _writer_vectors(
    decoders: ActiveDecoders, chosen: Tensor, layer: int, dtype: torch.dtype
) -> Tensor:
    """[k, d]: a_s · W_dec[l_s → layer][i_s] for each chosen active feature."""
    transcoder, features = decoders.transcoder, decoders.features
    home = transcoder.home
    vectors = torch.zeros(len(chosen), transcoder.config.d_model, dtype=dtype, device=home)
    source_layers = features.layer[chosen]
    for source in torch.unique(source_layers).tolist():
        rows = torch.nonzero(source_layers == source).flatten()
        unique, decoder_rows = decoders.of_layer(source)
        where = torch.searchsorted(unique, features.index[chosen[rows]])
        slot = layer - source if transcoder.config.kind == "clt" else 0
        picked = decoder_rows[where.to(home), slot].to(dtype)
        values = features.activation[chosen[rows], None].to(home, dtype)
        vectors[rows.to(home)] = picked * values
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
    table_columns = torch.full((seq_len, width), PADDING, dtype=torch.long)
    table_vectors = vectors.new_zeros(seq_len, width, vectors.shape[-1])
    table_columns[positions, slots] = columns
    table_vectors[positions, slots] = vectors
    return WriterTable(table_columns, table_vectors)
