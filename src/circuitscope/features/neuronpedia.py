"""One card as Neuronpedia's feature-details JSON (the shape its feature API returns).

Fields: modelId, layer ("{layer}-{source set}"), index, maxActApprox,
frac_nonzero, pos_str/pos_values, neg_str/neg_values (logit effects),
freq_hist_data_bar_heights/values (the activation histogram: counts and bin
centres), activations (tokens, values, maxValue, maxValueTokenIndex, minValue,
binMin, binMax, binContains: the top examples with binMin -1, then each interval's
samples with its bounds), explanations ([{"description": label}]).
"""

from __future__ import annotations

import re
from typing import Any

from circuitscope.features.card import Example, FeatureCard

_INTERVAL = re.compile(r"Interval \d+: (\S+) to (\S+)")


def neuronpedia_feature(card: FeatureCard, model_id: str, source_set: str) -> dict[str, Any]:
    width = float(card.record.get("histogram_bin_width") or 0.0)
    activations = [_activation(e, -1.0, card.act_max, 1.0) for e in card.top_examples]
    for name, examples in card.interval_examples:
        match = _INTERVAL.match(name)
        low, high = (float(match.group(1)), float(match.group(2))) if match else (0.0, 0.0)
        activations += [_activation(e, low, high, 0.0) for e in examples]
    return {
        "modelId": model_id,
        "layer": f"{card.layer}-{source_set}",
        "index": str(card.index),
        "maxActApprox": card.act_max,
        "frac_nonzero": card.density,
        "pos_str": [s for s, _ in card.top_logits],
        "pos_values": [v or 0.0 for _, v in card.top_logits],
        "neg_str": [s for s, _ in card.bottom_logits],
        "neg_values": [v or 0.0 for _, v in card.bottom_logits],
        "freq_hist_data_bar_heights": card.histogram,
        "freq_hist_data_bar_values": [width * (i + 0.5) for i in range(len(card.histogram))],
        "activations": activations,
        "explanations": [{"description": card.label}] if card.label else [],
    }


def _activation(example: Example, low: float, high: float, contains: float) -> dict[str, Any]:
    return {
        "tokens": example.tokens,
        "values": example.activations,
        "maxValue": max(example.activations),
        "maxValueTokenIndex": example.peak,
        "minValue": min(example.activations),
        "binMin": low,
        "binMax": high,
        "binContains": contains,
    }
