"""From a prompt string to the token ids the replacement model sees.

Position 0 must be the attention sink, not a word of the prompt: when the
tokenizer adds no BOS (SmolLM2's adds none) its `bos_token_id` is prepended,
as circuit-tracer does. The choice is recorded in the graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

from circuitscope.data.bos import BosPolicy, prepends_sink
from circuitscope.errors import CircuitscopeError
from circuitscope.models.tokenizer import Tokenizer, sink_token_id


def check_prompt(prompt: str) -> str:
    """`prompt` if it has text, else a clear error (commands check before loading)."""
    if not prompt.strip():
        raise CircuitscopeError("empty prompt: give the text whose next token to explain")
    return prompt


def prompt_ids(tokenizer: Tokenizer, prompt: str, bos: BosPolicy = "auto") -> tuple[Tensor, bool]:
    """([1, seq] ids, whether a BOS was prepended)."""
    check_prompt(prompt)
    ids: list[int] = tokenizer(prompt).input_ids
    prepend = False
    if bos != "never":
        sink = sink_token_id(tokenizer)
        prepend = prepends_sink(bos, starts_with_sink=bool(ids) and ids[0] == sink)
        ids = [sink, *ids] if prepend else ids
    if len(ids) < 2:
        raise CircuitscopeError("the prompt needs at least one token after the BOS")
    return torch.tensor([ids]), prepend


def token_texts(tokenizer: Tokenizer, ids: Tensor) -> list[str]:
    """Each id as the text it decodes to."""
    return [str(tokenizer.decode([int(i)])) for i in ids]
