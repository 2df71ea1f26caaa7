"""Tiny random models of every supported architecture, with a local tokenizer.

Nothing here touches a hub: the tokenizer is a byte-level BPE trained on a few
paragraphs below, and each model is built from its transformers config with
weights drawn from a seeded generator (norm weights and biases included, so
that no part of the model is the identity by accident).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3", "gpt2")

TRAINING_TEXT = """\
The river ran past the old mill, and the miller counted sacks of grain by the door.
In the morning the children walked to school along the river, talking about the fair.
A fair in the town square brought music, bread, apples, and a man who juggled knives.
The capital of France is Paris; the capital of Italy is Rome; Madrid is in Spain.
Two plus two is four. Three times three is nine. Ten minus seven leaves three.
Hot is the opposite of cold, and up is the opposite of down, as night is to day.
She opened the letter slowly, read it twice, and then put it back in the drawer.
When the rain stopped, the farmers went out to the fields to look at the wheat.
"""

SPECIAL_TOKENS = ["<unk>", "<bos>", "<eos>", "<pad>"]


@cache
def tiny_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `TRAINING_TEXT`; adds no BOS."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
    )


def tiny_config(arch: str, vocab_size: int) -> PretrainedConfig:
    """A 3-4 layer config with d_model 32 for one of `ARCHITECTURES`."""
    tokens: dict[str, Any] = dict(
        vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=3
    )
    common: dict[str, Any] = dict(
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=64,
        **tokens,
    )
    if arch == "llama":
        return LlamaConfig(num_hidden_layers=3, tie_word_embeddings=True, **common)
    if arch == "qwen2":
        return Qwen2Config(num_hidden_layers=3, tie_word_embeddings=False, **common)
    if arch == "qwen3":
        return Qwen3Config(num_hidden_layers=3, tie_word_embeddings=False, **common)
    if arch == "gemma2":
        return Gemma2Config(
            num_hidden_layers=4,
            sliding_window=4,
            query_pre_attn_scalar=8,
            attn_logit_softcapping=20.0,
            final_logit_softcapping=10.0,
            **common,
        )
    if arch == "gemma3":
        return Gemma3TextConfig(
            num_hidden_layers=4,
            sliding_window=4,
            query_pre_attn_scalar=8,
            final_logit_softcapping=10.0,
            layer_types=["sliding_attention", "full_attention"] * 2,
            **common,
        )
    if arch == "gpt2":
        return GPT2Config(n_embd=32, n_layer=3, n_head=4, n_inner=64, n_positions=64, **tokens)
    raise ValueError(f"no tiny config for {arch!r}; choose from {ARCHITECTURES}")


def tiny_model(arch: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """A random model of `arch` in eval mode, deterministic in `seed`."""
    tokenizer = tiny_tokenizer()
    config = tiny_config(arch, vocab_size=len(tokenizer))
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    _randomize(model, seed)
    return model.to(dtype).eval()


def _randomize(model: PreTrainedModel, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    offset_norms = model.config.model_type.startswith("gemma")
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim >= 2:
                param.copy_(noise * 0.3 / param.shape[-1] ** 0.25)
            elif name.endswith("bias"):
                param.copy_(noise * 0.1)
            else:  # a norm's weight
                param.copy_(noise * 0.2 + (0.0 if offset_norms else 1.0))


def save_tiny_folder(folder: Path, arch: str) -> Path:
    """A tiny model of `arch` with its tokenizer, saved as an HF model folder."""
    tiny_model(arch).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder
