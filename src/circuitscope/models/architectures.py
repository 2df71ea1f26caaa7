"""The address table: where each supported architecture keeps the parts we use.

Paths are dotted attribute paths: model-level ones from the `*ForCausalLM`
object, layer-level ones from one decoder layer. Adding an architecture is one
entry here (and a tiny config in `circuitscope.testing.tiny_models`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from circuitscope.errors import CircuitscopeError

NormKind = Literal["rms", "rms_offset", "layer"]
"""rms: w * x/rms(x) (Llama, Qwen); rms_offset: (1 + w) * x/rms(x) (Gemma);
layer: w * (x - mean)/std + b (GPT-2)."""


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    """Short name shown to users."""
    model_types: tuple[str, ...]
    """Values of `config.model_type` this entry serves."""
    layers: str
    """The list of decoder layers."""
    embed: str
    """The token embedding module."""
    final_norm: str
    """The norm applied to the last residual stream before the unembedding."""
    unembed: str
    """The unembedding (lm_head) linear layer."""
    attention: str
    """Per layer: the self-attention module."""
    mlp: str
    """Per layer: the MLP module; its input is the MLP input site."""
    mlp_norm: str
    """Per layer: the norm the MLP reads through; its input is the `resid_mid` site (the
    residual stream after attention, circuit-tracer's `hook_resid_mid`)."""
    mlp_out: str
    """Per layer: the module whose output is added to the residual as the MLP's
    contribution (the MLP itself, or Gemma's post-feedforward norm)."""
    norms: tuple[str, ...]
    """Per layer: every norm on the residual path (frozen in frozen mode)."""
    norm_kind: NormKind
    """The formula of those norms."""
    final_softcap: str | None = None
    """Config attribute holding the final logit soft-cap, if the family has one."""
    query_key: tuple[str, ...] = ()
    """Per attention module: the query and key projections (frozen mode skips them: replayed
    probabilities make their outputs unused). Empty where they are fused with the values."""
    example: str = ""
    """A hub id of a real model of this family, for the docs."""


def _llama_like(name: str, model_type: str, example: str) -> ArchitectureSpec:
    """Pre-norm blocks with RMSNorm before attention and before the MLP."""
    return ArchitectureSpec(
        name=name,
        model_types=(model_type,),
        layers="model.layers",
        embed="model.embed_tokens",
        final_norm="model.norm",
        unembed="lm_head",
        attention="self_attn",
        mlp="mlp",
        mlp_norm="post_attention_layernorm",
        mlp_out="mlp",
        norms=("input_layernorm", "post_attention_layernorm"),
        norm_kind="rms",
        query_key=("q_proj", "k_proj"),
        example=example,
    )


def _gemma_like(name: str, model_type: str, example: str) -> ArchitectureSpec:
    """Sandwich norms: (1 + w) RMSNorm before and after attention and the MLP."""
    return replace(
        _llama_like(name, model_type, example),
        mlp_norm="pre_feedforward_layernorm",
        mlp_out="post_feedforward_layernorm",
        norms=(
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ),
        norm_kind="rms_offset",
        final_softcap="final_logit_softcapping",
    )


SUPPORTED: tuple[ArchitectureSpec, ...] = (
    _llama_like("llama", "llama", "HuggingFaceTB/SmolLM2-135M"),
    _llama_like("qwen2", "qwen2", "Qwen/Qwen2.5-0.5B"),
    _llama_like("qwen3", "qwen3", "Qwen/Qwen3-0.6B"),
    _gemma_like("gemma2", "gemma2", "google/gemma-2-2b"),
    _gemma_like("gemma3", "gemma3_text", "google/gemma-3-270m"),
    ArchitectureSpec(
        name="gpt2",
        model_types=("gpt2",),
        layers="transformer.h",
        embed="transformer.wte",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        attention="attn",
        mlp="mlp",
        mlp_norm="ln_2",
        mlp_out="mlp",
        norms=("ln_1", "ln_2"),
        norm_kind="layer",
        example="openai-community/gpt2",
    ),
)


def supported_names() -> str:
    return ", ".join(spec.name for spec in SUPPORTED)


def spec_for_config(config: Any) -> ArchitectureSpec:
    """The address table entry for a transformers config, or a clear error."""
    model_type = getattr(config, "model_type", None)
    for spec in SUPPORTED:
        if model_type in spec.model_types:
            return spec
    raise CircuitscopeError(
        f"unsupported architecture {model_type!r}; supported: {supported_names()}"
    )


def d_mlp_of(config: Any) -> int:
    """The MLP's hidden width, whatever the config calls it."""
    for name in ("intermediate_size", "n_inner"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return 4 * int(config.hidden_size)
