"""Training presets: tested recipes that `circuitscope train --preset NAME` resolves to.

A preset is a set of option values. On a CPU they are the recipes measured on the
2-core development machine (docs/training.md, "Presets"); on CUDA the same recipes
are wider, see more tokens and take bigger batches, since a GPU's step costs little
more at 4x the width. Options given on the command line or in a `--config` file win
over the preset's values, even at their defaults (`--no-skip-connection`, `--aux-k 0`).
"""

from __future__ import annotations

from typing import Any, Literal

PresetName = Literal["demo", "quality"]

_CPU: dict[str, dict[str, Any]] = {
    "demo": {
        "kind": "plt",
        "n_features": 2048,
        "activation": "topk",
        "k": 32,
        "batch_size": 1024,
        "steps": 600,
        "model_dtype": "bfloat16",
        "checkpoint_every": 100,
        "skip_connection": True,
        "encoder_init": "data",
        "context_length": 129,
    },
    "quality": {
        "kind": "plt",
        "n_features": 4096,
        "activation": "topk",
        "k": 32,
        "batch_size": 1024,
        "steps": 2800,
        "model_dtype": "bfloat16",
        "checkpoint_every": 250,
        "skip_connection": True,
    },
}
"""Under 20 minutes (demo, 614k tokens) and under 2 hours (quality, 2.9M tokens) on 2 CPU
cores, recording from the model in bf16 on one core while the other trains. Both are PLTs
of TopK features (k = 32) with a linear skip term per layer (measured at the quality
length: held-out normalized MSE 0.234 -> 0.162, spliced top-1 0.48 -> 0.61, for about
9% more step time; docs/training.md). The quality one has 4,096 features per layer. The
demo has 2,048, whose cheaper step sees about 1.4x the tokens in its time (2,048 at 660
steps held out normalized MSE 0.240 and top-1 0.50 where 4,096 at 440 steps had 0.256 and
0.47), encoders started from data (`encoder_init`: dead features 11% -> 1.4%, normalized
MSE 0.240 -> 0.233), and contexts of 129 tokens, so that 8 of them make one 1,024-token
batch (with 128, 9 were recorded and 119 tokens thrown away)."""

_CUDA_SCALE: dict[str, dict[str, Any]] = {
    "demo": {"n_features": 8192, "batch_size": 4096, "steps": 2400},
    "quality": {"n_features": 16384, "batch_size": 4096, "steps": 12000},
}
"""On CUDA: 4x the width, 4x the batch and 4x the steps (16x the tokens)."""

PRESET_NAMES: tuple[str, ...] = tuple(_CPU)


def preset_values(name: str, device_type: str) -> dict[str, Any]:
    """The option values of preset `name` for a device of type `device_type` ("cpu", "cuda")."""
    if name not in _CPU:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")
    values = dict(_CPU[name])
    if device_type == "cuda":
        values.update(_CUDA_SCALE[name])
        values["model_dtype"] = "bfloat16"
    return values
