"""Transcoders made from others: `export-checkpoint` (a training checkpoint as a
transcoder folder, to evaluate a run part-way or keep an earlier state) and
`thresholds` (a TopK transcoder as a JumpReLU one, thresholds calibrated on the corpus)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from circuitscope.cli_args import positional
from circuitscope.commands import Command
from circuitscope.commands.options import BosOption, ModelOptions
from circuitscope.commands.training_commands import CorpusOptions, save_config
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


@dataclass(kw_only=True)
class ThresholdsConfig(BosOption, CorpusOptions, ModelOptions):
    transcoder: str = positional()
    """The TopK transcoder to convert (any supported format)."""
    out: str = positional()
    """The folder to write the JumpReLU transcoder to."""
    tokens: int = 16384
    """Calibration tokens (from the corpus's training split): each layer's threshold
    keeps k features per token on average over them."""
    batch_size: int = 8
    """Contexts per forward pass."""
    seed: int = 0
    """Seeds the corpus order."""
    force: bool = False
    """Write into OUT even if it exists and is not empty."""


def thresholds_command(config: ThresholdsConfig) -> int:
    """Turn a TopK transcoder into a JumpReLU one: per layer, the threshold at which the
    calibration tokens keep k features per token on average (features then fire on
    their own, as the graph's linear edges assume, instead of competing for k slots)."""
    from functools import partial

    from circuitscope.data.corpus import iter_documents
    from circuitscope.data.packing import batched, pack_contexts
    from circuitscope.models.loading import load_model
    from circuitscope.outputs import new_output_folder
    from circuitscope.training.thresholds import threshold_calibration, with_thresholds
    from circuitscope.transcoders.checks import check_against_model
    from circuitscope.transcoders.transcoder import Transcoder

    if config.tokens < 1:
        raise CircuitscopeError(f"--tokens must be at least 1, got {config.tokens}")
    out = new_output_folder(config.out, config.force)
    transcoder = Transcoder.load(config.transcoder, lazy=True)
    if transcoder.config.activation != "topk":
        raise CircuitscopeError(
            f"{config.transcoder} has a {transcoder.config.activation!r} activation; "
            "thresholds replace a TopK one"
        )
    fits = partial(check_against_model, transcoder)
    loaded = load_model(config.model, device=config.device, dtype=config.dtype, check=fits)
    transcoder.to_device(loaded.adapter.device)
    documents = iter_documents(config.corpus, "train", config.seed, None, config.text_field)
    contexts = pack_contexts(documents, loaded.tokenizer, config.context_length, config.bos)
    batches = batched(contexts, config.batch_size)
    thresholds = threshold_calibration(loaded.adapter, transcoder, batches, config.tokens)
    with_thresholds(transcoder, thresholds).save(out)
    save_config(out, "thresholds_config.json", config)
    low, high = min(thresholds), max(thresholds)
    print(f"thresholds from {config.tokens:,} tokens: {low:.3f} to {high:.3f} across layers")
    print(f"wrote the JumpReLU transcoder to {out}")
    return 0


COMMANDS = [
    Command("export-checkpoint", ExportCheckpointConfig, export_checkpoint_command),
    Command("thresholds", ThresholdsConfig, thresholds_command),
]
