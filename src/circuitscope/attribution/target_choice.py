"""Which logit targets a graph explains: a plain settings class (no torch at import), so
the CLI's options can be made of it without importing the library."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from circuitscope.errors import CircuitscopeError

if TYPE_CHECKING:
    from torch import Tensor

    from circuitscope.attribution.targets import LogitTarget
    from circuitscope.models.adapter import ModelAdapter
    from circuitscope.models.tokenizer import Tokenizer


@dataclass(kw_only=True)
class TargetChoice:
    """Which logit targets a graph explains (checked on creation)."""

    max_n_logits: int = 10
    """At most this many logit targets (the most likely tokens)."""
    desired_logit_prob: float = 0.95
    """Take the fewest top tokens whose probabilities add up to this."""
    target: list[str] = field(default_factory=list)
    """Explain these tokens instead of the top ones (each exactly one token, e.g. ' Paris')."""
    contrast: list[str] = field(default_factory=list)
    """Explain logit(A) − logit(B): two tokens A B (e.g. ' Austin' ' Dallas')."""

    def __post_init__(self) -> None:
        if self.max_n_logits < 1:
            raise CircuitscopeError(f"max_n_logits must be at least 1, got {self.max_n_logits}")
        p = self.desired_logit_prob
        if not (isinstance(p, (int, float)) and math.isfinite(p) and 0 < p <= 1):
            raise CircuitscopeError(f"desired_logit_prob must be in (0, 1], got {p!r}")
        if self.contrast and len(self.contrast) != 2:
            raise CircuitscopeError(f"contrast takes two tokens A B, got {len(self.contrast)}")

    def targets(
        self, adapter: ModelAdapter, tokenizer: Tokenizer, last_logits: Tensor
    ) -> list[LogitTarget]:
        """The chosen targets of a prompt whose last position has `last_logits` [vocab]."""
        from circuitscope.attribution.targets import (
            contrast_target,
            named_logit_targets,
            top_logit_targets,
        )

        chosen: list[LogitTarget] = []
        if self.target:
            chosen += named_logit_targets(adapter, tokenizer, self.target, last_logits)
        if self.contrast:
            chosen.append(contrast_target(adapter, tokenizer, *self.contrast))
        if chosen:
            return chosen
        return top_logit_targets(
            adapter, tokenizer, last_logits, self.max_n_logits, self.desired_logit_prob
        )
