"""The constants of a recorded run that frozen mode replays.

With attention probabilities and every norm's scale fixed, the map from the
residual stream (and MLP outputs) to the logits is linear: the basis of the
local replacement model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from circuitscope.errors import CircuitscopeError


@dataclass
class FrozenState:
    attention: dict[int, Tensor] = field(default_factory=dict)
    """Per layer: attention probabilities [batch, heads, query, key], fp32."""
    norm_scales: dict[str, Tensor] = field(default_factory=dict)
    """Per norm module path: the recorded 1/rms or 1/std, [batch, seq, 1], fp32.
    Empty: the norms compute their scales live (attention alone is frozen)."""

    @property
    def seq_len(self) -> int:
        first = next(iter(self.attention.values()))
        return int(first.shape[-2])

    def check_covers(self, n_layers: int, norm_paths: list[str], seq_len: int) -> None:
        """Raise a clear error unless this state can freeze a run of `seq_len` tokens."""
        missing_layers = [layer for layer in range(n_layers) if layer not in self.attention]
        missing_norms = [path for path in norm_paths if path not in self.norm_scales]
        if not self.norm_scales:
            missing_norms = []  # attention only: every norm runs live
        if missing_layers or missing_norms:
            raise CircuitscopeError(
                "frozen state is incomplete: missing attention for layers "
                f"{missing_layers} and scales for norms {missing_norms[:4]}"
            )
        if self.seq_len != seq_len:
            raise CircuitscopeError(
                f"frozen state was recorded on {self.seq_len} tokens, but this run has {seq_len}"
            )

    def attention_only(self) -> FrozenState:
        """The same attention probabilities, with every norm left to compute its scale."""
        return FrozenState(dict(self.attention), {})

    def prefix(self, length: int) -> FrozenState:
        """The state of the first `length` positions (exact: attention is causal)."""
        return FrozenState(
            {k: v[..., :length, :length] for k, v in self.attention.items()},
            {k: v[:, :length] for k, v in self.norm_scales.items()},
        )

    def suffix(self, start: int) -> FrozenState:
        """The state of positions `start` on, as if they were the whole prompt.

        Exact only for a linear pass whose inputs are zero before `start`: causal
        attention then has nothing to read from the positions left out (views, no copy)."""
        return FrozenState(
            {k: v[..., start:, start:] for k, v in self.attention.items()},
            {k: v[:, start:] for k, v in self.norm_scales.items()},
        )

    def to(self, device: str) -> FrozenState:
        return FrozenState(
            {k: v.to(device) for k, v in self.attention.items()},
            {k: v.to(device) for k, v in self.norm_scales.items()},
        )
