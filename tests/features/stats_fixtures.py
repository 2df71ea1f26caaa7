"""A tiny model, transcoder and batches of contexts, and brute-force answers to compare with."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.features.ranges import bin_of, exponent_of
from circuitscope.features.selection import sample_key
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model
from circuitscope.testing.tiny_transcoders import tiny_transcoder
from circuitscope.transcoders.transcoder import Transcoder


@dataclass
class Tiny:
    adapter: ModelAdapter
    transcoder: Transcoder
    ids: Tensor  # [n_contexts, T]

    def batches(self, batch_size: int) -> list[Tensor]:
        return list(self.ids.split(batch_size))


def tiny_setup(kind: str = "clt", n_contexts: int = 12, length: int = 16, seed: int = 0) -> Tiny:
    adapter = ModelAdapter(tiny_model("llama"))
    transcoder = tiny_transcoder(adapter, kind, n_features=24, seed=seed)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 300, (n_contexts, length), generator=generator)
    ids[:, 0] = 1
    return Tiny(adapter, transcoder, ids)


@torch.no_grad()
def all_acts(tiny: Tiny, layer: int) -> Tensor:
    """[n_contexts, T, F] every activation (float32), by one forward over everything."""
    site = tiny.transcoder.config.site_in(layer)
    x = tiny.adapter.run(tiny.ids, capture=[site], unembed=False).cache[site]
    return tiny.transcoder.encode(layer, x).float()


def brute_entries(acts: Tensor, feature: int) -> tuple[Tensor, Tensor]:
    """(values, global positions) of every positive activation of `feature` (position 0 skipped)."""
    length = acts.shape[1]
    values = acts[:, 1:, feature].flatten()
    positions = (
        torch.arange(acts.shape[0]).unsqueeze(1) * length + torch.arange(1, length)
    ).flatten()
    keep = values > 0
    return values[keep], positions[keep]


def brute_top(values: Tensor, positions: Tensor, k: int) -> list[tuple[float, int]]:
    pairs = sorted(
        zip(values.tolist(), positions.tolist(), strict=True), key=lambda p: (-p[0], p[1])
    )
    return pairs[:k]


def brute_histogram(values: Tensor, n_bins: int) -> tuple[int, Tensor]:
    exponent = int(exponent_of(values).max()) if len(values) else -30
    bins = bin_of(values, torch.full_like(values, exponent, dtype=torch.long), n_bins)
    return exponent, torch.bincount(bins, minlength=n_bins)


def brute_samples(
    values: Tensor, positions: Tensor, global_id: int, exponent: int, n_intervals: int, per: int
) -> dict[int, list[int]]:
    """interval -> sampled positions (the per smallest hashed keys)."""
    keys = sample_key(torch.full_like(positions, global_id), positions)
    bins = bin_of(values, torch.full_like(positions, exponent), n_intervals)
    out: dict[int, list[int]] = {}
    for interval in range(n_intervals):
        mask = bins == interval
        pairs = sorted(zip(keys[mask].tolist(), positions[mask].tolist(), strict=True))
        if pairs:
            out[interval] = [p for _, p in pairs[:per]]
    return out
