"""Normalisations written out with an explicit scale, so the scale can be frozen.

Every supported norm is `f(x) = g(x) * s(x)` with `s(x)` a per-position scalar
(1/rms or 1/std) and `g` affine in x. Frozen mode keeps `s` at its recorded
value, which makes the norm linear in its input (affine for LayerNorm's bias).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

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
    xf = x.to(accumulation_dtype(x))
    if kind == "rms":
        return weight * (xf * scale).to(x.dtype)
    if kind == "rms_offset":
        return ((xf * scale) * (1.0 + weight.to(xf.dtype))).type_as(x)
    centred = xf - xf.mean(dim=-1, keepdim=True)
    out = (centred * scale).to(x.dtype) * weight
    bias = getattr(module, "bias", None)
    return out + bias if isinstance(bias, Tensor) else out
