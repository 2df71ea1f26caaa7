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

from circuitscope.features.firings import Batch, Thresholds, firings_of
from circuitscope.features.ranges import MIN_EXPONENT, bin_of, exponent_of, rebin_counts
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
        firings = firings_of(acts.view(-1, n_features), length)
        count, batch_max = firings.totals()
        self.count += count
        seen = torch.where(batch_max > 0, exponent_of(batch_max), MIN_EXPONENT)
        grown = torch.maximum(self.exponent, seen)
        shift, self.exponent = grown - self.exponent, grown
        rebin_counts(self.histogram, shift)
        grew = (shift > 0).nonzero().flatten()
        if len(grew):  # bins merged: move kept samples first, so thresholds are the merged bins'
            q = settings.intervals
            rows = (grew.unsqueeze(1) * q + torch.arange(q)).flatten()
            self.samples.move(rows, self.sample_slots(settings))
        given = Thresholds(
            self.exponent,
            self.histogram,
            self.top.threshold(),
            self.samples.threshold(),
            self.feature_ids,
            settings.intervals,
            settings.top_k,
            settings.per_interval,
        )
        top, samples = firings.select(first_position, given)
        batch = Batch(acts, input_ids, first_position, settings.before, settings.after)
        firings.offer(self.top, top, 1, batch)
        firings.offer(self.samples, samples, settings.intervals, batch)

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
