"""`collect`, `train` and `eval`: from a corpus to a trained, evaluated transcoder."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from circuitscope.cli_args import positional
from circuitscope.commands import Command
from circuitscope.commands.options import BosOption, ModelOptions
from circuitscope.data.bos import BosPolicy, context_has_sink
from circuitscope.errors import CircuitscopeError
from circuitscope.training.settings import TrainSettings

if TYPE_CHECKING:
    from circuitscope.data.store_format import Manifest


@dataclass(kw_only=True)
class CorpusOptions:
    corpus: list[str] = field(default_factory=lambda: ["default"])
    """default (the offline Debian corpus), text/JSONL/Parquet files or folders, or
    hf:NAME[:CONFIG]."""
    text_field: str = "text"
    """The field holding the text in JSONL and Parquet records and HF datasets."""
    context_length: int = 128
    """Tokens per context, the BOS included (when --bos puts one first)."""


@dataclass(kw_only=True)
class InputSiteOption:
    input_site: Literal["mlp_in", "resid_mid"] = "mlp_in"
    """What the transcoder reads: the MLP's input (after its norm) or the residual stream
    before the MLP's norm (resid_mid: circuit-tracer's hook_resid_mid)."""


@dataclass(kw_only=True)
class CollectConfig(BosOption, InputSiteOption, CorpusOptions, ModelOptions):
    out: str = positional()
    """The activation store folder to write."""
    tokens: int = 65_536
    """Tokens to record (BOS positions are not recorded; see --bos)."""
    batch_size: int = 16
    """Contexts per forward pass."""
    shard_tokens: int = 4096
    """Tokens per shard file."""
    shuffle_shards: int = 4
    """Shards whose tokens are shuffled together before writing."""
    store_dtype: Literal["float16", "bfloat16"] = "float16"
    """Precision of the stored activations."""
    seed: int = 0
    """Seeds the corpus order and the shuffle."""
    force: bool = False
    """Write into OUT even if it exists and is not empty."""


def _save_config(folder: Path, name: str, config: Any) -> None:
    from circuitscope.configs import config_to_dict
    from circuitscope.outputs import write_json

    write_json(folder / name, config_to_dict(config), indent=2)


def _context_start(bos: BosPolicy, sink_id: int | None, tokenizer: Any = None) -> str:
    """How packed contexts start, for a command's output (as run and trace show theirs)."""
    if not context_has_sink(bos):
        return f"contexts start with no BOS (--bos {bos})"
    if sink_id is None:
        return f"contexts start with the BOS (--bos {bos})"
    text = f"{tokenizer.decode([sink_id])!r}, " if tokenizer is not None else "token "
    return f"contexts start with {text}id {sink_id} (--bos {bos})"


def _sink_id(tokenizer: Any, bos: BosPolicy) -> int | None:
    """The sink token packed contexts start with under `bos`, or None (never)."""
    from circuitscope.models.tokenizer import sink_token_id

    return sink_token_id(tokenizer) if context_has_sink(bos) else None


def collect_command(config: CollectConfig) -> int:
    """Record a model's MLP inputs and outputs over a corpus into an activation store."""
    from circuitscope.data.collect import collect_activations
    from circuitscope.data.corpus import iter_documents
    from circuitscope.data.packing import batched, pack_contexts
    from circuitscope.data.store_format import Manifest
    from circuitscope.data.text_files import CorpusReport
    from circuitscope.models.loading import load_model

    if config.tokens < 1:
        raise CircuitscopeError(f"--tokens must be positive, got {config.tokens}")
    from circuitscope.outputs import new_output_folder

    folder = new_output_folder(config.out, config.force)
    loaded = load_model(config.model, device=config.device, dtype=config.dtype)
    report = CorpusReport()
    documents = iter_documents(config.corpus, "train", config.seed, report, config.text_field)
    contexts = pack_contexts(documents, loaded.tokenizer, config.context_length, config.bos)
    manifest = Manifest(
        model=config.model,
        architecture=loaded.adapter.spec.name,
        n_layers=loaded.adapter.n_layers,
        d_model=loaded.adapter.d_model,
        dtype=config.store_dtype,
        context_length=config.context_length,
        seed=config.seed,
        corpus={"sources": config.corpus, "split": "train"},
        input_site=config.input_site,
        bos=config.bos,
        sink_token_id=_sink_id(loaded.tokenizer, config.bos),
    )
    _save_config(folder, "collect_config.json", config)
    manifest = collect_activations(
        loaded.adapter,
        batched(contexts, config.batch_size),
        folder,
        manifest,
        config.tokens,
        config.shard_tokens,
        config.shuffle_shards,
    )
    print(
        f"wrote {manifest.n_tokens} tokens x {manifest.n_layers} layers in "
        f"{len(manifest.shards)} shards to {folder} ({report.summary()})"
    )
    print(_context_start(manifest.bos, manifest.sink_token_id, loaded.tokenizer))
    return 0


