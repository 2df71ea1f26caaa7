"""The feature vectors written into one layer's MLP output, grouped by position.

A feature s active at (layer l_s, position p_s) with activation a_s writes
a_s · W_dec[l_s → l][i_s] into the MLP output of every layer l it decodes to (as
`Transcoder.feature_writes` computes; here from decoder rows read once per prompt).
For the edges into a batch of targets, the gradient G_l [B, seq, d] at layer l's
MLP output is dotted with the decoder rows W_dec[l_s → l][i_s]: one batched matmul
per block of positions, over a table holding each block's writers, each position
padded to the widest in its block (`WriterBlock`); the products are then scaled by
each writer's activation a_s ([B, k] numbers rather than a table of [k, d]). Blocks
(the sink alone, then runs of positions) keep the padding small where one position
has far more writers than the rest.

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


@dataclass(frozen=True)
class WriterBlock:
    """Positions [start, end) of a layer's table: `width` slots per position, the block's
    first slot at flat `offset` (position p's writers at offset + (p - start) * width)."""

    start: int
    end: int
    width: int
    offset: int


@dataclass
class WriterSlots:
    """Where each writer into one layer sits in the layer's flat table [n_slots, d]."""

    layer: int
    seq_len: int
    blocks: list[WriterBlock]
    position_offsets: Tensor
    """[seq + 1] the flat slot where each position's writers start (the last: n_slots)."""
    slots: Tensor
    """[k] flat slot of each writer, ascending (writers sorted by position)."""
    features: Tensor
    """[k] each writer's index into the active features."""
    groups: list[_SourceGroup]
    activations: Tensor
    """[k] each writer's activation a_s (its edges are a_s times the table's products)."""
    _gather: list[Tensor] | None = None
    """Per source group, each writer's decoder row (`_row_indices`), made at the first fill."""

    @property
    def n_slots(self) -> int:
        return int(self.position_offsets[-1])

    def table_bytes(self, d_model: int, itemsize: int) -> int:
        return self.n_slots * d_model * itemsize

    def before(self, length: int) -> int:
        """How many writers sit at the first `length` positions (they come first)."""
        return int(torch.searchsorted(self.slots, int(self.position_offsets[length])))

    def fill(self, decoders: ActiveDecoders, out: Tensor) -> Tensor:
        """Write each writer's W_dec[l_s → layer][i_s] into `out` [≥ n_slots, d];
        returns the flat table [n_slots, d]. Padding slots hold some writer's row (one
        source layer: one gather fills every slot) or whatever `out` held."""
        table = out[: self.n_slots]
        indices = self._row_indices(decoders)
        for group, index in zip(self.groups, indices, strict=True):
            rows = self._rows_of(decoders, group)
            if len(self.groups) == 1:  # every slot gathered in one pass, padding from row 0
                _gather_into(table, rows, index)
            else:
                vectors = rows.index_select(0, index).to(table.dtype)
                table.index_copy_(0, group.slots.to(rows.device), vectors)
        return table

    def _row_indices(self, decoders: ActiveDecoders) -> list[Tensor]:
        """Per source group, the row of `_rows_of` each writer reads (one group: of every
        slot, padding slots row 0). Fixed for the prompt: made once, kept for refills."""
        if self._gather is None:
            self._gather = []
            for group in self.groups:
                unique, rows = decoders.of_layer(group.source)
                where = torch.searchsorted(unique, decoders.features.index[group.features])
                if len(self.groups) == 1:
                    index = torch.zeros(self.n_slots, dtype=torch.long)
                    index[group.slots] = where
                    where = index
                self._gather.append(where.to(rows.device))
        return self._gather

    def _rows_of(self, decoders: ActiveDecoders, group: _SourceGroup) -> Tensor:
        """A source layer's decoder rows into this layer [u, d] (active features only)."""
        _, rows = decoders.of_layer(group.source)
        slot = decoders.transcoder.config.output_slot(group.source, self.layer)
        assert slot is not None, "writer_slots keeps only features that write here"
        return rows[:, slot].detach()


def _gather_into(out: Tensor, rows: Tensor, index: Tensor) -> None:
    """out[i] = rows[index[i]], written straight into `out` when the dtypes agree."""
    if rows.dtype == out.dtype:
        torch.index_select(rows, 0, index, out=out)
    else:
        out.copy_(rows.index_select(0, index))


def writer_edges(grad: Tensor, table: Tensor, slots: WriterSlots) -> Tensor:
    """Each writer dotted with the gradient at its position.

    grad [B, length, d], table [n_slots, d] -> [B, slots before `length`] (flat slots)."""
    batch, length = grad.shape[0], grad.shape[1]
    out = grad.new_empty(batch, int(slots.position_offsets[length]), dtype=table.dtype)
    by_position = grad.transpose(0, 1).to(table.dtype)
    for block in slots.blocks:
        stop = min(block.end, length)
        if block.start >= stop:
            break
        n, width = stop - block.start, block.width
        if not width:
            continue
        vectors = table[block.offset : block.offset + n * width].view(n, width, -1)
        edges = torch.bmm(by_position[block.start : stop], vectors.transpose(1, 2))
        out[:, block.offset : block.offset + n * width].view(batch, n, width).copy_(
            edges.transpose(0, 1)
        )
    return out


def position_blocks(counts: Tensor, block_length: int) -> list[WriterBlock]:
    """The sink (position 0) alone, then runs of `block_length` positions, each as wide
    as its widest position's count of writers. counts: [seq] writers per position."""
    seq_len = len(counts)
    bounds = [0, *range(min(1, seq_len), seq_len, max(1, block_length)), seq_len]
    blocks, offset = [], 0
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if start == end:
            continue
        width = int(counts[start:end].max())
        blocks.append(WriterBlock(start, end, width, offset))
        offset += (end - start) * width
    return blocks


def place_by_position(
    positions: Tensor, seq_len: int, block_length: int
) -> tuple[list[WriterBlock], Tensor, Tensor]:
    """Slots for writers at sorted `positions` [k]: (blocks, each position's first flat
    slot [seq + 1], each writer's flat slot [k]); a position's writers take its slots in
    order."""
    counts = torch.bincount(positions, minlength=seq_len)
    blocks = position_blocks(counts, block_length)
    position_offsets = torch.zeros(seq_len + 1, dtype=torch.long)
    for block in blocks:
        span = torch.arange(block.start, block.end + 1)
        position_offsets[span] = block.offset + (span - block.start) * block.width
    starts = torch.cumsum(counts, 0) - counts
    slots = position_offsets[positions] + torch.arange(len(positions)) - starts[positions]
    return blocks, position_offsets, slots


def writer_slots(
    transcoder: Transcoder,
    features: ActiveFeatures,
    layer: int,
    seq_len: int,
    block_length: int = 1,
) -> WriterSlots:
    """Every active feature that writes into `layer`'s MLP output, placed by position
    in blocks of `block_length` positions (`position_blocks`)."""
    writes_here = [source for source in range(layer + 1)
                   if transcoder.config.output_slot(source, layer) is not None]  # fmt: skip
    mask = torch.isin(features.layer, torch.tensor(writes_here, dtype=features.layer.dtype))
    chosen = torch.nonzero(mask).flatten()
    positions = features.position[chosen]
    order = torch.argsort(positions, stable=True)
    chosen, positions = chosen[order], positions[order]
    blocks, position_offsets, slots = place_by_position(positions, seq_len, block_length)
    sources = features.layer[chosen]
    groups = [
        _SourceGroup(source, slots[sources == source], chosen[sources == source])
        for source in torch.unique(sources).tolist()
    ]
    activations = features.activation[chosen]
    return WriterSlots(layer, seq_len, blocks, position_offsets, slots, chosen, groups, activations)
