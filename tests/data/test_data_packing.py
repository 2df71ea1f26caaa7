"""Packing: fixed-length contexts that start with BOS and cover the token stream."""

from __future__ import annotations

import pytest
import torch

from circuitscope.data.packing import batched, pack_contexts, token_stream
from circuitscope.errors import CircuitscopeError
from circuitscope.models.tokenizer import sink_token_id
from circuitscope.testing.tiny_models import tiny_tokenizer


def test_contexts_start_with_bos_and_cover_the_stream():
    tokenizer = tiny_tokenizer()
    docs = ["The river ran past the old mill.", "Two plus two is four."] * 5
    stream = list(token_stream(docs, tokenizer))
    eos = tokenizer.eos_token_id
    assert isinstance(eos, int) and stream.count(eos) == 10
    contexts = list(pack_contexts(docs, tokenizer, 16))
    assert len(contexts) == len(stream) // 15
    assert all(c.shape == (16,) and int(c[0]) == tokenizer.bos_token_id == 1 for c in contexts)
    assert torch.cat([c[1:] for c in contexts]).tolist() == stream[: 15 * len(contexts)]
    batches = list(batched(iter(contexts), 4))
    assert [b.shape[0] for b in batches] == [4] * (len(contexts) // 4) + (
        [len(contexts) % 4] if len(contexts) % 4 else []
    )


def test_bos_never_packs_text_only_and_always_is_auto():
    """Contexts start mid-text, so auto and always both put the sink first; never fills all
    context_length positions with the stream (nothing before it, nothing skipped)."""
    tokenizer = tiny_tokenizer()
    docs = ["The river ran past the old mill.", "Two plus two is four."] * 5
    stream = list(token_stream(docs, tokenizer))
    never = list(pack_contexts(docs, tokenizer, 16, bos="never"))
    assert len(never) == len(stream) // 16 == 7
    assert all(c.shape == (16,) for c in never)
    assert torch.cat(never).tolist() == stream[: 16 * len(never)]
    assert int(never[0][0]) == stream[0] == 299 != tokenizer.bos_token_id
    always = list(pack_contexts(docs, tokenizer, 16, bos="always"))
    auto = list(pack_contexts(docs, tokenizer, 16, bos="auto"))
    assert len(always) == len(stream) // 15 == 8
    assert torch.equal(torch.stack(always), torch.stack(auto))
    assert torch.stack(always)[:, 0].tolist() == [1] * 8
    assert torch.cat([c[1:] for c in always]).tolist() == stream[:120]


def test_bad_context_length_and_missing_bos():
    with pytest.raises(CircuitscopeError, match="at least 2"):
        list(pack_contexts(["x"], tiny_tokenizer(), 1))

    class NoSpecials:
        bos_token_id = None
        eos_token_id = None

    with pytest.raises(CircuitscopeError, match="neither a BOS"):
        sink_token_id(NoSpecials())  # type: ignore[arg-type]
