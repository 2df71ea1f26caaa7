"""The norms written with an explicit scale equal transformers' own modules."""

import pytest
import torch
from torch import nn
from transformers.models.gemma2.modeling_gemma2 import Gemma2RMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from circuitscope.models.norms import apply_norm, frozen_norm, norm_scale

D = 16


def _modules() -> dict[str, nn.Module]:
    generator = torch.Generator().manual_seed(0)
    modules: dict[str, nn.Module] = {
        "rms": LlamaRMSNorm(D, eps=1e-6),
        "rms_offset": Gemma2RMSNorm(D, eps=1e-6),
        "layer": nn.LayerNorm(D, eps=1e-5),
    }
    with torch.no_grad():
        for module in modules.values():
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator))
    return modules


@pytest.mark.parametrize("kind", ["rms", "rms_offset", "layer"])
def test_explicit_scale_reproduces_the_module(kind):
    module = _modules()[kind]
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(1)) * 3
    expected = module(x)
    got = apply_norm(kind, module, x, norm_scale(kind, module, x))  # type: ignore[arg-type]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", ["rms", "rms_offset", "layer"])
def test_frozen_scale_makes_the_norm_linear(kind):
    module = _modules()[kind].double()
    x = torch.randn(1, 3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    scale = norm_scale(kind, module, x)  # type: ignore[arg-type]
    dx = torch.randn_like(x)

    def frozen(v: torch.Tensor) -> torch.Tensor:
        return apply_norm(kind, module, v, scale)  # type: ignore[arg-type]

    difference = frozen(x + dx) - frozen(x)
    torch.testing.assert_close(difference, frozen(dx) - frozen(torch.zeros_like(dx)))
    # The live norm is not linear: the frozen one differs from it off the recorded point.
    assert (module(x + dx) - frozen(x + dx)).abs().max().item() > 1e-2


@pytest.mark.parametrize("kind", ["rms", "rms_offset", "layer"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_frozen_norm_has_apply_norms_values_and_gradient(kind, dtype):
    module = _modules()[kind].to(dtype)
    generator = torch.Generator().manual_seed(3)
    x = (torch.randn(1, 4, D, generator=generator) * 3).to(dtype)
    scale = norm_scale(kind, module, x)  # type: ignore[arg-type]
    grad = torch.randn(3, 4, D, generator=generator).to(dtype)
    batch = x.expand(3, -1, -1)
    live = batch.clone().requires_grad_(True)
    fused = batch.clone().requires_grad_(True)
    expected = apply_norm(kind, module, live, scale)  # type: ignore[arg-type]
    got = frozen_norm(kind, module, fused, scale)  # type: ignore[arg-type]
    assert torch.equal(got, expected)
    (expected_grad,) = torch.autograd.grad(expected, live, grad)
    (got_grad,) = torch.autograd.grad(got, fused, grad)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(got_grad, expected_grad, atol=0, rtol=tolerance)
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    scaled = (weight.detach() if kind == "rms" else 1 + weight.detach()) * scale
    if kind != "layer":  # written out: the gradient is grad ⊙ (s · w)
        torch.testing.assert_close(got_grad, grad * scaled, atol=0, rtol=tolerance)
