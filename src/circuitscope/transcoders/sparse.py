"""Decoding that touches only the decoder rows of active features.

Activations are mostly zero; for a large CLT, reading every decoder row of every
layer is the expensive part. Here each source layer contributes
Σ_active a_i · W_dec[i] via `index_add_`, and a lazily opened transcoder reads
just the active rows from disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from circuitscope.transcoders.transcoder import Activations, Transcoder


def decode_sparse(
    transcoder: Transcoder, activations: Mapping[int, Tensor], mlp_in: Activations | None
) -> dict[int, Tensor]:
    """{l: ŷ[l]} as `Transcoder.decode` computes it. activations[l]: [..., n_features[l]]."""
    transcoder.check_sources(activations)
    totals: dict[int, Tensor] = {}
    for source in sorted(activations):
        acts = activations[source]
        flat = acts.reshape(-1, acts.shape[-1])
        for out, part in _layer_contributions(transcoder, source, flat).items():
            if out in activations:
                totals[out] = totals[out] + part if out in totals else part
    shaped = {out: total.reshape(*activations[out].shape[:-1], -1) for out, total in totals.items()}
    return _add_biases(transcoder, shaped, mlp_in)


def _layer_contributions(transcoder: Transcoder, layer: int, flat: Tensor) -> dict[int, Tensor]:
    """What layer `layer`'s active features write. flat: [rows, n_features] -> {out: [rows, d]}."""
    rows, features = flat.nonzero(as_tuple=True)
    values = flat[rows, features]
    unique, inverse = features.unique(sorted=True, return_inverse=True)
    decoders = transcoder.active_decoders(layer, unique).to(flat.device, flat.dtype)
    scaled = decoders[inverse] * values[:, None, None]  # [nnz, n_out, d_model]
    d_model = transcoder.config.d_model
    out: dict[int, Tensor] = {}
    for slot, target in enumerate(transcoder.config.output_layers(layer)):
        total = torch.zeros(flat.shape[0], d_model, dtype=flat.dtype, device=flat.device)
        out[target] = total.index_add_(0, rows, scaled[:, slot])
    return out


def _add_biases(
    transcoder: Transcoder, totals: dict[int, Tensor], mlp_in: Activations | None
) -> dict[int, Tensor]:
    from circuitscope.transcoders.transcoder import as_layer_dict

    inputs = as_layer_dict(mlp_in) if mlp_in is not None else {}
    result: dict[int, Tensor] = {}
    for layer, total in sorted(totals.items()):
        result[layer] = total + transcoder.decoder_bias(layer).to(total.dtype)
        if transcoder.config.skip_connection:
            if layer not in inputs:
                raise ValueError(f"layer {layer} has a skip connection: pass mlp_in[{layer}]")
            result[layer] = result[layer] + transcoder.layer(layer).skip(inputs[layer])
    return result
