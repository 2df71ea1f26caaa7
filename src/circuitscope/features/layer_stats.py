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

from circuitscope.features.firings import Candidates, Thresholds, firings_of
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
        )
        top, samples = firings.select(first_position, given)
        self._offer(self.top, top, 1, first_position, acts, input_ids, settings)
        self._offer(
            self.samples, samples, settings.intervals, first_position, acts, input_ids, settings
        )

    @staticmethod
    def _offer(
        table: SlotTable,
        offered: Candidates,
        per_feature: int,
        first_position: int,
        acts: Tensor,
        input_ids: Tensor,
        settings: StatsSettings,
    ) -> None:
        """Offer candidates to a table (`per_feature` slots per feature); windows are cut
        only for the entries it keeps."""
        length = acts.shape[1]

        def windows(i: Tensor) -> tuple[Tensor, Tensor]:
            row, feature = offered.row[i], offered.slot[i] // per_feature
            return _windows(acts, input_ids, row // length, row % length, feature, settings)

        position = first_position + offered.row
        table.offer(offered.slot, offered.key, position, offered.value, windows)

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
