"""Writer tables: positions grouped in blocks, each padded to its own widest position."""

from __future__ import annotations

import pytest
import torch

from circuitscope.attribution.writers import (
    WriterBlock,
    WriterSlots,
    place_by_position,
    position_blocks,
    writer_edges,
)


def test_blocks_put_the_sink_alone_and_pad_each_run_to_its_widest():
    counts = torch.tensor([5, 1, 2, 3, 0, 0, 1])
    assert position_blocks(counts, 3) == [
        WriterBlock(0, 1, 5, 0),
        WriterBlock(1, 4, 3, 5),
        WriterBlock(4, 7, 1, 14),
    ]
    assert position_blocks(counts, 1) == [
        WriterBlock(p, p + 1, int(c), o)
        for p, (c, o) in enumerate(zip(counts, [0, 5, 6, 8, 11, 11, 11], strict=True))
    ]
    assert position_blocks(torch.tensor([4]), 8) == [WriterBlock(0, 1, 4, 0)]


def test_each_writer_gets_its_own_slot_in_its_position_row():
    positions = torch.tensor([0, 0, 1, 2, 2, 2, 6])
    blocks, offsets, slots = place_by_position(positions, 7, 3)
    assert [b.width for b in blocks] == [2, 3, 1]
    assert offsets.tolist() == [0, 2, 5, 8, 11, 12, 13, 14]
    assert slots.tolist() == [0, 1, 2, 5, 6, 7, 13]


@pytest.mark.parametrize("block_length", [1, 2, 3, 16])
@pytest.mark.parametrize("length", [1, 2, 5, 9])
def test_edges_are_each_writer_dotted_with_its_position_gradient(block_length, length):
    generator = torch.Generator().manual_seed(block_length * 10 + length)
    seq_len, d, batch = 9, 6, 4
    positions = torch.sort(torch.randint(0, seq_len, (30,), generator=generator)).values
    positions[:7] = 0  # a crowded sink
    blocks, offsets, slots = place_by_position(positions, seq_len, block_length)
    writers = WriterSlots(0, seq_len, blocks, offsets, slots, torch.arange(30), [], torch.ones(30))
    table = torch.full((writers.n_slots, d), 1e30, dtype=torch.float64)  # padding: unread
    vectors = torch.randn(30, d, generator=generator, dtype=torch.float64)
    table[slots] = vectors
    grad = torch.randn(batch, length, d, generator=generator, dtype=torch.float64)
    edges = writer_edges(grad, table, writers)
    n = writers.before(length)
    assert n == int((positions < length).sum())
    expected = torch.einsum("bkd,kd->bk", grad[:, positions[:n]], vectors[:n])
    torch.testing.assert_close(edges[:, slots[:n]], expected, rtol=0, atol=1e-12)
    assert edges.shape == (batch, int(offsets[length]))
