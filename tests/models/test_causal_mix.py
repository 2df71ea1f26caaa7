"""`causal_mix`: frozen attention's mixing without the zeros above the diagonal."""

from __future__ import annotations

import pytest
import torch

from circuitscope.models.causal_mix import _CausalMix, causal_mix


def _causal_probs(heads: int, length: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(heads, length, length, generator=generator, dtype=torch.float64)
    above = torch.ones(length, length, dtype=torch.bool).triu(1)
    return scores.masked_fill(above, float("-inf")).softmax(-1)


@pytest.mark.parametrize("length", [64, 100, 129])
@pytest.mark.parametrize("groups", [1, 3])
def test_blockwise_product_and_gradient_equal_the_dense_ones(length, groups):
    """Blocks of 32 queries (2 to 5 blocks, the last one short), `groups` matrices per
    column set: the product and the gradient reaching the columns equal the dense
    product's (each group's matrix times the columns) in float64."""
    probs = _causal_probs(2 * groups, length).view(2, groups, length, length)
    columns = torch.randn(2, length, 7, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, groups, length, 7, dtype=torch.float64)
    dense = torch.matmul(probs, columns.unsqueeze(1))
    (dense_grad,) = torch.autograd.grad(dense, columns, grad)
    mixed = causal_mix(probs, columns, block=32)
    (mixed_grad,) = torch.autograd.grad(mixed, columns, grad)
    torch.testing.assert_close(mixed, dense, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mixed_grad, dense_grad, rtol=1e-12, atol=1e-12)
    assert mixed.grad_fn is not None and "CausalMix" in type(mixed.grad_fn).__name__


def test_three_dimensional_probabilities_are_one_group():
    probs = _causal_probs(3, 100)
    columns = torch.randn(3, 100, 7, dtype=torch.float64)
    mixed = causal_mix(probs, columns, block=32)
    assert mixed.shape == (3, 100, 7)
    torch.testing.assert_close(mixed, torch.matmul(probs, columns), rtol=1e-12, atol=1e-12)


def test_the_blocks_above_the_diagonal_are_never_read():
    """The blockwise product never multiplies an entry of a block above the diagonal
    blocks: with NaN there (which the public function would refuse, taking the dense
    product), the product and the gradient equal the dense ones of the causal matrix."""
    probs = _causal_probs(4, 96).view(2, 2, 96, 96)
    block_row = torch.arange(96) // 32
    above = block_row.unsqueeze(1) < block_row.unsqueeze(0)  # [query, key] blocks above
    poisoned = probs.masked_fill(above, float("nan"))
    columns = torch.randn(2, 96, 5, dtype=torch.float64, requires_grad=True)
    mixed = _CausalMix.apply(poisoned, columns, (0, 32, 64, 96))
    assert isinstance(mixed, torch.Tensor)
    (grad,) = torch.autograd.grad(mixed, columns, torch.ones_like(mixed))
    dense = torch.matmul(probs, columns.unsqueeze(1))
    (dense_grad,) = torch.autograd.grad(dense, columns, torch.ones_like(dense))
    torch.testing.assert_close(mixed, dense, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, dense_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["short", "not causal", "rectangular", "probs need grad"])
def test_other_inputs_take_the_dense_product(case):
    """Fewer than two blocks, an entry above the diagonal, a non-square matrix or
    probabilities that need their own gradient: the plain matmul, unchanged."""
    length = 40 if case == "short" else 96
    probs = _causal_probs(2, length)
    if case == "not causal":
        probs[1, 3, 50] = 0.25
    if case == "rectangular":
        probs = probs[:, 10:]
    if case == "probs need grad":
        probs.requires_grad_(True)
    columns = torch.randn(2, length, 4, dtype=torch.float64, requires_grad=True)
    mixed = causal_mix(probs, columns, block=32)
    assert "CausalMix" not in type(mixed.grad_fn).__name__
    assert torch.equal(mixed, torch.matmul(probs, columns))
