"""Per-layer statistics of MLP inputs and outputs, and the normalisation scales from them.

Training scales layer l's inputs by s_in[l] = √d_model / mean‖mlp_in[l]‖ and its
targets by s_out[l] = √d_model / mean‖mlp_out[l]‖; the scales are folded into the
saved transcoder (`transcoders.normalization.fold_scales`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from circuitscope.errors import CircuitscopeError


@dataclass
class ActivationStats:
    """Means over tokens, per layer (float64)."""

    n_tokens: int
    mean_in: Tensor
    """[n_layers, d_model] mean of mlp_in."""
    mean_out: Tensor
    """[n_layers, d_model] mean of mlp_out."""
    norm_in: Tensor
    """[n_layers] mean ‖mlp_in‖."""
    norm_out: Tensor
    """[n_layers] mean ‖mlp_out‖."""
    sq_norm_out: Tensor
    """[n_layers] mean ‖mlp_out‖²."""

    def input_scales(self) -> list[float]:
        d = self.mean_in.shape[-1]
        return [d**0.5 / max(float(v), 1e-12) for v in self.norm_in]

    def output_scales(self) -> list[float]:
        d = self.mean_out.shape[-1]
        return [d**0.5 / max(float(v), 1e-12) for v in self.norm_out]

    def out_variance(self) -> Tensor:
        """[n_layers] mean ‖mlp_out − mean_out‖²: the denominator of normalized MSE."""
        return self.sq_norm_out - self.mean_out.pow(2).sum(-1)

    def save(self, path: Path) -> None:
        tensors = {
            "mean_in": self.mean_in,
            "mean_out": self.mean_out,
            "norm_in": self.norm_in,
            "norm_out": self.norm_out,
            "sq_norm_out": self.sq_norm_out,
            "n_tokens": torch.tensor([self.n_tokens], dtype=torch.int64),
        }
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))

    @classmethod
    def load(cls, path: Path) -> ActivationStats:
        try:
            t = load_file(str(path))
            return cls(
                int(t["n_tokens"][0]),
                t["mean_in"],
                t["mean_out"],
                t["norm_in"],
                t["norm_out"],
                t["sq_norm_out"],
            )
        except Exception as error:  # safetensors raises several types on bad files
            raise CircuitscopeError(f"{path}: unreadable statistics ({error})") from None


class StatsAccumulator:
    """Running sums over batches of tokens, in float64."""

    def __init__(self, n_layers: int, d_model: int) -> None:
        shape = (n_layers, d_model)
        self.n = 0
        self.sum_in = torch.zeros(shape, dtype=torch.float64)
        self.sum_out = torch.zeros(shape, dtype=torch.float64)
        self.sum_norm_in = torch.zeros(n_layers, dtype=torch.float64)
        self.sum_norm_out = torch.zeros(n_layers, dtype=torch.float64)
        self.sum_sq_out = torch.zeros(n_layers, dtype=torch.float64)

    def add(self, mlp_in: Tensor, mlp_out: Tensor) -> None:
        """mlp_in, mlp_out: [n_tokens, n_layers, d_model]."""
        x, y = mlp_in.double(), mlp_out.double()
        self.n += int(x.shape[0])
        self.sum_in += x.sum(0)
        self.sum_out += y.sum(0)
        self.sum_norm_in += x.norm(dim=-1).sum(0)
        y_sq = y.pow(2).sum(-1)
        self.sum_norm_out += y_sq.sqrt().sum(0)
        self.sum_sq_out += y_sq.sum(0)

    def result(self) -> ActivationStats:
        if self.n == 0:
            raise CircuitscopeError("no tokens were recorded: the corpus gave no full context")
        n = float(self.n)
        return ActivationStats(
            self.n,
            self.sum_in / n,
            self.sum_out / n,
            self.sum_norm_in / n,
            self.sum_norm_out / n,
            self.sum_sq_out / n,
        )
