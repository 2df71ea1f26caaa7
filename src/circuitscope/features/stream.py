"""The single pass over a corpus that fills every layer's `LayerStats`.

Contexts are numbered in stream order; token t of context i has global position
i·T + t (T the context length). With several processes (torchrun), process r
takes the batches whose number is r modulo the world size: disjoint shards of the
same numbered stream, so positions and sample keys are those of a single process
and `merge_across_processes` rebuilds the single-process result exactly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.distributed as dist
from torch import Tensor, nn

from circuitscope.errors import CircuitscopeError
from circuitscope.features.input_tokens import mlp_norm
from circuitscope.features.layer_stats import LayerStats
from circuitscope.features.side_by_side import SideBySide
from circuitscope.features.stats_settings import StatsSettings
from circuitscope.features.tables import SlotTable
from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter
from circuitscope.models.norms import norm_scale
from circuitscope.transcoders.transcoder import Transcoder


@dataclass
class FeatureStats:
    """Everything the pass keeps, per layer, plus corpus totals."""

    layers: dict[int, LayerStats]
    features: dict[int, Tensor]  # layer -> [F] feature indices covered
    settings: StatsSettings
    context_length: int
    tokens: int = 0
    """Positions seen (position 0 of each context excluded)."""
    divisor_sum: float = 0.0
    """Sum over those positions of the final norm's divisor (rms or std of the residual)."""
    input_divisor_sums: dict[int, float] = field(default_factory=dict)
    """Per layer, when the transcoder reads the MLP's input: the same sum for the MLP's norm
    (`input_tokens` freezes that norm at the mean)."""
    seconds: float = 0.0
    contexts: int = 0

    @property
    def typical_divisor(self) -> float:
        return self.divisor_sum / max(self.tokens, 1)

    def typical_input_divisor(self, layer: int) -> float:
        """The mean divisor of `layer`'s MLP norm (1.0 when the transcoder reads no norm)."""
        if layer not in self.input_divisor_sums:
            return 1.0
        return self.input_divisor_sums[layer] / max(self.tokens, 1)


@dataclass
class Shard:
    rank: int = 0
    world_size: int = 1


@torch.no_grad()
def collect_stats(
    adapter: ModelAdapter,
    transcoder: Transcoder,
    batches: Iterable[Tensor],
    n_contexts: int,
    features: dict[int, Tensor],
    settings: StatsSettings,
    shard: Shard | None = None,
    progress: bool = True,
) -> FeatureStats:
    """Stream up to `n_contexts` contexts (batches [B, T] of ids, B fixed but the last)."""
    from tqdm import tqdm

    shard = shard or Shard()
    layers = sorted(features)
    stats = {layer: LayerStats.empty(layer, features[layer], settings) for layer in layers}
    result = FeatureStats(stats, features, settings, context_length=0)
    if transcoder.config.input_kind == "mlp_in":
        result.input_divisor_sums = dict.fromkeys(layers, 0.0)
    capture = [transcoder.config.site_in(layer) for layer in layers]
    capture += [sites.resid_mid(layer) for layer in result.input_divisor_sums]
    final_site = sites.resid_post(adapter.n_layers - 1)
    start, seen = time.perf_counter(), 0
    bar = tqdm(total=n_contexts, unit="ctx", disable=not progress, desc="features")
    with SideBySide(torch.get_num_threads()) as updates:
        for number, ids in enumerate(batches):
            ids = ids[: n_contexts - seen]
            first, seen = seen, seen + len(ids)
            if len(ids) == 0:
                break
            result.context_length = int(ids.shape[1])
            if number % shard.world_size == shard.rank:
                _add_batch(adapter, transcoder, ids, first, capture, final_site, result, updates)
            bar.update(len(ids))
            tokens_per_s = seen * (ids.shape[1] - 1) / (time.perf_counter() - start)
            bar.set_postfix(tok_s=f"{tokens_per_s:.0f}")
            if seen >= n_contexts:
                break
    bar.close()
    if seen == 0:
        raise CircuitscopeError("the corpus gave no complete context: give more text")
    for stats_of_layer in stats.values():
        stats_of_layer.in_order()
    result.contexts, result.seconds = seen, time.perf_counter() - start
    return result


