"""Sparsity-inducing activation functions: JumpReLU, TopK, BatchTopK, ReLU.

Each acts on pre-activations h: [..., n_features] and returns activations of the
same shape. `make_activation` builds one from a config's name and parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders.config import ACTIVATIONS


def rectangle(z: Tensor) -> Tensor:
    """The rectangle kernel: 1 where -1/2 < z < 1/2, else 0."""
    return ((z > -0.5) & (z < 0.5)).to(z.dtype)


class _JumpReLUFunction(torch.autograd.Function):
    """h * (h > θ) with the rectangle-kernel straight-through estimator for θ.

    Gradients (Rajamanoharan et al. 2024; Anthropic 2025):
      d/dh = 1[h > θ] · g
      d/dθ = -(θ / ε) · rect((h - θ) / ε) · g, summed over the batch dimensions.
    """

    @staticmethod
    def forward(ctx: Any, h: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(h, threshold)
        ctx.bandwidth = bandwidth
        return h * (h > threshold)

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Tensor) -> tuple[Tensor, Tensor, None]:
        (grad,) = grad_outputs
        h, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_h = grad * (h > threshold)
        per_element = -(threshold / eps) * rectangle((h - threshold) / eps) * grad
        grad_threshold = per_element.reshape(-1, *threshold.shape).sum(dim=0)
        return grad_h, grad_threshold, None


def jumprelu(h: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """JumpReLU. h: [..., n_features], threshold: [n_features] -> [..., n_features]."""
    return _JumpReLUFunction.apply(h, threshold, bandwidth)  # type: ignore[return-value]


class JumpReLU(nn.Module):
    """JumpReLU with a learned per-feature threshold θ and STE bandwidth ε."""

    def __init__(self, n_features: int, bandwidth: float = 0.1, init: float = 0.0) -> None:
        super().__init__()
        self.threshold = nn.Parameter(torch.full((n_features,), float(init)))
        self.bandwidth = float(bandwidth)

    def forward(self, h: Tensor) -> Tensor:
        return jumprelu(h, self.threshold, self.bandwidth)

    def extra_repr(self) -> str:
        return f"n_features={self.threshold.numel()}, bandwidth={self.bandwidth}"


def _keep_mask(values: Tensor, k: int) -> Tensor:
    """A 0/1 mask of the k largest entries along the last dim of `values`."""
    k = min(k, values.shape[-1])
    indices = values.topk(k, dim=-1).indices
    return torch.zeros_like(values).scatter_(-1, indices, 1.0)


class TopK(nn.Module):
    """Keep the k largest pre-activations of each row, zero the rest.

    relu: also clamp the kept values at zero (sparsify, Gao et al.); circuit-tracer's
    TopK keeps negative values, so its importer sets relu=False.
    """

    def __init__(self, k: int, relu: bool = True) -> None:
        super().__init__()
        if k < 1:
            raise CircuitscopeError(f"TopK needs k >= 1, got {k}")
        self.k = int(k)
        self.relu = bool(relu)

    def forward(self, h: Tensor) -> Tensor:
        kept = h * _keep_mask(h.detach(), self.k)
        return torch.relu(kept) if self.relu else kept

    def extra_repr(self) -> str:
        return f"k={self.k}, relu={self.relu}"


class BatchTopK(nn.Module):
    """Keep the k × n_rows largest pre-activations over the whole batch.

    Every leading dimension counts as batch: h [..., n_features] is flattened to
    [n_rows, n_features] and the k · n_rows largest entries survive.
    """

    def __init__(self, k: int, relu: bool = True) -> None:
        super().__init__()
        if k < 1:
            raise CircuitscopeError(f"BatchTopK needs k >= 1, got {k}")
        self.k = int(k)
        self.relu = bool(relu)

    def forward(self, h: Tensor) -> Tensor:
        flat = h.reshape(-1)
        n_rows = flat.numel() // max(h.shape[-1], 1)
        mask = _keep_mask(flat.detach(), self.k * n_rows).reshape(h.shape)
        kept = h * mask
        return torch.relu(kept) if self.relu else kept

    def extra_repr(self) -> str:
        return f"k={self.k} per row, relu={self.relu}"


class ReLU(nn.Module):
    """max(h, 0)."""

    def forward(self, h: Tensor) -> Tensor:
        return torch.relu(h)


def make_activation(name: str, params: Mapping[str, Any], n_features: int) -> nn.Module:
    """The activation module `name` (one of ACTIVATIONS) with `params`."""
    if name == "jumprelu":
        return JumpReLU(n_features, bandwidth=float(params.get("bandwidth", 0.1)))
    if name in ("topk", "batchtopk"):
        if "k" not in params:
            raise CircuitscopeError(f"activation {name!r} needs a parameter k")
        cls = TopK if name == "topk" else BatchTopK
        return cls(int(params["k"]), relu=bool(params.get("relu", True)))
    if name == "relu":
        return ReLU()
    raise CircuitscopeError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
