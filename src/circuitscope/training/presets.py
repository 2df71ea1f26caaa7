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
        "n_features": 4096,
        "activation": "topk",
        "k": 32,
        "batch_size": 1024,
        "steps": 440,
        "model_dtype": "bfloat16",
        "checkpoint_every": 100,
        "skip_connection": True,
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
"""Under 20 minutes (demo, 451k tokens) and under 2 hours (quality, 2.9M tokens) on 2 CPU
cores, recording from the model in bf16 on one core while the other trains. Both are the
same recipe: a PLT of 4,096 TopK features per layer with a linear skip term per layer
(measured at the quality length: held-out normalized MSE 0.234 -> 0.162, spliced top-1
0.48 -> 0.61, for about 9% more step time; docs/training.md); the demo stops it early.
It replaced a demo of 2,048 features, k = 16 and AuxK, which at the same time held out
normalized MSE 0.42 and top-1 0.19 where this recipe's step-500 checkpoint had 0.27
and 0.45."""

_CUDA_SCALE: dict[str, dict[str, Any]] = {
    "demo": {"n_features": 16384, "batch_size": 4096, "steps": 1760},
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
