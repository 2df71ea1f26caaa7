"""The `metadata` of the attribution-graph JSON: what Neuronpedia and circuit-tracer read.

`scan` names the model, in Neuronpedia's alphabet (`neuronpedia_scan`): Neuronpedia
reads it as its model id (its upload accepts letters, digits and `_.-` only, and a
model it hosts), and validates documents against its published `graph-schema.json`,
whose optional fields we fill where we know them (`info.generator` is an object).
circuit-tracer's page (0.5.0) looks up a feature's card by `scan` and the node's
`feature`: at `{scan}/{feature}.json` when `scan` starts with `./`, else in the hub repo
named `scan` (`features/index.json.gz`), else on Anthropic's server; a model id finds
none of ours there (our cards are for our viewer). The transcoder is named in
`info.transcoder_set`.
"""

from __future__ import annotations

import re
from pathlib import PureWindowsPath
from typing import Any

from circuitscope import __version__
from circuitscope.graph.graph import Graph

SCHEMA_VERSION = 1


def graph_metadata(graph: Graph, slug: str, scan: str, node_threshold: float) -> dict[str, Any]:
    """The document's `metadata` for `graph`."""
    return {
        "slug": slug,
        "scan": scan,
        "transcoder_list": [],
        "prompt": graph.prompt,
        "prompt_tokens": graph.input_tokens,
        "schema_version": SCHEMA_VERSION,
        "node_threshold": node_threshold,
        "info": _info(graph),
        "pruning_settings": _pruning_settings(graph, node_threshold),
        "generation_settings": _generation_settings(graph),
    }


def neuronpedia_scan(model: str) -> str:
    """A model id Neuronpedia accepts, from a model spec: `HuggingFaceTB/SmolLM2-135M`,
    a folder `.../SmolLM2-135M/` or `SmolLM2-135M.gguf` all give `smollm2-135m`."""
    path = PureWindowsPath(model)  # splits at slashes and backslashes
    name = path.stem if path.suffix.lower() == ".gguf" else path.name
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-") or "model"


def _info(graph: Graph) -> dict[str, Any]:
    info: dict[str, Any] = {
        "generator": {"name": "circuitscope", "version": __version__},
        "n_layers": graph.n_layers,
    }
    if isinstance(graph.metadata.get("transcoder"), str):
        info["transcoder_set"] = graph.metadata["transcoder"]
    return info


def _pruning_settings(graph: Graph, node_threshold: float) -> dict[str, float]:
    settings = {"node_threshold": node_threshold}
    edge_threshold = graph.metadata.get("pruning", {}).get("edge_threshold")
    if isinstance(edge_threshold, float | int):
        settings["edge_threshold"] = float(edge_threshold)
    return settings


def _generation_settings(graph: Graph) -> dict[str, int | float]:
    """The trace settings Neuronpedia's schema names, those that are set."""
    config = graph.metadata.get("config", {})
    kinds = {"max_n_logits": int, "desired_logit_prob": float, "batch_size": int,
             "max_feature_nodes": int}  # fmt: skip
    return {
        key: kind(config[key])
        for key, kind in kinds.items()
        if isinstance(config.get(key), int | float) and not isinstance(config[key], bool)
    }
