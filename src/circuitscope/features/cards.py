"""From the pass's stats and logit effects to circuit-tracer feature cards (JSON-ready dicts).

Choices, for readers of the cards:
- position 0 of every context (the BOS / attention sink) is never an example and
  never counted, as in the graphs; windows start at position 1;
- `examples_quantiles`: first "Top activations" (the k largest activations over
  the corpus, exact), then one group per activation interval, highest first: the
  feature's range [0, 2^e) (e the smallest with max < 2^e) cut into equal
  intervals, each with a uniform sample of its activations. An example also among
  the top ones has `is_repeated_datapoint` true;
- `act_min` is 0; `histogram` counts positive activations in equal bins from 0
  (width in `histogram_bin_width`), up to the bin holding the maximum;
- `quantile_values[i]` is the (i+1)-th percentile of the positive activations,
  interpolated inside the fine histogram bins (error below one fine bin,
  `2^e / 256`); the last is the exact maximum;
- `activation_frequency`: the fraction of tokens where the feature fires.
Extra fields beside circuit-tracer's: layer, label, top/bottom logit values,
histogram_bin_width, n_tokens; with input tokens asked for, `top_input_tokens` and
`top_input_token_values` (see `input_tokens`; circuit-tracer's reader ignores them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from circuitscope.features.layer_stats import LayerStats
from circuitscope.features.stats_settings import StatsSettings
from circuitscope.features.tables import SlotTable

Decode = Callable[[list[int]], list[str]]
"""Token ids -> the text of each token."""
EMITTED_BINS = 64


class _Rows:
    """A table's kept entries as Python lists (one conversion per layer, not per card)."""

    def __init__(self, table: SlotTable) -> None:
        self.position = table.position.tolist()
        self.value = table.value.tolist()
        self.acts = table.acts.tolist()
        self.tokens = table.tokens.tolist()

    def places(self, slot: int) -> list[int]:
        """Kept places of `slot`, largest activation first."""
        kept = [p for p, position in enumerate(self.position[slot]) if position >= 0]
        return sorted(kept, key=lambda p: -self.value[slot][p])

    def example(self, slot: int, place: int, before: int, decode: Decode) -> dict[str, Any]:
        """One kept entry as circuit-tracer's Example (padding trimmed)."""
        tokens = self.tokens[slot][place]
        valid = [i for i, token in enumerate(tokens) if token >= 0]
        first, last = valid[0], valid[-1] + 1
        return {
            "tokens_acts_list": [round(a, 5) for a in self.acts[slot][place][first:last]],
            "train_token_ind": before - first,
            "is_repeated_datapoint": False,
            "tokens": decode(tokens[first:last]),
        }


def examples_quantiles(
    top: _Rows, samples: _Rows, row: int, exponent: int, settings: StatsSettings, decode: Decode
) -> list[dict[str, Any]]:
    before = settings.before
    top_places = top.places(row)
    examples = [top.example(row, p, before, decode) for p in top_places]
    groups = [{"quantile_name": "Top activations", "examples": examples}]
    top_positions = {top.position[row][p] for p in top_places}
    q = settings.intervals
    width = 2.0**exponent / q
    for interval in reversed(range(q)):
        slot = row * q + interval
        examples = []
        for place in samples.places(slot):
            item = samples.example(slot, place, before, decode)
            item["is_repeated_datapoint"] = samples.position[slot][place] in top_positions
            examples.append(item)
        if examples:
            low, high = interval * width, (interval + 1) * width
            name = f"Interval {interval}: {low:.3g} to {high:.3g}"
            groups.append({"quantile_name": name, "examples": examples})
    return groups


