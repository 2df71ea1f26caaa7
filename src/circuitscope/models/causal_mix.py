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
    """probs [h, T, T] or [h, G, T, T] (frozen: no gradient) @ columns [h, T, n]
    -> [h, T, n] or [h, G, T, n].

    With G, each of the h column sets is mixed by G matrices (grouped-query attention:
    G query heads share one value head), so the gradient sums the G products inside
    the matmuls instead of over a repeated copy of the columns. Blockwise (`block`
    queries per block, default `BLOCK`) when probs is square, has nothing above its
    diagonal and spans at least two blocks; the dense product otherwise. The gradient
    flows to `columns` only."""
    if probs.ndim == 3:
        return causal_mix(probs.unsqueeze(1), columns, block).squeeze(1)
    block = BLOCK if block is None else block
    heads, groups, queries, keys = probs.shape
    if queries != keys or queries < 2 * block or probs.requires_grad:
        return _dense(probs, columns)
    if bool(torch.triu(probs, diagonal=1).any()):
        return _dense(probs, columns)
    bounds = (*range(0, queries, block), queries)
    result = _CausalMix.apply(probs, columns, bounds)
    assert isinstance(result, Tensor)
    return result


def _dense(probs: Tensor, columns: Tensor) -> Tensor:
    """[h, G, q, k] @ [h, k, n] -> [h, G, q, n], the G groups stacked as rows of one
    matmul per head."""
    heads, groups, queries, keys = probs.shape
    stacked = torch.matmul(probs.reshape(heads, groups * queries, keys), columns)
    return stacked.view(heads, groups, queries, -1)


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
        heads, groups, queries, _ = probs.shape
        out = grad.new_empty(heads, queries, grad.shape[-1])
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):  # each block in place
            target = out[:, start:end]
            for group in range(groups):  # the groups' products summed into the block
                key_block = probs[:, group, start:, start:end].transpose(1, 2)
                if group == 0:
                    torch.matmul(key_block, grad[:, group, start:], out=target)
                else:
                    target.baddbmm_(key_block, grad[:, group, start:])
        return None, out, None


def _mix(probs: Tensor, columns: Tensor, bounds: tuple[int, ...]) -> Tensor:
    heads, groups, queries, _ = probs.shape
    out = columns.new_empty(heads, groups, queries, columns.shape[-1])
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        for group in range(groups):
            torch.matmul(
                probs[:, group, start:end, :end], columns[:, :end], out=out[:, group, start:end]
            )
    return out
