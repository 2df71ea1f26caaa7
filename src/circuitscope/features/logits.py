"""What a feature's output does to the logits: its direct effect through the unembedding.

The direction is the feature's decoder vector; for a CLT, the sum of its decoder
vectors over every layer it writes to (all of them are added to the residual
stream, which carries them to the unembedding). It is read through the final norm
with the norm's scale frozen at its typical value over the corpus (the mean
divisor, rms or std, of the final residual at the positions seen), then through
W_U: `effect = W_U · (norm_f(d; s) − norm_f(0; s))`, before any soft-cap. The
logits a feature adds when it fires with activation a are a times this.
"""

from __future__ import annotations

import torch
from torch import Tensor

from circuitscope.models.adapter import ModelAdapter
from circuitscope.models.norms import apply_norm
from circuitscope.transcoders.transcoder import Transcoder


def summed_decoders(transcoder: Transcoder, layer: int, features: Tensor) -> Tensor:
    """[F, d_model] each feature's decoder vectors summed over its output layers.

    features: [F] sorted unique indices of `layer`.
    """
    return transcoder.active_decoders(layer, features).sum(dim=1)


@torch.no_grad()
def logit_effects(adapter: ModelAdapter, directions: Tensor, typical_divisor: float) -> Tensor:
    """[F, vocab] logit change per unit of each direction ([F, d_model]) in the final residual."""
    kind, norm = adapter.spec.norm_kind, adapter.final_norm
    x = directions.to(device=adapter.device, dtype=adapter.dtype)
    scale = torch.full((len(x), 1), 1.0 / max(typical_divisor, 1e-12), device=adapter.device)
    normed = apply_norm(kind, norm, x, scale) - apply_norm(kind, norm, torch.zeros_like(x), scale)
    return adapter.logits_from_normed(normed).float()


@torch.no_grad()
def top_logits(
    adapter: ModelAdapter, directions: Tensor, typical_divisor: float, k: int, chunk: int = 256
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(top ids, top values, bottom ids, bottom values), each [F, k], by chunks of features."""
    parts: list[tuple[Tensor, ...]] = []
    for start in range(0, len(directions), chunk):
        effects = logit_effects(adapter, directions[start : start + chunk], typical_divisor)
        high = effects.topk(k, dim=1)
        low = effects.topk(k, dim=1, largest=False)
        parts.append((high.indices, high.values, low.indices, low.values))
    if not parts:
        empty = torch.zeros(0, k)
        return empty.long(), empty, empty.long(), empty
    top_ids, top_values, bottom_ids, bottom_values = (
        torch.cat(p).cpu() for p in zip(*parts, strict=True)
    )
    return top_ids, top_values, bottom_ids, bottom_values
