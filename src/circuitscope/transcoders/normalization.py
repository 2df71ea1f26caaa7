"""Folding per-layer input/output scales into a transcoder's weights.

Training on x' = s_in[l] · mlp_in[l] and y' = s_out[l] · mlp_out[l] (e.g. scaled to
mean norm √d_model) gives weights for scaled activations. Folding rewrites them to
act on raw activations, with the same feature activations:

    W_enc[l] ← s_in[l] · W_enc[l]               (b_enc, θ unchanged)
    W_dec[l' → l] ← W_dec[l' → l] / s_out[l],  b_dec[l] ← b_dec[l] / s_out[l]
    W_skip[l] ← W_skip[l] · s_in[l] / s_out[l]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from circuitscope.transcoders.transcoder import Transcoder


@torch.no_grad()
def fold_scales(
    transcoder: Transcoder, input_scales: Sequence[float], output_scales: Sequence[float]
) -> None:
    """Fold the scales into `transcoder` in place and record them in its config."""
    config = transcoder.config
    if len(input_scales) != config.n_layers or len(output_scales) != config.n_layers:
        raise ValueError(f"need {config.n_layers} input and output scales")
    s_out = torch.tensor([float(s) for s in output_scales], dtype=torch.float64)
    for layer in range(config.n_layers):
        block = transcoder.layer(layer)
        s_in = float(input_scales[layer])
        block.W_enc.mul_(s_in)
        targets = list(config.output_layers(layer))
        divisors = s_out[targets].to(block.W_dec.dtype)
        if config.kind == "clt":
            block.W_dec.div_(divisors[None, :, None])
        else:
            block.W_dec.div_(divisors[0])
        block.b_dec.div_(float(s_out[layer]))
        if block.W_skip is not None:
            block.W_skip.mul_(s_in / float(s_out[layer]))
    transcoder.config = config.with_changes(
        normalization="folded",
        input_scales=[float(s) for s in input_scales],
        output_scales=[float(s) for s in output_scales],
    )
