"""The training forward pass of a transcoder held in memory: one matmul per layer.

Same result as `Transcoder.forward` (tested), but decodes each layer's features to
all of its output layers with one matmul, and keeps the pre-activations that the
pre-activation loss needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.transcoders.activations import JumpReLU
from circuitscope.transcoders.transcoder import Transcoder


@dataclass
class TrainingForward:
    pre_activations: list[Tensor]
    """Per layer [batch, n_features]."""
    activations: list[Tensor]
    """Per layer [batch, n_features]."""
    reconstruction: Tensor
    """[batch, n_layers, d_model]."""


def training_forward(transcoder: Transcoder, mlp_in: Tensor) -> TrainingForward:
    """mlp_in: [batch, n_layers, d_model] (no skip connections)."""
    config = transcoder.config
    batch, n_layers, d = mlp_in.shape
    outputs: list[Tensor | None] = [None] * n_layers
    pre_list, act_list = [], []
    for layer in range(n_layers):
        block = transcoder.layer(layer)
        h = mlp_in[:, layer] @ block.W_enc + block.b_enc
        a = block.activation(h)
        decoder = block.W_dec.reshape(block.n_features, -1)
        contributions = (a @ decoder).view(batch, config.n_outputs(layer), d)
        for slot, out in enumerate(config.output_layers(layer)):
            part = contributions[:, slot]
            previous = outputs[out]
            outputs[out] = part if previous is None else previous + part
        pre_list.append(h)
        act_list.append(a)
    biases = torch.stack([transcoder.layer(layer).b_dec for layer in range(n_layers)])
    stacked = torch.stack([o for o in outputs if o is not None], dim=1)
    return TrainingForward(pre_list, act_list, stacked + biases)


def decoder_norms(transcoder: Transcoder) -> list[Tensor]:
    """Per layer [n_features]: each feature's decoder norm over all its output layers."""
    out = []
    for layer in range(transcoder.config.n_layers):
        block = transcoder.layer(layer)
        out.append(block.W_dec.reshape(block.n_features, -1).norm(dim=1))
    return out


def thresholds(transcoder: Transcoder) -> list[Tensor] | None:
    """Per layer [n_features] JumpReLU thresholds, or None for other activations."""
    out = []
    for layer in range(transcoder.config.n_layers):
        activation = transcoder.layer(layer).activation
        if not isinstance(activation, JumpReLU):
            return None
        out.append(activation.threshold)
    return out


def parameter_list(transcoder: Transcoder) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) in a fixed order: the optimizer's and the checkpoint's."""
    return [
        (name, param)
        for layer in range(transcoder.config.n_layers)
        for name, param in sorted(
            (f"{layer}.{n}", p) for n, p in transcoder.layer(layer).named_parameters()
        )
    ]


@torch.no_grad()
def clamp_thresholds(transcoder: Transcoder, minimum: float = 1e-4) -> None:
    """Keep JumpReLU thresholds positive after an optimizer step."""
    for theta in thresholds(transcoder) or []:
        theta.clamp_(min=minimum)
