"""`features` (build feature cards over a corpus) and `feature` (print one card)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from circuitscope.cli_args import positional
from circuitscope.commands import Command
from circuitscope.commands.options import BosOption, ModelOptions
from circuitscope.commands.training_commands import CorpusOptions, _context_start, _sink_id
from circuitscope.errors import CircuitscopeError
from circuitscope.features.stats_settings import StatsSettings


@dataclass(kw_only=True)
class FeaturesConfig(StatsSettings, BosOption, CorpusOptions, ModelOptions):
    transcoder: str = positional()
    """The transcoder folder (or hub reference) whose features to describe."""
    out: str = field(default="", metadata={"short": "-o"})
    """The features folder to write (or add to); default: features/ beside the transcoder
    when it is a local folder."""
    tokens: int = 65_536
    """Corpus tokens to stream (position 0 of each context is not counted: the BOS, or with
    --bos never the first text token, as eval skips it)."""
    batch_size: int = 16
    """Contexts per forward pass."""
    features_of: list[str] = field(default_factory=list)
    """Trace folders: build cards only for the features of their pruned graphs."""
    all_graph_nodes: bool = False
    """With --features-of: every feature of the full (unpruned) graphs, not only the pruned."""
    logits: int = 10
    """Top and bottom logit effects kept per feature."""
    input_tokens: int = 10
    """Top input tokens kept per feature: the token embeddings that raise its pre-activation
    most along the direct path (embedding to encoder, through the MLP's norm for mlp_in
    transcoders; attention and earlier MLPs ignored, so most telling in early layers).
    Costs about what the logit effects cost. 0: none."""
    seed: int = 0
    """Seeds the corpus order."""
    progress: bool = True
    """Show a progress bar with tokens/s."""


def features_command(config: FeaturesConfig) -> int:
    """Stream a corpus once and write feature cards (circuit-tracer's layout) for a transcoder."""
    from circuitscope.configs import config_part
    from circuitscope.features.build import CorpusSpec, build_feature_cards
    from circuitscope.features.stream import Shard
    from circuitscope.models.loading import load_model
    from circuitscope.training.distributed import cleanup, setup
    from circuitscope.transcoders.transcoder import Transcoder

    folder = _out_folder(config)  # a wrong -o is refused before any work
    info = setup(config.device)
    try:
        loaded = load_model(config.model, device=str(info.device), dtype=config.dtype)
        transcoder = Transcoder.load(config.transcoder, device=str(loaded.adapter.device))
        features = _graph_features(config) if config.features_of else None
        corpus = CorpusSpec(
            sources=tuple(config.corpus),
            tokens=config.tokens,
            context_length=config.context_length,
            batch_size=config.batch_size,
            seed=config.seed,
            text_field=config.text_field,
            bos=config.bos,
        )
        report = build_feature_cards(
            loaded,
            transcoder,
            folder,
            corpus,
            config_part(config, StatsSettings),
            features,
            transcoder_id=Path(config.transcoder).name,
            n_logits=config.logits,
            n_input_tokens=config.input_tokens,
            shard=Shard(info.rank, info.world_size),
            progress=config.progress and info.is_main,
        )
    finally:
        cleanup(info)
    if info.is_main:
        if report.new_cards == 0:
            print(f"{folder}: all {report.kept_cards} cards asked for are already there")
        else:
            print(
                f"wrote {report.new_cards} cards ({report.kept_cards} kept) to {folder}/ from "
                f"{report.tokens} tokens at {report.tokens_per_second:.0f} tokens/s"
            )
            sink = _sink_id(loaded.tokenizer, config.bos)
            print(_context_start(config.bos, sink, loaded.tokenizer))
    return 0


def _graph_features(config: FeaturesConfig):  # noqa: ANN202 (dict[int, Tensor])
    from circuitscope.features.graph_features import graph_features

    name = "graph" if config.all_graph_nodes else "pruned"
    features = graph_features([Path(p) for p in config.features_of], name)
    if not features:
        hint = "" if config.all_graph_nodes else "; --all-graph-nodes takes the unpruned graphs'"
        raise CircuitscopeError(f"the {name} graphs of {config.features_of} have no features{hint}")
    return features


def _out_folder(config: FeaturesConfig) -> Path:
    """A new folder or a features folder to add to; never a folder of something else."""
    from circuitscope.outputs import check_output_folder

    if config.out:
        own = ("index.json.gz", "features.json", "labels.json")
        return check_output_folder(config.out, own)
    transcoder = Path(config.transcoder)
    if transcoder.is_dir():
        return transcoder / "features"
    raise CircuitscopeError("give the output folder with -o DIR")


@dataclass(kw_only=True)
class FeatureConfig:
    folder: str = positional()
    """A features folder written by `circuitscope features`."""
    layer: int = positional()
    """The feature's layer."""
    index: int = positional()
    """The feature's index in its layer."""
    label: str | None = None
    """Set the feature's label (an empty string restores the automatic one), then print."""
    examples: int = 10
    """Top examples to print."""
    json: bool = False
    """Print the stored card (circuit-tracer's feature JSON) instead of text."""
    neuronpedia: str = ""
    """Also write the card as Neuronpedia feature-details JSON to this file."""
    model_id: str = ""
    """modelId in the Neuronpedia JSON (default: the model the cards were made with)."""


def feature_command(config: FeatureConfig) -> int:
    """Print one feature's card: top examples with the peak token marked, logits, density."""
    from circuitscope.features.card import format_card, load_card
    from circuitscope.features.files import read_manifest, write_label
    from circuitscope.features.neuronpedia import neuronpedia_feature

    folder = Path(config.folder)
    card = load_card(folder, config.layer, config.index)
    if config.label is not None:
        write_label(folder, config.layer, config.index, config.label)
        card = load_card(folder, config.layer, config.index)
    if config.neuronpedia:
        manifest = read_manifest(folder)
        model_id = config.model_id or str(manifest.get("model", ""))
        source = str(manifest.get("transcoder_id", "")) or "transcoder"
        document = neuronpedia_feature(card, model_id, source)
        Path(config.neuronpedia).write_text(json.dumps(document, indent=1) + "\n")
    if config.json:
        print(json.dumps(card.record, indent=1))
    else:
        print(format_card(card, color=sys.stdout.isatty(), n_examples=config.examples))
    return 0


COMMANDS = [
    Command("features", FeaturesConfig, features_command),
    Command("feature", FeatureConfig, feature_command),
]
