"""Frozen attention's mixing `P @ V`, skipping the blocks of zeros above P's diagonal.

Causal attention probabilities are lower-triangular: query q weighs keys k <= q
only, and the entries above the diagonal are exact zeros (softmax of -inf). A
dense product multiplies them anyway, and so does its backward, `Pᵀ @ grad`,
which batched attribution runs once per pass. Cut into blocks of `block` queries,
row block i needs the key columns up to its own end, and the gradient of key block
j comes from the queries from j's start on, so the blocks above the diagonal blocks
are never read: about half the work at long prompts ((n − 1) / 2n of it is skipped
with n blocks). Each output element is the same sum as the dense product's, without
those zero terms; only its order may differ.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

BLOCK = 128
"""Queries per block. Shorter prompts (fewer than two blocks) take the dense product."""


def causal_mix(probs: Tensor, columns: Tensor, block: int | None = None) -> Tensor:
    """probs [h, T, T] (frozen: no gradient) @ columns [h, T, n] -> [h, T, n].

    Blockwise (`block` queries per block, default `BLOCK`) when probs is square, has
    nothing above its diagonal and spans at least two blocks; the dense product
    otherwise. The gradient flows to `columns` only."""
    block = BLOCK if block is None else block
    heads, queries, keys = probs.shape
    if queries != keys or queries < 2 * block or probs.requires_grad:
        return torch.matmul(probs, columns)
    if bool(torch.triu(probs, diagonal=1).any()):
        return torch.matmul(probs, columns)
    bounds = (*range(0, queries, block), queries)
    result = _CausalMix.apply(probs, columns, bounds)
    assert isinstance(result, Tensor)
    return result


class _CausalMix(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx, probs: Tensor, columns: Tensor, bounds: tuple[int, ...]
    ) -> Tensor:
        ctx.save_for_backward(probs)
        ctx.bounds = bounds  # type: ignore[attr-defined]
        return _mix(probs, columns, bounds)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[None, Tensor, None]:  # type: ignore[override]
        (probs,) = ctx.saved_tensors  # type: ignore[attr-defined]
        bounds = ctx.bounds  # type: ignore[attr-defined]
        out = grad.new_empty(probs.shape[0], probs.shape[2], grad.shape[-1])
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):  # each block in place
            key_block = probs[:, start:, start:end].transpose(1, 2)
            torch.matmul(key_block, grad[:, start:], out=out[:, start:end])
        return None, out, None


def _mix(probs: Tensor, columns: Tensor, bounds: tuple[int, ...]) -> Tensor:
    out = columns.new_empty(probs.shape[0], probs.shape[1], columns.shape[-1])
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        torch.matmul(probs[:, start:end, :end], columns[:, :end], out=out[:, start:end])
    return out
