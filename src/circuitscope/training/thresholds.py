"""TopK → JumpReLU: a threshold per layer that keeps k features per token on average.

A TopK layer's features compete: whether feature i fires depends on every other
feature's pre-activation through the k-th largest value. In the local replacement
model, removing one feature can then let another one into the top k, a jump the
graph's linear edges do not see. A JumpReLU layer's features fire on their own
(h_i > θ_i), as the graph assumes between flips.

`threshold_calibration` picks, per layer, the single θ at which the calibration
tokens keep exactly k features per token on average: the (k·N + 1)-th largest of the
layer's N × n pre-activations, so that k·N of them lie above it (BatchTopK's inference
rule, Bussmann et al. 2024, taken exactly rather than as a running mean of batch
minima). `with_thresholds`
returns the same weights as a JumpReLU transcoder with those thresholds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import Tensor

from circuitscope.data.collect import layer_sites
from circuitscope.errors import CircuitscopeError
from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter
from circuitscope.transcoders.layer import THRESHOLD
from circuitscope.transcoders.transcoder import Transcoder


class LargestValues:
    """The `keep` largest values seen so far, over any number of batches.

    `keep` is fixed in advance (k times the calibration tokens), so a batch can
    contribute any number of them: each batch is merged with what is kept and cut
    back to `keep`.
    """

    def __init__(self, keep: int) -> None:
        if keep < 1:
            raise CircuitscopeError(f"keep must be at least 1, got {keep}")
        self.keep = keep
        self.values = torch.empty(0)

    def add(self, values: Tensor) -> None:
        """values: any shape; every entry counts."""
        merged = torch.cat([self.values, values.detach().reshape(-1).float().cpu()])
        if merged.numel() > self.keep:
            merged = merged.topk(self.keep, sorted=False).values
        self.values = merged

    def smallest(self) -> float:
        """The `keep`-th largest value seen (the smallest kept)."""
        if self.values.numel() < self.keep:
            raise CircuitscopeError(
                f"calibration saw {self.values.numel()} values, fewer than the {self.keep} "
                "to keep: give it more tokens"
            )
        return float(self.values.min())


@torch.no_grad()
def threshold_calibration(
    adapter: ModelAdapter, transcoder: Transcoder, batches: Iterable[Tensor], n_tokens: int
) -> list[float]:
    """Per layer, θ_l: the (k·N + 1)-th largest pre-activation over N = `n_tokens` tokens
    (position 0, the BOS sink, left out as in training), clamped at 0 so that a
    ReLU'd TopK stays non-negative. batches: [batch, seq] ids, BOS first."""
    config = transcoder.config
    if config.activation != "topk":
        raise CircuitscopeError(
            f"thresholds replace a TopK activation; this transcoder's is {config.activation!r}"
        )
    k = int(config.activation_params["k"])
    largest = [LargestValues(k * n_tokens + 1) for _ in range(config.n_layers)]
    kind = config.input_kind
    seen = 0
    for ids in batches:
        take = -(-(n_tokens - seen) // (ids.shape[1] - 1))
        ids = ids[:take]
        result = adapter.run(ids, capture=layer_sites(config.n_layers, kind))
        for layer in range(config.n_layers):
            inputs = result.cache[sites.transcoder_input(kind, layer)][:, 1:]
            flat = inputs.reshape(-1, inputs.shape[-1])[: n_tokens - seen]
            largest[layer].add(transcoder.pre_activations(layer, flat))
        seen += min(ids.shape[0] * (ids.shape[1] - 1), n_tokens - seen)
        if seen >= n_tokens:
            break
    return [max(0.0, values.smallest()) for values in largest]


def with_thresholds(transcoder: Transcoder, thresholds: list[float]) -> Transcoder:
    """The same weights as a JumpReLU transcoder: layer l's features fire where
    h > thresholds[l] (one value for every feature of the layer)."""
    config = transcoder.config
    if len(thresholds) != config.n_layers:
        raise CircuitscopeError(f"need {config.n_layers} thresholds, got {len(thresholds)}")
    training = dict(config.training)
    training["thresholds"] = {"from": config.activation, **config.activation_params}
    training["thresholds"]["per_layer"] = list(thresholds)
    new_config = dataclasses.replace(
        config, activation="jumprelu", activation_params={"bandwidth": 0.1}, training=training
    )
    layers = []
    for layer, theta in enumerate(thresholds):
        tensors = dict(transcoder.read_layer_tensors(layer))
        n = config.n_features[layer]
        tensors[THRESHOLD] = torch.full((n,), theta, dtype=tensors["b_enc"].dtype)
        layers.append(tensors)
    return Transcoder.from_layers(new_config, layers)