def histograms(stats: LayerStats) -> tuple[list[list[float]], list[float]]:
    """Per feature: the emitted histogram (trimmed after its last non-empty bin), bin width."""
    fine = stats.histogram
    group = max(1, fine.shape[1] // EMITTED_BINS)
    coarse = fine.view(fine.shape[0], -1, group).sum(dim=2)
    nonempty = coarse > 0
    last = torch.where(nonempty, torch.arange(coarse.shape[1]), -1).max(dim=1).values
    widths = (
        torch.ldexp(torch.ones(len(fine), dtype=torch.float64), stats.exponent.double())
        / coarse.shape[1]
    ).tolist()
    rows = coarse.double().tolist()
    return [r[: max(1, int(n) + 1)] for r, n in zip(rows, last.tolist(), strict=True)], widths


def percentiles(stats: LayerStats, act_max: Tensor) -> list[list[float]]:
    """Per feature, the 1st..100th percentiles of its positive activations, interpolated in
    the fine histogram's bins; the last is the exact maximum. act_max: [F]."""
    fine = stats.histogram.double()
    total = fine.sum(dim=1, keepdim=True)
    cumulative = torch.cumsum(fine, dim=1)
    targets = total * torch.arange(1, 101, dtype=torch.float64) / 100
    j = torch.searchsorted(cumulative, targets).clamp(max=fine.shape[1] - 1)
    below = torch.where(j > 0, cumulative.gather(1, (j - 1).clamp(min=0)), 0.0)
    inside = fine.gather(1, j).clamp(min=1.0)
    width = torch.ldexp(
        torch.ones(len(fine), 1, dtype=torch.float64), stats.exponent.double().unsqueeze(1)
    )
    values = width / fine.shape[1] * (j + (targets - below) / inside)
    values = torch.minimum(values, act_max.double().unsqueeze(1)).round(decimals=6)
    values[:, -1] = act_max.double()
    values[total.squeeze(1) == 0] = 0.0
    return values.tolist()


def auto_label(top_examples: list[dict[str, Any]], top_logit: str | None) -> str:
    """`tok1/tok2 → "logit"`: the commonest peak tokens of the top examples and the top logit."""
    peaks = Counter(
        e["tokens"][e["train_token_ind"]].strip() or repr(e["tokens"][e["train_token_ind"]])
        for e in top_examples
    )
    words = "/".join(token for token, _ in peaks.most_common(2)) or "(never fires)"
    return f'{words} → "{top_logit}"' if top_logit is not None else words


def layer_cards(
    stats: LayerStats,
    layer: int,
    features: list[int],
    settings: StatsSettings,
    n_tokens: int,
    logits: tuple[Tensor, Tensor, Tensor, Tensor],
    decode: Decode,
    transcoder_id: str,
    input_tokens: tuple[Tensor, Tensor] | None = None,
) -> dict[tuple[int, int], dict[str, Any]]:
    """The cards of one layer's `features` (row r of `stats` is features[r]).

    logits: (top ids, top values, bottom ids, bottom values), each [F, n_logits];
    input_tokens: (ids, scores), each [F, n], or None (no such fields).
    """
    top, samples = _Rows(stats.top), _Rows(stats.samples)
    act_max = torch.where(stats.top.position[:, 0] >= 0, stats.top.value[:, 0], 0.0)
    hists, widths = histograms(stats)
    quantiles = percentiles(stats, act_max)
    top_ids, top_values, bottom_ids, bottom_values = (t.tolist() for t in logits)
    exponents, counts, maxima = stats.exponent.tolist(), stats.count.tolist(), act_max.tolist()
    inputs = [t.tolist() for t in input_tokens] if input_tokens is not None else None
    cards = {}
    for row, index in enumerate(features):
        groups = examples_quantiles(top, samples, row, exponents[row], settings, decode)
        top_strings = decode(top_ids[row])
        card = {
            "transcoder_id": transcoder_id,
            "index": index,
            "layer": layer,
            "examples_quantiles": groups,
            "top_logits": top_strings,
            "bottom_logits": decode(bottom_ids[row]),
            "top_logit_values": [round(v, 5) for v in top_values[row]],
            "bottom_logit_values": [round(v, 5) for v in bottom_values[row]],
            "act_min": 0.0,
            "act_max": maxima[row],
            "quantile_values": quantiles[row],
            "histogram": hists[row],
            "histogram_bin_width": widths[row],
            "activation_frequency": counts[row] / max(n_tokens, 1),
            "n_tokens": n_tokens,
        }
        if inputs is not None:
            card["top_input_tokens"] = decode(inputs[0][row])
            card["top_input_token_values"] = [round(v, 5) for v in inputs[1][row]]
        card["label"] = auto_label(groups[0]["examples"], top_strings[0] if top_strings else None)
        cards[(layer, index)] = card
    return cards
