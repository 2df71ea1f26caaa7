"""What the pass keeps for one layer's features: memory independent of corpus length.

- `count` [F]: tokens where the feature fired (activation > 0);
- `exponent` [F]: its activation range [0, 2^e) (see `ranges`);
- `histogram` [F, H]: counts of its positive activations in H bins of that range;
- `top` (slots = features, capacity k): its k largest activations (ties: earlier token);
- `samples` (slots = feature · intervals + interval): per activation interval, a
  uniform sample of `per_interval` activations, chosen by hashed keys (`sample_key`).

Each kept entry carries its context window, taken from the batch it came in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.features.ranges import MIN_EXPONENT, bin_of, exponent_of, rebin_counts
from circuitscope.features.selection import descending_key, sample_key
from circuitscope.features.stats_settings import StatsSettings
from circuitscope.features.tables import SlotTable


@dataclass
class LayerStats:
    feature_ids: Tensor  # [F] global ids (layer · 2^24 + index), for sample keys
    count: Tensor  # [F] int64
    exponent: Tensor  # [F] int64
    histogram: Tensor  # [F, H] int64
    top: SlotTable
    samples: SlotTable

    @classmethod
    def empty(cls, layer: int, features: Tensor, settings: StatsSettings) -> LayerStats:
        n = len(features)
        return cls(
            feature_ids=layer * (1 << 24) + features.long(),
            count=torch.zeros(n, dtype=torch.long),
            exponent=torch.full((n,), MIN_EXPONENT, dtype=torch.long),
            histogram=torch.zeros(n, settings.histogram_bins, dtype=torch.long),
            top=SlotTable.empty(n, settings.top_k, settings.width),
            samples=SlotTable.empty(n * settings.intervals, settings.per_interval, settings.width),
        )

    def update(
        self, acts: Tensor, input_ids: Tensor, first_position: int, settings: StatsSettings
    ) -> None:
        """Add a batch. acts: [B, T, F] float32 (position 0 of each context is skipped),
        input_ids: [B, T], first_position: global position of token 0 of context 0;
        contexts are consecutive (context b starts at first_position + b·T)."""
        acts = acts.contiguous()
        length, n_features = acts.shape[1], acts.shape[2]
        fired = acts > 0
        fired[:, 0] = False
        row, f = fired.view(-1, n_features).nonzero(as_tuple=True)  # row = b·T + t
        value = acts.view(-1).index_select(0, row * n_features + f)
        position = first_position + row
        self.count += torch.bincount(f, minlength=n_features)
        batch_max = torch.zeros(n_features).scatter_reduce_(0, f, value, "amax")
        seen = torch.where(batch_max > 0, exponent_of(batch_max), MIN_EXPONENT)
        grown = torch.maximum(self.exponent, seen)
        shift, self.exponent = grown - self.exponent, grown
        rebin_counts(self.histogram, shift)
        n_bins = settings.histogram_bins
        fine = bin_of(value, self.exponent.index_select(0, f), n_bins)
        ones = torch.ones_like(f)
        self.histogram.view(-1).index_put_((f * n_bins + fine,), ones, accumulate=True)

        def windows(i: Tensor) -> tuple[Tensor, Tensor]:
            b, t = row[i] // length, row[i] % length
            return _windows(acts, input_ids, b, t, f[i], settings)

        self._offer_top(f, value, position, windows)
        interval = fine >> (n_bins.bit_length() - settings.intervals.bit_length())
        self._offer_samples(f, interval, value, position, windows, settings, shift)

    def _offer_top(self, f, value, position, windows) -> None:  # noqa: ANN001
        """Entries below the kept k-th value of their feature cannot enter."""
        key = descending_key(value)
        chosen = (key <= self.top.threshold().index_select(0, f)).nonzero().flatten()
        self.top.offer(
            f[chosen], key[chosen], position[chosen], value[chosen], lambda i: windows(chosen[i])
        )

    def _offer_samples(self, f, interval, value, position, windows, settings, shift) -> None:  # noqa: ANN001
        q = settings.intervals
        grew = (shift > 0).nonzero().flatten()
        if len(grew):  # bins merged: move kept samples first, so thresholds are the merged bins'
            rows = (grew.unsqueeze(1) * q + torch.arange(q)).flatten()
            self.samples.move(rows, self.sample_slots(settings))
        slot = f * q + interval
        key = sample_key(self.feature_ids.index_select(0, f), position)
        chosen = (key <= self.samples.threshold().index_select(0, slot)).nonzero().flatten()
        self.samples.offer(
            slot[chosen], key[chosen], position[chosen], value[chosen], lambda i: windows(chosen[i])
        )

    def sample_slots(self, settings: StatsSettings) -> Tensor:
        """[S, c] the slot each kept sample belongs in under the current ranges."""
        q = settings.intervals
        slot, place = self.samples.filled()
        out = torch.zeros_like(self.samples.position)
        feature = slot // q
        value = self.samples.value[slot, place]
        out[slot, place] = feature * q + bin_of(value, self.exponent[feature], q)
        return out

    def in_order(self) -> None:
        """Sort the kept entries of every slot (the pass keeps them unordered): top
        examples largest first, ties to the earlier token."""
        self.top.in_order()
        self.samples.in_order()

    def absorb(self, other: LayerStats, settings: StatsSettings) -> None:
        """Merge another process's stats of the same features (exact)."""
        exponent = torch.maximum(self.exponent, other.exponent)
        self.histogram = rebin_counts(self.histogram, exponent - self.exponent) + rebin_counts(
            other.histogram, exponent - other.exponent
        )
        self.count += other.count
        everything = torch.arange(self.samples.n_slots)
        self.exponent, other.exponent = exponent, exponent.clone()
        self.samples.move(everything, self.sample_slots(settings))
        other.samples.move(everything, other.sample_slots(settings))
        self.top.absorb(other.top)
        self.samples.absorb(other.samples)


def _windows(
    acts: Tensor, input_ids: Tensor, b: Tensor, t: Tensor, f: Tensor, settings: StatsSettings
) -> tuple[Tensor, Tensor]:
    """Activations of feature f and token ids around (b, t): ([m, W], [m, W]); position 0
    and positions past the context are padding (activation 0, token -1)."""
    offsets = torch.arange(-settings.before, settings.after + 1)
    where = t.unsqueeze(1) + offsets
    valid = (where >= 1) & (where < acts.shape[1])
    where = where.clamp(0, acts.shape[1] - 1)
    row = b.unsqueeze(1) * acts.shape[1] + where  # (index_select: ~3x faster than [] here)
    picked = acts.view(-1).index_select(0, (row * acts.shape[2] + f.unsqueeze(1)).view(-1))
    window_acts = torch.where(valid, picked.view_as(where), 0.0) + 0.0  # no -0.0
    tokens = torch.where(
        valid, input_ids.reshape(-1).index_select(0, row.view(-1)).view_as(where), -1
    )
    return window_acts, tokens
