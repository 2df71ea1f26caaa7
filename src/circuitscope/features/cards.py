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
histogram_bin_width, n_tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from circuitscope.features.layer_stats import LayerStats, StatsSettings
from circuitscope.features.tables import SlotTable

Decode = Callable[[list[int]], list[str]]
"""Token ids -> the text of each token."""
EMITTED_BINS = 64


def example(
    table: SlotTable, slot: int, place: int, settings: StatsSettings, decode: Decode
) -> dict[str, Any]:
    """One kept entry as circuit-tracer's Example (padding trimmed)."""
    tokens = table.tokens[slot, place]
    valid = (tokens >= 0).nonzero().flatten()
    first, last = int(valid[0]), int(valid[-1]) + 1
    return {
        "tokens_acts_list": [round(float(a), 5) for a in table.acts[slot, place, first:last]],
        "train_token_ind": settings.before - first,
        "is_repeated_datapoint": False,
        "tokens": decode(tokens[first:last].tolist()),
    }


def _kept_places(table: SlotTable, slot: int) -> list[int]:
    places = (table.position[slot] >= 0).nonzero().flatten().tolist()
    return sorted(places, key=lambda p: -float(table.value[slot, p]))


def examples_quantiles(
    stats: LayerStats, row: int, settings: StatsSettings, decode: Decode
) -> list[dict[str, Any]]:
    top_places = _kept_places(stats.top, row)
    groups = [
        {
            "quantile_name": "Top activations",
            "examples": [example(stats.top, row, p, settings, decode) for p in top_places],
        }
    ]
    top_positions = {int(stats.top.position[row, p]) for p in top_places}
    q = settings.n_intervals
    width = 2.0 ** int(stats.exponent[row]) / q
    for interval in reversed(range(q)):
        slot = row * q + interval
        places = _kept_places(stats.samples, slot)
        if not places:
            continue
        examples = []
        for place in places:
            item = example(stats.samples, slot, place, settings, decode)
            item["is_repeated_datapoint"] = (
                int(stats.samples.position[slot, place]) in top_positions
            )
            examples.append(item)
        low, high = interval * width, (interval + 1) * width
        groups.append(
            {"quantile_name": f"Interval {interval}: {low:.3g} to {high:.3g}", "examples": examples}
        )
    return groups


def histogram_fields(stats: LayerStats, row: int, act_max: float) -> dict[str, Any]:
    fine = stats.histogram[row]
    group = max(1, len(fine) // EMITTED_BINS)
    coarse = fine.view(-1, group).sum(dim=1) if len(fine) % group == 0 else fine
    full_range = 2.0 ** int(stats.exponent[row])
    nonzero = coarse.nonzero().flatten()
    used = int(nonzero[-1]) + 1 if len(nonzero) else 1
    return {
        "histogram": [float(c) for c in coarse[:used]],
        "histogram_bin_width": full_range / len(coarse),
        "quantile_values": percentiles(fine, full_range, act_max),
    }


def percentiles(fine: Tensor, full_range: float, act_max: float) -> list[float]:
    """The 1st..100th percentiles of the activations counted in `fine` ([H] bins of [0, range))."""
    total = int(fine.sum())
    if total == 0:
        return [0.0] * 100
    width = full_range / len(fine)
    cumulative = torch.cumsum(fine, 0).double()
    values = []
    for q in range(1, 101):
        target = total * q / 100
        j = int(torch.searchsorted(cumulative, torch.tensor([target], dtype=torch.float64)))
        j = min(j, len(fine) - 1)
        below = float(cumulative[j - 1]) if j > 0 else 0.0
        inside = float(fine[j]) or 1.0
        values.append(min(act_max, width * (j + (target - below) / inside)))
    return [*(round(v, 6) for v in values[:-1]), act_max]


def auto_label(top_examples: list[dict[str, Any]], top_logit: str | None) -> str:
    """`tok1/tok2 → "logit"`: the commonest peak tokens of the top examples and the top logit."""
    peaks = Counter(
        e["tokens"][e["train_token_ind"]].strip() or repr(e["tokens"][e["train_token_ind"]])
        for e in top_examples
    )
    words = "/".join(token for token, _ in peaks.most_common(2)) or "(never fires)"
    return f'{words} → "{top_logit}"' if top_logit is not None else words


def build_card(
    stats: LayerStats,
    row: int,
    layer: int,
    index: int,
    settings: StatsSettings,
    n_tokens: int,
    logits: tuple[list[str], list[float], list[str], list[float]],
    decode: Decode,
    transcoder_id: str,
) -> dict[str, Any]:
    """The card of feature `index` of `layer`, whose stats sit at `row` of `stats`."""
    top_strings, top_values, bottom_strings, bottom_values = logits
    act_max = float(stats.top.value[row, 0]) if int(stats.top.position[row, 0]) >= 0 else 0.0
    groups = examples_quantiles(stats, row, settings, decode)
    card = {
        "transcoder_id": transcoder_id,
        "index": index,
        "layer": layer,
        "examples_quantiles": groups,
        "top_logits": top_strings,
        "bottom_logits": bottom_strings,
        "top_logit_values": [round(v, 5) for v in top_values],
        "bottom_logit_values": [round(v, 5) for v in bottom_values],
        "act_min": 0.0,
        "act_max": act_max,
        **histogram_fields(stats, row, act_max),
        "activation_frequency": int(stats.count[row]) / max(n_tokens, 1),
        "n_tokens": n_tokens,
    }
    card["label"] = auto_label(groups[0]["examples"], top_strings[0] if top_strings else None)
    return card
