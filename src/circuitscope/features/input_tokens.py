"""Which tokens drive a feature most directly: its encoder read against the token embeddings.

A direct-path approximation: token t's embedding e_t is carried straight to the
transcoder's input at the feature's layer, ignoring attention and every earlier MLP
(what earlier layers do with the token is not seen). e_t is the embedding module's
output: Gemma's sqrt(d) scale included; GPT-2's position embeddings left out (they
are the same for every token). It is read as the transcoder reads the residual:

- `resid_mid` transcoders read the residual itself: `score = E · W_enc[:, i]`;
- `mlp_in` transcoders read it through the MLP's norm, taken with its scale frozen at
  the norm's typical value over the corpus (the mean divisor, rms or std, of the
  residual entering it at the positions seen): `score = (norm(e; s) − norm(0; s)) ·
  W_enc[:, i]`. The norm's weight counts (it reweights dimensions); a per-token
  divisor would not be the residual's, so none is used.

A score is in pre-activation units (b_enc and the threshold left out): what the
token's embedding alone adds to the feature's pre-activation. The norm is folded into
the encoder directions (`input_directions`), so the scores of a chunk of features are
one product with the embedding matrix, as the logit effects are with W_U.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from circuitscope.models.adapter import ModelAdapter
from circuitscope.models.norms import apply_norm
from circuitscope.transcoders.transcoder import Transcoder


def mlp_norm(adapter: ModelAdapter, layer: int) -> nn.Module:
    """The norm layer `layer`'s MLP reads through (between resid_mid and mlp_in)."""
    return adapter.layers[layer].get_submodule(adapter.spec.mlp_norm)


def token_embeddings(adapter: ModelAdapter) -> Tensor:
    """[n_tokens, d_model] the embedding module's output for every token id (one copy)."""
    weight = adapter.embedding.weight
    assert isinstance(weight, Tensor)
    return adapter.embedding(torch.arange(int(weight.shape[0]), device=adapter.device))


def input_reading(
    adapter: ModelAdapter, input_kind: str, layer: int, typical_divisor: float
) -> Tensor | None:
    """[d, d] R such that what `layer`'s transcoder reads of a residual vector x alone,
    dotted with w, is x · (R @ w): the transpose of the input map, read off the identity
    (rows: the map applied to each basis vector). None when the map is the identity
    (resid_mid); for mlp_in, the MLP's norm at a frozen scale minus its value at 0."""
    if input_kind == "resid_mid":
        return None
    kind, norm = adapter.spec.norm_kind, mlp_norm(adapter, layer)
    basis = torch.eye(adapter.d_model, dtype=adapter.accumulation_dtype, device=adapter.device)
    scale = torch.full((len(basis), 1), 1.0 / max(typical_divisor, 1e-12), device=adapter.device)
    zero = torch.zeros_like(basis)
    return apply_norm(kind, norm, basis, scale) - apply_norm(kind, norm, zero, scale)


@torch.no_grad()
def input_directions(
    adapter: ModelAdapter,
    transcoder: Transcoder,
    layer: int,
    features: Tensor,
    typical_divisor: float,
) -> Tensor:
    """[d, F] v_i with score(token t) = e_t · v_i, in the model's dtype.

    features: [F] indices of `layer`; typical_divisor: of the MLP norm (mlp_in only).
    """
    encoder = transcoder.encoder(layer).W_enc
    directions = encoder[:, features.to(encoder.device)].to(adapter.device)
    reading = input_reading(adapter, transcoder.config.input_kind, layer, typical_divisor)
    if reading is not None:
        directions = reading @ directions.to(reading.dtype)
    return directions.to(adapter.dtype)


@torch.no_grad()
def top_input_tokens(
    adapter: ModelAdapter,
    transcoder: Transcoder,
    layer: int,
    features: Tensor,
    typical_divisor: float,
    k: int,
    chunk: int = 256,
) -> tuple[Tensor, Tensor]:
    """(ids, scores), each [F, k], highest score first, by chunks of features."""
    embeddings = token_embeddings(adapter)
    directions = input_directions(adapter, transcoder, layer, features, typical_divisor)
    k = min(k, len(embeddings))
    parts: list[tuple[Tensor, Tensor]] = []
    for start in range(0, len(features), chunk):
        scores = (embeddings @ directions[:, start : start + chunk]).float().T
        top = scores.topk(k, dim=1)
        parts.append((top.indices.cpu(), top.values.cpu()))
    if not parts:
        return torch.zeros(0, k, dtype=torch.long), torch.zeros(0, k)
    ids, values = (torch.cat(p) for p in zip(*parts, strict=True))
    return ids, values
