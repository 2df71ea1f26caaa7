"""`TrainSettings`: every choice of a training run, with its default.

The defaults give a useful CLT on the bundled SmolLM2 in about 15 minutes on a
2-core CPU from an activation store of 65,536 tokens (see docs/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(kw_only=True)
class TrainSettings:
    kind: Literal["clt", "plt"] = "clt"
    """clt: each layer's features decode to that layer and every later one; plt: to itself."""
    n_features: int = 128
    """Features per layer."""
    activation: Literal["jumprelu", "topk", "batchtopk", "relu"] = "jumprelu"
    """The activation function (the tanh sparsity penalty applies to jumprelu and relu)."""
    k: int = 16
    """Active features per token and layer for topk and batchtopk."""
    skip_connection: bool = False
    """Also learn a linear skip term per layer, ŷ_l += x_l W_skip,l (d_model × d_model,
    starting at 0; a "skip transcoder", Paulo et al. 2025): the MLP's linear part is then
    carried by W_skip instead of by features or error nodes."""
    steps: int = 600
    """Optimizer steps."""
    batch_size: int = 512
    """Tokens per step (over all processes)."""
    lr: float = 1e-3
    """Peak learning rate of Adam."""
    lr_warmup: float = 0.02
    """Fraction of steps over which the learning rate rises linearly to its peak."""
    lr_decay: float = 0.2
    """Fraction of steps at the end over which it falls linearly to zero."""
    sparsity_coefficient: float = 4.0
    """λ of the tanh sparsity penalty λ Σ tanh(c · ‖W_dec,i‖ · a_i), per token; activations
    are normalised to norm √d_model, so scale it with d_model (4 suits d_model 576)."""
    sparsity_c: float = 4.0
    """c of the tanh sparsity penalty."""
    sparsity_warmup: float = 0.5
    """Fraction of steps over which λ rises linearly from 0."""
    preact_coefficient: float = 3e-6
    """λ_P of the pre-activation loss λ_P Σ ReLU(θ − h) · ‖W_dec,i‖ (keeps features alive)."""
    encoder_init: Literal["uniform", "data"] = "uniform"
    """uniform: W_enc ~ U(±1/√d). data: feature i's encoder starts along the i-th training
    token's input minus the mean input (same norm as uniform's, b_enc cancelling the mean),
    so each feature starts out firing on a different kind of token (fewer dead TopK
    features)."""
    threshold_init: float = 0.03
    """Initial JumpReLU threshold θ."""
    bandwidth: float = 0.1
    """Width ε of the JumpReLU straight-through estimator's rectangle kernel."""
    grad_clip: float = 1.0
    """Clip the gradient's global norm to this (0: no clipping)."""
    seed: int = 0
    """Seeds the initial weights and the order of the data."""
    autocast: Literal["auto", "bf16", "off"] = "auto"
    """bf16 autocast of the matmuls: auto = on CUDA and on CPUs with native bf16."""
    log_every: int = 20
    """Steps between log lines (and progress-bar updates of the figures)."""
    checkpoint_every: int = 100
    """Steps between checkpoints (0: only at the end)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    dead_after_tokens: int = 100_000
    """A feature that has not fired for this many tokens counts as dead."""
    aux_k: int = 0
    """AuxK (Gao et al. 2024): each step, each layer's dead features (see dead_after_tokens)
    reconstruct the residual error y − ŷ from their aux_k largest pre-activations per token
    (at most all of them), which trains them back to life; 0: off. The paper uses 512."""
    aux_coefficient: float = 1 / 32
    """Weight of the AuxK loss Σ_l d_model · ‖e_l − ê_l‖² / ‖e_l‖² (e: the residual error of
    layer l, ê: its reconstruction from dead features); 1/32 as in the paper."""
    group_shards: int = 4
    """Shards whose tokens are shuffled together when reading the store."""
    device: str = "cpu"
    """cpu, cuda, cuda:N, or auto."""
    wandb_project: str | None = None
    """Also log to this Weights & Biases project (needs `pip install wandb`)."""


RESUME_KEYS = (
    "kind",
    "n_features",
    "activation",
    "k",
    "steps",
    "batch_size",
    "lr",
    "lr_warmup",
    "lr_decay",
    "sparsity_coefficient",
    "sparsity_c",
    "sparsity_warmup",
    "preact_coefficient",
    "threshold_init",
    "bandwidth",
    "grad_clip",
    "seed",
    "group_shards",
    "aux_k",
    "aux_coefficient",
    "skip_connection",
    "encoder_init",
)
"""Settings that must match a checkpoint for `--resume` to continue the same run, and
`dead_after_tokens` when aux_k > 0 (it then chooses the features AuxK trains)."""

ADDED_SETTINGS = ("aux_k", "aux_coefficient", "skip_connection", "encoder_init")
"""Settings newer than some checkpoints: one a checkpoint does not record had its default
(AuxK off, no skip term, uniform encoders), so a resume compares against that."""
