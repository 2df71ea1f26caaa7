"""The demo's transcoder: the `demo` training preset, trained once and reused.

A finished run is reused; an interrupted one (Ctrl-C) continues from its newest
checkpoint; otherwise training starts, recording from the bundled model as it goes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

QUICK_SETTINGS: dict[str, Any] = {
    "kind": "plt",
    "n_features": 256,
    "activation": "topk",
    "k": 8,
    "batch_size": 256,
    "steps": 24,
    "checkpoint_every": 12,
    "model_dtype": "bfloat16",
}
"""`demo --quick`: a transcoder in about a minute, good for nothing but the test."""


def finished(run: Path) -> bool:
    """Whether the run in `run` has written its transcoder (its config is written last)."""
    return (run / "transcoder" / "train_config.json").is_file()


def demo_transcoder(run: Path, model: str, quick: bool, device: str, progress: bool = True) -> Path:
    """The transcoder folder of the demo run in `run`: reused, resumed or trained."""
    from circuitscope.commands.training_commands import TrainConfig, train_command, with_preset

    if finished(run):
        print(f"transcoder: reusing {run / 'transcoder'}")
        return run / "transcoder"
    threads = torch.get_num_threads()  # training splits them between recording and steps
    try:
        if (run / "train_config.json").is_file():
            print(f"transcoder: continuing the interrupted run in {run}")
            train_command(TrainConfig(source=str(run), resume=True, progress=progress))
        else:
            values: dict[str, Any] = QUICK_SETTINGS if quick else {"preset": "demo"}
            print(f"transcoder: training the {'quick' if quick else 'demo'} preset into {run}")
            config = TrainConfig(
                source=model, out=str(run), device=device, progress=progress, **values
            )
            train_command(with_preset(config))
    finally:
        torch.set_num_threads(threads)
    return run / "transcoder"


def evaluate_once(transcoder: Path, model: str, tokens: int, device: str) -> None:
    """Held-out figures of the transcoder (eval.json beside it), unless it has them."""
    from circuitscope.commands.training_commands import EvalConfig, eval_command

    if (transcoder / "eval.json").is_file():
        return
    print(f"transcoder: evaluating on {tokens} held-out tokens")
    eval_command(EvalConfig(transcoder=str(transcoder), model=model, tokens=tokens, device=device))
