"""Small, deterministic, well-formed feature cards for tests (made-up contents)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from circuitscope.features.files import write_automatic_labels, write_cards

_WORDS = [" the", " capital", " of", " France", " is", " Paris", " gold", " Au", ".", "\n"]


def tiny_card(layer: int, index: int, transcoder_id: str = "tiny") -> dict[str, Any]:
    """A made-up card for feature `index` of `layer`, the same for the same arguments."""
    rng = random.Random(layer * 100_003 + index)
    act_max = round(1 + rng.random() * 9, 4)

    def example(peak: float) -> dict[str, Any]:
        tokens = [rng.choice(_WORDS) for _ in range(8)]
        acts = [0.0] * 8
        acts[5] = round(peak, 4)
        acts[4] = round(peak * rng.random() / 2, 4)
        return {
            "tokens_acts_list": acts,
            "train_token_ind": 5,
            "is_repeated_datapoint": False,
            "tokens": tokens,
        }

    quantiles = [{"quantile_name": "Top activations", "examples": [example(act_max)] * 1}]
    for bin_index in range(3):
        low = act_max * bin_index / 3
        quantiles.append(
            {
                "quantile_name": f"Subsample Interval {bin_index}",
                "examples": [example(low + act_max / 3 * rng.random()) for _ in range(2)],
            }
        )
    top = rng.sample(_WORDS, 3)
    card = {
        "transcoder_id": transcoder_id,
        "index": index,
        "layer": layer,
        "examples_quantiles": quantiles,
        "top_logits": top,
        "bottom_logits": rng.sample(_WORDS, 3),
        "top_logit_values": [3.0, 2.0, 1.0],
        "bottom_logit_values": [-3.0, -2.0, -1.0],
        "act_min": 0.0,
        "act_max": act_max,
        "quantile_values": [round(act_max * (q + 1) / 100, 4) for q in range(100)],
        "histogram": [float(rng.randint(0, 50)) for _ in range(20)],
        "activation_frequency": round(rng.random() / 10, 5),
        "label": f"{top[0].strip() or top[0]!r} → {top[1]!r}",
    }
    card["top_input_tokens"] = rng.sample(_WORDS, 3)  # drawn last: the fields above stay put
    card["top_input_token_values"] = [0.9, 0.5, 0.25]
    return card


def write_tiny_cards(
    features_dir: Path, features: Iterable[tuple[int, int]], *, transcoder_id: str = "tiny"
) -> None:
    """Write cards for the given (layer, index) pairs (layer sizes: the largest index + 1)."""
    features = sorted(set(features))
    n_layers = 1 + max((layer for layer, _ in features), default=0)
    n_features = [1] * n_layers
    for layer, index in features:
        n_features[layer] = max(n_features[layer], index + 1)
    cards = {(layer, index): tiny_card(layer, index, transcoder_id) for layer, index in features}
    manifest = {"transcoder_id": transcoder_id, "n_features": n_features, "tiny": True}
    write_cards(Path(features_dir), cards, n_features, manifest)
    write_automatic_labels(Path(features_dir), {key: card["label"] for key, card in cards.items()})
