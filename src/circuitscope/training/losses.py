"""The loss terms of transcoder training, as pure functions of tensors.

All are means over the batch of per-token sums (over layers, features, dims):

    reconstruction  Σ_l ‖ŷ_l − y_l‖²
    sparsity        λ Σ_l Σ_i tanh(c · ‖W_dec,i‖ · a_i)
    pre-activation  λ_P Σ_l Σ_i ReLU(θ_i − h_i) · ‖W_dec,i‖

‖W_dec,i‖ is the norm of feature i's decoder vectors over all its output layers,
concatenated. AuxK's term (`aux_k_loss`) is a ratio of batch means per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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


def aux_k_loss(
    aux_reconstruction: Mapping[int, Tensor],
    target: Tensor,
    reconstruction: Tensor,
    mean_over_processes: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """{output layer l: ê_l [batch, d_model]}, target and reconstruction [batch, n_layers,
    d_model] -> scalar

        Σ_l d_model · mean_b ‖e_l − ê_l‖² / mean_b ‖e_l‖²,   e = y − ŷ (ŷ detached),

    over the layers of aux_reconstruction (0 for a layer with e = 0); ê_l: the
    reconstruction from dead features (`forward.aux_reconstruction`). The ratio is Gao et
    al.'s AuxK loss; d_model puts it on the main loss's scale (targets have mean norm
    √d_model), so that the paper's coefficient keeps its balance against the main loss.
    mean_over_processes: under DDP, the mean of a tensor over the processes, so that the
    denominator is the whole batch's and the averaged gradients equal one process's.
    """
    if not aux_reconstruction:
        return torch.zeros((), device=target.device)
    batch, d = target.shape[0], target.shape[-1]
    dtype = torch.promote_types(target.dtype, torch.float32)  # fp32 at least (bf16 inputs)
    layers = list(aux_reconstruction)
    errors = [target[:, i].to(dtype) - reconstruction[:, i].detach().to(dtype) for i in layers]
    energy = torch.stack([torch.dot(e.reshape(-1), e.reshape(-1)) for e in errors]) / batch
    if mean_over_processes is not None:
        energy = mean_over_processes(energy)
    some = energy > 0  # 0 where nothing is left to reconstruct (no division by 0, no host sync)
    scale = torch.where(some, d / torch.where(some, energy, 1.0), 0.0)
    total = torch.zeros((), dtype=dtype, device=target.device)
    for i, (layer, error) in enumerate(zip(layers, errors, strict=True)):
        estimate = aux_reconstruction[layer].to(dtype)
        missed = torch.nn.functional.mse_loss(estimate, error, reduction="sum") / batch
        total = total + missed * scale[i]
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
