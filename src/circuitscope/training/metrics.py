"""Live figures of a training run: normalized MSE and L0 per layer, dead and dense features.

normalized MSE of layer l = mean ‖ŷ_l − y_l‖² / mean ‖y_l − ȳ_l‖² (the fraction of the
target's variance left unexplained; predicting the mean scores 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

DENSE_FREQUENCY = 0.1
"""A feature firing on more than this fraction of tokens counts as dense."""


def normalized_mse(reconstruction: Tensor, target: Tensor, variance: Tensor) -> Tensor:
    """[batch, n_layers, d] twice, variance [n_layers] -> [n_layers]."""
    error = (reconstruction.float() - target.float()).pow(2).sum(-1).mean(0)
    return error / variance.to(error)


def l0_per_layer(activations: Sequence[Tensor]) -> Tensor:
    """Mean number of active features per token, per layer: [n_layers]."""
    return torch.stack([(a != 0).float().sum(-1).mean() for a in activations])


class FeatureTracker:
    """Tokens since each feature last fired, and firing counts since the last report."""

    def __init__(self, n_layers: int, n_features: int, dead_after_tokens: int) -> None:
        self.since_fired = torch.zeros(n_layers, n_features, dtype=torch.int64)
        self.window_fires = torch.zeros(n_layers, n_features, dtype=torch.int64)
        self.window_tokens = 0
        self.dead_after = dead_after_tokens

    @torch.no_grad()
    def update(self, fires: Tensor, n_tokens: int) -> None:
        """fires: [n_layers, n_features] how many of `n_tokens` tokens each feature fired on."""
        fires = fires.cpu()
        self.since_fired += n_tokens
        self.since_fired[fires > 0] = 0
        self.window_fires += fires
        self.window_tokens += n_tokens

    def dead_fraction(self) -> Tensor:
        """[n_layers]: features that have not fired for dead_after_tokens tokens."""
        return (self.since_fired >= self.dead_after).float().mean(-1)

    def dead_features(self) -> list[Tensor]:
        """Per layer, the indices (int64) of the features counted dead by dead_fraction."""
        dead = self.since_fired >= self.dead_after
        return [row.nonzero().flatten() for row in dead]

    def dense_fraction(self) -> Tensor:
        """[n_layers]: features firing on more than DENSE_FREQUENCY of the window's tokens."""
        tokens = max(self.window_tokens, 1)
        return (self.window_fires.float() / tokens > DENSE_FREQUENCY).float().mean(-1)

    def reset_window(self) -> None:
        self.window_fires.zero_()
        self.window_tokens = 0

    def state(self) -> dict[str, Tensor]:
        return {
            "since_fired": self.since_fired,
            "window_fires": self.window_fires,
            "window_tokens": torch.tensor([self.window_tokens]),
        }

    def load_state(self, state: dict[str, Tensor]) -> None:
        self.since_fired = state["since_fired"].clone()
        self.window_fires = state["window_fires"].clone()
        self.window_tokens = int(state["window_tokens"][0])
