"""The BOS policy: whether position 0 holds the attention-sink token (`sink_token_id`).

One rule for every command that runs the model: prompts (run, trace, intervene,
validate) and packed training contexts (collect, train, eval). No torch here: the
command-line options import it.
"""

from __future__ import annotations

from typing import Literal, get_args

BosPolicy = Literal["auto", "always", "never"]
"""auto: put the sink first unless the tokens already start with it; always; never."""
BOS_POLICIES: tuple[BosPolicy, ...] = get_args(BosPolicy)


def prepends_sink(policy: BosPolicy, starts_with_sink: bool) -> bool:
    """Whether the sink token goes before tokens that do (`starts_with_sink`: the tokenizer
    added it) or do not start with it: always; auto only when they do not; never."""
    return policy == "always" or (policy == "auto" and not starts_with_sink)


def context_has_sink(policy: BosPolicy) -> bool:
    """Whether a packed training context starts with the sink. Its tokens start mid-stream,
    never with a sink the tokenizer added (packing drops a tokenizer's own BOS from each
    document), so auto puts the sink first as always does; never leaves it out."""
    return prepends_sink(policy, starts_with_sink=False)


def first_recorded_position(policy: BosPolicy) -> int:
    """The first position of a packed context whose activations are recorded and evaluated
    for training: 1 behind the sink (the sink's are constants of the model), else 0."""
    return 1 if context_has_sink(policy) else 0