@dataclass(kw_only=True)
class TrainConfig(TrainSettings, BosOption, InputSiteOption, CorpusOptions):
    source: str = positional()
    """An activation store folder (from `collect`), or a model to record from as training goes."""
    out: str = positional(default="")
    """The run folder: checkpoints, log, and the trained transcoder in OUT/transcoder."""
    resume: bool = False
    """Continue from the newest checkpoint in OUT (`train OUT --resume` alone takes the
    settings saved in OUT)."""
    progress: bool = True
    """Show a progress bar."""
    preset: Literal["none", "demo", "quality"] = "none"
    """A tested recipe (docs/training.md): demo (about 20 minutes on 2 CPU cores) or quality
    (under 2 hours); the options not given (on the command line or in a --config file) take
    the preset's values. On CUDA the presets are wider and see more tokens."""
    model_dtype: Literal["float32", "bfloat16"] = "float32"
    """When training from a model: the dtype it runs in (bfloat16 records about 2x faster
    on a CPU with native bf16)."""
    overlap: bool = True
    """When training from a model: record the next batches in a second thread while a
    step trains (each gets half the CPU threads)."""


def _resumed(config: TrainConfig) -> TrainConfig:
    """`train OUT --resume`: the settings saved in OUT/train_config.json."""
    from circuitscope.cli_args import read_settings_file

    out = Path(config.source).expanduser()
    saved = out / "train_config.json"
    if not saved.is_file():
        raise CircuitscopeError(
            f"{out} has no train_config.json to resume from; give SOURCE OUT as when it started"
        )
    values = read_settings_file(TrainConfig, str(saved))
    return dataclasses.replace(
        config, **{**values, "out": str(out), "resume": True, "progress": config.progress}
    )


def with_preset(config: TrainConfig, given: Collection[str] | None = None) -> TrainConfig:
    """`config` with its preset's values in the options not `given` (by field name; the
    command line and a `--config` file give them). Without `given`, an option counts as
    given when it differs from its default."""
    if config.preset == "none":
        return config
    from circuitscope.training.presets import preset_values

    device = config.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    defaults = TrainConfig(source=config.source)
    values = preset_values(config.preset, device.split(":")[0])
    if given is None:
        given = [name for name in values if getattr(config, name) != getattr(defaults, name)]
    kept = {name: value for name, value in values.items() if name not in given}
    return dataclasses.replace(config, **kept)


def train_command(config: TrainConfig) -> int:
    """Train a CLT or PLT on an activation store (or straight from a model)."""
    from circuitscope.allocator import reuse_freed_memory
    from circuitscope.training.trainer import train

    reuse_freed_memory()  # not the CLI's return-at-once policy: steps reuse the same blocks
    # `config`'s preset is resolved (`with_preset`, which the CLI applies); a run resumed
    # from its folder was saved with its preset already resolved
    if config.resume and not config.out:
        config = _resumed(config)
    if not config.out:
        raise CircuitscopeError("give SOURCE and OUT (or OUT --resume to continue a run)")
    settings = TrainSettings(
        **{f.name: getattr(config, f.name) for f in dataclasses.fields(TrainSettings)}
    )
    out = Path(config.out).expanduser()
    source, context_start = training_source(config, settings)
    main_process = os.environ.get("RANK", "0") == "0"  # torchrun sets RANK
    if main_process and (not config.resume or not (out / "train_config.json").exists()):
        _save_config(out, "train_config.json", config)
    try:
        result = train(source, settings, out, resume=config.resume, progress=config.progress)
    finally:
        if hasattr(source, "close"):
            source.close()
    if result.transcoder_path is not None:
        _save_config(result.transcoder_path, "train_config.json", config)
        from circuitscope.training.plots import plot_run

        plot_run(out)
        final = result.final
        print(context_start)
        if not final:  # resumed at the last step: no step ran, nothing measured
            print(
                f"the run had finished its {settings.steps} steps; "
                f"saved to {result.transcoder_path}"
            )
            return 0
        print(
            f"trained {settings.kind.upper()} ({settings.n_features} features x "
            f"{source.n_layers} layers): normalized MSE {final.get('nmse', float('nan')):.3f}, "
            f"L0 {final.get('l0', float('nan')):.1f}, dead {final.get('dead', float('nan')):.3f}; "
            f"{result.tokens_per_second:.0f} tokens/s; saved to {result.transcoder_path}"
        )
    return 0


