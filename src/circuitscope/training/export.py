"""A checkpoint as a transcoder: the weights of step N of a run, saved as training saves
its final transcoder (normalisation folded in), to evaluate a run part-way."""

from __future__ import annotations

from pathlib import Path

import torch

from circuitscope.errors import CircuitscopeError
from circuitscope.training.checkpoint import load_checkpoint
from circuitscope.training.forward import parameter_list
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import BatchSource
from circuitscope.training.trainer import normalization_scales, save_transcoder, source_config
from circuitscope.transcoders.transcoder import Transcoder


def checkpoint_folder(run: Path, step: int | None) -> Path:
    """The checkpoint of `step` in run folder `run` (None: the newest)."""
    from circuitscope.training.checkpoint import latest_checkpoint

    if step is None:
        found = latest_checkpoint(run)
        if found is None:
            raise CircuitscopeError(f"{run} has no checkpoints")
        return found
    folder = run / "checkpoints" / f"step-{step:08d}"
    if not folder.is_dir():
        have = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
        raise CircuitscopeError(
            f"{run} has no checkpoint of step {step} (it has: {', '.join(have) or 'none'})"
        )
    return folder


@torch.no_grad()
def export_checkpoint(checkpoint: Path, source: BatchSource, folder: Path) -> Path:
    """Write the transcoder of `checkpoint` to `folder`; `source` is the run's batch source
    (its statistics give the scales folded into the weights)."""
    loaded = load_checkpoint(checkpoint)
    settings = TrainSettings(**loaded.meta["settings"])
    config = source_config(settings, source)
    transcoder = Transcoder(config)
    params = parameter_list(transcoder)
    if sorted(name for name, _ in params) != sorted(loaded.weights):
        raise CircuitscopeError(f"{checkpoint} does not hold this run's parameters")
    for name, param in params:
        param.copy_(loaded.weights[name])
    s_in, s_out = normalization_scales(source)
    record = {"step": loaded.step}
    return save_transcoder(transcoder, s_in, s_out, folder, settings, source, record, loaded.step)
