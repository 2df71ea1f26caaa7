"""Decoding that touches only the decoder rows of active features.

Activations are mostly zero; for a large CLT, reading every decoder row of every
layer is the expensive part. Here each source layer contributes
Σ_active a_i · W_dec[i] via `index_add_`, and a lazily opened transcoder reads
just the active rows from disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from circuitscope.transcoders.transcoder import Activations, Transcoder


def decode_sparse(
    transcoder: Transcoder, activations: Mapping[int, Tensor], inputs: Activations | None
) -> dict[int, Tensor]:
    """{l: ŷ[l]} as `Transcoder.decode` computes it. activations[l]: [..., n_features[l]];
    inputs[l] [..., d_model] at the input site (needed with a skip connection)."""
    transcoder.check_sources(activations)
    totals: dict[int, Tensor] = {}
    for source in sorted(activations):
        acts = activations[source]
        flat = acts.reshape(-1, acts.shape[-1])
        rows, features = flat.nonzero(as_tuple=True)
        into = [out for out in transcoder.config.output_layers(source) if out in activations]
        writes = transcoder.feature_writes(source, features, flat[rows, features], into)
        for out, part in writes.items():
            zeros = flat.new_zeros(flat.shape[0], transcoder.config.d_model)
            summed = zeros.index_add_(0, rows, part)
            totals[out] = totals[out] + summed if out in totals else summed
    shaped = {out: total.reshape(*activations[out].shape[:-1], -1) for out, total in totals.items()}
    return transcoder.add_fixed_outputs(shaped, inputs)