def training_source(config: TrainConfig, settings: TrainSettings) -> tuple[Any, str]:
    """The batch source and how its contexts start (for the output)."""
    from circuitscope.data.store_format import MANIFEST
    from circuitscope.data.store_reader import ActivationStore
    from circuitscope.training.sources import ModelSource, StoreSource

    path = Path(config.source).expanduser()
    if (path / MANIFEST).is_file():
        store = ActivationStore(path, group_shards=settings.group_shards)
        _check_store_fits(config, store.manifest, path)
        start = _context_start(store.manifest.bos, store.manifest.sink_token_id)
        return StoreSource(store, settings.batch_size, settings.seed), f"{start}, as collected"
    if path.is_dir() and not (path / "config.json").is_file():
        raise CircuitscopeError(f"{path} is neither an activation store nor a model folder")
    from circuitscope.data.corpus import iter_documents
    from circuitscope.data.packing import pack_contexts
    from circuitscope.models.loading import load_model

    loaded = load_model(config.source, device=settings.device, dtype=config.model_dtype)

    def contexts() -> Any:
        documents = iter_documents(config.corpus, "train", settings.seed, None, config.text_field)
        return pack_contexts(documents, loaded.tokenizer, config.context_length, config.bos)

    source = ModelSource(
        loaded.adapter,
        contexts,
        settings.batch_size,
        settings.seed,
        config.source,
        loaded.adapter.spec.name,
        input_site=config.input_site,
        bos=config.bos,
    )
    sink = _sink_id(loaded.tokenizer, config.bos)
    start = _context_start(config.bos, sink, loaded.tokenizer)
    if not config.overlap:
        return source, start
    import torch

    from circuitscope.training.prefetch import PrefetchSource, split_threads

    trainer_threads, producer_threads = split_threads(torch.get_num_threads())
    torch.set_num_threads(trainer_threads)
    return PrefetchSource(source, producer_threads=producer_threads), start


def _check_store_fits(config: TrainConfig, manifest: Manifest, path: Path) -> None:
    """A store's input site and BOS policy are fixed; an option that asks for others (not
    its default) is a mistake."""
    stored = manifest.input_site
    if config.input_site != stored and config.input_site != "mlp_in":
        raise CircuitscopeError(
            f"{path} holds {stored} activations; --input-site {config.input_site} needs "
            f"a store collected with it (or train from the model)"
        )
    if config.bos != "auto" and context_has_sink(config.bos) != context_has_sink(manifest.bos):
        raise CircuitscopeError(
            f"{path} was collected with --bos {manifest.bos}; --bos {config.bos} needs "
            f"a store collected with it (or train from the model)"
        )


@dataclass(kw_only=True)
class EvalConfig(BosOption, CorpusOptions, ModelOptions):
    transcoder: str = positional()
    """The transcoder folder (any supported format)."""
    tokens: int = 8192
    """Held-out tokens to evaluate on."""
    batch_size: int = 8
    """Contexts per forward pass."""
    seed: int = 0
    """Seeds the corpus order."""
    out: str | None = None
    """Where to write eval.json (default: inside the transcoder folder)."""


def eval_command(config: EvalConfig) -> int:
    """Evaluate a transcoder on held-out text: per-layer MSE and L0, dead features, splicing."""
    from circuitscope.data.corpus import iter_documents
    from circuitscope.data.packing import batched, pack_contexts
    from circuitscope.models.loading import load_model
    from circuitscope.outputs import check_output_folder, write_json
    from circuitscope.training.evaluate import evaluate, print_report
    from circuitscope.transcoders.checks import check_against_model
    from circuitscope.transcoders.transcoder import Transcoder

    own = ("eval.json", "eval_config.json", "eval_per_layer.png")
    if config.out:
        folder = check_output_folder(config.out, own, "--out")
    else:  # beside the transcoder when it is a folder (a transcoder's folder holds its eval)
        folder = Path(config.transcoder) if Path(config.transcoder).is_dir() else Path(".")
    transcoder = Transcoder.load(config.transcoder)  # a bad path fails before the model loads
    fits = partial(check_against_model, transcoder)  # checked before the weights load
    loaded = load_model(config.model, device=config.device, dtype=config.dtype, check=fits)
    transcoder.to_device(loaded.adapter.device)
    documents = iter_documents(config.corpus, "heldout", config.seed, None, config.text_field)
    contexts = pack_contexts(documents, loaded.tokenizer, config.context_length, config.bos)
    n_contexts = max(1, -(-config.tokens // (config.context_length - 1)))
    report = evaluate(loaded.adapter, transcoder, batched(contexts, config.batch_size), n_contexts)
    sink = _sink_id(loaded.tokenizer, config.bos)
    report.data = {"corpus": config.corpus, "split": "heldout", "model": config.model}
    report.data.update(bos=config.bos, sink_token_id=sink)
    write_json(folder / "eval.json", dataclasses.asdict(report), indent=2)
    _save_config(folder, "eval_config.json", config)
    print_report(report)
    print(_context_start(config.bos, sink, loaded.tokenizer))
    print(f"wrote {folder / 'eval.json'}")
    try:
        from circuitscope.training.plots import plot_eval

        plot_eval(report, folder / "eval_per_layer.png")
    except ImportError:
        pass
    return 0


COMMANDS = [
    Command("collect", CollectConfig, collect_command),
    Command("train", TrainConfig, train_command, resolve=with_preset),
    Command("eval", EvalConfig, eval_command),
]
