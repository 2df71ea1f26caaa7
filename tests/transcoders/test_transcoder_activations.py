"""JumpReLU, TopK, BatchTopK and ReLU."""

from __future__ import annotations

import pytest
import torch

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders.activations import (
    BatchTopK,
    JumpReLU,
    ReLU,
    TopK,
    jumprelu,
    make_activation,
    rectangle,
)


def test_jumprelu_forward_is_exact() -> None:
    h = torch.tensor([[-1.0, 0.1, 0.2, 0.25, 3.0], [0.3, 0.19, 0.21, -0.2, 0.0]])
    threshold = torch.tensor([0.0, 0.2, 0.2, 0.3, 1.0])
    out = jumprelu(h, threshold, bandwidth=0.1)
    expected = torch.tensor([[0.0, 0.0, 0.0, 0.0, 3.0], [0.3, 0.0, 0.21, 0.0, 0.0]])
    assert torch.equal(out, expected)
    # h exactly at the threshold is off: the step is strict.
    assert jumprelu(torch.tensor([0.2]), torch.tensor([0.2]), 0.1).item() == 0.0


def test_jumprelu_threshold_gradient_matches_rectangle_kernel_by_hand() -> None:
    # θ = 0.5, ε = 0.2: rect((h - θ)/ε) is 1 for |h - 0.5| < 0.1.
    h = torch.tensor([[0.45, 0.58, 0.7], [0.52, 0.2, 0.41]], requires_grad=True)
    threshold = torch.tensor([0.5, 0.5, 0.5], requires_grad=True)
    grad_out = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    jumprelu(h, threshold, 0.2).backward(grad_out)
    # d/dθ = Σ_batch -(θ/ε) · rect((h-θ)/ε) · g = -2.5 · (inside-window g's, per feature)
    # feature 0: h = 0.45 (in), 0.52 (in)   -> -2.5 · (1 + 4) = -12.5
    # feature 1: h = 0.58 (in), 0.2 (out)   -> -2.5 · 2      = -5.0
    # feature 2: h = 0.7 (out), 0.41 (in)   -> -2.5 · 6      = -15.0
    assert threshold.grad is not None and h.grad is not None
    assert torch.allclose(threshold.grad, torch.tensor([-12.5, -5.0, -15.0]))
    # d/dh passes straight through where the unit is on.
    expected_h = grad_out * (h.detach() > 0.5)
    assert torch.equal(h.grad, expected_h)


def test_rectangle_kernel_is_open_interval() -> None:
    z = torch.tensor([-0.5, -0.49, 0.0, 0.49, 0.5])
    assert torch.equal(rectangle(z), torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))


def test_jumprelu_module_learns_its_threshold() -> None:
    module = JumpReLU(4, bandwidth=1.0, init=0.5)
    out = module(torch.full((3, 4), 0.6))
    out.sum().backward()
    assert module.threshold.grad is not None
    assert torch.allclose(module.threshold.grad, torch.full((4,), -3 * 0.5))


def test_topk_keeps_exactly_k_per_row() -> None:
    h = torch.randn(5, 7, 64, generator=torch.Generator().manual_seed(0))
    out = TopK(6, relu=False)(h)
    assert torch.equal((out != 0).sum(-1), torch.full((5, 7), 6))
    top = h.topk(6, dim=-1).values
    assert torch.equal(out.sort(-1, descending=True).values[..., :6], top)


def test_topk_relu_clamps_negative_survivors() -> None:
    h = torch.tensor([[3.0, -1.0, -2.0, -3.0]])
    assert torch.equal(TopK(2)(h), torch.tensor([[3.0, 0.0, 0.0, 0.0]]))
    assert torch.equal(TopK(2, relu=False)(h), torch.tensor([[3.0, -1.0, 0.0, 0.0]]))


def test_batch_topk_keeps_k_times_batch_over_the_batch() -> None:
    h = torch.rand(4, 3, 32, generator=torch.Generator().manual_seed(1)) + 0.1
    out = BatchTopK(5)(h)
    assert int((out != 0).sum()) == 5 * 12
    # rows differ in how many they keep: it is a budget over the batch, not per row
    h2 = torch.tensor([[10.0, 9.0, 8.0, 7.0], [1.0, 0.5, 0.2, 0.1]])
    out2 = BatchTopK(2)(h2)
    assert torch.equal(out2, torch.tensor([[10.0, 9.0, 8.0, 7.0], [0.0, 0.0, 0.0, 0.0]]))


def test_topk_gradient_reaches_only_kept_units() -> None:
    h = torch.tensor([[1.0, 5.0, 3.0, 2.0]], requires_grad=True)
    TopK(2)(h).sum().backward()
    assert h.grad is not None
    assert torch.equal(h.grad, torch.tensor([[0.0, 1.0, 1.0, 0.0]]))


def test_relu_and_factory() -> None:
    assert torch.equal(ReLU()(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))
    assert isinstance(make_activation("topk", {"k": 3}, 10), TopK)
    assert isinstance(make_activation("batchtopk", {"k": 3}, 10), BatchTopK)
    jump = make_activation("jumprelu", {"bandwidth": 0.3}, 10)
    assert isinstance(jump, JumpReLU) and jump.bandwidth == 0.3
    with pytest.raises(CircuitscopeError, match="needs a parameter k"):
        make_activation("topk", {}, 10)
    with pytest.raises(CircuitscopeError, match="unknown activation"):
        make_activation("gelu", {}, 10)
