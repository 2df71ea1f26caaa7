"""A tiny fp64 model, transcoder and traced graph, shared by the intervention tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from circuitscope.attribution.attribute import AttributionLimits, attribute
from circuitscope.attribution.replacement import build_replacement
from circuitscope.attribution.targets import LogitTarget, top_logit_targets
from circuitscope.graph.graph import Graph
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import tiny_transcoder
from circuitscope.transcoders.transcoder import Transcoder

PROMPT = "The capital of France is"


@dataclass
class TracedTiny:
    adapter: ModelAdapter
    transcoder: Transcoder
    input_ids: Tensor
    graph: Graph
    targets: list[LogitTarget]


def traced_tiny(arch: str, kind: Literal["clt", "plt"], skip: bool = False) -> TracedTiny:
    adapter = ModelAdapter(tiny_model(arch, dtype=torch.float64))
    transcoder = tiny_transcoder(adapter, kind, dtype="float64", skip_connection=skip)
    tokenizer = tiny_tokenizer()
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(PROMPT).input_ids]])
    rep = build_replacement(adapter, transcoder, ids)
    targets = top_logit_targets(adapter, tokenizer, rep.recording.logits[0, -1], max_n_logits=3)
    graph = attribute(rep, targets, AttributionLimits(batch_size=16), progress=False).graph
    return TracedTiny(adapter, transcoder, ids, graph, targets)
