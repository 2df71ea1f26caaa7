"""The tokenizer type circuitscope takes: a transformers tokenizer (the bundled model's,
a hub model's, or the tiny test tokenizer). It is called on text for `input_ids`, and
gives `encode`, `decode`, `bos_token_id` and `eos_token_id`."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

Tokenizer = PreTrainedTokenizerBase
