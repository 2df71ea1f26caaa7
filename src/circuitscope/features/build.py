"""Build feature cards: choose features, stream the corpus once, write the folder.

A second run into the same folder adds the cards it lacks (same model, transcoder,
corpus, BOS policy, settings and card contents, checked against `features.json`) and
keeps those already there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from circuitscope.data.bos import BosPolicy, context_has_sink
from circuitscope.errors import CircuitscopeError
from circuitscope.features.cards import layer_cards
from circuitscope.features.files import (
    INDEX_FILE,
    card_ids,
    read_manifest,
    write_automatic_labels,
    write_cards,
)
from circuitscope.features.input_tokens import top_input_tokens
from circuitscope.features.logits import summed_decoders, top_logits
from circuitscope.features.stats_settings import StatsSettings
from circuitscope.features.stream import FeatureStats, Shard, collect_stats, merge_across_processes
from circuitscope.models.loading import LoadedModel
from circuitscope.transcoders.checks import check_against_model
from circuitscope.transcoders.transcoder import Transcoder


@dataclass(frozen=True)
class CorpusSpec:
    sources: tuple[str, ...] = ("default",)
    tokens: int = 65_536
    context_length: int = 128
    batch_size: int = 16
    seed: int = 0
    text_field: str = "text"
    bos: BosPolicy = "auto"
    """Whether each packed context starts with the attention sink (`data.bos`)."""

    @property
    def n_contexts(self) -> int:
        return math.ceil(self.tokens / (self.context_length - 1))


@dataclass
class BuildReport:
    folder: Path
    new_cards: int
    kept_cards: int
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def all_features(transcoder: Transcoder) -> dict[int, Tensor]:
    return {layer: torch.arange(n) for layer, n in enumerate(transcoder.config.n_features)}


def build_feature_cards(
    loaded: LoadedModel,
    transcoder: Transcoder,
    folder: Path,
    corpus: CorpusSpec,
    settings: StatsSettings,
    features: dict[int, Tensor] | None = None,
    *,
    transcoder_id: str = "",
    n_logits: int = 10,
    n_input_tokens: int = 10,
    shard: Shard | None = None,
    progress: bool = True,
) -> BuildReport:
    """Cards for `features` ({layer: [F] indices}; every feature when None) into `folder`,
    with `n_logits` top and bottom logits and `n_input_tokens` top input tokens each."""
    check_against_model(transcoder, loaded.adapter)
    if corpus.tokens < 1 or corpus.context_length < 2 or corpus.batch_size < 1:
        raise CircuitscopeError("--tokens and --batch-size must be positive, --context-length >= 2")
    if min(n_logits, n_input_tokens) < 0:
        raise CircuitscopeError("--logits and --input-tokens cannot be negative")
    folder = Path(folder)
    wanted = _checked(features if features is not None else all_features(transcoder), transcoder)
    contents = {"logits": n_logits, "input_tokens": n_input_tokens}
    run = _run_description(loaded, transcoder, corpus, settings, transcoder_id, contents)
    done = _existing_cards(folder, run)
    todo = _without(wanted, done)
    if not todo:
        return BuildReport(folder, 0, len(done), 0, 0.0)
    stats = collect_stats(
        loaded.adapter,
        transcoder,
        _batches(loaded, corpus),
        corpus.n_contexts,
        todo,
        settings,
        shard,
        progress,
    )
    seconds, tokens = stats.seconds, stats.tokens
    stats = merge_across_processes(stats)
    if shard is None or shard.rank == 0:
        cards = make_cards(loaded, transcoder, stats, transcoder_id, n_logits, n_input_tokens)
        write_cards(
            folder, cards, transcoder.config.n_features, run | {"tokens_seen": stats.tokens}
        )
        write_automatic_labels(folder, {key: card["label"] for key, card in cards.items()})
    return BuildReport(folder, sum(len(f) for f in todo.values()), len(done), tokens, seconds)


def make_cards(
    loaded: LoadedModel,
    transcoder: Transcoder,
    stats: FeatureStats,
    transcoder_id: str,
    n_logits: int,
    n_input_tokens: int = 10,
) -> dict[tuple[int, int], dict[str, Any]]:
    decode = token_decoder(loaded.tokenizer)
    cards = {}
    for layer, layer_stats in stats.layers.items():
        features = stats.features[layer]
        directions = summed_decoders(transcoder, layer, features)
        logits = top_logits(loaded.adapter, directions, stats.typical_divisor, n_logits)
        inputs = _input_tokens(loaded, transcoder, stats, layer, n_input_tokens)
        cards |= layer_cards(
            layer_stats,
            layer,
            features.tolist(),
            stats.settings,
            stats.tokens,
            logits,
            decode,
            transcoder_id,
            inputs,
        )
    return cards


def _input_tokens(
    loaded: LoadedModel, transcoder: Transcoder, stats: FeatureStats, layer: int, k: int
) -> tuple[Tensor, Tensor] | None:
    """(ids, scores) [F, k] of the top input tokens of `layer`'s features; None if k is 0."""
    if k <= 0:
        return None
    divisor = stats.typical_input_divisor(layer)
    return top_input_tokens(loaded.adapter, transcoder, layer, stats.features[layer], divisor, k)


