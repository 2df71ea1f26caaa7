"""One layer's encoder alone: what attribution needs of a layer before its decoders.

A CLT's decoders dwarf its encoders (layer l decodes to every later layer), so a
lazily opened transcoder reads just W_enc, b_enc and the threshold to find the
active features, and afterwards only the decoder rows of those.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from circuitscope.transcoders.activations import make_activation
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.layer import B_ENC, THRESHOLD, W_ENC


class EncoderLayer(nn.Module):
    """W_enc [d, n], b_enc [n] and the activation (with its threshold) of one layer."""

    def __init__(self, config: TranscoderConfig, layer: int, tensors: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.layer = layer
        self.W_enc = nn.Parameter(tensors[W_ENC], requires_grad=False)
        self.b_enc = nn.Parameter(tensors[B_ENC], requires_grad=False)
        n = int(self.b_enc.shape[0])
        with torch.device("meta"):
            activation = make_activation(config.activation, config.activation_params, n)
        if THRESHOLD in tensors:
            activation.threshold = nn.Parameter(tensors[THRESHOLD], requires_grad=False)
        self.activation = activation

    def pre_activations(self, mlp_in: Tensor) -> Tensor:
        """h = mlp_in @ W_enc + b_enc. mlp_in: [..., d_model] -> [..., n_features]."""
        return mlp_in.to(self.W_enc.dtype) @ self.W_enc + self.b_enc

    def encode(self, mlp_in: Tensor) -> Tensor:
        """Feature activations. mlp_in: [..., d_model] -> [..., n_features]."""
        return self.activation(self.pre_activations(mlp_in))
