"""Per-feature bounds on what features without a column could score."""

import pytest
import torch

from circuitscope.attribution.influence_estimate import influence_scores
from circuitscope.attribution.limits import AttributionLimits
from circuitscope.attribution.outside_blocks import OutsideBlocks
from circuitscope.attribution.row_buffer import RowBuffer
from circuitscope.attribution.rows import RowBatch
from circuitscope.attribution.visit import _most_blocks, plan_rows


def test_blocks_follow_the_passes_and_bound_each_feature():
    blocks = OutsideBlocks(n_outside=3, block_rows=4, capacity=8)
    blocks.add(0, 2, torch.tensor([1.0, 0.0, 2.0]))
    blocks.add(2, 2, torch.tensor([0.5, 3.0, 1.0]))  # 4 rows: still the first block
    blocks.add(4, 1, torch.tensor([0.0, 1.0, 0.0]))  # would make 5: a new block
    blocks.add(5, 1, torch.tensor([4.0, 0.0, 0.0]), new_block=True)
    assert blocks.row_block[:6].tolist() == [0, 0, 0, 0, 1, 2]
    torch.testing.assert_close(blocks.maxima[0], torch.tensor([1.0, 3.0, 2.0]))
    coefficients = torch.tensor([0.5, 0.25, 0.0, 0.25, 2.0, 0.125])
    # C = [1.0, 2.0, 0.125]; per feature: 1 + 0 + 0.5 = 1.5, 3 + 2 + 0 = 5, 2 + 0 + 0 = 2
    assert blocks.bound(coefficients) == 5.0
    assert blocks.bound(torch.tensor([1.0, 0.0, 0.0, 0.0])) == 3.0  # the first rows only
    assert blocks.nbytes == 3 * 3 * 4
    with pytest.raises(ValueError, match="shape"):
        blocks.add(6, 1, torch.zeros(2))


def test_the_bound_holds_for_every_feature_and_beats_the_row_maxima():
    generator = torch.Generator().manual_seed(3)
    n_rows, n_outside = 40, 200
    magnitudes = torch.rand(n_rows, n_outside, generator=generator, dtype=torch.float64) ** 8
    coefficients = torch.rand(n_rows, generator=generator, dtype=torch.float64)
    blocks = OutsideBlocks(n_outside, block_rows=8, capacity=n_rows)
    for start in range(0, n_rows, 4):  # passes of 4 rows
        blocks.add(start, 4, magnitudes[start : start + 4].amax(dim=0))
    true = float((coefficients @ magnitudes).max())
    rows = float(coefficients @ magnitudes.amax(dim=1))
    assert true <= blocks.bound(coefficients) < rows
    single = OutsideBlocks(n_outside, block_rows=1, capacity=n_rows)
    for row in range(n_rows):
        single.add(row, 1, magnitudes[row])
    assert single.bound(coefficients) == pytest.approx(true, rel=1e-12)  # blocks of one: exact


def test_a_restricted_buffer_keeps_what_it_dropped_whole_then_blocks():
    # 5 feature columns, 1 error column, 1 logit; rows: the logit, then features 0, 2, 3.
    values = torch.tensor(
        [
            [1.0, -5.0, 2.0, 0.5, 0.5, 1.0],
            [0.0, 7.0, -1.0, 2.0, -2.0, 0.0],
            [0.0, 0.0, 3.0, -4.0, 4.0, 1.0],
            [1.0, 0.0, 0.0, 6.0, -6.0, 2.0],
        ],
        dtype=torch.float64,
    )
    buffer = RowBuffer.empty(4, n_columns=6, n_logits=1, dtype=torch.float64)
    zeros = torch.zeros(1, dtype=torch.float64)
    for row, node in enumerate([6, 0, 2, 3]):
        buffer.add(RowBatch(values[row : row + 1], zeros, zeros), torch.tensor([node]))
    kept = buffer.restricted(torch.tensor([0, 2, 3]), 5, n_logits=1, capacity=7, block_rows=2)
    assert kept.blocks is not None and kept.blocks.n_outside == 2  # features 1 and 4
    assert kept.blocks.exact is not None and kept.blocks.exact_rows == 4 and not kept.blocks.maxima
    torch.testing.assert_close(kept.blocks.exact, values[:, [1, 4]].abs(), rtol=0, atol=0)
    assert kept.outside_max[:4].tolist() == [5.0, 7.0, 4.0, 6.0]
    torch.testing.assert_close(kept.values[:4, :4], values[:, [0, 2, 3, 5]], rtol=0, atol=0)
    # exact rows: 1·[5, 0.5] + 0.5·[7, 2] + 0·[0, 4] + 0.25·[0, 6] = [8.5, 3.0]
    coefficients = torch.tensor([1.0, 0.5, 0.0, 0.25], dtype=torch.float64)
    assert kept.blocks.bound(coefficients) == 8.5
    with pytest.raises(ValueError, match="kept whole"):
        kept.blocks.add(3, 1, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="outside column maxima"):
        kept.add(RowBatch(values[:1, [0, 2, 3, 5]], zeros, zeros), torch.tensor([0]))
    for maxima in ([9.0, 0.0], [0.0, 1.0], [2.0, 0.0]):  # passes of one row, blocks of two
        batch = RowBatch(values[:1, [0, 2, 3, 5]], zeros, zeros, torch.tensor(maxima).double())
        kept.add(batch, torch.tensor([0]))
    assert kept.blocks.row_block[4:7].tolist() == [0, 0, 1]
    assert [m.tolist() for m in kept.blocks.maxima] == [[9.0, 1.0], [2.0, 0.0]]
    later = torch.cat([coefficients, torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64)])
    assert kept.blocks.bound(later) == 8.5 + 0.5 * 9.0 + 1.0 * 2.0
    with pytest.raises(ValueError, match="restricted already"):
        kept.restricted(torch.tensor([0]), 3, n_logits=1, capacity=6)


