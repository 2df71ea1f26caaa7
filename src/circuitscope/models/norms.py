"""Normalisations written out with an explicit scale, so the scale can be frozen.

Every supported norm is `f(x) = g(x) * s(x)` with `s(x)` a per-position scalar
(1/rms or 1/std) and `g` affine in x. Frozen mode keeps `s` at its recorded
value, which makes the norm linear in its input (affine for LayerNorm's bias).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from circuitscope.models.architectures import NormKind


def accumulation_dtype(x: Tensor) -> torch.dtype:
    """fp32 for fp32 and lower precisions (as transformers does), fp64 kept as is."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def norm_eps(module: nn.Module) -> float:
    for name in ("variance_epsilon", "eps"):
        value = getattr(module, name, None)
        if value is not None:
            return float(value)
    raise TypeError(f"cannot find the epsilon of norm {type(module).__name__}")


def norm_scale(kind: NormKind, module: nn.Module, x: Tensor) -> Tensor:
    """The divisor's inverse, in fp32 (fp64 for fp64 x). x: [..., d] -> [..., 1]."""
    xf = x.to(accumulation_dtype(x))
    if kind == "layer":
        var = xf.var(dim=-1, keepdim=True, unbiased=False)
    else:
        var = xf.pow(2).mean(dim=-1, keepdim=True)
    return torch.rsqrt(var + norm_eps(module))


def apply_norm(kind: NormKind, module: nn.Module, x: Tensor, scale: Tensor) -> Tensor:
    """The norm's output with a given scale. x: [..., d], scale: [..., 1] (broadcasts)."""
    weight = module.weight
    assert isinstance(weight, Tensor)
    if kind != "layer":
        return _rms(kind, weight, x, scale)
    xf = x.to(accumulation_dtype(x))
    centred = xf - xf.mean(dim=-1, keepdim=True)
    out = (centred * scale).to(x.dtype) * weight
    bias = getattr(module, "bias", None)
    return out + bias if isinstance(bias, Tensor) else out


def _rms(kind: NormKind, weight: Tensor, x: Tensor, scale: Tensor) -> Tensor:
    xf = x.to(accumulation_dtype(x))
    if kind == "rms":
        return weight * (xf * scale).to(x.dtype)
    return ((xf * scale) * (1.0 + weight.to(xf.dtype))).type_as(x)


def frozen_norm(kind: NormKind, module: nn.Module, x: Tensor, scale: Tensor) -> Tensor:
    """`apply_norm` with the scale frozen, differentiable in x only (frozen mode's norm).

    The same values as `apply_norm`. For the RMS kinds the map is x ↦ x ⊙ (s · w) (w
    the weight, or 1 + w), so its backward is one product with that [.., seq, d] factor,
    made when the gradient arrives, instead of autograd's two passes over the gradient
    (by w, then by s): batched attribution runs this backward for every norm of every
    pass. LayerNorm (its mean to subtract) keeps autograd's backward."""
    if kind == "layer":
        return apply_norm(kind, module, x, scale)
    weight = module.weight
    assert isinstance(weight, Tensor)
    out = _FrozenRmsNorm.apply(x, weight.detach(), scale.detach(), kind)
    assert isinstance(out, Tensor)
    return out


class _FrozenRmsNorm(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, weight: Tensor, scale: Tensor, kind: NormKind
    ) -> Tensor:
        ctx.save_for_backward(weight, scale)
        ctx.kind = kind  # type: ignore[attr-defined]
        return _rms(kind, weight, x, scale)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        weight, scale = ctx.saved_tensors
        acc = accumulation_dtype(grad)
        gain = weight.to(acc)
        if ctx.kind == "rms_offset":
            gain = 1.0 + gain
        return (grad.to(acc) * (scale.to(acc) * gain)).to(grad.dtype), None, None, None
