"""One attention function, registered with transformers, that can record or replay.

Each attention module of an adapted model carries an `AttentionProbe`. The
function reads its mode: "normal" computes attention (fast SDPA where the
architecture allows), "record" computes it explicitly and keeps the
probabilities, "frozen" uses given probabilities, so only the value path
(linear in the layer's input) carries gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from circuitscope.errors import CircuitscopeError
from circuitscope.models.causal_mix import causal_mix
from circuitscope.models.norms import accumulation_dtype

ATTENTION_NAME = "circuitscope"
PROBE_ATTRIBUTE = "_circuitscope_probe"

Mode = Literal["normal", "record", "frozen"]


@dataclass
class AttentionProbe:
    layer: int
    mode: Mode = "normal"
    recorded: Tensor | None = None
    """Probabilities kept by the last recording run, fp32 [batch, heads, q, k]."""
    frozen: Tensor | None = None
    """Probabilities to use in frozen mode; batch 1 broadcasts."""


def _repeat_kv(states: Tensor, groups: int) -> Tensor:
    """[batch, kv_heads, seq, dim] -> [batch, kv_heads * groups, seq, dim]."""
    if groups == 1:
        return states
    return states.repeat_interleave(groups, dim=1)


def attention_probabilities(
    query: Tensor,
    key: Tensor,
    mask: Tensor | None,
    scaling: float | None,
    softcap: float | None,
) -> Tensor:
    """Softmax attention in fp32 (fp64 for fp64).

    query [b, h, q, d], key [b, h, k, d], mask [b, 1, q, >=k] additive -> [b, h, q, k].
    """
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if mask is not None:
        scores = scores + mask[:, :, :, : key.shape[-2]]
    return torch.softmax(scores, dim=-1, dtype=accumulation_dtype(scores))


def circuitscope_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor | None]:
    probe: AttentionProbe | None = getattr(module, PROBE_ATTRIBUTE, None)
    mode = probe.mode if probe is not None else "normal"
    groups = query.shape[1] // key.shape[1]
    if mode == "normal" and softcap is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if mode == "frozen":
        assert probe is not None
        probs = _checked_frozen(probe, query, key)
        output = mix_values(probs, value, groups)
        return output.transpose(1, 2).contiguous(), probs
    probs = attention_probabilities(
        query, _repeat_kv(key, groups), attention_mask, scaling, softcap
    )
    if probe is not None and mode == "record":
        probe.recorded = probs.detach()
    output = torch.matmul(probs.to(value.dtype), _repeat_kv(value, groups))
    return output.transpose(1, 2).contiguous(), probs


def mix_values(probs: Tensor, value: Tensor, groups: int = 1) -> Tensor:
    """probs [1 or B, h, q, k] @ value [B, h / groups, k, d] -> [B, h, q, d]; query
    head i reads value head i // groups (grouped-query attention).

    Batch-1 probabilities (frozen ones, shared by every row of a batched backward)
    are not copied per row: the batch goes into the matmul's columns instead, so
    autograd keeps one [h, q, k] tensor, not B of them (at 1024 tokens and a
    batch of 32 that is 36 MB per layer instead of 1.2 GB); the value heads are not
    repeated per query head either (`causal_mix` groups them); and the product skips
    the zeros above the causal diagonal."""
    if probs.shape[0] != 1 or value.shape[0] == 1:
        return torch.matmul(probs.to(value.dtype), _repeat_kv(value, groups))
    batch, kv_heads, keys, width = value.shape
    heads, queries = probs.shape[1], probs.shape[2]
    columns = value.permute(1, 2, 0, 3).reshape(kv_heads, keys, batch * width)
    grouped = probs[0].to(value.dtype).view(kv_heads, groups, queries, keys)
    mixed = causal_mix(grouped, columns)  # [h / groups, groups, q, B·d]
    return mixed.reshape(heads, queries, batch, width).permute(2, 0, 1, 3)


def _checked_frozen(probe: AttentionProbe, query: Tensor, key: Tensor) -> Tensor:
    probs = probe.frozen
    if probs is None:
        raise CircuitscopeError(f"layer {probe.layer}: frozen mode without recorded attention")
    want = (query.shape[-2], key.shape[-2])
    if tuple(probs.shape[-2:]) != want:
        raise CircuitscopeError(
            f"layer {probe.layer}: frozen attention is {tuple(probs.shape[-2:])} "
            f"(query, key) but this run needs {want}"
        )
    return probs


def register_attention() -> None:
    """Make `circuitscope` a valid `attn_implementation` (idempotent)."""
    AttentionInterface.register(ATTENTION_NAME, circuitscope_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, eager_mask)
