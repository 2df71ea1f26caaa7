"""The weights of one layer of a transcoder, and their names on disk.

Layer l holds (n = n_features[l], d = d_model, n_out = L - l for a CLT, 1 for a PLT):

    W_enc [d, n]          encoder: h = mlp_in @ W_enc + b_enc
    b_enc [n]
    threshold [n]         JumpReLU only
    W_dec [n, n_out, d]   CLT: row i, slot j decodes to layer l + j
    W_dec [n, d]          PLT
    b_dec [d]             bias of layer l's reconstruction
    W_skip [d, d]         optional: ŷ[l] += mlp_in[l] @ W_skip
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from circuitscope.transcoders.activations import JumpReLU, make_activation
from circuitscope.transcoders.config import TranscoderConfig

W_ENC, B_ENC, THRESHOLD, W_DEC, B_DEC, W_SKIP = (
    "W_enc",
    "b_enc",
    "threshold",
    "W_dec",
    "b_dec",
    "W_skip",
)
ENCODER_NAMES = (W_ENC, B_ENC, THRESHOLD)


def expected_shapes(config: TranscoderConfig, layer: int) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor layer `layer` must have."""
    n, d = config.n_features[layer], config.d_model
    decoder = (n, config.n_outputs(layer), d) if config.kind == "clt" else (n, d)
    shapes: dict[str, tuple[int, ...]] = {W_ENC: (d, n), B_ENC: (n,), W_DEC: decoder, B_DEC: (d,)}
    if config.activation == "jumprelu":
        shapes[THRESHOLD] = (n,)
    if config.skip_connection:
        shapes[W_SKIP] = (d, d)
    return shapes


def torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name)
    assert isinstance(dtype, torch.dtype)
    return dtype


class TranscoderLayer(nn.Module):
    """Encoder, decoder(s) and activation of one layer."""

    def __init__(self, config: TranscoderConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.kind = config.kind
        dtype = torch_dtype(config.dtype)
        shapes = expected_shapes(config, layer)
        self.W_enc = nn.Parameter(torch.zeros(shapes[W_ENC], dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(shapes[B_ENC], dtype=dtype))
        self.W_dec = nn.Parameter(torch.zeros(shapes[W_DEC], dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(shapes[B_DEC], dtype=dtype))
        self.W_skip = (
            nn.Parameter(torch.zeros(shapes[W_SKIP], dtype=dtype)) if W_SKIP in shapes else None
        )
        n = config.n_features[layer]
        self.activation = make_activation(config.activation, config.activation_params, n).to(dtype)

    @classmethod
    def from_tensors(
        cls, config: TranscoderConfig, layer: int, tensors: Mapping[str, Tensor]
    ) -> TranscoderLayer:
        """A layer holding `tensors` (checked beforehand by `validation.check_layer_tensors`)."""
        with torch.device("meta"):
            module = cls(config, layer)
        for name, value in tensors.items():
            target = module.activation if name == THRESHOLD else module
            param_name = "threshold" if name == THRESHOLD else name
            setattr(
                target, param_name, nn.Parameter(value, requires_grad=value.is_floating_point())
            )
        return module

    def tensors(self) -> dict[str, Tensor]:
        """Name -> tensor (detached), as written to disk."""
        out = {W_ENC: self.W_enc, B_ENC: self.b_enc, W_DEC: self.W_dec, B_DEC: self.b_dec}
        if isinstance(self.activation, JumpReLU):
            out[THRESHOLD] = self.activation.threshold
        if self.W_skip is not None:
            out[W_SKIP] = self.W_skip
        return {name: value.detach() for name, value in out.items()}

    @property
    def n_features(self) -> int:
        return int(self.b_enc.shape[0])

    def pre_activations(self, mlp_in: Tensor) -> Tensor:
        """h = mlp_in @ W_enc + b_enc. mlp_in: [..., d_model] -> [..., n_features]."""
        return mlp_in.to(self.W_enc.dtype) @ self.W_enc + self.b_enc

    def encode(self, mlp_in: Tensor) -> Tensor:
        """Feature activations. mlp_in: [..., d_model] -> [..., n_features]."""
        return self.activation(self.pre_activations(mlp_in))

    def decoders(self) -> Tensor:
        """Every decoder vector, [n_features, n_out, d_model] for both kinds."""
        return self.W_dec if self.kind == "clt" else self.W_dec.unsqueeze(1)

    def contributions(self, activations: Tensor) -> Tensor:
        """What these features write to each output layer (no bias).

        activations: [..., n_features] -> [n_out, ..., d_model].
        """
        decoders = self.decoders()
        slots = [activations.to(decoders.dtype) @ decoders[:, o] for o in range(decoders.shape[1])]
        return torch.stack(slots)

    def skip(self, mlp_in: Tensor) -> Tensor:
        """The skip term. mlp_in: [..., d_model] -> [..., d_model]."""
        if self.W_skip is None:
            return torch.zeros_like(mlp_in)
        return mlp_in.to(self.W_skip.dtype) @ self.W_skip
