"""Tiny traced graphs and model/transcoder folders, for tests and examples (no hub)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from circuitscope.attribution.attribute import AttributionLimits, attribute
from circuitscope.attribution.prompts import token_texts
from circuitscope.attribution.replacement import LocalReplacement, build_replacement
from circuitscope.attribution.targets import LogitTarget, top_logit_targets
from circuitscope.graph.graph import Graph
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import TRAINING_TEXT, tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import Variant, tiny_exact_pair, tiny_transcoder


def tiny_graph(arch: str = "llama", kind: Literal["clt", "plt"] = "clt") -> Graph:
    """The unpruned graph of a short prompt on a tiny random model and transcoder."""
    adapter = ModelAdapter(tiny_model(arch))
    tokenizer = tiny_tokenizer()
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer("The capital of France is").input_ids]])
    rep = build_replacement(adapter, tiny_transcoder(adapter, kind), ids)
    targets = top_logit_targets(adapter, tokenizer, rep.recording.logits[0, -1], 4)
    graph = attribute(rep, targets, AttributionLimits(batch_size=16), progress=False).graph
    graph.prompt = "The capital of France is"
    graph.input_tokens = token_texts(tokenizer, ids[0])
    return graph


def write_tiny_folders(root: Path, arch: str = "llama") -> tuple[Path, Path]:
    """(model folder, transcoder folder) for the CLI."""
    model_dir, transcoder_dir = root / f"tiny-{arch}", root / f"tiny-{arch}-clt"
    model = tiny_model(arch)
    model.save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    tiny_transcoder(ModelAdapter(model), "clt").save(transcoder_dir)
    return model_dir, transcoder_dir


def write_tiny_corpus(root: Path, repeats: int = 8) -> Path:
    """A text file of the tiny tokenizer's training text, `repeats` times, for --corpus."""
    corpus = root / "corpus.txt"
    corpus.write_text((TRAINING_TEXT + "\n") * repeats)
    return corpus


@dataclass
class TracedTiny:
    """A tiny fp64 model and transcoder, a prompt's local replacement model and its graph."""

    replacement: LocalReplacement
    graph: Graph
    targets: list[LogitTarget]

    @property
    def adapter(self) -> ModelAdapter:
        return self.replacement.adapter

    @property
    def transcoder(self):  # noqa: ANN201 (a Transcoder)
        return self.replacement.transcoder

    @property
    def input_ids(self) -> torch.Tensor:
        return self.replacement.input_ids

    def directions(self) -> torch.Tensor:
        """[n_logits, d_model] the logit targets' directions."""
        return torch.stack([target.vector for target in self.targets])


def traced_tiny(
    arch: str,
    kind: Literal["clt", "plt"],
    skip: bool = False,
    n_logits: int = 4,
    prompt: str = "The capital of France is",
    input_site: str = "mlp_in",
) -> TracedTiny:
    """The full (unbudgeted) graph of `prompt` on a tiny fp64 model, for exact checks."""
    adapter, transcoder = tiny_exact_pair(arch, Variant(kind, input_site, skip))
    tokenizer = tiny_tokenizer()
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(prompt).input_ids]])
    rep = build_replacement(adapter, transcoder, ids)
    targets = top_logit_targets(adapter, tokenizer, rep.recording.logits[0, -1], n_logits)
    graph = attribute(rep, targets, AttributionLimits(batch_size=16), progress=False).graph
    return TracedTiny(rep, graph, targets)