def test_influence_takes_the_tighter_of_the_two_bounds():
    generator = torch.Generator().manual_seed(5)
    n_kept, n_outside = 6, 30
    values = torch.rand(3, n_kept + 1, generator=generator, dtype=torch.float64)
    values[:, -1] = 0.0  # the logit column
    values[1:, :2] = 0.0  # feature rows 0, 1: no edges between them
    nodes = torch.tensor([n_kept, 0, 1])
    outside = torch.rand(3, n_outside, generator=generator, dtype=torch.float64)
    weights = torch.zeros(n_kept + 1, dtype=torch.float64)
    weights[-1] = 1.0
    totals = values.abs().sum(dim=1) + outside.sum(dim=1)
    blocks = OutsideBlocks(n_outside, block_rows=1, capacity=3)
    for row in range(3):
        blocks.add(row, 1, outside[row])
    row_only = influence_scores(values, nodes, weights, totals, outside.amax(dim=1))
    both = influence_scores(values, nodes, weights, totals, outside.amax(dim=1), blocks)
    torch.testing.assert_close(both.scores, row_only.scores, rtol=0, atol=0)
    # the exact outside scores: the same coefficients applied to the outside columns
    full = torch.cat([values[:, :n_kept], outside, values[:, n_kept:]], dim=1)
    full_weights = torch.cat([weights[:n_kept], torch.zeros(n_outside), weights[n_kept:]])
    full_nodes = torch.tensor([n_kept + n_outside, 0, 1])
    exact = influence_scores(full, full_nodes, full_weights.double()).scores[n_kept:-1]
    assert both.outside_bound == pytest.approx(float(exact.max()), rel=1e-12)
    assert both.outside_bound < row_only.outside_bound


def test_the_plan_charges_the_blocks_to_the_restricted_share():
    limits = AttributionLimits(max_feature_nodes=4096, batch_size=32)
    assert _most_blocks(4096, 128, 32) == 1 + 43  # closed blocks hold >= 97 rows each
    plan = plan_rows(1_560_000, 31_744, 10, limits, 4)
    blocks_mb = 44 * 1_560_000 * 4 / 2**20
    rows_mb = 0.75 * 2048 - blocks_mb
    expected = int(rows_mb * 2**20 // ((10 + 4096) * 4)) - 31_744 - 10
    assert plan.kept_columns is not None
    assert plan.kept_columns + plan.spare_columns == expected and plan.block_rows == 128
    assert plan.spare_columns == expected // 8  # room for columns given later
    assert 4096 < plan.kept_columns < 66_000


def test_dropping_features_keeps_the_others_bounds_in_place():
    exact = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, 1.0, 8.0]], dtype=torch.float64)
    storage = torch.zeros(2, 6, dtype=torch.float64)  # rows wider than the exact part
    storage[:, :4] = exact
    blocks = OutsideBlocks(n_outside=4, block_rows=4, capacity=4)
    blocks.exact = storage[:, :4]
    blocks.add(2, 1, torch.tensor([9.0, 1.0, 0.0, 2.0], dtype=torch.float64))
    coefficients = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    before = blocks.feature_bounds(coefficients)
    torch.testing.assert_close(before, torch.tensor([19.25, 4.0, 3.5, 12.0], dtype=torch.float64))
    blocks.drop(torch.tensor([0, 3]))
    assert blocks.n_outside == 2 and blocks.exact is not None and blocks.exact.shape == (2, 2)
    assert blocks.exact.data_ptr() == storage.data_ptr()  # in place
    torch.testing.assert_close(blocks.feature_bounds(coefficients), before[[1, 2]])
    assert blocks.bound(coefficients) == 4.0


def test_inserted_columns_go_before_the_errors_and_move_the_logit_nodes():
    # 2 feature columns, 1 error column, 1 logit; rows: the logit, feature 1.
    buffer = RowBuffer.empty(3, n_columns=3, n_logits=1, dtype=torch.float64, spare_columns=2)
    zeros = torch.zeros(1, dtype=torch.float64)
    buffer.add(RowBatch(torch.tensor([[1.0, 2.0, 3.0]]).double(), zeros, zeros), torch.tensor([3]))
    buffer.add(RowBatch(torch.tensor([[4.0, 0.0, 6.0]]).double(), zeros, zeros), torch.tensor([1]))
    with pytest.raises(ValueError, match="room for 2"):
        buffer.insert_columns(2, torch.zeros(2, 3, dtype=torch.float64))
    buffer.insert_columns(2, torch.tensor([[7.0, 8.0], [9.0, 10.0]], dtype=torch.float64))
    assert buffer.n_columns == 5 and buffer.spare_columns == 0
    assert buffer.values.tolist() == [
        [1.0, 2.0, 7.0, 8.0, 3.0, 0.0],
        [4.0, 0.0, 9.0, 10.0, 6.0, 0.0],
        [0.0] * 6,
    ]
    assert buffer.nodes[:2].tolist() == [5, 1]
    buffer.add(
        RowBatch(torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0]]).double(), zeros, zeros),
        torch.tensor([3]),
    )
    assert buffer.values[2].tolist() == [1.0] * 5 + [0.0]
