"""The loss terms of transcoder training, as pure functions of tensors.

All are means over the batch of per-token sums (over layers, features, dims):

    reconstruction  Σ_l ‖ŷ_l − y_l‖²
    sparsity        λ Σ_l Σ_i tanh(c · ‖W_dec,i‖ · a_i)
    pre-activation  λ_P Σ_l Σ_i ReLU(θ_i − h_i) · ‖W_dec,i‖

‖W_dec,i‖ is the norm of feature i's decoder vectors over all its output layers,
concatenated.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def reconstruction_loss(reconstruction: Tensor, target: Tensor) -> Tensor:
    """reconstruction, target: [batch, n_layers, d_model] -> scalar mean_b Σ_l ‖ŷ_l − y_l‖².

    `mse_loss` with a sum: one pass forward and one backward, no [batch, n_layers, d_model]
    intermediates for the difference and its square.
    """
    total = torch.nn.functional.mse_loss(reconstruction.float(), target.float(), reduction="sum")
    return total / reconstruction.shape[0]


def tanh_sparsity_loss(
    activations: Sequence[Tensor], decoder_norms: Sequence[Tensor], c: float
) -> Tensor:
    """activations[l]: [batch, n_l], decoder_norms[l]: [n_l] -> mean_b Σ_l Σ_i tanh(c‖W‖a)."""
    total = torch.zeros((), device=activations[0].device)
    for acts, norms in zip(activations, decoder_norms, strict=True):
        total = total + torch.tanh(c * norms.float() * acts.float()).sum(-1).mean()
    return total


def pre_activation_loss(
    pre_activations: Sequence[Tensor], thresholds: Sequence[Tensor], decoder_norms: Sequence[Tensor]
) -> Tensor:
    """pre_activations[l]: [batch, n_l], thresholds[l], decoder_norms[l]: [n_l] -> scalar."""
    total = torch.zeros((), device=pre_activations[0].device)
    for h, theta, norms in zip(pre_activations, thresholds, decoder_norms, strict=True):
        total = total + (torch.relu(theta.float() - h.float()) * norms.float()).sum(-1).mean()
    return total


def warmup_factor(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Linear warm-up from 0 (step 0) to 1 at warmup_fraction · total_steps, then 1."""
    warmup = warmup_fraction * total_steps
    if warmup <= 0:
        return 1.0
    return min(1.0, step / warmup)


def learning_rate(step: int, total_steps: int, peak: float, warmup: float, decay: float) -> float:
    """Linear warm-up over `warmup`·steps, constant, linear decay to 0 over the last `decay`."""
    warm_steps = warmup * total_steps
    decay_steps = decay * total_steps
    if warm_steps > 0 and step < warm_steps:
        return peak * (step + 1) / warm_steps
    if decay_steps > 0 and step >= total_steps - decay_steps:
        return peak * max(0.0, (total_steps - step) / decay_steps)
    return peak
