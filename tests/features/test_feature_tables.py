"""The pieces the corpus pass is made of: bins, selection, slot tables, side-by-side updates."""

from __future__ import annotations

import math

import pytest
import torch
from stats_fixtures import tiny_setup

from circuitscope.features import stream
from circuitscope.features.ranges import bin_of, power_of_two
from circuitscope.features.selection import keep_smallest
from circuitscope.features.side_by_side import SideBySide
from circuitscope.features.stats_settings import StatsSettings
from circuitscope.features.stream import collect_stats
from circuitscope.features.tables import EMPTY_KEY, SlotTable


def test_power_of_two_is_exact() -> None:
    k = torch.arange(-126, 128)
    assert power_of_two(k).tolist() == [2.0**i for i in range(-126, 128)]


@pytest.mark.parametrize("n_bins", [1, 8, 256])
def test_bin_of_is_the_floor_of_the_exact_scaled_value(n_bins: int) -> None:
    generator = torch.Generator().manual_seed(0)
    exponent = torch.randint(-30, 20, (4000,), generator=generator)
    fraction = torch.rand(4000, generator=generator)
    values = (fraction * torch.pow(2.0, exponent.double())).float()
    values[:8] = torch.tensor([2.0**-149, 2.0**-126, 1e-38, 1e-30, 0.0, 0.5, 0.75, 1.0]) * 0.999
    exponent[:8] = torch.tensor([-30, -30, -30, -30, -30, 0, 0, 0])
    below = torch.nextafter(torch.pow(2.0, exponent.float()), torch.tensor(0.0))
    values = torch.minimum(values, below)  # every value below 2^exponent, as the pass has it
    expected = [
        min(math.floor(v * 2.0 ** (int(math.log2(n_bins)) - e)), n_bins - 1)
        for v, e in zip(values.double().tolist(), exponent.tolist(), strict=True)
    ]
    assert bin_of(values, exponent, n_bins).tolist() == expected


def _brute_keep(slot, key, position, capacity):  # noqa: ANN001, ANN202
    kept = set()
    for s in set(slot.tolist()):
        entries = sorted(
            (int(k), int(p), i)
            for i, (t, k, p) in enumerate(zip(slot, key, position, strict=True))
            if int(t) == s
        )
        limit = capacity if isinstance(capacity, int) else int(capacity[entries[0][2]])
        kept |= {i for _, _, i in entries[:limit]}
    return kept


def test_keep_smallest_with_ties_and_a_capacity_per_slot() -> None:
    generator = torch.Generator().manual_seed(1)
    n = 600
    slot = torch.randint(0, 40, (n,), generator=generator)
    key = torch.randint(0, 20, (n,), generator=generator)  # many equal keys in a slot
    position = torch.randperm(n, generator=generator)
    for capacity in (3, torch.randint(0, 6, (40,), generator=generator)[slot]):
        kept, rank = keep_smallest(slot, key, position, capacity)
        assert set(kept.tolist()) == _brute_keep(slot, key, position, capacity)
        for s in slot[kept].unique():
            ranks = rank[slot[kept] == s]
            assert sorted(ranks.tolist()) == list(range(len(ranks)))


def test_offers_in_rounds_keep_what_one_selection_over_everything_keeps() -> None:
    generator = torch.Generator().manual_seed(2)
    n_slots, capacity, width = 12, 5, 3
    table = SlotTable.empty(n_slots, capacity, width)
    everything = []
    next_position = 0
    for size in (4, 70, 1, 0, 33, 120, 9):
        slot = torch.randint(0, n_slots, (size,), generator=generator)
        key = torch.randint(0, 30, (size,), generator=generator)
        position = torch.arange(next_position, next_position + size)
        next_position += size
        value = position.float() / 7

        def windows(i: torch.Tensor, p=position) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
            rows = p[i].float().unsqueeze(1)
            return rows + torch.arange(width), (rows.long() * 10 + torch.arange(width)).int()

        threshold = table.threshold()
        chosen = (key <= threshold[slot]).nonzero().flatten()  # what the pass offers
        table.offer(
            slot[chosen],
            key[chosen],
            position[chosen],
            value[chosen],
            lambda i, c=chosen: windows(c[i]),
        )
        everything += list(zip(slot.tolist(), key.tolist(), position.tolist(), strict=True))
    table.in_order()
    for s in range(n_slots):
        expected = sorted((k, p) for t, k, p in everything if t == s)[:capacity]
        kept = table.position[s][table.position[s] >= 0]
        assert kept.tolist() == [p for _, p in expected]
        assert table.key[s, : len(kept)].tolist() == [k for k, _ in expected]
        assert (table.key[s, len(kept) :] == EMPTY_KEY).all()
        p = kept.float().unsqueeze(1)
        assert torch.equal(table.value[s, : len(kept)], kept.float() / 7)
        assert torch.equal(table.acts[s, : len(kept)], p + torch.arange(width))
        assert torch.equal(
            table.tokens[s, : len(kept)], (p.long() * 10 + torch.arange(width)).int()
        )


def test_layers_updated_side_by_side_equal_serial_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = tiny_setup("plt")
    settings = StatsSettings(
        top_k=4, intervals=4, per_interval=2, histogram_bins=16, before=2, after=1
    )
    features = {layer: torch.arange(24) for layer in range(tiny.adapter.n_layers)}
    results = []
    for width in (1, 3):
        monkeypatch.setattr(stream, "SideBySide", lambda _threads, w=width: SideBySide(w))
        batches = tiny.batches(5)
        stats = collect_stats(
            tiny.adapter, tiny.transcoder, batches, 12, features, settings, progress=False
        )
        results.append(stats)
    serial, side_by_side = results
    for layer, a in serial.layers.items():
        b = side_by_side.layers[layer]
        assert torch.equal(a.histogram, b.histogram) and torch.equal(a.count, b.count)
        for table_a, table_b in ((a.top, b.top), (a.samples, b.samples)):
            assert torch.equal(table_a.position, table_b.position)
            assert torch.equal(table_a.value, table_b.value)
            assert torch.equal(table_a.acts, table_b.acts)