def token_decoder(tokenizer: Any):  # noqa: ANN201 (a Decode)
    """Token ids -> their texts, each id decoded once."""
    cache: dict[int, str] = {}

    def decode(ids: list[int]) -> list[str]:
        for i in ids:
            if i not in cache:
                cache[i] = tokenizer.decode([i])
        return [cache[i] for i in ids]

    return decode


def _batches(loaded: LoadedModel, corpus: CorpusSpec):  # noqa: ANN202 (an iterator of [B, T])
    from circuitscope.data.corpus import iter_documents
    from circuitscope.data.packing import batched, pack_contexts

    documents = iter_documents(list(corpus.sources), "all", corpus.seed, None, corpus.text_field)
    contexts = pack_contexts(documents, loaded.tokenizer, corpus.context_length, corpus.bos)
    return batched(contexts, corpus.batch_size)


def _checked(features: dict[int, Tensor], transcoder: Transcoder) -> dict[int, Tensor]:
    sizes = transcoder.config.n_features
    out = {}
    for layer, indices in features.items():
        if not 0 <= layer < len(sizes):
            raise CircuitscopeError(f"no layer {layer}: the transcoder has {len(sizes)} layers")
        indices = torch.unique(indices.long())
        if len(indices) and not (int(indices[0]) >= 0 and int(indices[-1]) < sizes[layer]):
            raise CircuitscopeError(
                f"feature {int(indices[-1])} of layer {layer} does not exist: "
                f"the transcoder's layer {layer} has {sizes[layer]} features"
            )
        if len(indices):
            out[layer] = indices
    return out


def _run_description(
    loaded: LoadedModel,
    transcoder: Transcoder,
    corpus: CorpusSpec,
    settings: StatsSettings,
    transcoder_id: str,
    card_contents: dict[str, int],
) -> dict[str, Any]:
    """What made the cards: a second run into the folder must match it (`_existing_cards`).
    `card_contents`: the logits and input tokens kept per card ({"logits", "input_tokens"})."""
    if context_has_sink(corpus.bos):
        position_0 = f"skipped (the BOS / attention sink, --bos {corpus.bos}), as in the graphs"
    else:
        position_0 = "skipped (a text token: --bos never puts no BOS first), as eval does"
    return {
        "model": loaded.source,
        "transcoder_id": transcoder_id,
        "transcoder_kind": transcoder.config.kind,
        "n_features": list(transcoder.config.n_features),
        "corpus": {**asdict(corpus), "sources": list(corpus.sources), "split": "all"},
        "settings": asdict(settings),
        "card_contents": dict(card_contents),
        "position_0": position_0,
    }


def _existing_cards(folder: Path, run: dict[str, Any]) -> set[tuple[int, int]]:
    if not (folder / INDEX_FILE).is_file():
        return set()
    manifest = read_manifest(folder)
    settings = manifest.get("settings")
    if isinstance(settings, dict) and "n_intervals" in settings:  # written before the rename
        settings["intervals"] = settings.pop("n_intervals")
    corpus = manifest.get("corpus")
    if isinstance(corpus, dict) and "bos" not in corpus:  # written before --bos: always auto
        corpus["bos"] = "auto"
    keys = ["model", "transcoder_id", "n_features", "corpus", "settings"]
    if "card_contents" in manifest:  # written before it was recorded: counts unknown
        keys.append("card_contents")
    for key in keys:
        if _comparable(key, manifest.get(key)) != _comparable(key, run[key]):
            raise CircuitscopeError(
                f"{folder} holds cards made with another {key} ({manifest.get(key)!r}); "
                "use another folder, or the settings it was made with"
            )
    return set(card_ids(folder))


def _comparable(key: str, value: Any) -> Any:
    """A manifest value as compared: a corpus's BOS policy by its effect (auto and always
    pack the same contexts, both starting with the sink)."""
    if key == "corpus" and isinstance(value, dict) and "bos" in value:
        return {**value, "bos": context_has_sink(value["bos"])}
    return value


def _without(wanted: dict[int, Tensor], done: set[tuple[int, int]]) -> dict[int, Tensor]:
    out = {}
    for layer, indices in wanted.items():
        keep = torch.tensor([(layer, i) not in done for i in indices.tolist()], dtype=torch.bool)
        if bool(keep.any()):
            out[layer] = indices[keep]
    return out
