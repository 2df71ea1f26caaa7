"""`export-checkpoint`: a training checkpoint as a transcoder folder, to evaluate a run
part-way (a quality-versus-time curve) or keep an earlier state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from circuitscope.cli_args import positional
from circuitscope.commands import Command
from circuitscope.errors import CircuitscopeError


@dataclass(kw_only=True)
class ExportCheckpointConfig:
    run: str = positional()
    """A run folder of `train` (with train_config.json and checkpoints/)."""
    step: int | None = None
    """The checkpoint's step (default: the newest)."""
    out: str = ""
    """Where to write the transcoder (default: RUN/transcoder-step-N)."""


def export_checkpoint_command(config: ExportCheckpointConfig) -> int:
    """Save a training checkpoint as a transcoder folder (scales folded in, as `train` saves)."""
    from circuitscope.cli_args import read_settings_file
    from circuitscope.commands.training_commands import TrainConfig, training_source
    from circuitscope.training.export import checkpoint_folder, export_checkpoint
    from circuitscope.training.settings import TrainSettings

    run = Path(config.run).expanduser()
    saved = run / "train_config.json"
    if not saved.is_file():
        raise CircuitscopeError(f"{run} is not a training run (no train_config.json)")
    checkpoint = checkpoint_folder(run, config.step)
    values = read_settings_file(TrainConfig, str(saved))
    train_config = dataclasses.replace(TrainConfig(**values), overlap=False, progress=False)
    settings = TrainSettings(
        **{f.name: getattr(train_config, f.name) for f in dataclasses.fields(TrainSettings)}
    )
    source, _ = training_source(train_config, settings)
    step = int(checkpoint.name.removeprefix("step-"))
    out = Path(config.out).expanduser() if config.out else run / f"transcoder-step-{step}"
    path = export_checkpoint(checkpoint, source, out)
    print(f"wrote the transcoder of step {step} to {path}")
    return 0


COMMANDS = [
    Command("export-checkpoint", ExportCheckpointConfig, export_checkpoint_command),
]
