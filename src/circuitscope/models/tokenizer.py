"""The tokenizer type circuitscope takes: a transformers tokenizer (the bundled model's,
a hub model's, or the tiny test tokenizer). It is called on text for `input_ids`, and
gives `encode`, `decode`, `bos_token_id` and `eos_token_id`."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from circuitscope.errors import CircuitscopeError

Tokenizer = PreTrainedTokenizerBase


def sink_token_id(tokenizer: Tokenizer) -> int:
    """The token put at position 0 as the attention sink, for prompts and training contexts
    alike: the BOS token, else EOS. (For SmolLM2-Instruct that is `<|im_start|>`: of the
    candidates it keeps predictions closest to the un-prefixed prompt; see
    benchmarks/results/bos-choice-*.md.)"""
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise CircuitscopeError("the tokenizer has neither a BOS nor an EOS token for position 0")
