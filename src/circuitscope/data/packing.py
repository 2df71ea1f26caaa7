"""Tokenize documents and pack them into fixed-length contexts, each starting with the
attention sink (BOS) unless the BOS policy is never.

The token stream is every document's tokens followed by EOS (when the tokenizer
has one); each context is [BOS] + the next `context_length - 1` tokens of that
stream (with `bos="never"`: the next `context_length` tokens), so contexts cross
document boundaries and no token is padding. BOS is `sink_token_id` (the
tokenizer's BOS, else EOS), prepended because tokenizers such as SmolLM2's add
none; a tokenizer that adds its own BOS has it removed from each document.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from circuitscope.data.bos import BosPolicy, context_has_sink
from circuitscope.errors import CircuitscopeError
from circuitscope.models.tokenizer import sink_token_id


def token_stream(documents: Iterable[str], tokenizer: Any) -> Iterator[int]:
    """Token ids of every document, each followed by EOS if the tokenizer has one."""
    bos = sink_token_id(tokenizer)
    eos = getattr(tokenizer, "eos_token_id", None)
    for document in documents:
        ids = tokenizer(document, add_special_tokens=False).input_ids
        if ids and ids[0] == bos:
            ids = ids[1:]
        yield from ids
        if eos is not None:
            yield int(eos)


def pack_contexts(
    documents: Iterable[str], tokenizer: Any, context_length: int, bos: BosPolicy = "auto"
) -> Iterator[Tensor]:
    """Contexts [context_length] (int64), each [BOS] + context_length - 1 stream tokens
    (auto, always) or context_length stream tokens (never; see `data.bos`).

    The last partial context is dropped.
    """
    if context_length < 2:
        raise CircuitscopeError(f"context length must be at least 2, got {context_length}")
    head = [sink_token_id(tokenizer)] if context_has_sink(bos) else []
    body = context_length - len(head)
    buffer: list[int] = []
    for token in token_stream(documents, tokenizer):
        buffer.append(token)
        if len(buffer) == body:
            yield torch.tensor([*head, *buffer], dtype=torch.long)
            buffer = []


def batched(contexts: Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    """Stack contexts into batches [batch_size, context_length]; the last may be smaller."""
    batch: list[Tensor] = []
    for context in contexts:
        batch.append(context)
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)