def _add_batch(
    adapter: ModelAdapter,
    transcoder: Transcoder,
    ids: Tensor,
    first_context: int,
    capture: list[str],
    final_site: str,
    result: FeatureStats,
    updates: SideBySide,
) -> None:
    """Run the model on a batch, then encode and add its activations, `updates.width`
    layers at a time (the encodes with every thread, the updates side by side)."""
    ids = ids.to(adapter.device)
    cache = adapter.run(ids, capture=[*capture, final_site], unembed=False).cache
    _add_divisors(adapter, cache, final_site, result)
    result.tokens += int(ids.shape[0] * (ids.shape[1] - 1))
    first_position = first_context * int(ids.shape[1])
    ids_cpu = ids.cpu()
    layers = list(result.layers)
    for start in range(0, len(layers), updates.width):
        chunk = layers[start : start + updates.width]
        acts = [_encode(transcoder, result, layer, cache) for layer in chunk]
        updates.run(
            [
                partial(result.layers[layer].update, a, ids_cpu, first_position, result.settings)
                for layer, a in zip(chunk, acts, strict=True)
            ]
        )


def _encode(
    transcoder: Transcoder, result: FeatureStats, layer: int, cache: dict[str, Tensor]
) -> Tensor:
    """[B, T, F] float32 on the CPU: the activations of `layer`'s covered features."""
    x = cache.pop(transcoder.config.site_in(layer)).to(transcoder.home)
    features = result.features[layer]
    if len(features) < transcoder.config.n_features[layer]:  # a subset (--features-of)
        return transcoder.encode_columns(layer, x, features).float().cpu()
    return transcoder.encode(layer, x).float().cpu()


def _add_divisors(
    adapter: ModelAdapter, cache: dict[str, Tensor], final_site: str, result: FeatureStats
) -> None:
    """Add a batch's divisors of the final norm (and of the MLP norms read) to the sums."""
    result.divisor_sum += _divisor_sum(adapter, adapter.final_norm, cache.pop(final_site))
    for layer in result.input_divisor_sums:
        norm_input = cache.pop(sites.resid_mid(layer))
        result.input_divisor_sums[layer] += _divisor_sum(
            adapter, mlp_norm(adapter, layer), norm_input
        )


def _divisor_sum(adapter: ModelAdapter, norm: nn.Module, x: Tensor) -> float:
    """The norm's divisor (rms or std) summed over the positions of x [B, T, d] but 0."""
    return float((1.0 / norm_scale(adapter.spec.norm_kind, norm, x[:, 1:])).double().sum())


def merge_across_processes(result: FeatureStats) -> FeatureStats:
    """Rank 0 gets the union of every process's stats (others keep theirs); exact."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return result
    inputs = sorted(result.input_divisor_sums)
    sums = [result.input_divisor_sums[layer] for layer in inputs]
    totals = torch.tensor([result.tokens, result.divisor_sum, *sums], dtype=torch.float64)
    dist.all_reduce(totals)
    result.tokens, result.divisor_sum = int(totals[0]), float(totals[1])
    result.input_divisor_sums = dict(zip(inputs, totals[2:].tolist(), strict=True))
    for mine in result.layers.values():
        others = [_gather(mine, rank) for rank in range(1, dist.get_world_size())]
        if dist.get_rank() == 0:
            for other in others:
                mine.absorb(other, result.settings)
            mine.in_order()
    return result


def _gather(stats: LayerStats, source: int) -> LayerStats:
    """Process `source`'s stats, broadcast to every process (tensors of equal shapes)."""
    fields = (
        stats.count,
        stats.exponent,
        stats.histogram,
        *_table(stats.top),
        *_table(stats.samples),
    )
    received = [tensor.clone() for tensor in fields]
    for tensor in received:
        dist.broadcast(tensor, src=source)
    count, exponent, histogram = received[:3]
    top, samples = SlotTable(*received[3:8]), SlotTable(*received[8:13])
    return LayerStats(stats.feature_ids, count, exponent, histogram, top, samples)


def _table(table: SlotTable) -> tuple[Tensor, ...]:
    return (table.key, table.position, table.value, table.acts, table.tokens)
