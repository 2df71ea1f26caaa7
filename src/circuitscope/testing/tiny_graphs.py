"""Tiny traced graphs and model/transcoder folders, for tests and examples (no hub)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from circuitscope.attribution.attribute import AttributionLimits, attribute
from circuitscope.attribution.prompts import token_texts
from circuitscope.attribution.replacement import build_replacement
from circuitscope.attribution.targets import top_logit_targets
from circuitscope.graph.graph import Graph
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import tiny_transcoder


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
