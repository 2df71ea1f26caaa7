"""The feature vectors written into one layer's MLP output, grouped by position.

A feature s active at (layer l_s, position p_s) with activation a_s writes
a_s · W_dec[l_s → l][i_s] into the MLP output of every layer l it decodes to (as
`Transcoder.feature_writes` computes; here from decoder rows read once per prompt).
For the edges into a batch of targets, the gradient G_l [B, seq, d] at layer l's
MLP output is dotted with those vectors: one batched matmul per layer, over a
table [seq, width, d] holding each position's writers (padded to the widest).

Where each writer sits (`WriterSlots`) is fixed for a prompt; the vectors are
either kept (`RowComputer` caches tables up to `writer_cache_mb`) or refilled from the
decoder rows before each use (long prompts: 1.5 million writers would take gigabytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.attribution.replacement import ActiveFeatures
from circuitscope.transcoders.transcoder import Transcoder


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

    def clear(self) -> None:
        self._rows.clear()


@dataclass
class _SourceGroup:
    source: int
    slots: Tensor
    """[k] flat slots (position * width + i) of this source layer's writers."""
    features: Tensor
    """[k] their indices into the active features."""


@dataclass
class WriterSlots:
    """Where each writer into one layer sits in the layer's table [seq, width, d]."""

    layer: int
    seq_len: int
    width: int
    slots: Tensor
    """[k] flat slot of each writer, ascending (writers sorted by position)."""
    features: Tensor
    """[k] each writer's index into the active features."""
    groups: list[_SourceGroup]

    def table_bytes(self, d_model: int, itemsize: int) -> int:
        return self.seq_len * self.width * d_model * itemsize

    def before(self, length: int) -> int:
        """How many writers sit at the first `length` positions (they come first)."""
        return int(torch.searchsorted(self.slots, length * self.width))

    def fill(self, decoders: ActiveDecoders, out: Tensor) -> Tensor:
        """Write a_s · W_dec[l_s → layer][i_s] into `out` [≥ seq·width, d]; returns the
        table view [seq, width, d] (padding slots hold whatever `out` held)."""
        features = decoders.features
        config = decoders.transcoder.config
        for group in self.groups:
            unique, rows = decoders.of_layer(group.source)
            where = torch.searchsorted(unique, features.index[group.features])
            slot = config.output_slot(group.source, self.layer)
            assert slot is not None, "writer_slots keeps only features that write here"
            home = rows.device
            vectors = rows[:, slot].index_select(0, where.to(home)).to(out.dtype)
            values = features.activation[group.features].to(home, out.dtype)
            out.index_copy_(0, group.slots.to(home), vectors * values[:, None])
        size = self.seq_len * self.width
        return out[:size].view(self.seq_len, self.width, -1)


def writer_edges(grad: Tensor, table: Tensor) -> Tensor:
    """Each writer dotted with the gradient at its position.

    grad [B, seq, d], table [≥ seq, width, d] -> [B, seq * width] (flat slots)."""
    length = grad.shape[1]
    vectors = table[:length]
    out = torch.bmm(grad.transpose(0, 1).to(vectors.dtype), vectors.transpose(1, 2))
    return out.permute(1, 0, 2).reshape(grad.shape[0], -1)


def writer_slots(
    transcoder: Transcoder, features: ActiveFeatures, layer: int, seq_len: int
) -> WriterSlots:
    """Every active feature that writes into `layer`'s MLP output, placed by position."""
    writes_here = [source for source in range(layer + 1)
                   if transcoder.config.output_slot(source, layer) is not None]  # fmt: skip
    mask = torch.isin(features.layer, torch.tensor(writes_here, dtype=features.layer.dtype))
    chosen = torch.nonzero(mask).flatten()
    positions = features.position[chosen]
    order = torch.argsort(positions, stable=True)
    chosen, positions = chosen[order], positions[order]
    counts = torch.bincount(positions, minlength=seq_len)
    width = max(int(counts.max()) if len(counts) else 0, 1)
    starts = torch.cumsum(counts, 0) - counts
    slots = positions * width + torch.arange(len(positions)) - starts[positions]
    sources = features.layer[chosen]
    groups = [
        _SourceGroup(source, slots[sources == source], chosen[sources == source])
        for source in torch.unique(sources).tolist()
    ]
    return WriterSlots(layer, seq_len, width, slots, chosen, groups)
