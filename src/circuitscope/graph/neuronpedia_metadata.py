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
from collections.abc import Mapping
from pathlib import PureWindowsPath
from typing import Any

from circuitscope import __version__
from circuitscope.graph.graph import Graph

SCHEMA_VERSION = 1
GENERATION_SETTINGS = {"max_n_logits": int, "desired_logit_prob": float, "batch_size": int,
                       "max_feature_nodes": int}  # fmt: skip
"""The trace settings Neuronpedia's schema names, with their JSON types."""
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def graph_metadata(
    graph: Graph,
    slug: str,
    scan: str,
    node_threshold: float,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The document's `metadata` for `graph`; `settings`: the trace's settings (a flat
    mapping such as a trace folder's config.json), of which `generation_settings` keeps
    those Neuronpedia's schema names (default: the graph's `metadata["config"]`)."""
    metadata = {
        "slug": slug,
        "scan": scan,
        "transcoder_list": [],
        "prompt": graph.prompt,
        "prompt_tokens": graph.input_tokens,
        "schema_version": SCHEMA_VERSION,
        "node_threshold": node_threshold,
        "info": _info(graph),
        "pruning_settings": _pruning_settings(graph, node_threshold),
    }
    config = graph.metadata.get("config", {})
    generation = _generation_settings(config if settings is None else settings)
    if generation:
        metadata["generation_settings"] = generation
    return metadata


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
    transcoder = graph.metadata.get("transcoder")
    if isinstance(transcoder, str) and transcoder:
        info["transcoder_set"] = transcoder_name(transcoder)
    return info


def transcoder_name(spec: str) -> str:
    """How the document names a transcoder: a hub id as is, a local path by its last part
    (a reader elsewhere cannot use the path, and it need not see the user's folders)."""
    if HUB_ID.match(spec):
        return spec
    return PureWindowsPath(spec).name or spec


def _pruning_settings(graph: Graph, node_threshold: float) -> dict[str, float]:
    settings = {"node_threshold": node_threshold}
    edge_threshold = graph.metadata.get("pruning", {}).get("edge_threshold")
    if isinstance(edge_threshold, float | int):
        settings["edge_threshold"] = float(edge_threshold)
    return settings


def _generation_settings(settings: Mapping[str, Any]) -> dict[str, int | float]:
    """The settings of GENERATION_SETTINGS that are set (a null is no integer)."""
    return {
        key: kind(settings[key])
        for key, kind in GENERATION_SETTINGS.items()
        if isinstance(settings.get(key), int | float) and not isinstance(settings[key], bool)
    }
