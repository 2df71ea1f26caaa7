"""Random transcoders: a starting point for training, and test fixtures."""

from __future__ import annotations

import torch
from torch import Tensor

from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.layer import THRESHOLD, expected_shapes, torch_dtype
from circuitscope.transcoders.transcoder import Transcoder


def random_layer_tensors(
    config: TranscoderConfig, layer: int, generator: torch.Generator, threshold: float = 0.03
) -> dict[str, Tensor]:
    """Seeded random weights of one layer: encoders ~ N(0, 1/d), decoders ~ N(0, 1/(n·n_out)).

    Biases are small and nonzero so that no term is the identity by accident.
    """
    d = config.d_model
    n = config.n_features[layer]
    tensors: dict[str, Tensor] = {}
    for name, shape in expected_shapes(config, layer).items():
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        if name == "W_enc":
            value = noise / d**0.5
        elif name == "W_dec":
            value = noise / (n * config.n_outputs(layer)) ** 0.5
        elif name == THRESHOLD:
            value = threshold * (1 + 0.5 * noise.abs())
        elif name == "W_skip":
            value = noise * 0.1 / d**0.5
        else:
            value = noise * 0.01
        tensors[name] = value.to(torch_dtype(config.dtype))
    return tensors


def random_transcoder(
    config: TranscoderConfig, seed: int = 0, threshold: float = 0.03
) -> Transcoder:
    """A transcoder with seeded random weights, held in memory."""
    generator = torch.Generator().manual_seed(seed)
    layers = [
        random_layer_tensors(config, layer, generator, threshold)
        for layer in range(config.n_layers)
    ]
    return Transcoder.from_layers(config, layers)
