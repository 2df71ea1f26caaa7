"""Option groups shared by several commands, declared once (their fields become options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from circuitscope.cli_args import positional
from circuitscope.data.bos import BosPolicy


@dataclass(kw_only=True)
class ModelOptions:
    model: str = positional()
    """A hub id, a model folder, a .gguf file, or smollm2-135m."""
    device: str = "cpu"
    """cpu, cuda, cuda:N, or auto."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Precision of the model's weights (attribution and interventions accumulate in fp32)."""


@dataclass(kw_only=True)
class BosOption:
    bos: BosPolicy = "auto"
    """Put the attention-sink token (the tokenizer's BOS, else EOS; for SmolLM2
    <|im_start|>) at position 0: auto (when the tokenizer adds none), always, never. One
    rule for prompts (run, trace, intervene, validate) and packed contexts (collect,
    train, eval, features): a context starts mid-text, so auto puts the sink first as
    always does and its position is not recorded; with never every position is (eval and
    features still skip position 0)."""
