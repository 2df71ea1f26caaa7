"""Logit targets: which output directions a graph explains, and their weights.

A target is a direction in the final norm's output space. For a token k it is
the demeaned unembedding W_U[k] − mean_j W_U[j] (the logit relative to the
average logit, before any soft-cap); for a contrast "A minus B" it is
W_U[A] − W_U[B]. Weights (used for influence) are the model's probabilities;
a contrast gets weight 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.errors import CircuitscopeError
from circuitscope.models.adapter import ModelAdapter
from circuitscope.models.tokenizer import Tokenizer


@dataclass(frozen=True)
class LogitTarget:
    label: str
    """How the node is shown, with its probability."""
    token_id: int
    """The token, or -1 for a custom direction."""
    probability: float
    """The model's probability of the token (the node's weight in influence)."""
    vector: Tensor
    """[d_model] the direction read from the final norm's output."""


def demeaned_unembedding(adapter: ModelAdapter, token_ids: Tensor) -> Tensor:
    """[k, d_model] W_U[k] − mean_j W_U[j] for each token id in [k]."""
    unembed = adapter.unembed_weight.detach()
    return unembed[token_ids] - unembed.mean(dim=0, keepdim=True)


def top_logit_targets(
    adapter: ModelAdapter,
    tokenizer: Tokenizer,
    last_logits: Tensor,
    max_n_logits: int = 10,
    desired_probability: float = 0.95,
) -> list[LogitTarget]:
    """The fewest top tokens covering `desired_probability`, at most `max_n_logits`."""
    probs = torch.softmax(last_logits.float(), dim=-1)
    top = probs.topk(min(max_n_logits, probs.numel()))
    cumulative = torch.cumsum(top.values, dim=0)
    count = int(torch.searchsorted(cumulative, torch.tensor(desired_probability))) + 1
    ids = top.indices[: min(count, len(top.indices))]
    return _token_targets(adapter, tokenizer, ids, probs)


def named_logit_targets(
    adapter: ModelAdapter, tokenizer: Tokenizer, tokens: Sequence[str], last_logits: Tensor
) -> list[LogitTarget]:
    """One target per token string (each must be exactly one token, e.g. ' Paris')."""
    probs = torch.softmax(last_logits.float(), dim=-1)
    ids = torch.tensor([single_token_id(tokenizer, token) for token in tokens])
    return _token_targets(adapter, tokenizer, ids, probs)


def contrast_target(
    adapter: ModelAdapter, tokenizer: Tokenizer, positive: str, negative: str
) -> LogitTarget:
    """The direction logit(positive) − logit(negative), weight 1."""
    plus, minus = single_token_id(tokenizer, positive), single_token_id(tokenizer, negative)
    unembed = adapter.unembed_weight.detach()
    vector = unembed[plus] - unembed[minus]
    return LogitTarget(f"{positive!r} − {negative!r}", -1, 1.0, vector)


def single_token_id(tokenizer: Tokenizer, text: str) -> int:
    """The id of `text` if it is exactly one token, else a clear error."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise CircuitscopeError(
            f"target {text!r} is {len(ids)} tokens {pieces}, not one; "
            "mind the leading space (e.g. ' Paris')"
        )
    return int(ids[0])


def _token_targets(
    adapter: ModelAdapter, tokenizer: Tokenizer, ids: Tensor, probs: Tensor
) -> list[LogitTarget]:
    vectors = demeaned_unembedding(adapter, ids.to(adapter.unembed_weight.device))
    targets = []
    for row, token_id in enumerate(ids.tolist()):
        p = float(probs[token_id])
        text = tokenizer.decode([token_id])
        targets.append(LogitTarget(f"{text!r} (p={p:.3f})", token_id, p, vectors[row].cpu()))
    return targets
